//! Processing stored events. Once Tollgate answered 2xx the event is its to keep: each event
//! is handled on its own (one event's failure never fails another's), a retryable failure is
//! tried again with backoff (doubling from `events.retry_base` to `events.retry_max`, never
//! sooner than the vendor's Retry-After) for `events.retry_for`, and an event that cannot be
//! processed is recorded as dead with its reason and an alert, to be retried by a person
//! (`tollgate events retry`). The sweep queues again any event whose job was lost.
//!
//! Retry times are on the queue's wall clock, like the jobs that carry them.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::alerts::{self, Alert};
use crate::config::EventsConfig;
use crate::failure::Failure;
use crate::ids::TicketKey;
use crate::jobs::{self, Job, JobError};
use crate::state::AppState;
use crate::store::inbound::{self, InboundEvent};

/// The wait before try `attempts + 1`: doubling from the base, capped, and never sooner than
/// the vendor asked.
pub fn backoff(config: &EventsConfig, attempts: i64, asked: Option<Duration>) -> Duration {
    let doubling = config
        .retry_base
        .saturating_mul(1u32 << attempts.clamp(0, 20) as u32);
    doubling
        .min(config.retry_max)
        .max(asked.unwrap_or_default())
}

/// How one event went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    Done,
    /// Already processed or given up on: nothing done.
    Settled,
    /// Failed; tried again at this (wall) time.
    RetryAt(DateTime<Utc>),
    /// Waits behind its ticket's earlier events; tried again at this (wall) time.
    Waiting(DateTime<Utc>),
    Dead(String),
}

/// Processes the events in order, each on its own. Only a failure to record an outcome fails
/// the whole (the job is retried, and what was done is not done twice).
pub async fn process(state: &AppState, ids: &[Uuid]) -> Result<Vec<Processed>, JobError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(process_one(state, *id).await?);
    }
    Ok(out)
}

/// Processes the event, and with it its ticket's other open events, in the order Jira
/// produced them: one ticket's events one at a time (a lease per ticket), different tickets in
/// parallel. An earlier event waiting for its retry holds the later ones back, for at most
/// `events.ticket_block`; after that they proceed without it.
pub async fn process_one(state: &AppState, id: Uuid) -> Result<Processed, JobError> {
    let Some(event) = inbound::get(&state.store, id).await? else {
        tracing::warn!(%id, "inbound event vanished; nothing to process");
        return Ok(Processed::Settled);
    };
    if event.processed_at.is_some() || event.dead_at.is_some() {
        return Ok(Processed::Settled);
    }
    let Some(ticket) = event.ticket_key.clone() else {
        return handle(state, &event).await;
    };
    let holder = Uuid::now_v7().to_string();
    let store = &state.store;
    // Taken, or renewed by its holder, for one lease from now.
    let lease = || {
        let now = crate::clock::wall();
        inbound::lease_ticket(
            store,
            &event.tenant,
            &ticket,
            &holder,
            now,
            now + TICKET_LEASE,
        )
    };
    if !lease().await? {
        // Another worker is processing this ticket's events; this one follows.
        return wait_behind(state, &event, crate::clock::wall()).await;
    }
    // Renewed while the events are handled: a worker killed mid-drain holds the ticket for at
    // most one lease, a live one however long Jira takes to answer.
    let drained = crate::lease::renewing(drain(state, &event, &ticket), RENEW_EVERY, || async {
        if let Err(e) = lease().await {
            tracing::warn!(ticket_key = %ticket, error = %e, "ticket lease not renewed");
        }
    })
    .await;
    inbound::release_ticket(store, &event.tenant, &ticket, &holder).await?;
    drained
}

/// How long a worker holds a ticket's events without renewing before another may take them
/// over (the holder renews every [`RENEW_EVERY`]).
const TICKET_LEASE: TimeDelta = TimeDelta::seconds(15);
const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

