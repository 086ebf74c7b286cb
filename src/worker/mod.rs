//! The job worker: runs what the queue (`jobs`) holds, each job by the domain it belongs to
//! (one registry, `dispatch`), retries what failed on a retryable error, and keeps the
//! periodic schedule. It decides nothing about a request: that is the domains' work.

use std::time::{Duration, Instant};

use apalis::prelude::{BoxDynError, Data, Event, Monitor, WorkerBuilder};
use apalis::prelude::{PollWith, WorkerBuilderExt, WorkerContext};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ids::{TenantKey, TicketKey};
use crate::jobs::tick;
use crate::jobs::{Job, JobError, QUEUE, schedule, schedule_now, wall};
use crate::notices::Told;
use crate::shutdown::Shutdown;
use crate::state::AppState;
use crate::store::{Db, Tx, selfcheck};

/// Heartbeats a worker may miss before its jobs go back to the queue (apalis's PostgreSQL
/// default is 10: five minutes at its 30 s heartbeat, while the other workers sit idle).
const MISSED_HEARTBEATS: usize = 2;

/// Runs the job worker until `shutdown` fires, then lets in-flight jobs finish (bounded by the
/// configured shutdown timeout).
pub async fn run_worker(state: AppState, shutdown: Shutdown) -> Result<(), BoxDynError> {
    let config = state.config.jobs.clone();
    let status = state.worker_status.clone();
    let wake = state.job_wake.clone();
    // A fresh name per process and per restart: apalis refuses a worker name that was seen
    // alive in the last minute, which would kill a quickly restarted process's worker.
    let process = Uuid::now_v7();
    let name = move |restarts: usize| format!("tollgate-{process}-{restarts}");
    let monitor = Monitor::new()
        .should_restart(|ctx, error| {
            tracing::warn!(worker = ctx.name(), %error, "job worker stopped; restarting");
            true
        })
        .on_event(move |ctx: &WorkerContext, event: &Event| match event {
            Event::Start => {
                status.started();
                tracing::info!(worker = ctx.name(), "job worker started");
            }
            Event::Stop | Event::Exit => {
                // Stop and Exit may both arrive for one worker.
                status.stopped();
            }
            Event::Error(error) => tracing::warn!(worker = ctx.name(), %error, "job worker error"),
            _ => {}
        })
        .shutdown_timeout(state.config.server.shutdown_timeout);

    let db = state.store.db().clone();
    let monitor = match db.clone() {
        Db::Sqlite(pool) => {
            let queue = apalis_sqlite::Config::default()
                .queue(QUEUE)
                .heartbeat_interval(config.heartbeat)
                .missed_heartbeats(MISSED_HEARTBEATS)
                .batch_size(config.concurrency);
            monitor.register(move |restarts| {
                let backend = PollWith::new(
                    apalis_sqlite::SqliteStorage::<Job>::new(&pool).with_config(queue.clone()),
                    tick::Tick::every(config.poll_interval).woken_by(wake.clone()),
                );
                WorkerBuilder::new(name(restarts))
                    .backend(backend)
                    .concurrency(config.concurrency)
                    .data(state.clone())
                    .build(run)
            })
        }
        Db::Postgres(pool) => {
            let queue = apalis_postgres::Config::default()
                .queue(QUEUE)
                .heartbeat_interval(config.heartbeat)
                .missed_heartbeats(MISSED_HEARTBEATS)
                .batch_size(config.concurrency);
            monitor.register(move |restarts| {
                let backend = PollWith::new(
                    apalis_postgres::PostgresStorage::<Job>::new(&pool).with_config(queue.clone()),
                    tick::Tick::every(config.poll_interval).woken_by(wake.clone()),
                );
                WorkerBuilder::new(name(restarts))
                    .backend(backend)
                    .concurrency(config.concurrency)
                    .data(state.clone())
                    .build(run)
            })
        }
    };
    monitor
        .run_with_signal(async move {
            shutdown.wait().await;
            Ok(())
        })
        .await?;
    // Stopped: what this process claimed and did not finish goes back to the queue now, not
    // after its heartbeats are missed.
    match hand_back(&db, &format!("tollgate-{process}-%")).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(jobs = n, "unfinished jobs handed back to the queue"),
        Err(e) => {
            tracing::warn!(error = %e, "unfinished jobs not handed back; other workers take them over once this one's heartbeats stop")
        }
    }
    Ok(())
}

