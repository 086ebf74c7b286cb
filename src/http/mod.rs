//! The HTTP surface: routes and the middleware every request passes through.
//! Handlers are thin: parse, authorize, call one engine function, map the result.

mod connect;
pub mod error;
mod forge;
mod health;
mod idp_hooks;
mod jira_webhooks;
mod org;
mod reports;
mod scim;
pub mod serve;

use std::sync::Arc;

use axum::extract::FromRef;

use crate::connect::Connect;
use crate::forge::Forge;
use crate::ids::TenantKey;
use std::any::Any;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::http::error::{ApiError, error_response, server_error};
use crate::state::AppState;

/// Largest request body accepted; Atlassian webhooks are far below it.
pub const BODY_LIMIT: usize = 1024 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the routes share: the app's services (it derefs to them), and what only the doors
/// use.
#[derive(Debug, Clone)]
pub struct Web {
    pub app: AppState,
    pub connect: Arc<Connect>,
    /// The Forge front door, when `TOLLGATE_FORGE_APP_ID` is set.
    pub forge: Option<Arc<Forge>>,
}

impl std::ops::Deref for Web {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.app
    }
}

impl FromRef<Web> for AppState {
    fn from_ref(web: &Web) -> Self {
        web.app.clone()
    }
}

pub fn router(state: Web) -> Router {
    let request_timeout = state.config.server.request_timeout;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/atlassian-connect.json", get(connect::jira_descriptor))
        .route(
            "/confluence/atlassian-connect.json",
            get(connect::confluence_descriptor),
        )
        .route("/connect/{event}", post(connect::lifecycle_event))
        .route("/connect/webhooks/{event}", post(connect::webhook))
        .route("/connect/admin", get(connect::admin_page))
        .route("/connect/api/context", get(connect::context))
        .route("/webhooks/jira/{source}", post(jira_webhooks::receive))
        .route("/forge/events", post(forge::event))
        .route("/forge/installed", post(forge::refresh))
        .route("/forge/uninstalled", post(forge::uninstalled))
        .route("/forge/scheduled", post(forge::refresh))
        .route("/api/v1/reports/access", get(reports::access))
        .route("/api/v1/reports/active", get(reports::active))
        .route("/api/v1/evidence/{ticket}", get(reports::evidence))
        .route("/api/v1/org/holds", get(org::holds))
        .route("/api/v1/org/holds/{version}/approve", post(org::approve))
        .nest("/scim/v2", scim::routes())
        .route("/hooks/okta", get(idp_hooks::okta_verify).post(idp_hooks::okta_events))
        .route("/hooks/graph", post(idp_hooks::graph))
        .fallback(not_found)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
                    let id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id = %id)
                }))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
                .layer(middleware::from_fn(json_error_bodies))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    request_timeout,
                ))
                // Refuses a declared Content-Length over the limit before reading anything;
                // DefaultBodyLimit catches chunked bodies as they are read.
                .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
                .layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
        .with_state(state)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn record_metrics(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Methods are whatever a client writes: the standard ones by name, the rest as one.
    let method: &'static str = match *request.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    // Unmatched paths share one label: the series must not grow with what clients send.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    state.metrics.record_http(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Errors produced by middleware (body limit, timeout) come without our JSON body; give them one
/// so every error a client sees has the same shape.
async fn json_error_bodies(request: Request, next: Next) -> Response {
    let is_scim = request.uri().path().starts_with("/scim/");
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json")
                || v.as_bytes().starts_with(scim::CONTENT_TYPE.as_bytes())
        });
    if !status.is_client_error() && !status.is_server_error() || is_json {
        return response;
    }
    let (parts, _) = response.into_parts();
    if is_scim {
        // An identity provider reads SCIM's error shape.
        let detail = status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_lowercase();
        let mut fixed = axum::response::IntoResponse::into_response(crate::scim::ScimError {
            status: status.as_u16(),
            scim_type: None,
            detail,
        });
        keep_headers(&mut fixed, &parts.headers);
        return fixed;
    }
    if status.is_server_error() {
        let mut fixed = server_error(
            status,
            "unavailable",
            "the service cannot take this now; retry later",
            &format!("answered {status} without a body"),
        );
        keep_headers(&mut fixed, &parts.headers);
        return fixed;
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: BODY_LIMIT },
        StatusCode::REQUEST_TIMEOUT => ApiError::Timeout,
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::BadRequest("method not allowed on this route".into())
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::BadRequest("unsupported content type".into())
        }
        other => ApiError::BadRequest(
            other
                .canonical_reason()
                .unwrap_or("bad request")
                .to_lowercase(),
        ),
    };
    let mut fixed = error_response(status, error.code(), error.to_string());
    keep_headers(&mut fixed, &parts.headers);
    fixed
}

/// Keeps the replaced answer's headers, such as Allow and the request id.
fn keep_headers(fixed: &mut Response, headers: &axum::http::HeaderMap) {
    for (name, value) in headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    server_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
        &format!("handler panicked: {detail}"),
    )
}

/// The webhook header whose value is stable across a delivery's retries.
const WEBHOOK_IDENTIFIER: &str = "x-atlassian-webhook-identifier";

/// Takes in a Jira webhook body for `tenant`, authenticated by whichever door it came through:
/// durable and deduplicated (on Jira's delivery id, else on the body) before the answer.
pub(crate) async fn jira_webhook(
    state: &AppState,
    tenant: TenantKey,
    ingress: crate::ingress::Door,
    headers: &axum::http::HeaderMap,
    body: &[u8],
    signed: Option<crate::ingress::SignedBy>,
    bound_to: Option<&str>,
) -> Result<axum::http::StatusCode, ApiError> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(rename = "webhookEvent")]
        webhook_event: String,
    }
    let payload = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the webhook body is not UTF-8".into()))?;
    let event_type = serde_json::from_str::<Envelope>(payload)
        .map(|e| e.webhook_event)
        .map_err(|e| ApiError::BadRequest(format!("the webhook body is not a Jira event: {e}")))?;
    // What was signed (the path, naming one event) must be what is done. An event Tollgate
    // does not act on is ignored whichever path it came to.
    if let Some(path_event) = bound_to
        && path_event != event_type
        && crate::ingress::HANDLED_EVENTS.contains(&event_type.as_str())
    {
        tracing::warn!(path_event, body_event = %event_type, "webhook body names another event than its signed path; refused");
        return Err(ApiError::Unauthorized(
            "the webhook body does not match the event its token was signed for".into(),
        ));
    }
    let delivery_id = match headers
        .get(WEBHOOK_IDENTIFIER)
        .and_then(|v| v.to_str().ok())
    {
        Some(id) if !id.is_empty() && id.len() <= 200 => id.to_string(),
        // Without the header, identical bodies are the same delivery.
        _ => format!("sha256:{}", crate::ingress::sha256_hex(body)),
    };
    let accepted = state
        .ingress
        .accept(crate::ingress::Delivery {
            tenant,
            ingress,
            delivery_id: delivery_id.clone(),
            event_type,
            payload: payload.to_string(),
            received_at: state.clock.now(),
            signed,
        })
        .await?;
    match accepted {
        crate::ingress::Accepted::Duplicate => {
            tracing::debug!(%delivery_id, "webhook delivered again; ignored");
        }
        crate::ingress::Accepted::Replayed => {
            tracing::warn!(%delivery_id, "a webhook token seen before came with another body; refused");
            return Err(ApiError::Unauthorized(
                "this token was already used with another body".into(),
            ));
        }
        _ => {}
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}
