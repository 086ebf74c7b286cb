//! The request engine: from a JSM ticket to a decision.
//!
//! Inbound events (stored by `ingress`, processed in ticket order by `events`) come here. Each state change is one
//! transaction: the request row (compare-and-set on its version), the decision, the audit
//! event, and a [`crate::jobs::Job::TicketNotice`] that tells the ticket — so the ticket is told
//! at least once even if Jira is down when it happens.

pub mod cancel;
pub mod commands;
pub mod decisions;
pub mod events;
pub mod intake;
pub mod links;
pub mod org_change;
pub mod recovery;
pub mod reresolve;
pub mod timers;

use serde_json::Value;

use crate::failure::Failure;
use crate::ids::{TenantKey, TicketKey};
use crate::state::AppState;
use crate::store::inbound::InboundEvent;

/// Webhooks caused by an app (Tollgate's own comments and transitions) are not decisions.
fn by_an_app(user: &Value) -> bool {
    user.get("accountType").and_then(Value::as_str) == Some("app")
}

/// A comment event names a comment; what counts is that comment as Jira holds it (its author,
/// text and time), read back by id. The event body is only a hint of what to read: a signed
/// token covers the path, never the body.
async fn on_comment(
    state: &AppState,
    request: &crate::store::requests::Request,
    hint: &Value,
) -> Result<(), Failure> {
    use crate::atlassian::comments::CommentId;
    let (tenant, key) = (&request.tenant, &request.ticket_key);
    let Some(id) = hint.get("id").and_then(CommentId::from_json) else {
        tracing::warn!(
            ticket_key = %key,
            "comment event without a usable comment id; skipped"
        );
        return Ok(());
    };
    let (_, site) = state.site(tenant).await?;
    let Some(comment) = state.atlassian.issue_comment(&site, key, &id).await? else {
        // Jira has no such comment on this ticket: a forged or replayed body, or one deleted
        // since. Nothing counts; the attempt is kept for whoever reviews the ticket.
        let claimed = |pointer: &str| hint.pointer(pointer).cloned().unwrap_or(Value::Null);
        let mut tx = state.store.begin().await?;
        crate::audit::append(
            &mut tx,
            &crate::audit::Event::of_request(
                request,
                state.clock.now(),
                crate::audit::Actor::System("intake".into()),
                crate::lifecycle::Action::CommentUnverified,
                serde_json::json!({
                    "comment_id": id.as_str(),
                    "claimed_author": claimed("/author/accountId"),
                    "claimed_text": crate::atlassian::adf::plain_text(&hint["body"]).chars().take(200).collect::<String>(),
                    "why": "Jira has no such comment on this ticket",
                }),
            ),
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(ticket_key = %key, comment = %id, "a comment event names a comment Jira does not have; nothing done");
        return Ok(());
    };
    if comment.by_app {
        return Ok(());
    }
    match crate::engine::commands::command(&comment.text) {
        Some(command) => {
            crate::engine::commands::handle(
                state,
                tenant,
                key,
                &comment.author,
                comment.author_name.as_deref(),
                command,
                &decisions::answer_of(&comment),
            )
            .await
        }
        None => decisions::from_comment(state, tenant, key, &comment).await,
    }
}

/// The tenant a ticket's event is judged on. A site is one tenant whichever door it uses: a
/// plain webhook source linked to its site's Connect or Forge tenant is that tenant, and a
/// ticket whose request lives on a linked source (taken in before the link) stays there.
/// A source not linked yet joins its site on its first event if it holds no requests (else
/// `tollgate tenants link` does it, on purpose).
async fn tenant_for_ticket(
    state: &AppState,
    stored: &TenantKey,
    ticket: &TicketKey,
) -> Result<TenantKey, Failure> {
    use crate::store::{requests, tenant_links};
    let store = &state.store;
    let mut site = tenant_links::site_of(store, stored)
        .await?
        .unwrap_or_else(|| stored.clone());
    if site == *stored && stored.starts_with(crate::tenant::WEBHOOK_SOURCE_PREFIX) {
        match links::link_plan(store, stored).await {
            Ok(plan) if plan.requests == 0 => {
                links::link(store, &plan, state.clock.now(), "first event").await?;
                site = plan.site;
            }
            Ok(plan) => tracing::warn!(
                source = %stored,
                site = %plan.site,
                requests = plan.requests,
                "a plain webhook source with requests is not linked to its site's tenant; \
                 `tollgate tenants link` makes them one"
            ),
            Err(links::LinkError::Store(e)) => return Err(e.into()),
            Err(_) => {}
        }
    }
    for tenant in tenant_links::group_of(store, &site).await? {
        if requests::by_ticket(store, &tenant, ticket).await?.is_some() {
            return Ok(tenant);
        }
    }
    Ok(site)
}

/// Applies one inbound event. Idempotent: a redelivered event changes nothing twice.
pub async fn handle(state: &AppState, event: &InboundEvent) -> Result<(), Failure> {
    let payload: Value = match serde_json::from_str(&event.payload) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(id = %event.id, error = %e, "inbound event is not JSON; skipped");
            return Ok(());
        }
    };
    let Some(key) = payload.pointer("/issue/key").and_then(Value::as_str) else {
        tracing::debug!(id = %event.id, "event without an issue; nothing to do");
        return Ok(());
    };
    let key = &match TicketKey::parse(key) {
        Ok(key) => key,
        Err(e) => {
            tracing::warn!(id = %event.id, error = %e, "inbound event names no Jira issue; skipped");
            return Ok(());
        }
    };
    let tenant = &tenant_for_ticket(state, &event.tenant, key).await?;
    match event.event_type.as_str() {
        "jira:issue_created" => {
            intake::ensure_request(state, tenant, key).await?;
        }
        "comment_created" => {
            // A lifecycle ticket's requests are its run's (never the intake's): a comment there
            // decides those waiting in it.
            let waiting =
                crate::store::requests::pending_of_runs(&state.store, tenant, key).await?;
            if let Some(request) = waiting.first() {
                on_comment(state, request, &payload["comment"]).await?;
            // Out of order: a comment may arrive before its ticket was taken in.
            } else if let Some(request) = intake::ensure_request(state, tenant, key).await? {
                on_comment(state, &request, &payload["comment"]).await?;
            }
        }
        "jira:issue_updated" => {
            if by_an_app(&payload["user"]) {
                return Ok(());
            }
            if intake::ensure_request(state, tenant, key).await?.is_some() {
                decisions::from_jsm_approvals(state, tenant, key).await?;
                cancel::if_ticket_cancelled(state, tenant, key).await?;
            }
        }
        _ => {}
    }
    Ok(())
}
