//! Leavers: someone inactive in, or gone from, the org chart loses what Tollgate granted them,
//! and their open requests are cancelled.

use std::collections::HashSet;

use serde_json::json;

use super::run;
use crate::audit::Actor;
use crate::engine::EngineError;
use crate::engine::machine::{EndCause, State};
use crate::orgchart::{Email, OrgIndex};
use crate::state::AppState;
use crate::store::requests::{self, Request};

/// Whether the person the request is for has left, and their removal is not held by the
/// leaver brake (`held`: lower-case emails). Without an org chart nobody has.
fn has_left(org: &OrgIndex, request: &Request, held: &HashSet<String>) -> bool {
    let Some(email) = request.subject().and_then(|e| Email::parse(e).ok()) else {
        return false;
    };
    if held.contains(&email.as_str().to_ascii_lowercase()) {
        return false;
    }
    match org.by_email(&email) {
        None => true,
        Some(p) => !org.person(p).active,
    }
}

/// Active grants read per page.
const PAGE: i64 = 1_000;

fn actor() -> Actor {
    Actor::System("org_sync".into())
}

/// Revokes leavers' grants and cancels their open requests, but for the people in `held`;
/// returns how many were touched.
pub async fn revoke_leavers(
    state: &AppState,
    held: &HashSet<String>,
) -> Result<usize, EngineError> {
    let Some(org) = state.org.index() else {
        return Ok(0);
    };
    // An org chart this empty is a broken sync, not a mass exodus.
    if org.is_empty() {
        return Ok(0);
    }
    let mut touched = 0;
    let mut after = None;
    loop {
        let page = requests::page_in_state(&state.store, State::Active, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for request in page.iter().filter(|r| has_left(&org, r, held)) {
            let who = request.subject().unwrap_or("the person");
            let reason = format!("{who} is no longer active in the org chart");
            if run::revoke_now(state, request.id, EndCause::Leaver, &reason, actor()).await? {
                touched += 1;
            }
        }
    }
    let open = requests::in_states(
        &state.store,
        &[State::Received, State::Routing, State::Pending],
    )
    .await?;
    for request in open.iter().filter(|r| has_left(&org, r, held)) {
        if cancel(state, request).await? {
            touched += 1;
        }
    }
    Ok(touched)
}

async fn cancel(state: &AppState, request: &Request) -> Result<bool, EngineError> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let Some(mut request) = requests::lock_id(&mut tx, request.id).await? else {
        tx.rollback().await?;
        return Ok(false);
    };
    if !request.state.is_open() {
        tx.rollback().await?;
        return Ok(false);
    }
    let who = request.subject().unwrap_or("the person").to_string();
    request.state = State::Cancelled;
    request.reason = Some(format!("{who} is no longer active in the org chart"));
    request.updated_at = now;
    run::save(&mut tx, &mut request).await?;
    run::event(
        &mut tx,
        &request,
        now,
        actor(),
        "request.cancelled",
        json!({"reason": request.reason}),
    )
    .await?;
    let notice = crate::engine::notices::declined(&request, None, request.reason.as_deref());
    run::tell(&mut tx, &request, notice).await?;
    tx.commit().await?;
    Ok(true)
}
