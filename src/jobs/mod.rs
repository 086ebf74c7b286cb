//! Durable background jobs on apalis, stored in the same database as everything else.
//!
//! This and `worker` (which runs the queue) are the only modules that know apalis. Every job is
//! one variant of [`Job`], stored as JSON on the one named queue [`QUEUE`]; adding a job type
//! means adding a variant and its arm in `worker::dispatch`. Jobs are delivered at least once,
//! so every handler must be idempotent.
//! A job is enqueued inside the caller's transaction ([`schedule`]), so a state change and its
//! follow-up job commit or roll back together.

use std::sync::atomic::{AtomicUsize, Ordering};

use apalis::prelude::TaskBuilder;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub(crate) mod tick;

pub use tick::WakeSignal;

use crate::store::{StoreError, Tx};

/// The queue's name is fixed here, not derived from a Rust type name, so renaming a type never
/// orphans jobs already queued.
pub const QUEUE: &str = "tollgate.jobs";

/// How often a job is tried before it stays failed.
const MAX_ATTEMPTS: usize = 5;

/// A job as the queue stores it (JSON). Tenant and ticket keys are kept as text here and
/// parsed by the worker (`store::stored_ticket`): a job naming a key that does not parse is
/// dropped with an error, where a typed payload would be one the queue cannot decode at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Job {
    /// Diagnostic: proves the worker runs what was queued, also across restarts.
    SelfCheck {
        id: Uuid,
        /// How long the job takes (ms) before it records its run: a job still running when
        /// its worker dies, to check that another worker takes it over.
        #[serde(default)]
        hold_ms: u64,
    },
    /// Process inbound events (webhooks) stored by the ingress writer, in order: one job per
    /// committed batch, so a burst costs the queue one job per batch rather than per event.
    ProcessInbound { ids: Vec<Uuid> },
    /// Try one stored event again: `round` names the occasion (`a3`: its third retry, `s…`:
    /// a sweep, `r…`: an operator's retry), so each is queued once.
    RetryInbound { id: Uuid, round: String },
    /// Queue again the events whose job was lost, for one slot of a minute.
    EventSweep { slot: i64 },
    /// Sync the org chart for one slot of `idp.sync_interval` (slots count from the epoch, so
    /// every replica names the same slot and only one job runs per slot).
    OrgSync { slot: i64 },
    /// Read what an identity provider pushed (SCIM) into the org chart and apply it: one job
    /// per slot of [`PUSH_SLOT_SECONDS`], so a burst of pushes is one sync.
    PushSync { slot: i64 },
    /// Read again the people and groups an identity provider's event named (`idp_events`).
    IdpEvent { id: String },
    /// Apply the newest org chart (leavers, the brake, re-routing); `why` names the occasion
    /// (`snapshot:7`, `hold:7:approved`) and keeps it to one job.
    OrgApply { why: String },
    /// Open the issue of an alert (when alerts open one); `raised` (µs) names the alert.
    AlertTicket {
        kind: String,
        summary: String,
        raised: i64,
    },
    /// Read back webhooks Jira gave up delivering, for one 10-minute slot.
    RecoverWebhooks { slot: i64 },
    /// A pending stage's reminder, escalation or decline (see `engine::timers`).
    StageTimer {
        tenant: String,
        ticket_key: String,
        request: Uuid,
        stage: i64,
        /// When the stage (re)started, in microseconds: a timer from before an escalation is stale.
        epoch: i64,
        kind: crate::lifecycle::approval::TimerKind,
    },
    /// Plan an approved request's grant and start its steps (or apply an approved extension).
    Provision {
        request: Uuid,
        /// Tries so far that failed on a retryable error, and when the first did (µs, wall
        /// clock): planning is retried with the events' backoff for `events.retry_for`.
        #[serde(default)]
        attempt: i64,
        #[serde(default)]
        since: i64,
    },
    /// Apply or undo one step of a grant; `attempt` counts tries, so a stale job is a no-op.
    GrantStep {
        request: Uuid,
        step: i64,
        phase: crate::lifecycle::step::Phase,
        attempt: i64,
    },
    /// End temporary access that expires at `at` (microseconds since the epoch).
    Expire { request: Uuid, at: i64 },
    /// End the temporary access of grants that expire together (request, `at`): one
    /// transaction, and their steps in a few `RevokeSteps` jobs, so a mass expiry costs a few
    /// jobs rather than four per grant.
    ExpireMany { items: Vec<(Uuid, i64)> },
    /// Undo these steps (request, step, attempt), several at a time.
    RevokeSteps { items: Vec<(Uuid, i64, i64)> },
    /// Remind the requester `before_seconds` before access expiring at `expires_at` ends.
    ExpiryReminder {
        request: Uuid,
        expires_at: i64,
        before_seconds: i64,
    },
    /// Queue the expiries and reminders of the next window, for one slot of a minute.
    ExpiryWindow { slot: i64 },
    /// The reconcile sweep, for one slot of `grants.reconcile_interval`.
    Reconcile { slot: i64 },
    /// Checkpoint an audit chain at `seq` (queued by the append that reached it).
    AuditCheckpoint { chain: String, seq: i64 },
    /// Checkpoint every audit chain that moved, for one slot of `audit.checkpoint_interval`.
    AuditCheckpoints { slot: i64 },
    /// Carry out one identity lifecycle run (a joiner's birthright); retried like `Provision`.
    LifecycleRun {
        run: Uuid,
        #[serde(default)]
        attempt: i64,
        #[serde(default)]
        since: i64,
    },
    /// Read every account's last-active dates and judge them by the inactive-account policy,
    /// for one slot of `lifecycle.inactive_scan_interval`.
    InactiveScan { slot: i64 },
    /// Create or renew the identity provider's change-notification subscriptions (Graph).
    HookSubscriptions { slot: i64 },
    /// End access found unused too long (its notice over, or its review declined or undecided).
    InactiveEnd { case: Uuid },
    /// Tell a ticket about a change (comment, participants, transition); `key` makes it once-only.
    TicketNotice {
        tenant: String,
        ticket_key: String,
        notice: crate::lifecycle::notice::Notice,
        key: String,
        /// Tries so far that failed, and when the first failed (µs, wall clock): a notice is
        /// retried with the events' backoff for `events.retry_for`.
        #[serde(default)]
        attempt: i64,
        #[serde(default)]
        since: i64,
        /// How many times an operator brought it back after it was given up on: a new round.
        #[serde(default)]
        round: i64,
        /// Tries put off behind an earlier notice of the ticket (not failures).
        #[serde(default)]
        waited: i64,
    },
}

