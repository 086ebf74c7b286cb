//! A review of access someone holds: a child request of the grant, made by their lifecycle run
//! (a `review_on_move` resource after they moved) and pending with their manager in the
//! lifecycle ticket. Approved, the access stays; declined, or undecided by the deadline
//! (`lifecycle.decide_within`), it ends like a `/revoke`.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::run;
use crate::audit::{self, Actor};
use crate::failure::Failure;
use crate::jobs::{self, Job};
use crate::lifecycle::{EndCause, Event, Request, State};
use crate::state::AppState;
use crate::store::Tx;
use crate::store::inactive_cases::{self as cases, CaseState};
use crate::store::requests;

fn actor() -> Actor {
    Actor::System("review".into())
}

pub use crate::lifecycle::{INACTIVE_REVIEW as INACTIVE, Reviewed};

/// What `request` reviews, if it is a review.
pub fn reviewed(request: &Request) -> Option<Reviewed> {
    request.reviews()
}

pub fn is_review(request: &Request) -> bool {
    request.reviews().is_some()
}

/// An approved review (its `Provision` job): the access stays, and the review is settled once.
pub async fn kept(state: &AppState, id: Uuid) -> Result<(), Failure> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let Some(mut review) = requests::lock_id(&mut tx, id).await? else {
        tx.rollback().await?;
        return Ok(());
    };
    if !is_review(&review) || review.state != State::Approved || review.granted_at.is_some() {
        tx.rollback().await?;
        return Ok(());
    }
    let details = json!({"grant": review.parent_id, "workflow": review.workflow});
    run::transition(
        &mut tx,
        &mut review,
        Event::ReviewKept,
        actor(),
        details,
        now,
    )
    .await?;
    if reviewed(&review) == Some(Reviewed::Inactive) {
        settle_case(
            &mut tx,
            &review,
            CaseState::Kept,
            "kept by the manager",
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Moves the inactive case `review` decides (reviewing → `to`), with its audit event; the job
/// that ends the access is the caller's. The case moved, if it did.
async fn settle_case(
    tx: &mut Tx,
    review: &Request,
    to: CaseState,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, Failure> {
    let Some(case) = cases::of_request_in(tx, review.id).await? else {
        return Ok(None);
    };
    let change = cases::Change {
        outcome: Some(outcome),
        ..Default::default()
    };
    if !cases::set(tx, case.id, &[CaseState::Reviewing], to, change, now).await? {
        return Ok(None);
    }
    let details = json!({"outcome": outcome, "review": review.id});
    let ticket = Some((&review.tenant, &review.ticket_key));
    let event = audit::Event::of_case(&case, ticket, to, (actor(), now), details);
    audit::append(tx, &event).await?;
    Ok(Some(case.id))
}

/// Called in the transaction that declines (or times out) `review`: the grant it reviewed
/// starts to end, if it still holds. Anything else declined is left alone.
pub async fn on_declined(
    tx: &mut Tx,
    state: &AppState,
    review: &Request,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let parent = match reviewed(review) {
        Some(Reviewed::Grant(parent)) => parent,
        Some(Reviewed::Inactive) => {
            let why = review.reason.as_deref().unwrap_or("declined");
            let outcome = format!("not kept in review ({why})");
            if let Some(case) = settle_case(tx, review, CaseState::Ending, &outcome, now).await? {
                jobs::schedule_now(tx, &Job::InactiveEnd { case }).await?;
            }
            return Ok(());
        }
        None => return Ok(()),
    };
    let why = review.reason.as_deref().unwrap_or("declined");
    let reason = format!("not re-approved in review ({why})");
    let cause = (EndCause::Revoked, reason.as_str());
    run::revoke_held(tx, state, parent, cause, actor(), now).await?;
    Ok(())
}
