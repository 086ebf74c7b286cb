//! Connect routes: descriptors, lifecycle callbacks, webhooks, and the admin page.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::connect::auth::{self, AuthError, Checks, QshRule, RequestParts, Verified};
use crate::connect::lifecycle::{self, LifecycleError};
use crate::http::BODY_LIMIT;
use crate::http::Web;
use crate::http::error::ApiError;
use crate::ingress::Door;
use crate::tenant::Product;

pub async fn jira_descriptor(State(state): State<Web>) -> Response {
    descriptor(&state.connect.descriptors.jira)
}

pub async fn confluence_descriptor(State(state): State<Web>) -> Response {
    descriptor(&state.connect.descriptors.confluence)
}

fn descriptor(value: &serde_json::Value) -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Json(value.clone())).into_response()
}

fn parts<'a>(
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    form_body: Option<&'a str>,
) -> RequestParts<'a> {
    RequestParts {
        method: method.as_str(),
        path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        form_body,
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Token(reason) => {
                // The caller learns nothing that helps forge a better token; the log says why.
                tracing::warn!(%reason, "Connect request refused");
                ApiError::Unauthorized("authentication failed".into())
            }
            AuthError::Store(e) => ApiError::Store(e),
            AuthError::Keys(e) => {
                tracing::warn!(error = %e, "install key server unavailable");
                ApiError::Unavailable(
                    "the install key server is unavailable; retry the install".into(),
                )
            }
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::Auth(e) => e.into(),
            LifecycleError::Payload(message) => {
                tracing::warn!(%message, "lifecycle payload refused");
                ApiError::BadRequest(message)
            }
            LifecycleError::SiteNotAllowed(site) => {
                tracing::warn!(%site, "install from a site outside connect.allowed_sites refused");
                ApiError::Unauthorized("this site may not install the app".into())
            }
            LifecycleError::Store(e) => ApiError::Store(e),
            LifecycleError::Seal(message) => ApiError::Internal(anyhow::anyhow!(message)),
        }
    }
}

/// `POST /connect/{installed|uninstalled|enabled|disabled}`: the lifecycle callbacks.
pub async fn lifecycle_event(
    State(state): State<Web>,
    Path(event): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let request = parts(&method, &uri, &headers, None);
    match event.as_str() {
        "installed" => {
            lifecycle::installed(&state, &state.connect, &request, &body).await?;
        }
        "uninstalled" => lifecycle::uninstalled(&state, &state.connect, &request, &body).await?,
        "enabled" => lifecycle::set_enabled(&state, &state.connect, &request, &body, true).await?,
        "disabled" => {
            lifecycle::set_enabled(&state, &state.connect, &request, &body, false).await?
        }
        other => {
            return Err(ApiError::NotFound(format!("no lifecycle event `{other}`")));
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A request verified with a Connect token bound to it (exact qsh), from an active tenant.
pub struct ConnectAuth(pub Verified);

/// Like [`ConnectAuth`], also accepting context tokens from our own pages.
pub struct ConnectContextAuth(pub Verified);

pub(crate) async fn verify_parts(
    parts: &Parts,
    state: &Web,
    rule: QshRule,
    form_body: Option<&str>,
) -> Result<Verified, ApiError> {
    let request = self::parts(&parts.method, &parts.uri, &parts.headers, form_body);
    let checks = Checks {
        base_path: &state.connect.base_path,
        leeway_seconds: state.connect.leeway_seconds,
        now: state.clock.now(),
    };
    let verified = auth::verify_request(
        &state.store,
        &state.secret_key,
        &state.connect.tenants,
        &request,
        &checks,
        rule,
    )
    .await?;
    if !verified.tenant.state.is_active() {
        tracing::warn!(
            client_key = %verified.tenant.client_key,
            state = verified.tenant.state.as_str(),
            "request from an inactive tenant refused"
        );
        return Err(ApiError::Forbidden(
            "the app is not enabled for this site".into(),
        ));
    }
    Ok(verified)
}

impl FromRequestParts<Web> for ConnectAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Web) -> Result<Self, ApiError> {
        verify_parts(parts, state, QshRule::Exact, None)
            .await
            .map(Self)
    }
}

impl FromRequestParts<Web> for ConnectContextAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Web) -> Result<Self, ApiError> {
        verify_parts(parts, state, QshRule::AllowContext, None)
            .await
            .map(Self)
    }
}

