//! Temporary access ends at `expires_at`. The expiry lives on the request row; a periodic
//! window job queues an `Expire` job only for the grants expiring in the next few minutes,
//! so a million scheduled expiries cost a million indexed timestamps, not a million queued
//! jobs. Reminders are queued the same way, a configured time before expiry.

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::run::{self, EXPIRY_WINDOW};
use super::{notices, wall};
use crate::audit::Actor;
use crate::failure::Failure;
use crate::jobs::{self, Job};
use crate::lifecycle::{Action, EndCause, State};
use crate::state::AppState;
use crate::store::Tx;
use crate::store::requests;

/// How many expiries one window run queues (the rest are picked up by the next run, which
/// comes sooner than they expire).
const WINDOW_BATCH: i64 = 20_000;

/// Most grants one `ExpireMany` job ends, and how far apart their expiries may be (the
/// earliest is ended this much late at most).
pub(crate) const BATCH_SIZE: usize = 200;
const BATCH_SPAN: TimeDelta = TimeDelta::seconds(5);

/// Steps per `RevokeSteps` job: a mass expiry spreads over several, run side by side.
const STEPS_PER_JOB: usize = 100;

/// Expiries (sorted by time) in runs that end together: at most [`BATCH_SIZE`] long, spanning
/// at most [`BATCH_SPAN`].
fn batches(due: &[(Uuid, DateTime<Utc>)]) -> Vec<&[(Uuid, DateTime<Utc>)]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=due.len() {
        let ends =
            i == due.len() || i - start == BATCH_SIZE || due[i].1 - due[start].1 > BATCH_SPAN;
        if ends {
            out.push(&due[start..i]);
            start = i;
        }
    }
    out
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(crate) async fn schedule_expiry(
    tx: &mut Tx,
    state: &AppState,
    request: Uuid,
    at: DateTime<Utc>,
) -> Result<(), Failure> {
    let job = Job::Expire {
        request,
        at: micros(at),
    };
    jobs::schedule(tx, &job, wall(&*state.clock, at)).await?;
    Ok(())
}

/// Queues the expiries and reminders due in the next window. Idempotent: a grant already
/// queued is not queued twice (the job's key names the grant and its expiry).
pub async fn queue_window(state: &AppState) -> Result<usize, Failure> {
    let now = state.clock.now();
    let due = requests::active_expiring_by(&state.store, now + EXPIRY_WINDOW, WINDOW_BATCH).await?;
    let due: Vec<(Uuid, DateTime<Utc>)> = due
        .iter()
        .filter_map(|r| Some((r.id, r.expires_at?)))
        .collect();
    let batches = batches(&due);
    for chunk in batches.chunks(100) {
        let mut tx = state.store.begin().await?;
        for batch in chunk {
            let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
                continue;
            };
            let job = if batch.len() == 1 {
                Job::Expire {
                    request: first.0,
                    at: micros(first.1),
                }
            } else {
                Job::ExpireMany {
                    items: batch.iter().map(|(id, at)| (*id, micros(*at))).collect(),
                }
            };
            // Due when the last of them expires: the first waits at most BATCH_SPAN.
            jobs::schedule(&mut tx, &job, wall(&*state.clock, last.1)).await?;
        }
        tx.commit().await?;
    }
    let queued = due.len();
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
            jobs::schedule(&mut tx, &job, wall(&*state.clock, remind_at.max(now))).await?;
        }
        tx.commit().await?;
    }
    Ok(queued)
}

/// Starts revoking `id` if it is still active and still expires at `at` (an extension moves
/// `expires_at`, which makes the job that asks stale); `false` when it was left alone.
async fn end_if_due(
    tx: &mut Tx,
    state: &AppState,
    id: Uuid,
    at: i64,
    now: DateTime<Utc>,
    batch: Option<&mut Vec<(Uuid, i64, i64)>>,
) -> Result<bool, Failure> {
    let Some(mut request) = requests::lock_id(tx, id).await? else {
        return Ok(false);
    };
    let current = request.expires_at.map(micros);
    if request.state != State::Active || current != Some(at) || request.expires_at > Some(now) {
        return Ok(false);
    }
    run::begin_revoke_into(
        tx,
        state,
        &mut request,
        EndCause::Expired,
        "the access expired",
        Actor::System("expiry".into()),
        now,
        batch,
    )
    .await?;
    tracing::info!(ticket = %request.ticket_key, "temporary access expired");
    Ok(true)
}

/// The `Expire` job: one grant, its steps a job each.
pub async fn expire(state: &AppState, id: Uuid, at: i64) -> Result<(), Failure> {
    let mut tx = state.store.begin().await?;
    end_if_due(&mut tx, state, id, at, state.clock.now(), None).await?;
    tx.commit().await?;
    Ok(())
}

/// The `ExpireMany` job: each grant as [`expire`] would, in one transaction, with their steps
/// handed to a few `RevokeSteps` jobs. Returns how many it ended.
pub async fn expire_many(state: &AppState, items: &[(Uuid, i64)]) -> Result<usize, Failure> {
    let now = state.clock.now();
    let mut steps = Vec::new();
    let mut ended = 0;
    let mut tx = state.store.begin().await?;
    for (id, at) in items {
        if end_if_due(&mut tx, state, *id, *at, now, Some(&mut steps)).await? {
            ended += 1;
        }
    }
    for chunk in steps.chunks(STEPS_PER_JOB) {
        let job = Job::RevokeSteps {
            items: chunk.to_vec(),
        };
        jobs::schedule_now(&mut tx, &job).await?;
    }
    tx.commit().await?;
    Ok(ended)
}

/// The `ExpiryReminder` job: tells the ticket, if the grant still expires then.
pub async fn remind(
    state: &AppState,
    id: Uuid,
    expires_at: i64,
    before_seconds: i64,
) -> Result<(), Failure> {
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
        Action::GrantReminded,
        serde_json::json!({"expires_at": expires, "before_seconds": before_seconds}),
    )
    .await?;
    let notice = notices::reminder(&request, expires, left);
    let key = format!("{}:remind:{expires_at}:{before_seconds}", request.id);
    crate::notices::enqueue(&mut tx, &request, notice, key).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_are_batched_by_count_and_by_how_far_apart_they_are() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let due: Vec<(Uuid, DateTime<Utc>)> = (0..450)
            .map(|i| (Uuid::now_v7(), t0 + TimeDelta::milliseconds(i * 10)))
            .chain([(Uuid::now_v7(), t0 + TimeDelta::seconds(60))])
            .collect();
        let sizes: Vec<usize> = batches(&due).iter().map(|b| b.len()).collect();
        // 450 within 4.5 s: 200 + 200 + 50; the one a minute later goes alone.
        assert_eq!(sizes, [200, 200, 50, 1]);
        let spread: Vec<(Uuid, DateTime<Utc>)> = (0..4)
            .map(|i| (Uuid::now_v7(), t0 + TimeDelta::seconds(i * 3)))
            .collect();
        let sizes: Vec<usize> = batches(&spread).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [2, 2], "no batch spans more than 5 s");
        assert!(batches(&[]).is_empty());
    }
}