impl Job {
    /// The label used in logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Job::SelfCheck { .. } => "self_check",
            Job::ProcessInbound { .. } => "process_inbound",
            Job::RetryInbound { .. } => "retry_inbound",
            Job::EventSweep { .. } => "event_sweep",
            Job::OrgSync { .. } => "org_sync",
            Job::PushSync { .. } => "push_sync",
            Job::IdpEvent { .. } => "idp_event",
            Job::OrgApply { .. } => "org_apply",
            Job::AlertTicket { .. } => "alert_ticket",
            Job::LifecycleRun { .. } => "lifecycle_run",
            Job::RecoverWebhooks { .. } => "recover_webhooks",
            Job::TicketNotice { .. } => "ticket_notice",
            Job::StageTimer { .. } => "stage_timer",
            Job::Provision { .. } => "provision",
            Job::GrantStep { .. } => "grant_step",
            Job::Expire { .. } => "expire",
            Job::ExpireMany { .. } => "expire_many",
            Job::RevokeSteps { .. } => "revoke_steps",
            Job::ExpiryReminder { .. } => "expiry_reminder",
            Job::ExpiryWindow { .. } => "expiry_window",
            Job::Reconcile { .. } => "reconcile",
            Job::AuditCheckpoint { .. } => "audit_checkpoint",
            Job::AuditCheckpoints { .. } => "audit_checkpoints",
            Job::InactiveScan { .. } => "inactive_scan",
            Job::HookSubscriptions { .. } => "hook_subscriptions",
            Job::InactiveEnd { .. } => "inactive_end",
        }
    }

    /// A job with a key is enqueued at most once per key.
    pub fn idempotency_key(&self) -> Option<String> {
        match self {
            Job::SelfCheck { id, .. } => Some(format!("self_check:{id}")),
            // Event ids are fresh UUIDs, so the first names the batch.
            Job::ProcessInbound { ids } => ids.first().map(|id| format!("inbound:{id}")),
            Job::RetryInbound { id, round } => Some(format!("inbound_retry:{id}:{round}")),
            Job::EventSweep { slot } => Some(format!("event_sweep:{slot}")),
            Job::OrgSync { slot } => Some(format!("org_sync:{slot}")),
            Job::PushSync { slot } => Some(format!("push_sync:{slot}")),
            Job::IdpEvent { id } => Some(format!("idp_event:{id}")),
            Job::OrgApply { why } => Some(format!("org_apply:{why}")),
            Job::AlertTicket { kind, raised, .. } => Some(format!("alert_ticket:{kind}:{raised}")),
            Job::LifecycleRun {
                run, attempt: 0, ..
            } => Some(format!("lifecycle_run:{run}")),
            Job::LifecycleRun { run, attempt, .. } => {
                Some(format!("lifecycle_run:{run}:r{attempt}"))
            }
            Job::RecoverWebhooks { slot } => Some(format!("recover_webhooks:{slot}")),
            Job::TicketNotice {
                key,
                attempt,
                round,
                waited,
                ..
            } if *waited > 0 => Some(format!("notice:{key}:o{round}:r{attempt}:w{waited}")),
            Job::TicketNotice {
                key,
                attempt: 0,
                round: 0,
                ..
            } => Some(format!("notice:{key}")),
            Job::TicketNotice {
                key,
                attempt,
                round: 0,
                ..
            } => Some(format!("notice:{key}:r{attempt}")),
            Job::TicketNotice {
                key,
                attempt,
                round,
                ..
            } => Some(format!("notice:{key}:o{round}:r{attempt}")),
            Job::StageTimer {
                request,
                stage,
                epoch,
                kind,
                ..
            } => Some(format!("timer:{request}:{stage}:{epoch}:{kind:?}")),
            // The first try keeps the key it always had (jobs queued before retries existed).
            Job::Provision {
                request,
                attempt: 0,
                ..
            } => Some(format!("provision:{request}")),
            Job::Provision {
                request, attempt, ..
            } => Some(format!("provision:{request}:r{attempt}")),
            Job::GrantStep {
                request,
                step,
                phase,
                attempt,
            } => Some(format!(
                "step:{request}:{step}:{}:{attempt}",
                phase.as_str()
            )),
            Job::Expire { request, at } => Some(format!("expire:{request}:{at}")),
            // The same batch queued again by the next window run is the same job.
            Job::ExpireMany { items } => items
                .first()
                .map(|(request, at)| format!("expire_many:{request}:{at}:{}", items.len())),
            Job::RevokeSteps { items } => items.first().map(|(request, step, attempt)| {
                format!("revoke_steps:{request}:{step}:{attempt}:{}", items.len())
            }),
            Job::ExpiryReminder {
                request,
                expires_at,
                before_seconds,
            } => Some(format!("remind:{request}:{expires_at}:{before_seconds}")),
            Job::ExpiryWindow { slot } => Some(format!("expiry_window:{slot}")),
            Job::Reconcile { slot } => Some(format!("reconcile:{slot}")),
            Job::AuditCheckpoint { chain, seq } => Some(format!("audit_checkpoint:{chain}:{seq}")),
            Job::AuditCheckpoints { slot } => Some(format!("audit_checkpoints:{slot}")),
            Job::InactiveScan { slot } => Some(format!("inactive_scan:{slot}")),
            Job::HookSubscriptions { slot } => Some(format!("hook_subscriptions:{slot}")),
            Job::InactiveEnd { case } => Some(format!("inactive_end:{case}")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cannot encode job: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("cannot enqueue job: {0}")]
    Queue(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The queue runs on wall time, the app on its clock (a test's may be days ahead): the wall
/// time at which the app's clock shows `at` (now, if that has passed).
pub fn wall(clock: &dyn crate::clock::Clock, at: DateTime<Utc>) -> DateTime<Utc> {
    crate::clock::wall() + (at - clock.now()).max(chrono::TimeDelta::zero())
}

/// Pushed changes wait at most this long to be read together.
pub const PUSH_SLOT_SECONDS: i64 = 2;

/// Queues the sync of what was pushed in `tx`, at the end of the current slot of wall time.
pub async fn schedule_push_sync(tx: &mut Tx) -> Result<Enqueued, JobError> {
    let wall = crate::clock::wall();
    let slot = wall.timestamp().div_euclid(PUSH_SLOT_SECONDS);
    let due = DateTime::from_timestamp((slot + 1) * PUSH_SLOT_SECONDS, 0).unwrap_or(wall);
    schedule(tx, &Job::PushSync { slot }, due).await
}

/// Whether [`schedule`] added the job or found it already queued under its idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Added,
    AlreadyScheduled,
}

fn task(job: &Job, run_at: DateTime<Utc>) -> Result<apalis::prelude::Task<Vec<u8>>, JobError> {
    let payload = serde_json::to_vec(job)?;
    // apalis stores whole seconds: a future job is rounded up, so it never runs before its
    // time; a job due now is rounded down, so it does not wait up to a second for nothing.
    let due_now = run_at <= crate::clock::wall();
    let seconds = run_at.timestamp() + i64::from(!due_now && run_at.timestamp_subsec_nanos() > 0);
    let mut builder = TaskBuilder::new(payload)
        .run_at_timestamp(u64::try_from(seconds).unwrap_or(0))
        .max_attempts(MAX_ATTEMPTS);
    if let Some(key) = job.idempotency_key() {
        builder = builder.idempotency_key(key);
    }
    Ok(builder.build())
}

/// Enqueues jobs whose idempotency keys were minted in this transaction (so none can exist
/// yet), in one statement: the ingress writer's group commit uses it for a whole batch.
pub async fn schedule_new(tx: &mut Tx, jobs: &[(Job, DateTime<Utc>)]) -> Result<(), JobError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let tasks = jobs
        .iter()
        .map(|(job, at)| task(job, *at))
        .collect::<Result<Vec<_>, _>>()?;
    match tx {
        Tx::Sqlite(tx) => apalis_sqlite::queries::push_tasks(&mut **tx, QUEUE, &tasks)
            .await
            .map_err(|e| JobError::Queue(e.to_string())),
        Tx::Postgres(tx) => apalis_postgres::queries::push_tasks(&mut **tx, QUEUE, tasks)
            .await
            .map_err(|e| JobError::Queue(e.to_string())),
    }
}

/// Enqueues `job` to run at `run_at` (1-second resolution) inside the open transaction.
/// [`schedule`] to run as soon as a worker takes it.
/// Schedules a pending request's open-stage timers under `timeouts`, counted from when the
/// stage started (`escalated`: only the reminder and escalation restart, not the decline).
pub async fn schedule_stage_timers(
    tx: &mut Tx,
    clock: &dyn crate::clock::Clock,
    request: &crate::lifecycle::Request,
    timeouts: &crate::workflow::Timeouts,
    escalated: bool,
) -> Result<(), JobError> {
    use crate::lifecycle::approval::TimerKind;
    let Some(started) = request.stage_started_at else {
        return Ok(());
    };
    if request.state != crate::lifecycle::State::Pending {
        return Ok(());
    }
    let mut due = vec![
        (TimerKind::Remind, timeouts.remind_after),
        (TimerKind::Escalate, timeouts.escalate_after),
    ];
    if !escalated {
        due.push((TimerKind::Decline, timeouts.decline_after));
    }
    for (kind, after) in due {
        let Some(after) = after else { continue };
        let job = Job::StageTimer {
            tenant: request.tenant.to_string(),
            ticket_key: request.ticket_key.to_string(),
            request: request.id,
            stage: request.stage,
            epoch: started.timestamp_micros(),
            kind,
        };
        let at = started + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
        schedule(tx, &job, wall(clock, at)).await?;
    }
    Ok(())
}

pub async fn schedule_now(tx: &mut Tx, job: &Job) -> Result<Enqueued, JobError> {
    schedule(tx, job, crate::clock::wall()).await
}

pub async fn schedule(tx: &mut Tx, job: &Job, run_at: DateTime<Utc>) -> Result<Enqueued, JobError> {
    let task = task(job, run_at)?;
    match tx {
        Tx::Sqlite(tx) => {
            // SQLite ignores a duplicate idempotency key (ON CONFLICT DO NOTHING): compare counts.
            let before = count_with_key(tx, job).await?;
            apalis_sqlite::queries::push_tasks(&mut **tx, QUEUE, &[task])
                .await
                .map_err(|e| JobError::Queue(e.to_string()))?;
            let after = count_with_key(tx, job).await?;
            Ok(if job.idempotency_key().is_some() && before == after {
                Enqueued::AlreadyScheduled
            } else {
                Enqueued::Added
            })
        }
        Tx::Postgres(tx) => {
            // PostgreSQL raises a unique violation instead, which would abort the caller's
            // transaction: a savepoint confines it.
            let mut savepoint = sqlx::Acquire::begin(&mut **tx)
                .await
                .map_err(StoreError::from)?;
            match apalis_postgres::queries::push_tasks(&mut *savepoint, QUEUE, vec![task]).await {
                Ok(()) => {
                    savepoint.commit().await.map_err(StoreError::from)?;
                    Ok(Enqueued::Added)
                }
                Err(apalis_postgres::Error::Database(sqlx::Error::Database(e)))
                    if e.is_unique_violation() =>
                {
                    savepoint.rollback().await.map_err(StoreError::from)?;
                    Ok(Enqueued::AlreadyScheduled)
                }
                Err(e) => Err(JobError::Queue(e.to_string())),
            }
        }
    }
}

async fn count_with_key(conn: &mut sqlx::SqliteConnection, job: &Job) -> Result<i64, JobError> {
    let Some(key) = job.idempotency_key() else {
        return Ok(0);
    };
    Ok(
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM Jobs WHERE job_type = $1 AND idempotency_key = $2",
        )
        .bind(QUEUE)
        .bind(key)
        .fetch_one(conn)
        .await
        .map_err(StoreError::from)?,
    )
}

/// Whether this process's worker is up, for `/readyz`.
#[derive(Debug, Default)]
pub struct WorkerStatus {
    running: AtomicUsize,
}

impl WorkerStatus {
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst) > 0
    }

    pub fn started(&self) {
        self.running.fetch_add(1, Ordering::SeqCst);
    }

    /// Saturating: a worker's stop may be reported twice.
    pub fn stopped(&self) {
        let _ = self
            .running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }
}

/// Queues the application of the newest org chart (`why` names the occasion, so it is
/// queued once per occasion), for a process that is not the worker.
pub async fn queue_org_apply(store: &crate::store::Store, why: &str) -> Result<(), JobError> {
    let mut tx = store.begin().await?;
    schedule_now(
        &mut tx,
        &Job::OrgApply {
            why: why.to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