/// Puts the jobs claimed by workers named like `workers` (a `LIKE` pattern) and not finished
/// back in the queue; a job that had started counts the attempt. Only for stopped workers.
async fn hand_back(db: &Db, workers: &str) -> Result<u64, sqlx::Error> {
    let done = match db {
        Db::Sqlite(pool) => sqlx::query(
            "UPDATE Jobs SET attempts = attempts + (status = 'Running'), status = 'Pending', \
                 lock_by = NULL, lock_at = NULL, done_at = NULL \
                 WHERE lock_by LIKE ?1 AND status IN ('Running', 'Queued')",
        )
        .bind(workers)
        .execute(pool)
        .await?
        .rows_affected(),
        Db::Postgres(pool) => sqlx::query(
            "UPDATE apalis.jobs SET attempts = attempts + \
                 CASE WHEN status = 'Running' THEN 1 ELSE 0 END, status = 'Pending', \
                 lock_by = NULL, lock_at = NULL, done_at = NULL \
                 WHERE lock_by LIKE $1 AND status IN ('Running', 'Queued')",
        )
        .bind(workers)
        .execute(pool)
        .await?
        .rows_affected(),
    };
    Ok(done)
}

/// Runs one job and records its outcome.
async fn run(job: Job, state: Data<AppState>) -> Result<(), BoxDynError> {
    let kind = job.kind();
    let started = Instant::now();
    let result = dispatch(&job, &state).await;
    // What the job committed (notices, timers, the next slot) is picked up at once.
    state.job_wake.wake();
    let outcome = if result.is_ok() { "success" } else { "failure" };
    state
        .metrics
        .record_job(kind, outcome, started.elapsed().as_secs_f64());
    match &result {
        Ok(()) => tracing::debug!(job = kind, "job done"),
        Err(error) => tracing::warn!(job = kind, %error, "job failed"),
    }
    result
}

