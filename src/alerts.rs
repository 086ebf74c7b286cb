//! Alerts: what a person must look at, said the same way everywhere. An alert is an
//! `alert.<kind>` audit event (committed with the change that raised it), the
//! `tollgate_alerts_total{kind}` counter, and an `ALERT:` line at error level; open ones are
//! counted by the `tollgate_alerts_open` gauge.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::audit::{self, Actor, Event};
use crate::metrics::Metrics;
use crate::store::{StoreError, Tx};

#[derive(Debug, Clone, PartialEq)]
pub enum Alert {
    /// A sync would have made too many people leavers: their removals wait for approval.
    LeaverBrake {
        version: i64,
        leavers: usize,
        active_before: usize,
        limit: usize,
    },
    /// The periodic org sync failed this many times in a row: the org chart is getting old.
    SyncFailing {
        source: String,
        failures: i64,
        error: String,
    },
}

impl Alert {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LeaverBrake { .. } => "leaver_brake",
            Self::SyncFailing { .. } => "sync_failing",
        }
    }

    pub fn summary(&self) -> String {
        match self {
            Self::LeaverBrake {
                version,
                leavers,
                active_before,
                limit,
            } => format!(
                "org chart snapshot {version} would make {leavers} of {active_before} active \
                 people leavers (more than {limit}): their access stays until someone runs \
                 `tollgate org leavers --approve {version}`"
            ),
            Self::SyncFailing {
                source,
                failures,
                error,
            } => format!(
                "the org sync from {source} failed {failures} times in a row (last: {error}); \
                 routing and leavers use the chart from before the failures"
            ),
        }
    }

    fn details(&self) -> Value {
        match self {
            Self::LeaverBrake {
                version,
                leavers,
                active_before,
                limit,
            } => json!({"version": version, "leavers": leavers,
                "active_before": active_before, "limit": limit}),
            Self::SyncFailing {
                source,
                failures,
                error,
            } => json!({"source": source, "failures": failures, "error": error}),
        }
    }
}

/// Records the alert in the audit log, in the caller's transaction.
pub async fn record(tx: &mut Tx, alert: &Alert, now: DateTime<Utc>) -> Result<(), StoreError> {
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
            action: format!("alert.{}", alert.kind()),
            target: None,
            details,
            workflow_version: None,
        },
    )
    .await
    .map(|_| ())
}

/// Says it, once the transaction that recorded it has committed.
pub fn announce(metrics: &Metrics, alert: &Alert) {
    metrics.record_alert(alert.kind());
    tracing::error!(kind = alert.kind(), "ALERT: {}", alert.summary());
}

/// The alerts of `kind` raised so far, oldest first, as their audit events record them.
pub async fn raised(store: &crate::store::Store, kind: &str) -> Result<Vec<Value>, StoreError> {
    let action = format!("alert.{kind}");
    let rows: Vec<(String,)> = crate::on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT canonical FROM audit_events WHERE action = $1 AND tenant IS NULL ORDER BY at",
        )
        .bind(&action)
        .fetch_all(pool)
        .await
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(canonical,)| serde_json::from_str(&canonical).ok())
        .collect())
}
