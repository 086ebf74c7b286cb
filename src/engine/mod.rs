//! The request engine: from a JSM ticket to a decision.
//!
//! Inbound events (stored by intake, processed by a job) come here. Each state change is one
//! transaction: the request row (compare-and-set on its version), the decision, the audit
//! event, and a [`crate::jobs::Job::TicketNotice`] that tells the ticket — so the ticket is told
//! at least once even if Jira is down when it happens.

pub mod cancel;
pub mod decisions;
pub mod events;
pub mod intake;
pub mod notices;
pub mod org_change;
pub mod recovery;
pub mod reresolve;
pub mod templates;
pub mod timers;

use serde_json::Value;

use crate::atlassian::{AtlassianError, Site};
use crate::jobs::JobError;
use crate::state::AppState;
use crate::store::inbound::InboundEvent;
use crate::store::{StoreError, tenants};
use crate::tenant::Tenant;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Atlassian(#[from] AtlassianError),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("tenant {0} is not installed or its secret does not unseal")]
    Tenant(String),
    /// Tollgate cannot judge yet (no org chart synced): worth trying again shortly.
    #[error("not ready: {0}")]
    NotReady(String),
    /// A change the request's state does not allow, or one that lost a race it should not have
    /// been able to run: a bug to look into, not an outage to wait out.
    #[error("conflict: {0}")]
    Conflict(String),
}

impl From<crate::lifecycle::Conflict> for EngineError {
    fn from(e: crate::lifecycle::Conflict) -> Self {
        Self::Conflict(e.to_string())
    }
}

impl From<crate::people::accounts::AccountError> for EngineError {
    fn from(e: crate::people::accounts::AccountError) -> Self {
        match e {
            crate::people::accounts::AccountError::Store(e) => Self::Store(e),
            crate::people::accounts::AccountError::Atlassian(e) => Self::Atlassian(e),
        }
    }
}

impl EngineError {
    /// Whether trying the event again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Job(_) | Self::NotReady(_) => true,
            Self::Atlassian(e) => e.is_retryable(),
            Self::Tenant(_) | Self::Conflict(_) => false,
        }
    }

    /// How long the vendor asked to wait before trying again, when it said.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Atlassian(AtlassianError::Call(
                crate::atlassian::errors::CallError::RateLimited { retry_after },
            )) => *retry_after,
            _ => None,
        }
    }
}

/// The tenant row and the site to call back.
pub async fn site(state: &AppState, client_key: &str) -> Result<(Tenant, Site), EngineError> {
    let tenant = tenants::get(&state.store, client_key)
        .await?
        .filter(|t| t.state.is_active())
        .ok_or_else(|| EngineError::Tenant(client_key.to_string()))?;
    let site = site_of(state, &tenant).await?;
    Ok((tenant, site))
}

/// How long before its expiry a Forge system token is no longer used (a call must not start
/// with a token that lapses on the way).
const FORGE_TOKEN_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

/// How to call the tenant's site: through its Forge installation while that has a fresh system
/// token, else with what the tenant came in with (its Connect secret, or the API token of a
/// webhook source).
pub async fn site_of(state: &AppState, tenant: &Tenant) -> Result<Site, EngineError> {
    use crate::store::{forge, webhook_sources};
    use crate::tenant::TenantKind;
    let unusable = || EngineError::Tenant(tenant.client_key.clone());
    let now = state.clock.now();
    if let Some(installation) = forge::of_tenant(&state.store, &tenant.client_key).await?
        && let (Some(sealed), Some(expires)) =
            (&installation.system_token, installation.token_expires_at)
        && expires - FORGE_TOKEN_MARGIN > now
    {
        let context = forge::token_context(&installation.installation_id);
        match state
            .secret_key
            .unseal(sealed, &context)
            .map(String::from_utf8)
        {
            Ok(Ok(token)) => return Ok(Site::forge(tenant, &installation.api_base_url, token)),
            _ => tracing::error!(
                tenant = tenant.client_key,
                "a Forge system token does not unseal: was TOLLGATE_SECRET_KEY changed?"
            ),
        }
    }
    match tenant.kind {
        TenantKind::Connect => Site::from_tenant(tenant, &state.secret_key).map_err(|_| unusable()),
        TenantKind::JiraWebhook => {
            let source = webhook_sources::get(&state.store, &tenant.client_key).await?;
            let sealed = source
                .as_ref()
                .and_then(|s| s.api_email.clone().zip(s.api_token.clone()));
            let configured = &state.config.atlassian;
            match sealed {
                Some((email, token)) => {
                    let token = state
                        .secret_key
                        .unseal(&token, &webhook_sources::token_context(&tenant.client_key))
                        .ok()
                        .and_then(|t| String::from_utf8(t).ok())
                        .ok_or_else(unusable)?;
                    Ok(Site::api_token(tenant, email, token))
                }
                // The deployment's site-admin token, when the source has none of its own.
                None => match (&configured.site_admin_email, &configured.site_admin_token) {
                    (Some(email), Some(token)) => Ok(Site::api_token(
                        tenant,
                        email.clone(),
                        token.expose().to_string(),
                    )),
                    _ => Err(EngineError::Atlassian(AtlassianError::Refused(format!(
                        "webhook source {} has no API token to call Jira with \
                         (tollgate webhook-source add … --api-email … --api-token-file …)",
                        tenant.client_key
                    )))),
                },
            }
        }
        // Forge sends a token with every invocation and has no way to ask for one: until the
        // next invocation (the manifest's scheduled trigger calls at least hourly) calls wait.
        TenantKind::Forge => Err(EngineError::Atlassian(AtlassianError::Call(
            crate::atlassian::errors::CallError::Transient(format!(
                "no fresh Forge system token for {}: waiting for Forge's next invocation",
                tenant.client_key
            )),
        ))),
    }
}

