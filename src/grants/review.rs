//! A review of access someone holds: a child request of the grant, made by their lifecycle run
//! (a `review_on_move` resource after they moved) and pending with their manager in the
//! lifecycle ticket. Approved, the access stays; declined, or undecided by the deadline
//! (`lifecycle.decide_within`), it ends like a `/revoke`.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::run;
use crate::audit::Actor;
use crate::failure::Failure;
use crate::lifecycle::{EndCause, Event, Request, State};
use crate::state::AppState;
use crate::store::Tx;
use crate::store::requests;

fn actor() -> Actor {
    Actor::System("review".into())
}

/// Whether `request` reviews a grant (rather than extending it, or being one): a child request
/// made by a lifecycle run, on the person's lifecycle ticket.
pub fn is_review(request: &Request) -> bool {
    request.parent_id.is_some() && request.run_id.is_some()
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
    let details = json!({"grant": review.parent_id});
    run::transition(
        &mut tx,
        &mut review,
        Event::ReviewKept,
        actor(),
        details,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Called in the transaction that declines (or times out) `review`: the grant it reviewed
/// starts to end, if it still holds. Anything else declined is left alone.
pub async fn on_declined(
    tx: &mut Tx,
    state: &AppState,
    review: &Request,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let (true, Some(parent)) = (is_review(review), review.parent_id) else {
        return Ok(());
    };
    let Some(mut grant) = requests::lock_id(tx, parent).await? else {
        return Ok(());
    };
    if !matches!(grant.state, State::Active | State::RevokeFailed) {
        return Ok(());
    }
    let why = review.reason.as_deref().unwrap_or("declined");
    let reason = format!("not re-approved in review ({why})");
    run::begin_revoke(
        tx,
        state,
        &mut grant,
        EndCause::Revoked,
        &reason,
        actor(),
        now,
    )
    .await
}
