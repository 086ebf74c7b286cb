//! Liveness, readiness and metrics for operators and orchestrators.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// The process is up and answering.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready to take traffic: the database answers, every migration is applied, and the job worker
/// runs when this process is meant to run one.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = match state.store.ping().await {
        Ok(()) => "ok".to_string(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            "unreachable".to_string()
        }
    };
    let migrations = match state.store.pending_migrations().await {
        Ok(pending) if pending.is_empty() => "ok".to_string(),
        Ok(pending) => format!("pending: {pending:?}"),
        Err(_) => "unknown".to_string(),
    };
    let worker = match (state.worker_enabled, state.worker_status.is_running()) {
        (false, _) => "disabled",
        (true, true) => "ok",
        (true, false) => "not running",
    };
    let ready = database == "ok" && migrations == "ok" && worker != "not running";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "database": database, "migrations": migrations, "worker": worker },
        "backend": state.store.backend().as_str(),
    });
    (status, Json(body)).into_response()
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
