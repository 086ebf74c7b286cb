//! Leavers: someone inactive in, or gone from, the org chart loses what Tollgate granted them,
//! and their open requests are cancelled.

use std::collections::HashSet;

use serde_json::json;

use super::run;
use crate::audit::Actor;
use crate::failure::Failure;
use crate::lifecycle::{EndCause, Event, State};
use crate::orgchart::{OrgIndex, PersonId};
use crate::state::AppState;
use crate::store::requests::{self, Request};

/// Whether the person the request is for has left, and their removal is not held by the
/// leaver brake (`held`: person ids and lower-case emails). People are known by their IdP id:
/// an email change is a rename, not a leaver. Without an org chart nobody has left.
fn has_left(org: &OrgIndex, request: &Request, held: &HashSet<String>) -> bool {
    if is_held(request, held) {
        return false;
    }
    if request.subject_person.is_none() && request.subject().is_none() {
        return false;
    }
    match org.by_id_or_email(request.subject_person.as_ref(), request.subject()) {
        None => true,
        Some(p) => !org.person(p).active,
    }
}

/// Whether the brake holds the removal of whom `request` is for.
fn is_held(request: &Request, held: &HashSet<String>) -> bool {
    request
        .subject_person
        .as_ref()
        .is_some_and(|id| held.contains(&id.0))
        || request
            .subject()
            .is_some_and(|e| held.contains(&e.to_ascii_lowercase()))
}

/// Active grants read per page.
const PAGE: i64 = 1_000;

fn actor() -> Actor {
    Actor::System("org_sync".into())
}

/// An active grant of someone who left.
#[derive(Debug, Clone)]
pub struct LeavingGrant {
    pub id: uuid::Uuid,
    /// Their IdP id, when the request knows it.
    pub person: Option<PersonId>,
    /// Their email as the request has it (for people to read).
    pub email: String,
}

/// What leavers hold: active grants to revoke and open requests to cancel.
#[derive(Debug, Default)]
pub struct Leaving {
    pub grants: Vec<LeavingGrant>,
    pub open: Vec<Request>,
}

impl Leaving {
    /// Everything but what is for the people in `held` (person ids and lower-case emails).
    pub fn without(self, held: &HashSet<String>) -> Self {
        let kept = |g: &LeavingGrant| {
            !g.person.as_ref().is_some_and(|p| held.contains(&p.0))
                && !held.contains(&g.email.to_ascii_lowercase())
        };
        Self {
            grants: self.grants.into_iter().filter(kept).collect(),
            open: self
                .open
                .into_iter()
                .filter(|r| !is_held(r, held))
                .collect(),
        }
    }
}

/// Finds what leavers hold, but for the people in `held`.
pub async fn leaving(state: &AppState, held: &HashSet<String>) -> Result<Leaving, Failure> {
    let Some(org) = state.org.index() else {
        return Ok(Leaving::default());
    };
    // An org chart this empty is a broken sync, not a mass exodus.
    if org.is_empty() {
        return Ok(Leaving::default());
    }
    let mut found = Leaving::default();
    let mut after = None;
    loop {
        let page = requests::page_in_state(&state.store, State::Active, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        found
            .grants
            .extend(
                page.iter()
                    .filter(|r| has_left(&org, r, held))
                    .map(|r| LeavingGrant {
                        id: r.id,
                        person: r.subject_person.clone(),
                        email: r.subject().unwrap_or_default().to_string(),
                    }),
            );
    }
    let open = requests::in_states(&state.store, State::is_open).await?;
    found.open = open
        .into_iter()
        .filter(|r| has_left(&org, r, held))
        .collect();
    Ok(found)
}

/// Revokes the grants and cancels the open requests `leaving` found; returns how many.
pub async fn remove(state: &AppState, leaving: &Leaving) -> Result<usize, Failure> {
    let mut touched = 0;
    for grant in &leaving.grants {
        let who = if grant.email.is_empty() {
            "the person"
        } else {
            &grant.email
        };
        let reason = format!("{who} is no longer active in the org chart");
        if run::revoke_now(state, grant.id, EndCause::Leaver, &reason, actor()).await? {
            touched += 1;
        }
    }
    for request in &leaving.open {
        if cancel(state, request).await? {
            touched += 1;
        }
    }
    Ok(touched)
}

/// Revokes leavers' grants and cancels their open requests, but for the people in `held`;
/// returns how many were touched.
pub async fn revoke_leavers(state: &AppState, held: &HashSet<String>) -> Result<usize, Failure> {
    let found = leaving(state, held).await?;
    remove(state, &found).await
}

async fn cancel(state: &AppState, request: &Request) -> Result<bool, Failure> {
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
    let reason = format!("{who} is no longer active in the org chart");
    let details = json!({"reason": reason});
    let cancelled = Event::Cancelled { reason };
    run::transition(&mut tx, &mut request, cancelled, actor(), details, now).await?;
    let notice = crate::notices::declined(&request, None, request.reason.as_deref());
    run::tell(&mut tx, &request, notice).await?;
    tx.commit().await?;
    Ok(true)
}
