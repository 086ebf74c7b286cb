//! Typed results of a vendor call, with the vendor's own message kept.

use crate::outbound::vendor_message;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("authentication refused: {0}")]
    Unauthorized(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("rate limited (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// Worth retrying later (5xx, timeout, connection failure) after the in-call retries ran out.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Will not succeed as asked (400, 422, …).
    #[error("refused ({status}): {message}")]
    Permanent { status: u16, message: String },
}

impl CallError {
    /// Whether a durable job should try the call again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient(_))
    }

    /// Maps a final (no more in-call retries) HTTP failure to its kind.
    pub fn from_status(status: u16, body: &str, retry_after: Option<Duration>) -> Self {
        let message = vendor_message(body).unwrap_or_else(|| format!("HTTP {status}"));
        match status {
            401 => Self::Unauthorized(message),
            403 => Self::Forbidden(message),
            404 => Self::NotFound(message),
            409 => Self::Conflict(message),
            429 => Self::RateLimited { retry_after },
            408 | 425 | 500..=599 if status != 501 => Self::Transient(message),
            _ => Self::Permanent { status, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_messages_are_kept() {
        let jira = r#"{"errorMessages":["Issue does not exist"],"errors":{"summary":"required"}}"#;
        assert_eq!(
            vendor_message(jira).as_deref(),
            Some("Issue does not exist; summary: required")
        );
        assert_eq!(
            CallError::from_status(404, jira, None),
            CallError::NotFound("Issue does not exist; summary: required".into())
        );
        let scim = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409","detail":"User exists"}"#;
        assert_eq!(
            CallError::from_status(409, scim, None),
            CallError::Conflict("User exists".into())
        );
        assert_eq!(
            CallError::from_status(400, "not json", None),
            CallError::Permanent {
                status: 400,
                message: "HTTP 400".into()
            }
        );
        assert!(CallError::from_status(503, "", None).is_retryable());
        assert!(!CallError::from_status(403, "", None).is_retryable());
    }
}