async fn dispatch(job: &Job, state: &AppState) -> Result<(), BoxDynError> {
    match job {
        Job::SelfCheck { id, hold_ms } => {
            tokio::time::sleep(Duration::from_millis(*hold_ms)).await;
            let first = selfcheck::record_run(&state.store, *id, state.clock.now()).await?;
            if !first {
                tracing::info!(%id, "self-check delivered again; already recorded");
            }
            Ok(())
        }
        Job::OrgSync { slot } => {
            queue_following(state, Periodic::OrgSync, *slot).await?;
            engine_job(crate::engine::org_change::sync(state).await)
        }
        Job::PushSync { .. } => engine_job(crate::engine::org_change::sync(state).await),
        Job::IdpEvent { id } => engine_job(crate::engine::org_change::reread(state, id).await),
        Job::OrgApply { .. } => engine_job(crate::engine::org_change::apply_logged(state).await),
        Job::HookSubscriptions { slot } => {
            queue_following(state, Periodic::HookSubscriptions, *slot).await?;
            engine_job(crate::engine::org_change::keep_subscriptions(state).await)
        }
        Job::InactiveScan { slot } => {
            queue_following(state, Periodic::InactiveScan, *slot).await?;
            engine_job(crate::identity::inactive::scan_logged(state).await)
        }
        Job::InactiveEnd { case } => engine_job(crate::identity::inactive::end(state, *case).await),
        Job::LifecycleRun {
            run,
            attempt,
            since,
        } => {
            use crate::identity::run;
            match run::execute(state, *run).await {
                Ok(()) => Ok(()),
                Err(e) if e.is_retryable() => match next_try(state, *attempt, *since, &e) {
                    Err(why) => engine_job(run::give_up(state, *run, &why).await),
                    Ok(next) => {
                        let again = Job::LifecycleRun {
                            run: *run,
                            attempt: attempt + 1,
                            since: next.since,
                        };
                        queue_again(state, &again, next.at).await?;
                        tracing::warn!(%run, error = %e, wait = ?next.wait, "a lifecycle run could not go on; retrying");
                        Ok(())
                    }
                },
                Err(e) => engine_job(run::give_up(state, *run, &e.to_string()).await),
            }
        }
        Job::AlertTicket { kind, summary, .. } => {
            engine_job(crate::alerts::open_ticket(state, kind, summary).await)
        }
        Job::Provision {
            request,
            attempt,
            since,
        } => match crate::grants::run::provision(state, *request).await {
            Err(e) if e.is_retryable() => match next_try(state, *attempt, *since, &e) {
                Err(why) => {
                    engine_job(crate::grants::run::give_up_provision(state, *request, why).await)
                }
                Ok(next) => {
                    let again = Job::Provision {
                        request: *request,
                        attempt: attempt + 1,
                        since: next.since,
                    };
                    queue_again(state, &again, next.at).await?;
                    tracing::warn!(%request, error = %e, wait = ?next.wait, "the grant could not be planned; retrying");
                    Ok(())
                }
            },
            other => engine_job(other),
        },
        Job::GrantStep {
            request,
            step,
            phase,
            attempt,
        } => engine_job(crate::grants::run::step(state, *request, *step, *phase, *attempt).await),
        Job::Expire { request, at } => {
            engine_job(crate::grants::expiry::expire(state, *request, *at).await)
        }
        Job::ExpireMany { items } => engine_job(
            crate::grants::expiry::expire_many(state, items)
                .await
                .map(|_| ()),
        ),
        Job::RevokeSteps { items } => {
            engine_job(crate::grants::run::revoke_steps(state, items).await)
        }
        Job::ExpiryReminder {
            request,
            expires_at,
            before_seconds,
        } => engine_job(
            crate::grants::expiry::remind(state, *request, *expires_at, *before_seconds).await,
        ),
        Job::ExpiryWindow { slot } => {
            queue_following(state, Periodic::ExpiryWindow, *slot).await?;
            engine_job(crate::grants::expiry::queue_window(state).await.map(|_| ()))
        }
        Job::AuditCheckpoint { chain, seq } => {
            let key = crate::audit::checkpoint::CheckpointKey::derive(&state.secret_key);
            crate::audit::checkpoint::write_at(
                &state.store,
                &key,
                chain,
                *seq,
                crate::clock::wall(),
            )
            .await?;
            Ok(())
        }
        Job::AuditCheckpoints { slot } => {
            queue_following(state, Periodic::AuditCheckpoints, *slot).await?;
            let key = crate::audit::checkpoint::CheckpointKey::derive(&state.secret_key);
            let written =
                crate::audit::checkpoint::write_heads(&state.store, &key, crate::clock::wall())
                    .await?;
            tracing::debug!(written, "audit chains checkpointed");
            Ok(())
        }
        Job::Reconcile { slot } => {
            queue_following(state, Periodic::Reconcile, *slot).await?;
            engine_job(crate::grants::sweep::sweep(state).await.map(|report| {
                if report != Default::default() {
                    tracing::info!(?report, "reconcile sweep");
                }
            }))
        }
        Job::RecoverWebhooks { slot } => recover_webhooks(state, *slot).await,
        Job::StageTimer {
            tenant,
            ticket_key,
            request,
            stage,
            epoch,
            kind,
        } => match stored_ticket(tenant, ticket_key) {
            None => Ok(()),
            Some((tenant, ticket)) => {
                let at = (*stage, *epoch);
                match crate::engine::timers::fire(state, &tenant, &ticket, *request, at, *kind)
                    .await
                {
                    Ok(()) => Ok(()),
                    Err(e) if e.is_retryable() => Err(e.into()),
                    Err(e) => {
                        tracing::error!(ticket_key, error = %e, "stage timer failed");
                        Ok(())
                    }
                }
            }
        },
        Job::TicketNotice {
            tenant,
            ticket_key,
            notice,
            key,
            attempt,
            since,
            round,
            waited,
        } => match stored_ticket(tenant, ticket_key) {
            None => Ok(()),
            Some((tenant_key, ticket)) => {
                match crate::notices::deliver(state, &tenant_key, &ticket, notice, key).await {
                    Ok(Told::Done) => Ok(()),
                    Ok(Told::Behind(earlier)) => {
                        let again = Job::TicketNotice {
                            tenant: tenant.clone(),
                            ticket_key: ticket_key.clone(),
                            notice: notice.clone(),
                            key: key.clone(),
                            attempt: *attempt,
                            since: *since,
                            round: *round,
                            waited: waited + 1,
                        };
                        queue_again(state, &again, crate::clock::wall() + NOTICE_WAIT).await?;
                        tracing::debug!(
                            ticket_key,
                            key,
                            earlier,
                            "the notice waits for an earlier one"
                        );
                        Ok(())
                    }
                    Err(e) if e.is_retryable() => {
                        let next = match next_try(state, *attempt, *since, &e) {
                            Ok(next) => next,
                            Err(reason) => {
                                let dead = (tenant, ticket_key, notice, key, *round);
                                return Ok(crate::notices::give_up(state, dead, &reason).await?);
                            }
                        };
                        let again = Job::TicketNotice {
                            tenant: tenant.clone(),
                            ticket_key: ticket_key.clone(),
                            notice: notice.clone(),
                            key: key.clone(),
                            attempt: attempt + 1,
                            since: next.since,
                            round: *round,
                            waited: *waited,
                        };
                        queue_again(state, &again, next.at).await?;
                        tracing::warn!(ticket_key, error = %e, wait = ?next.wait, "the ticket could not be told; retrying");
                        Ok(())
                    }
                    Err(e) => {
                        let dead = (tenant, ticket_key, notice, key, *round);
                        Ok(crate::notices::give_up(state, dead, &e.to_string()).await?)
                    }
                }
            }
        },
        Job::ProcessInbound { ids } => {
            let outcomes = crate::engine::events::process(state, ids).await?;
            tracing::info!(events = ids.len(), ?outcomes, "inbound events processed");
            Ok(())
        }
        Job::RetryInbound { id, .. } => {
            crate::engine::events::process_one(state, *id).await?;
            Ok(())
        }
        Job::EventSweep { slot } => {
            queue_following(state, Periodic::EventSweep, *slot).await?;
            crate::engine::events::sweep(state, *slot).await?;
            Ok(())
        }
    }
}

