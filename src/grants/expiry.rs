//! Temporary access ends at `expires_at`. The expiry lives on the request row; a periodic
//! window job queues an `Expire` job only for the grants expiring in the next few minutes,
//! so a million scheduled expiries cost a million indexed timestamps, not a million queued
//! jobs. Reminders are queued the same way, a configured time before expiry.

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::run::{self, EXPIRY_WINDOW};
use super::{notices, wall};
use crate::audit::Actor;
use crate::engine::EngineError;
use crate::engine::machine::{EndCause, State};
use crate::jobs::{self, Job};
use crate::state::AppState;
use crate::store::Tx;
use crate::store::requests;

/// How many expiries one window run queues (the rest are picked up by the next run, which
/// comes sooner than they expire).
const WINDOW_BATCH: i64 = 20_000;

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(crate) async fn schedule_expiry(
    tx: &mut Tx,
    state: &AppState,
    request: Uuid,
    at: DateTime<Utc>,
) -> Result<(), EngineError> {
    let job = Job::Expire {
        request,
        at: micros(at),
    };
    jobs::schedule(tx, &job, wall(state, at)).await?;
    Ok(())
}

/// Queues the expiries and reminders due in the next window. Idempotent: a grant already
/// queued is not queued twice (the job's key names the grant and its expiry).
pub async fn queue_window(state: &AppState) -> Result<usize, EngineError> {
    let now = state.clock.now();
    let due = requests::active_expiring_by(&state.store, now + EXPIRY_WINDOW, WINDOW_BATCH).await?;
    let mut queued = 0;
    for chunk in due.chunks(500) {
        let mut tx = state.store.begin().await?;
        for request in chunk {
            if let Some(at) = request.expires_at {
                schedule_expiry(&mut tx, state, request.id, at).await?;
                queued += 1;
            }
        }
        tx.commit().await?;
    }
    for before in &state.config.grants.remind_before {
        let before = TimeDelta::from_std(*before).unwrap_or(TimeDelta::days(1));
        let soon =
            requests::active_expiring_between(&state.store, now, now + before + EXPIRY_WINDOW)
                .await?;
        let mut tx = state.store.begin().await?;
        for request in &soon {
            let (Some(expires), Some(granted)) = (request.expires_at, request.granted_at) else {
                continue;
            };
            let remind_at = expires - before;
            // A grant shorter than the reminder's lead gets none; a reminder missed by more
            // than a window (an outage) is stale: a later, shorter one will come.
            if remind_at < granted || remind_at < now - EXPIRY_WINDOW {
                continue;
            }
            let job = Job::ExpiryReminder {
                request: request.id,
                expires_at: micros(expires),
                before_seconds: before.num_seconds(),
            };
            jobs::schedule(&mut tx, &job, wall(state, remind_at.max(now))).await?;
        }
        tx.commit().await?;
    }
    Ok(queued)
}

/// The `Expire` job: revokes the grant if it is still active and still expires at `at` (an
/// extension moves `expires_at`, which makes this job stale).
pub async fn expire(state: &AppState, id: Uuid, at: i64) -> Result<(), EngineError> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let Some(mut request) = requests::lock_id(&mut tx, id).await? else {
        tx.rollback().await?;
        return Ok(());
    };
    let current = request.expires_at.map(micros);
    if request.state != State::Active || current != Some(at) || request.expires_at > Some(now) {
        tx.rollback().await?;
        return Ok(());
    }
    run::begin_revoke(
        &mut tx,
        state,
        &mut request,
        EndCause::Expired,
        "the access expired",
        Actor::System("expiry".into()),
        now,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(ticket = request.ticket_key, "temporary access expired");
    Ok(())
}

/// The `ExpiryReminder` job: tells the ticket, if the grant still expires then.
pub async fn remind(
    state: &AppState,
    id: Uuid,
    expires_at: i64,
    before_seconds: i64,
) -> Result<(), EngineError> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let Some(request) = requests::lock_id(&mut tx, id).await? else {
        tx.rollback().await?;
        return Ok(());
    };
    let Some(expires) = request.expires_at.filter(|e| micros(*e) == expires_at) else {
        tx.rollback().await?;
        return Ok(());
    };
    if request.state != State::Active || expires <= now {
        tx.rollback().await?;
        return Ok(());
    }
    let left = (expires - now).to_std().unwrap_or_default();
    // Round to the minute: "ends in 23 hours 59 minutes 58 seconds" reads badly.
    let left = std::time::Duration::from_secs(left.as_secs().div_ceil(60) * 60);
    run::event(
        &mut tx,
        &request,
        now,
        Actor::System("expiry".into()),
        "grant.reminded",
        serde_json::json!({"expires_at": expires, "before_seconds": before_seconds}),
    )
    .await?;
    let notice = notices::reminder(&request, expires, left);
    let key = format!("{}:remind:{expires_at}:{before_seconds}", request.id);
    crate::engine::notices::enqueue(&mut tx, &request, notice, key).await?;
    tx.commit().await?;
    Ok(())
}
