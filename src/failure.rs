//! What stops work on a request (routing it, deciding, granting, telling its ticket) or on the
//! org chart's consequences, and whether trying again later may help. The layers below have
//! errors of their own (`StoreError`, `JobError`, `AtlassianError`, `IdpError`); this is the
//! one the request's domain (engine, grants, notices, alerts) returns, mapped to HTTP once
//! (`error.rs`) and to a retry or a drop once (`worker`).

use crate::atlassian::AtlassianError;
use crate::ids::TenantKey;
use crate::jobs::JobError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Atlassian(#[from] AtlassianError),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("tenant {0} is not installed or its secret does not unseal")]
    Tenant(TenantKey),
    /// The configured alert ticket's site has no active Jira tenant.
    #[error("no Jira tenant is installed for the site {0}")]
    NoSite(String),
    /// Tollgate cannot judge yet (no org chart synced): worth trying again shortly.
    #[error("not ready: {0}")]
    NotReady(String),
    /// A change the request's state does not allow, or one that lost a race it should not have
    /// been able to run: a bug to look into, not an outage to wait out.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Reading the org chart from the identity source failed.
    #[error(transparent)]
    OrgSync(#[from] crate::people::sync::SyncError),
}

impl From<crate::lifecycle::Conflict> for Failure {
    fn from(e: crate::lifecycle::Conflict) -> Self {
        Self::Conflict(e.to_string())
    }
}

impl From<crate::people::accounts::AccountError> for Failure {
    fn from(e: crate::people::accounts::AccountError) -> Self {
        match e {
            crate::people::accounts::AccountError::Store(e) => Self::Store(e),
            crate::people::accounts::AccountError::Atlassian(e) => Self::Atlassian(e),
        }
    }
}

impl Failure {
    /// Whether trying the event again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Job(_) | Self::NotReady(_) => true,
            Self::Atlassian(e) => e.is_retryable(),
            Self::OrgSync(e) => e.is_retryable(),
            Self::Tenant(_) | Self::NoSite(_) | Self::Conflict(_) => false,
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