/// Queues the next run of a job that is not done yet (a retry, a wait), in its own transaction.
async fn queue_again(state: &AppState, job: &Job, at: DateTime<Utc>) -> Result<(), JobError> {
    let mut tx = state.store.begin().await?;
    schedule(&mut tx, job, at).await?;
    tx.commit().await?;
    Ok(())
}

/// A job's tenant and ticket, as Tollgate stored them: one that does not parse is a damaged
/// job, dropped with an error (retrying cannot mend it).
fn stored_ticket(tenant: &str, ticket: &str) -> Option<(TenantKey, TicketKey)> {
    crate::store::stored_ticket(tenant, ticket)
        .inspect_err(|e| {
            tracing::error!(tenant, ticket, error = %e, "a stored job names no ticket; dropped");
        })
        .ok()
}

/// How long a ticket notice waiting behind an earlier one waits before looking again.
const NOTICE_WAIT: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// When a job that failed on a retryable error runs again.
struct NextTry {
    at: DateTime<Utc>,
    wait: Duration,
    /// When its first try failed (µs, wall clock), carried to the next.
    since: i64,
}

/// The next try of a job failing `attempt` times since `since` (0: this is the first failure),
/// with the events' backoff and the vendor's Retry-After; `Err` with the reason once it would
/// fall past `events.retry_for`.
fn next_try(
    state: &AppState,
    attempt: i64,
    since: i64,
    error: &crate::failure::Failure,
) -> Result<NextTry, String> {
    let now = crate::clock::wall();
    let since = if since == 0 {
        now.timestamp_micros()
    } else {
        since
    };
    let wait = crate::engine::events::backoff(&state.config.events, attempt, error.retry_after());
    let at = now + chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::minutes(10));
    let window = chrono::TimeDelta::from_std(state.config.events.retry_for)
        .unwrap_or(chrono::TimeDelta::days(1));
    if at.timestamp_micros() - since > window.num_microseconds().unwrap_or(i64::MAX) {
        return Err(format!(
            "retried for {:?}: {error}",
            state.config.events.retry_for
        ));
    }
    Ok(NextTry { at, wait, since })
}