async fn drain(
    state: &AppState,
    event: &InboundEvent,
    ticket: &TicketKey,
) -> Result<Processed, JobError> {
    let block_for =
        TimeDelta::from_std(state.config.events.ticket_block).unwrap_or(TimeDelta::minutes(10));
    let open = inbound::open_for_ticket(&state.store, &event.tenant, ticket).await?;
    let mut mine: Option<Processed> = None;
    for earlier in open {
        let now = crate::clock::wall();
        let blocks = |e: &InboundEvent| e.first_failed_at.is_none_or(|at| now - at < block_for);
        let resting = earlier.id != event.id && earlier.next_attempt_at.is_some_and(|at| at > now);
        if resting {
            if mine.is_some() {
                // Ours is done; the rest wait for their own retries.
                break;
            }
            if blocks(&earlier) {
                let at = earlier.next_attempt_at.unwrap_or(now);
                return wait_behind(state, event, at).await;
            }
            // Failing for longer than a ticket waits: the later events go on without it.
            continue;
        }
        let outcome = handle(state, &earlier).await?;
        if earlier.id == event.id {
            mine = Some(outcome.clone());
        }
        if let Processed::RetryAt(at) = outcome {
            if mine.is_some() {
                break;
            }
            if blocks(&earlier) {
                return wait_behind(state, event, at).await;
            }
        }
    }
    Ok(mine.unwrap_or(Processed::Settled))
}

/// Queues the event again just after `at`: it waits its turn behind its ticket's earlier events
/// (not a failure; its attempts do not count).
async fn wait_behind(
    state: &AppState,
    event: &InboundEvent,
    at: DateTime<Utc>,
) -> Result<Processed, JobError> {
    let now = crate::clock::wall();
    let due = at.max(now) + TimeDelta::seconds(1);
    let job = Job::RetryInbound {
        id: event.id,
        round: format!("w{}", now.timestamp_micros()),
    };
    let mut tx = state.store.begin().await?;
    jobs::schedule(&mut tx, &job, due).await?;
    tx.commit().await?;
    Ok(Processed::Waiting(due))
}

/// Hands one event to the engine and records how it went.
async fn handle(state: &AppState, event: &InboundEvent) -> Result<Processed, JobError> {
    if event.processed_at.is_some() || event.dead_at.is_some() {
        return Ok(Processed::Settled);
    }
    match crate::engine::handle(state, event).await {
        Ok(()) => {
            inbound::mark_processed(&state.store, &[event.id], state.clock.now()).await?;
            tracing::debug!(
                tenant = %event.tenant,
                event = event.event_type,
                delivery = event.delivery_id,
                "inbound event processed"
            );
            Ok(Processed::Done)
        }
        Err(e) if e.is_retryable() => retry_later(state, event, &e).await,
        Err(e) => die(state, event, &format!("cannot be processed: {e}")).await,
    }
}

async fn retry_later(
    state: &AppState,
    event: &InboundEvent,
    error: &Failure,
) -> Result<Processed, JobError> {
    let config = &state.config.events;
    let now = crate::clock::wall();
    let wait = backoff(config, event.attempts, error.retry_after());
    let due = now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::minutes(10));
    let first = event.first_failed_at.unwrap_or(now);
    let window = TimeDelta::from_std(config.retry_for).unwrap_or(TimeDelta::days(1));
    if due - first > window {
        let reason = format!(
            "still failing after {} of retries: {error}",
            crate::duration::format(config.retry_for)
        );
        return die(state, event, &reason).await;
    }
    let mut tx = state.store.begin().await?;
    let Some(attempts) = inbound::failed(&mut tx, event.id, &error.to_string(), due, now).await?
    else {
        tx.rollback().await?;
        return Ok(Processed::Settled);
    };
    let job = Job::RetryInbound {
        id: event.id,
        round: format!("a{attempts}"),
    };
    jobs::schedule(&mut tx, &job, due).await?;
    tx.commit().await?;
    tracing::warn!(
        id = %event.id,
        tenant = %event.tenant,
        attempts,
        ?wait,
        %error,
        "inbound event failed; retrying"
    );
    Ok(Processed::RetryAt(due))
}

