//! Alerts: what a person must look at, said the same way everywhere. An alert is an
//! `alert.<kind>` audit event (committed with the change that raised it), the
//! `tollgate_alerts_total{kind}` counter, and an `ALERT:` line at error level; open ones are
//! counted by the `tollgate_alerts_open` gauge. With `TOLLGATE_ALERTS_SITE` and
//! `TOLLGATE_ALERTS_JIRA_PROJECT` set, each also opens an issue there (a durable job, queued in
//! the same transaction).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::audit::{self, Actor, Event};
use crate::metrics::Metrics;
use crate::store::{StoreError, Tx};

/// Serialized, an alert is its details: the fields of its kind.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Alert {
    /// A sync would have made too many people leavers: their removals wait for approval.
    LeaverBrake {
        version: i64,
        leavers: usize,
        /// Grants their removal would revoke.
        grants: usize,
        active_before: usize,
        limit: usize,
    },
    /// A sync showed more joiners (or movers) at once than the brake believes: their
    /// birthright changes wait.
    LifecycleBrake {
        version: i64,
        /// `joiner` or `mover`.
        event: String,
        people: usize,
        active_before: usize,
        limit: usize,
    },
    /// The periodic org sync failed this many times in a row: the org chart is getting old.
    SyncFailing {
        source: String,
        failures: i64,
        error: String,
    },
    /// A ticket could not be told (its notice's comment) and will not be retried any more.
    NoticeDead {
        notice: String,
        tenant: String,
        ticket_key: String,
        reason: String,
    },
    /// An acknowledged event could not be processed and will not be retried any more.
    EventDead {
        event: String,
        tenant: String,
        event_type: String,
        reason: String,
    },
}

impl Alert {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LeaverBrake { .. } => "leaver_brake",
            Self::LifecycleBrake { .. } => "lifecycle_brake",
            Self::SyncFailing { .. } => "sync_failing",
            Self::EventDead { .. } => "event_dead",
            Self::NoticeDead { .. } => "notice_dead",
        }
    }

    pub fn summary(&self) -> String {
        match self {
            Self::LeaverBrake {
                version,
                leavers,
                grants,
                active_before,
                limit,
            } => format!(
                "org chart snapshot {version} would make {leavers} of {active_before} active \
                 people leavers (the brake allows {limit}) and revoke {grants} grants: their \
                 access stays until someone runs `tollgate org leavers --approve {version}`"
            ),
            Self::LifecycleBrake {
                version,
                event,
                people,
                active_before,
                limit,
            } => format!(
                "org chart snapshot {version} shows {people} {event}s among {active_before} \
                 active people (the brake allows {limit}): their birthright changes wait until \
                 someone runs `tollgate lifecycle release {version}`"
            ),
            Self::SyncFailing {
                source,
                failures,
                error,
            } => format!(
                "the org sync from {source} failed {failures} times in a row (last: {error}); \
                 routing and leavers use the chart from before the failures"
            ),
            Self::EventDead {
                event,
                tenant,
                event_type,
                reason,
            } => format!(
                "the {event_type} event {event} from {tenant} could not be processed ({reason}); \
                 `tollgate events retry {event}` tries it again"
            ),
            Self::NoticeDead {
                notice,
                tenant,
                ticket_key,
                reason,
            } => format!(
                "{ticket_key} on {tenant} could not be told ({reason}); \
                 `tollgate events retry {notice}` tries it again"
            ),
        }
    }

    fn details(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Records the alert in the audit log, in the caller's transaction, and queues its issue
/// when alerts open one.
pub async fn record(
    tx: &mut Tx,
    config: &crate::config::Config,
    alert: &Alert,
    now: DateTime<Utc>,
) -> Result<(), crate::jobs::JobError> {
    if config.alert_ticket.is_some() {
        let job = crate::jobs::Job::AlertTicket {
            kind: alert.kind().to_string(),
            summary: alert.summary(),
            raised: now.timestamp_micros(),
        };
        // Due at once on the wall clock the queue runs on (`now` may be a test's clock).
        crate::jobs::schedule_now(tx, &job).await?;
    }
    let mut details = alert.details();
    details["summary"] = json!(alert.summary());
    audit::append(
        tx,
        &Event {
            at: now,
            tenant: None,
            request_id: None,
            ticket_key: None,
            actor: Actor::System("alerts".into()),
            action: crate::audit::Action::Alert(alert.kind()),
            target: None,
            details,
            workflow_version: None,
        },
    )
    .await?;
    Ok(())
}

/// Opens the issue of an alert raised earlier (the `AlertTicket` job).
pub async fn open_ticket(
    state: &crate::state::AppState,
    kind: &str,
    summary: &str,
) -> Result<(), crate::failure::Failure> {
    let Some(ticket) = &state.config.alert_ticket else {
        return Ok(());
    };
    let (_, site) = state.jira_site_at(&ticket.site).await?;
    let key = state
        .atlassian
        .create_issue(
            &site,
            &ticket.project,
            &ticket.issue_type,
            &format!("Tollgate alert: {kind}"),
            summary,
        )
        .await?;
    tracing::info!(kind, issue = %key, "alert issue opened");
    Ok(())
}

/// Says it, once the transaction that recorded it has committed.
pub fn announce(metrics: &Metrics, alert: &Alert) {
    metrics.record_alert(alert.kind());
    tracing::error!(kind = alert.kind(), "ALERT: {}", alert.summary());
}

/// The alerts of `kind` raised so far, oldest first, as their audit events record them.
pub async fn raised(store: &crate::store::Store, kind: &str) -> Result<Vec<Value>, StoreError> {
    crate::audit::system_events(store, &format!("alert.{kind}")).await
}