/// A job's engine result: retryable errors are retried by the queue, others logged and
/// dropped (retrying cannot help; the sweep is the safety net).
fn engine_job(result: Result<(), crate::failure::Failure>) -> Result<(), BoxDynError> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.is_retryable() => Err(e.into()),
        Err(e) => {
            tracing::error!(error = %e, "job failed for good");
            Ok(())
        }
    }
}

/// How often the identity provider's change-notification subscriptions are looked after.
const HOOK_SUBSCRIPTIONS_EVERY_SECONDS: i64 = 12 * 3600;

/// How often failed webhooks are read back from Jira (it keeps them about 72 hours).
const RECOVERY_EVERY_SECONDS: i64 = 600;

/// Periodic jobs run once per slot of their interval; slots count from the epoch, so every
/// replica names the same slot and its idempotency key keeps it to one job.
#[derive(Debug, Clone, Copy)]
enum Periodic {
    OrgSync,
    RecoverWebhooks,
    ExpiryWindow,
    Reconcile,
    AuditCheckpoints,
    EventSweep,
    InactiveScan,
    HookSubscriptions,
}

impl Periodic {
    fn interval(self, state: &AppState) -> i64 {
        match self {
            Self::OrgSync => i64::try_from(state.config.idp.sync_interval.as_secs())
                .unwrap_or(i64::MAX)
                .max(1),
            Self::RecoverWebhooks => RECOVERY_EVERY_SECONDS,
            Self::ExpiryWindow | Self::EventSweep => 60,
            Self::Reconcile => i64::try_from(state.config.grants.reconcile_interval.as_secs())
                .unwrap_or(i64::MAX)
                .max(1),
            Self::AuditCheckpoints => {
                i64::try_from(state.config.audit.checkpoint_interval.as_secs())
                    .unwrap_or(i64::MAX)
                    .max(1)
            }
            Self::InactiveScan => {
                i64::try_from(state.config.lifecycle.inactive_scan_interval.as_secs())
                    .unwrap_or(i64::MAX)
                    .max(1)
            }
            Self::HookSubscriptions => HOOK_SUBSCRIPTIONS_EVERY_SECONDS,
        }
    }

    fn job(self, slot: i64) -> Job {
        match self {
            Self::OrgSync => Job::OrgSync { slot },
            Self::RecoverWebhooks => Job::RecoverWebhooks { slot },
            Self::ExpiryWindow => Job::ExpiryWindow { slot },
            Self::Reconcile => Job::Reconcile { slot },
            Self::AuditCheckpoints => Job::AuditCheckpoints { slot },
            Self::EventSweep => Job::EventSweep { slot },
            Self::InactiveScan => Job::InactiveScan { slot },
            Self::HookSubscriptions => Job::HookSubscriptions { slot },
        }
    }

