//! The request engine: from a JSM ticket to a decision.
//!
//! Inbound events (stored by intake, processed by a job) come here. Each state change is one
//! transaction: the request row (compare-and-set on its version), the decision, the audit
//! event, and a [`crate::jobs::Job::TicketNotice`] that tells the ticket — so the ticket is told
//! at least once even if Jira is down when it happens.

pub mod cancel;
pub mod decisions;
pub mod intake;
pub mod machine;
pub mod notices;
pub mod recovery;
pub mod reresolve;
pub mod templates;
pub mod timers;

use serde_json::Value;

use crate::atlassian::{AtlassianError, Site};
use crate::connect::tenant::Tenant;
use crate::jobs::JobError;
use crate::state::AppState;
use crate::store::inbound::InboundEvent;
use crate::store::{StoreError, tenants};

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
}

impl From<crate::orgchart::accounts::AccountError> for EngineError {
    fn from(e: crate::orgchart::accounts::AccountError) -> Self {
        match e {
            crate::orgchart::accounts::AccountError::Store(e) => Self::Store(e),
            crate::orgchart::accounts::AccountError::Atlassian(e) => Self::Atlassian(e),
        }
    }
}

impl EngineError {
    /// Whether trying the event again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(_) | Self::Job(_) => true,
            Self::Atlassian(e) => e.is_retryable(),
            Self::Tenant(_) => false,
        }
    }
}

/// The tenant row and the site to call back.
pub async fn site(state: &AppState, client_key: &str) -> Result<(Tenant, Site), EngineError> {
    let tenant = tenants::get(&state.store, client_key)
        .await?
        .filter(|t| t.state.is_active())
        .ok_or_else(|| EngineError::Tenant(client_key.to_string()))?;
    let site = Site::from_tenant(&tenant, &state.secret_key)
        .map_err(|_| EngineError::Tenant(client_key.to_string()))?;
    Ok((tenant, site))
}

/// An audit event about `request`, on its tenant's chain, naming the workflow version that
/// routed it.
pub(crate) fn request_event(
    request: &crate::store::requests::Request,
    at: chrono::DateTime<chrono::Utc>,
    actor: crate::audit::Actor,
    action: &str,
    details: Value,
) -> crate::audit::Event {
    crate::audit::Event {
        at,
        tenant: Some(request.tenant.clone()),
        request_id: Some(request.id),
        ticket_key: Some(request.ticket_key.clone()),
        actor,
        action: action.to_string(),
        target: request.resource.clone(),
        details,
        workflow_version: request.workflow_version.clone(),
    }
}

/// Webhooks caused by an app (Tollgate's own comments and transitions) are not decisions.
fn by_an_app(user: &Value) -> bool {
    user.get("accountType").and_then(Value::as_str) == Some("app")
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
    match event.event_type.as_str() {
        "jira:issue_created" => {
            intake::ensure_request(state, &event.tenant, key).await?;
        }
        "comment_created" => {
            let comment = &payload["comment"];
            if by_an_app(&comment["author"]) {
                return Ok(());
            }
            // Out of order: a comment may arrive before its ticket was taken in.
            if intake::ensure_request(state, &event.tenant, key)
                .await?
                .is_some()
            {
                let text = crate::atlassian::adf::plain_text(&comment["body"]);
                match crate::grants::commands::command(&text) {
                    Some(command) => {
                        let account = comment.pointer("/author/accountId").and_then(Value::as_str);
                        let who = comment
                            .pointer("/author/displayName")
                            .and_then(Value::as_str)
                            .or(account)
                            .unwrap_or("someone");
                        let answer = comment["id"]
                            .as_str()
                            .map_or_else(|| event.id.to_string(), str::to_string);
                        if let Some(account) = account {
                            crate::grants::commands::handle(
                                state,
                                &event.tenant,
                                key,
                                account,
                                who,
                                command,
                                &format!("comment:{answer}"),
                            )
                            .await?;
                        }
                    }
                    None => {
                        decisions::from_comment(state, &event.tenant, key, comment, event.id)
                            .await?
                    }
                }
            }
        }
        "jira:issue_updated" => {
            if by_an_app(&payload["user"]) {
                return Ok(());
            }
            if intake::ensure_request(state, &event.tenant, key)
                .await?
                .is_some()
            {
                decisions::from_jsm_approvals(state, &event.tenant, key).await?;
                cancel::if_ticket_cancelled(state, &event.tenant, key).await?;
            }
        }
        _ => {}
    }
    Ok(())
}
