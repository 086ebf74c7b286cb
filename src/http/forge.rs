//! Forge remote routes (`forge/manifest.yml` points its endpoints here): product events, the
//! installation lifecycle, and the scheduled trigger that keeps a fresh system token on hand.
//! Forge gives up on a remote after 5 seconds, so events are only made durable here; a job
//! does the work.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;

use crate::forge::events::{self, EventError};
use crate::forge::installations::{self, InstallationError};
use crate::forge::token::{self, Expected, FitError, Invocation};
use crate::http::Web;
use crate::http::error::ApiError;
use crate::ids::TenantKey;
use crate::ingress::{Delivery, Door};
use crate::state::AppState;

/// The header Forge puts the app's system token in.
const SYSTEM_TOKEN: &str = "x-forge-oauth-system";

/// A call verified to come from Forge for this app, with the tenant it is for.
pub struct ForgeCall {
    pub invocation: Invocation,
    system_token: Option<String>,
}

impl FromRequestParts<Web> for ForgeCall {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Web) -> Result<Self, ApiError> {
        let Some(forge) = &state.forge else {
            return Err(ApiError::NotFound(
                "the Forge door is closed: set TOLLGATE_FORGE_APP_ID".into(),
            ));
        };
        let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let expected = Expected {
            app_ari: &forge.app_ari,
            now: state.clock.now(),
            leeway_seconds: state.connect.leeway_seconds,
        };
        let invocation = token::verify(
            &forge.keys,
            header(axum::http::header::AUTHORIZATION.as_str()),
            &expected,
        )
        .await?;
        Ok(Self {
            invocation,
            system_token: header(SYSTEM_TOKEN).map(str::to_string),
        })
    }
}

impl ForgeCall {
    /// The tenant, registering the installation on first sight and keeping its token.
    async fn tenant(&self, state: &AppState) -> Result<TenantKey, ApiError> {
        Ok(
            installations::tenant_for(state, &self.invocation, self.system_token.as_deref())
                .await?,
        )
    }
}

impl From<FitError> for ApiError {
    fn from(e: FitError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "Forge key set unavailable");
            return ApiError::Unavailable("Forge's keys cannot be read; retry".into());
        }
        // The caller learns nothing that helps forge a better token; the log says why.
        tracing::warn!(reason = %e, "Forge invocation refused");
        ApiError::Unauthorized("authentication failed".into())
    }
}

impl From<InstallationError> for ApiError {
    fn from(e: InstallationError) -> Self {
        match e {
            InstallationError::Store(e) => ApiError::Store(e),
            InstallationError::Inactive => ApiError::Forbidden(e.to_string()),
            InstallationError::Seal(m) => ApiError::Internal(anyhow::anyhow!(m)),
        }
    }
}

/// `POST /forge/events`: Jira product events.
pub async fn event(
    State(state): State<AppState>,
    call: ForgeCall,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    // The body is checked before anything is stored: a broken event registers nothing.
    let normalized = events::normalize(&body).map_err(|e| match e {
        EventError::NotJson(_) | EventError::Missing(_) => ApiError::BadRequest(e.to_string()),
    })?;
    // The body is not signed: the site it names must be the one the token was issued for,
    // before anything (the installation included) is stored.
    if let Some(event) = &normalized
        && let Err(why) = event.sites.check(
            &call.invocation.cloud_id,
            call.invocation.site_url.as_deref(),
        )
    {
        tracing::warn!(installation = %call.invocation.installation_id, %why, "Forge event for another site refused");
        return Err(ApiError::Unauthorized(
            "the event is for another site than its token".into(),
        ));
    }
    let tenant = call.tenant(&state).await?;
    let Some(event) = normalized else {
        return Ok(StatusCode::NO_CONTENT);
    };
    state
        .ingress
        .accept(Delivery {
            tenant,
            ingress: Door::Forge,
            delivery_id: event.delivery_id,
            event_type: event.event_type.to_string(),
            payload: event.payload,
            received_at: state.clock.now(),
            // Forge's token is checked above; Forge retries with a new one.
            signed: None,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /forge/installed` and `POST /forge/scheduled` (the manifest's hourly trigger): the
/// installation is registered on first sight and its newest system token kept. Forge has no
/// way to ask for a token, so the hourly call is what keeps outbound calls (expiries at night)
/// supplied with one.
pub async fn refresh(
    State(state): State<AppState>,
    call: ForgeCall,
) -> Result<StatusCode, ApiError> {
    call.tenant(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /forge/uninstalled`
pub async fn uninstalled(
    State(state): State<AppState>,
    call: ForgeCall,
) -> Result<StatusCode, ApiError> {
    installations::uninstalled(&state, &call.invocation).await?;
    Ok(StatusCode::NO_CONTENT)
}
