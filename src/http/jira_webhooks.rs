//! `POST /webhooks/jira/{source}`: webhooks a Jira admin set up by hand, signed with the
//! source's secret. An unknown source and a bad signature get the same answer.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use crate::http::error::ApiError;
use crate::ingress::Door;
use crate::jira_webhooks::{self, SIGNATURE_HEADER};
use crate::state::AppState;

pub async fn receive(
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let tenant =
        jira_webhooks::authenticate(&state.store, &state.secret_key, &source, signature, &body)
            .await?;
    let Some(tenant) = tenant else {
        tracing::warn!(
            source = source.chars().take(40).collect::<String>(),
            signed = signature.is_some(),
            "plain webhook refused: unknown source or bad signature"
        );
        return Err(ApiError::Unauthorized("authentication failed".into()));
    };
    super::jira_webhook(
        &state,
        tenant.client_key,
        Door::JiraWebhook,
        &headers,
        &body,
        // The signature covers the body, and any event goes to the one URL.
        None,
        None,
    )
    .await
}