    /// Queues the slot after `slot`, at its start.
    async fn queue_next(self, state: &AppState, tx: &mut Tx, slot: i64) -> Result<(), JobError> {
        let interval = self.interval(state);
        let at = DateTime::from_timestamp((slot + 1) * interval, 0).unwrap_or(state.clock.now());
        schedule(tx, &self.job(slot + 1), wall(&*state.clock, at))
            .await
            .map(|_| ())
    }

    fn current_slot(self, state: &AppState) -> i64 {
        state
            .clock
            .now()
            .timestamp()
            .div_euclid(self.interval(state))
    }
}

/// Schedules the periodic jobs: the next slot of each, and right away an org sync when no
/// org chart exists yet and a webhook recovery (a process that starts may have been down).
pub async fn schedule_periodic(state: &AppState) -> Result<(), JobError> {
    let no_org_chart = crate::store::org::latest_version(&state.store)
        .await?
        .is_none();
    let mut tx = state.store.begin().await?;
    for periodic in [
        Periodic::OrgSync,
        Periodic::RecoverWebhooks,
        Periodic::ExpiryWindow,
        Periodic::Reconcile,
        Periodic::AuditCheckpoints,
        Periodic::EventSweep,
        Periodic::InactiveScan,
        Periodic::HookSubscriptions,
    ] {
        let slot = periodic.current_slot(state);
        let run_now = match periodic {
            Periodic::OrgSync => no_org_chart,
            // A day's scan is an Admin API call per person: at its slot, not at every start.
            Periodic::InactiveScan => false,
            // Graph's subscriptions live 29 days at most: make sure of them at every start.
            Periodic::HookSubscriptions => true,
            // A process that starts may have been down: catch up at once.
            Periodic::RecoverWebhooks
            | Periodic::ExpiryWindow
            | Periodic::Reconcile
            | Periodic::AuditCheckpoints
            | Periodic::EventSweep => true,
        };
        if run_now {
            schedule_now(&mut tx, &periodic.job(slot)).await?;
        }
        periodic.queue_next(state, &mut tx, slot).await?;
    }
    // A snapshot written while no worker ran (`tollgate org sync` on a stopped service) is
    // applied now; one already applied makes this a no-op.
    if let Some(version) = crate::store::org::latest_version(&state.store).await? {
        let why = format!("snapshot:{version}");
        schedule_now(&mut tx, &Job::OrgApply { why }).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Queues the following slot first, so a run that fails for good does not end the schedule.
async fn queue_following(state: &AppState, periodic: Periodic, slot: i64) -> Result<(), JobError> {
    let mut tx = state.store.begin().await?;
    periodic.queue_next(state, &mut tx, slot).await?;
    tx.commit().await?;
    Ok(())
}

async fn recover_webhooks(state: &AppState, slot: i64) -> Result<(), BoxDynError> {
    queue_following(state, Periodic::RecoverWebhooks, slot).await?;
    match crate::engine::recovery::recover(state).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_retryable() => Err(e.into()),
        Err(e) => {
            tracing::error!(error = %e, "reading failed webhooks failed");
            Ok(())
        }
    }
}

/// Schedules a self-check to run after `delay`, returning its id.
pub async fn schedule_self_check(state: &AppState, delay: Duration) -> Result<Uuid, JobError> {
    schedule_self_check_holding(state, delay, Duration::ZERO).await
}

/// [`schedule_self_check`] for a job that takes `hold` to run.
pub async fn schedule_self_check_holding(
    state: &AppState,
    delay: Duration,
    hold: Duration,
) -> Result<Uuid, JobError> {
    let id = Uuid::now_v7();
    let now = state.clock.now();
    let due = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
    let mut tx = state.store.begin().await?;
    selfcheck::insert(&mut tx, id, now, due).await?;
    let job = Job::SelfCheck {
        id,
        hold_ms: u64::try_from(hold.as_millis()).unwrap_or(u64::MAX),
    };
    schedule(&mut tx, &job, wall(&*state.clock, due)).await?;
    tx.commit().await?;
    Ok(id)
}
