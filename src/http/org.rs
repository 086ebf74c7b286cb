//! The org chart's held removals, for the operator (the bearer token `TOLLGATE_API_TOKEN`):
//! what the leaver brake holds, and approving it. One org chart serves every site, so a site's
//! administrator cannot approve what would remove access on all of them.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header;
use axum::http::request::Parts;
use serde_json::{Value, json};

use crate::http::Web;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::org_changes;

/// The operator, by the API token.
pub struct Operator;

impl FromRequestParts<Web> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Web) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized("the operator's bearer token is required".into())
            })?;
        super::reports::operator(state, token).map(|()| Self)
    }
}

pub async fn holds(_: Operator, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let holds = org_changes::holds(&state.store).await?;
    Ok(Json(Value::Array(
        holds
            .into_iter()
            .map(|h| {
                json!({"version": h.version, "state": h.state.as_str(), "created_at": h.created_at,
                    "active_before": h.active_before, "people": h.people,
                    "decided_by": h.decided_by, "decided_at": h.decided_at})
            })
            .collect(),
    )))
}

pub async fn approve(
    _: Operator,
    State(state): State<AppState>,
    Path(version): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let now = state.clock.now();
    if crate::engine::org_change::approve(&state.store, version, "api token", now).await? {
        return Ok(Json(json!({"approved": version})));
    }
    match org_changes::hold_state(&state.store, version).await? {
        Some(hold) => Err(ApiError::Conflict(format!(
            "the removals held for snapshot {version} are {}, not waiting for approval",
            hold.as_str()
        ))),
        None => Err(ApiError::NotFound(format!(
            "no removals are held for snapshot {version}"
        ))),
    }
}
