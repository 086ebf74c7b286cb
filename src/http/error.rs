//! The error every HTTP handler returns, mapped to a status and a JSON body in one place:
//! `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request took too long")]
    Timeout,
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Storing failed below the store (the ingress batch, the job queue): the text is for
    /// the log only.
    #[error("{0}")]
    Storage(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<crate::failure::Failure> for ApiError {
    fn from(e: crate::failure::Failure) -> Self {
        use crate::failure::Failure;
        match e {
            Failure::Store(e) => Self::Store(e),
            Failure::Conflict(message) => Self::Conflict(message),
            Failure::NotReady(message) => Self::Unavailable(message),
            Failure::Job(e) => Self::Storage(e.to_string()),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<crate::ingress::IngressError> for ApiError {
    fn from(e: crate::ingress::IngressError) -> Self {
        match e {
            crate::ingress::IngressError::Store(e) => Self::Store(e),
            crate::ingress::IngressError::Stopped => {
                Self::Unavailable("the service is stopping; retry".into())
            }
            other => Self::Storage(other.to_string()),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::Store(StoreError::Corrupt(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) | Self::Store(_) | Self::Storage(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Timeout => "timeout",
            Self::Unavailable(_) => "unavailable",
            Self::Store(StoreError::Corrupt(_)) => "internal",
            Self::Store(_) | Self::Storage(_) => "storage_unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: String,
    /// On a 5xx: the id its detail is logged under, for the operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
}

/// The JSON error body of a 4xx, for middleware that answers without going through a handler.
pub fn error_response(status: StatusCode, code: &str, message: String) -> Response {
    body(status, code, message, None)
}

fn body(
    status: StatusCode,
    code: &str,
    message: String,
    correlation_id: Option<String>,
) -> Response {
    (
        status,
        Json(Body {
            error: Detail {
                code,
                message,
                correlation_id,
            },
        }),
    )
        .into_response()
}

/// A 5xx: what went wrong goes to the log under a new correlation id; the caller gets `public`
/// and the id, never the internal text (a database's error names tables and values).
pub fn server_error(status: StatusCode, code: &str, public: &str, detail: &str) -> Response {
    let id = uuid::Uuid::now_v7().to_string();
    tracing::error!(correlation_id = %id, status = status.as_u16(), code, error = detail, "request failed");
    let mut response = body(
        status,
        code,
        format!("{public} (correlation id {id})"),
        Some(id),
    );
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let public = match &self {
            Self::Internal(_) | Self::Store(StoreError::Corrupt(_)) => "internal error",
            Self::Store(_) | Self::Storage(_) => "storage is unavailable; retry later",
            // Written by a handler for the caller.
            Self::Unavailable(message) => message.as_str(),
            other => return error_response(status, self.code(), other.to_string()),
        };
        let detail = match &self {
            Self::Internal(source) => format!("{source:?}"),
            other => other.to_string(),
        };
        server_error(status, self.code(), public, &detail)
    }
}