/// An audit event about `request`, on its tenant's chain, naming the workflow version that
/// routed it.
pub(crate) fn request_event(
    request: &crate::store::requests::Request,
    at: chrono::DateTime<chrono::Utc>,
    actor: crate::audit::Actor,
    action: crate::lifecycle::Action,
    details: Value,
) -> crate::audit::Event {
    crate::audit::Event {
        at,
        tenant: Some(request.tenant.clone()),
        request_id: Some(request.id),
        ticket_key: Some(request.ticket_key.clone()),
        actor,
        action: action.as_str().to_string(),
        target: request.resource.clone(),
        details,
        workflow_version: request.workflow_version.clone(),
    }
}

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
) -> Result<(), EngineError> {
    use crate::atlassian::comments::CommentId;
    let (tenant, key) = (request.tenant.as_str(), request.ticket_key.as_str());
    let Some(id) = hint.get("id").and_then(CommentId::from_json) else {
        tracing::warn!(
            ticket_key = key,
            "comment event without a usable comment id; skipped"
        );
        return Ok(());
    };
    let (_, site) = site(state, tenant).await?;
    let Some(comment) = state.atlassian.issue_comment(&site, key, &id).await? else {
        // Jira has no such comment on this ticket: a forged or replayed body, or one deleted
        // since. Nothing counts; the attempt is kept for whoever reviews the ticket.
        let claimed = |pointer: &str| hint.pointer(pointer).cloned().unwrap_or(Value::Null);
        let mut tx = state.store.begin().await?;
        crate::audit::append(
            &mut tx,
            &request_event(
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
        tracing::warn!(ticket_key = key, comment = %id, "a comment event names a comment Jira does not have; nothing done");
        return Ok(());
    };
    if comment.by_app {
        return Ok(());
    }
    match crate::grants::commands::command(&comment.text) {
        Some(command) => {
            crate::grants::commands::handle(
                state,
                tenant,
                key,
                &comment.author.0,
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
    stored: &str,
    ticket: &str,
) -> Result<String, EngineError> {
    use crate::store::{requests, tenant_links};
    let store = &state.store;
    let mut site = tenant_links::site_of(store, stored)
        .await?
        .unwrap_or_else(|| stored.to_string());
    if site == stored && stored.starts_with(crate::jira_webhooks::TENANT_PREFIX) {
        match crate::jira_webhooks::link_plan(store, stored).await {
            Ok(plan) if plan.requests == 0 => {
                crate::jira_webhooks::link(store, &plan, state.clock.now(), "first event").await?;
                site = plan.site;
            }
            Ok(plan) => tracing::warn!(
                source = stored,
                site = plan.site,
                requests = plan.requests,
                "a plain webhook source with requests is not linked to its site's tenant; \
                 `tollgate tenants link` makes them one"
            ),
            Err(crate::jira_webhooks::LinkError::Store(e)) => return Err(e.into()),
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
pub async fn handle(state: &AppState, event: &InboundEvent) -> Result<(), EngineError> {
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
    let tenant = tenant_for_ticket(state, &event.tenant, key).await?;
    match event.event_type.as_str() {
        "jira:issue_created" => {
            intake::ensure_request(state, &tenant, key).await?;
        }
        "comment_created" => {
            // Out of order: a comment may arrive before its ticket was taken in.
            if let Some(request) = intake::ensure_request(state, &tenant, key).await? {
                on_comment(state, &request, &payload["comment"]).await?;
            }
        }
        "jira:issue_updated" => {
            if by_an_app(&payload["user"]) {
                return Ok(());
            }
            if intake::ensure_request(state, &tenant, key).await?.is_some() {
                decisions::from_jsm_approvals(state, &tenant, key).await?;
                cancel::if_ticket_cancelled(state, &tenant, key).await?;
            }
        }
        _ => {}
    }
    Ok(())
}
