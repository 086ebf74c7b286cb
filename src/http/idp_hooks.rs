//! `/hooks/okta` and `/hooks/graph`: the identity provider's event hooks. Thin: the caller is
//! checked, the body read, and `idp_hooks` stores it before the answer.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::config::IdpSource;
use crate::http::error::ApiError;
use crate::idp::events::{self, Refused};
use crate::idp_hooks::{self, Hook, RecordError};
use crate::state::AppState;

/// The longest validation token or challenge echoed back (Graph's and Okta's are far shorter).
const MAX_ECHO: usize = 1_024;

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Store(e) => Self::Store(e),
            RecordError::Queue(e) => Self::Storage(e),
        }
    }
}

impl From<Refused> for ApiError {
    fn from(e: Refused) -> Self {
        match e {
            Refused::Malformed(_) => Self::BadRequest(e.to_string()),
            Refused::WrongClientState => Self::Unauthorized(e.to_string()),
        }
    }
}

/// Okta's hook is open when the source is Okta and its secret is set; the caller is who sends
/// that secret as its `Authorization` header.
fn okta_caller(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let IdpSource::Okta(config) = &state.config.idp.source else {
        return Err(ApiError::NotFound(
            "Okta event hooks are not enabled here (TOLLGATE_IDP_KIND=okta)".into(),
        ));
    };
    let Some(secret) = &config.hook_secret else {
        return Err(ApiError::NotFound(
            "Okta event hooks are not enabled here (TOLLGATE_IDP_OKTA_HOOK_SECRET)".into(),
        ));
    };
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::Unauthorized("the hook's Authorization header is required".into())
        })?;
    if crate::secrets::same_secret(offered, secret.expose()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "the hook's Authorization header is not valid".into(),
        ))
    }
}

/// `GET /hooks/okta`: the one-time verification, answered with the challenge.
pub async fn okta_verify(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    okta_caller(&state, &headers)?;
    let challenge = headers
        .get("x-okta-verification-challenge")
        .and_then(|v| v.to_str().ok())
        .filter(|c| !c.is_empty() && c.len() <= MAX_ECHO)
        .ok_or_else(|| ApiError::BadRequest("no X-Okta-Verification-Challenge header".into()))?;
    Ok(Json(json!({ "verification": challenge })))
}

/// `POST /hooks/okta`: a delivery of events, stored before the 200.
pub async fn okta_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    okta_caller(&state, &headers)?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    let received = events::okta(&body)?;
    idp_hooks::record(&state, Hook::Okta, &received).await?;
    Ok(StatusCode::OK)
}

/// `POST /hooks/graph`: the subscription's validation (`?validationToken=`, echoed as plain
/// text), or a delivery of change notifications, stored before the 202.
pub async fn graph(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let IdpSource::Entra(config) = &state.config.idp.source else {
        return Err(ApiError::NotFound(
            "Graph change notifications are not enabled here (TOLLGATE_IDP_KIND=entra)".into(),
        ));
    };
    let Some(client_state) = &config.client_state else {
        return Err(ApiError::NotFound(
            "Graph change notifications are not enabled here (TOLLGATE_IDP_ENTRA_CLIENT_STATE)"
                .into(),
        ));
    };
    if let Some(token) = params.get("validationToken") {
        if token.is_empty() || token.len() > MAX_ECHO {
            return Err(ApiError::BadRequest(
                "the validation token is empty or too long".into(),
            ));
        }
        return Ok(([(header::CONTENT_TYPE, "text/plain")], token.clone()).into_response());
    }
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    let received = events::graph(&body, client_state.expose())?;
    idp_hooks::record(&state, Hook::Graph, &received).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