async fn die(state: &AppState, event: &InboundEvent, reason: &str) -> Result<Processed, JobError> {
    let now = crate::clock::wall();
    let alert = Alert::EventDead {
        event: event.id.to_string(),
        tenant: event.tenant.to_string(),
        event_type: event.event_type.clone(),
        reason: reason.to_string(),
    };
    let mut tx = state.store.begin().await?;
    if !inbound::mark_dead(&mut tx, event.id, reason, now).await? {
        tx.rollback().await?;
        return Ok(Processed::Settled);
    }
    alerts::record(&mut tx, &state.config, &alert, state.clock.now()).await?;
    tx.commit().await?;
    alerts::announce(&state.metrics, &alert);
    Ok(Processed::Dead(reason.to_string()))
}

/// How long past its due time an unprocessed event waits before the sweep believes its job
/// was lost.
pub const STRANDED_AFTER: TimeDelta = TimeDelta::minutes(2);

/// Events swept per run.
const SWEEP_LIMIT: i64 = 1_000;

/// Queues again every event neither processed, due for a retry nor dead whose time passed
/// more than [`STRANDED_AFTER`] ago; returns how many. `slot` keeps each sweep's jobs its own.
pub async fn sweep(state: &AppState, slot: i64) -> Result<usize, JobError> {
    let now = crate::clock::wall();
    // Expired webhook tokens are refused at the door; their replay records can go.
    inbound::forget_tokens(&state.store, state.clock.now() - TimeDelta::hours(1)).await?;
    let stranded = inbound::stranded(&state.store, now - STRANDED_AFTER, SWEEP_LIMIT).await?;
    if stranded.is_empty() {
        return Ok(0);
    }
    let mut tx = state.store.begin().await?;
    for event in &stranded {
        let job = Job::RetryInbound {
            id: event.id,
            round: format!("s{slot}"),
        };
        jobs::schedule(&mut tx, &job, now).await?;
    }
    tx.commit().await?;
    tracing::warn!(
        events = stranded.len(),
        "unprocessed events whose job was lost were queued again"
    );
    Ok(stranded.len())
}

/// Brings dead events back (`ids`, or every dead one when `None`) for a fresh round of
/// retries, due now; returns the ids queued.
pub async fn retry_dead(
    store: &crate::store::Store,
    ids: Option<&[Uuid]>,
) -> Result<Vec<Uuid>, JobError> {
    let now = crate::clock::wall();
    let wanted: Vec<Uuid> = match ids {
        Some(ids) => ids.to_vec(),
        None => inbound::dead(store)
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect(),
    };
    let mut tx = store.begin().await?;
    let mut revived = Vec::new();
    for id in wanted {
        if inbound::revive(&mut tx, id, now).await? {
            let job = Job::RetryInbound {
                id,
                round: format!("r{}", now.timestamp_micros()),
            };
            jobs::schedule(&mut tx, &job, now).await?;
            revived.push(id);
        }
    }
    tx.commit().await?;
    Ok(revived)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_the_base_to_the_cap_and_honour_the_vendor() {
        let config = EventsConfig {
            ticket_block: Duration::from_secs(600),
            retry_for: Duration::from_secs(86_400),
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(600),
        };
        assert_eq!(backoff(&config, 0, None), Duration::from_secs(10));
        assert_eq!(backoff(&config, 3, None), Duration::from_secs(80));
        assert_eq!(backoff(&config, 9, None), Duration::from_secs(600));
        assert_eq!(backoff(&config, 400, None), Duration::from_secs(600));
        assert_eq!(
            backoff(&config, 0, Some(Duration::from_secs(45))),
            Duration::from_secs(45)
        );
    }
}