/// A verified request with its body: a form-encoded body is searched for a `jwt` field too
/// (and a token in both the query and the body is refused).
pub struct ConnectBody(pub Verified, pub Bytes);

impl FromRequest<Web> for ConnectBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Web) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, BODY_LIMIT)
            .await
            .map_err(|_| ApiError::PayloadTooLarge { limit: BODY_LIMIT })?;
        let is_form = parts.headers.get(header::CONTENT_TYPE).is_some_and(|v| {
            v.as_bytes()
                .starts_with(b"application/x-www-form-urlencoded")
        });
        let form = is_form.then(|| std::str::from_utf8(&bytes).ok()).flatten();
        let verified = verify_parts(&parts, state, QshRule::Exact, form).await?;
        Ok(Self(verified, bytes))
    }
}

/// The webhook event a descriptor path stands for (`issue-created` → `jira:issue_created`):
/// the token signs the path, so the path says which event the body may be.
fn event_of_path(slug: &str) -> Option<&'static str> {
    crate::ingress::HANDLED_EVENTS
        .iter()
        .copied()
        .find(|event| event.trim_start_matches("jira:").replace('_', "-") == slug)
}

pub async fn webhook(
    State(state): State<Web>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    ConnectBody(verified, body): ConnectBody,
) -> Result<StatusCode, ApiError> {
    if verified.tenant.product != Product::Jira {
        return Err(ApiError::BadRequest(
            "webhooks come from Jira tenants".into(),
        ));
    }
    let Some(event) = event_of_path(&slug) else {
        return Err(ApiError::NotFound(format!(
            "no webhook is registered at {slug}"
        )));
    };
    // The token, as sent (the header, else the query): one token, one body.
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map_or_else(
            || uri.query().unwrap_or_default().to_string(),
            str::to_string,
        );
    let expires_at = verified
        .claims
        .exp
        .and_then(|exp| chrono::DateTime::from_timestamp(exp, 0))
        .unwrap_or_else(|| state.clock.now() + chrono::TimeDelta::hours(1));
    let signed = crate::ingress::SignedBy {
        token_hash: crate::ingress::sha256_hex(token.as_bytes()),
        body_hash: crate::ingress::sha256_hex(&body),
        expires_at,
    };
    super::jira_webhook(
        &state,
        verified.tenant.client_key,
        Door::Connect,
        &headers,
        &body,
        Some(signed),
        Some(event),
    )
    .await
}

/// The admin page, loaded by Jira in an iframe with a request-bound token in `?jwt=`.
pub async fn admin_page(ConnectAuth(verified): ConnectAuth) -> Html<String> {
    let tenant = &verified.tenant;
    Html(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Tollgate</title>\
         <script src=\"https://connect-cdn.atl-paas.net/all.js\" async></script></head>\
         <body><h1>Tollgate</h1><p>Installed on {} since {}.</p>\
         <p>Workflows are managed as code: see the Tollgate documentation.</p></body></html>",
        html_escape(&tenant.base_url),
        tenant.installed_at.format("%Y-%m-%d")
    ))
}

/// Who is calling, for scripts on our pages (context tokens accepted).
pub async fn context(ConnectContextAuth(verified): ConnectContextAuth) -> Json<serde_json::Value> {
    Json(json!({
        "client_key": verified.tenant.client_key,
        "product": verified.tenant.product.as_str(),
        "base_url": verified.tenant.base_url,
        "account_id": verified.account_id.map(|a| a.0),
    }))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
