//! Which tenant a Forge installation is. The first invocation of an installation registers it:
//! as the Jira Connect tenant of the same site when there is one (same cloud id, or same host),
//! so a site moving from Connect to Forge keeps its requests, grants and audit chain; else as a
//! tenant of its own. Every invocation also brings a fresh system token, kept for outbound calls.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::token::Invocation;
use crate::audit::{TenantAction, tenant_event};
use crate::ids::TenantKey;
use crate::state::AppState;
use crate::store::{StoreError, forge, tenants};
use crate::tenant::{Product, Tenant, TenantKind, TenantState, host_of};

/// When a system token cannot be read (it should be a JWT), how long it is trusted.
const UNREADABLE_TOKEN_LIFETIME: TimeDelta = TimeDelta::minutes(5);

#[derive(Debug, thiserror::Error)]
pub enum InstallationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot seal the system token: {0}")]
    Seal(String),
    #[error("the app is not enabled for this site")]
    Inactive,
}

/// The tenant's client key for this invocation, registering the installation if it is new,
/// and storing `system_token` (the `x-forge-oauth-system` header) if it outlasts the stored one.
pub async fn tenant_for(
    state: &AppState,
    invocation: &Invocation,
    system_token: Option<&str>,
) -> Result<TenantKey, InstallationError> {
    let now = state.clock.now();
    let sealed = match system_token {
        Some(token) => Some(seal(state, invocation, token, now)?),
        None => None,
    };
    let tenant = match forge::get(&state.store, &invocation.installation_id).await? {
        Some(known) if known.uninstalled_at.is_none() => {
            if let Some((sealed, expires)) = &sealed {
                forge::refresh_token(
                    &state.store,
                    &known.installation_id,
                    &invocation.api_base_url,
                    sealed,
                    *expires,
                    now,
                )
                .await?;
            }
            known.tenant
        }
        _ => register(state, invocation, sealed, now).await?,
    };
    let Some(row) = tenants::get(&state.store, &tenant)
        .await?
        .filter(|t| t.state.is_active())
    else {
        return Err(InstallationError::Inactive);
    };
    if row.kind == TenantKind::Forge && row.base_url == invocation.api_base_url {
        learn_site_url(state, &row, invocation, system_token).await;
    }
    Ok(tenant)
}

/// How long asking the site for its URL may take out of Forge's 5 seconds.
const SITE_URL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A Forge-only tenant registered without `context.siteUrl` has the gateway as its address:
/// ticket links and the intake mapping (chosen by host) need the site's own. Asked from
/// `serverInfo` with this invocation's token; a failure leaves it for the next invocation.
async fn learn_site_url(
    state: &AppState,
    tenant: &Tenant,
    invocation: &Invocation,
    system_token: Option<&str>,
) {
    let Some(token) = system_token else {
        return;
    };
    let token = token
        .strip_prefix("Bearer ")
        .unwrap_or(token)
        .trim()
        .to_string();
    let site = crate::atlassian::Site::forge(tenant, &invocation.api_base_url, token);
    let asked = tokio::time::timeout(SITE_URL_TIMEOUT, state.atlassian.server_base_url(&site));
    match asked.await {
        Ok(Ok(url)) => match host_of(&url) {
            Some(host) => {
                if let Err(e) =
                    tenants::set_site(&state.store, &tenant.client_key, &url, &host).await
                {
                    tracing::warn!(error = %e, "the site's URL was not stored");
                } else {
                    tracing::info!(tenant = %tenant.client_key, url, "Forge site URL learnt");
                }
            }
            None => tracing::warn!(url, "serverInfo named no host"),
        },
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot ask the site for its URL yet"),
        Err(_) => tracing::warn!("asking the site for its URL took too long"),
    }
}

/// Marks the installation uninstalled. A tenant of its own is uninstalled with it; a Connect
/// tenant it continued keeps its state (its own lifecycle says when it goes).
pub async fn uninstalled(
    state: &AppState,
    invocation: &Invocation,
) -> Result<(), InstallationError> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let Some(installation) = forge::get_in(&mut tx, &invocation.installation_id).await? else {
        return Ok(());
    };
    if installation.uninstalled_at.is_some() {
        return Ok(());
    }
    forge::uninstall_in(&mut tx, &installation.installation_id, now).await?;
    let tenant = tenants::get_in(&mut tx, &installation.tenant).await?;
    if tenant.as_ref().is_some_and(|t| t.kind == TenantKind::Forge) {
        tenants::set_state(&mut tx, &installation.tenant, TenantState::Uninstalled, now).await?;
    }
    tenant_event(
        &mut tx,
        &installation.tenant,
        TenantAction::ForgeUninstalled,
        now,
        json!({"installation": installation.installation_id}),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(tenant = %installation.tenant, "Forge installation removed");
    Ok(())
}

async fn register(
    state: &AppState,
    invocation: &Invocation,
    sealed: Option<(String, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Result<TenantKey, InstallationError> {
    let mut tx = state.store.begin().await?;
    let site_host = invocation.site_url.as_deref().and_then(host_of);
    let existing =
        tenants::connect_jira_of_site_in(&mut tx, &invocation.cloud_id, site_host.as_deref())
            .await?;
    let (token, expires) = sealed.unzip();
    let installation = forge::Installation {
        installation_id: invocation.installation_id.to_string(),
        tenant: existing.as_ref().map_or_else(
            || invocation.installation_id.clone(),
            |t| t.client_key.clone(),
        ),
        app_id: state.config.forge.app_id.clone().unwrap_or_default(),
        cloud_id: invocation.cloud_id.clone(),
        api_base_url: invocation.api_base_url.clone(),
        system_token: token,
        token_expires_at: expires,
        installed_at: now,
        uninstalled_at: None,
    };
    forge::insert_in(&mut tx, &installation).await?;
    let (action, details) = match &existing {
        Some(tenant) => {
            // A site that came through Connect without a cloud id gets it now.
            if tenant.cloud_id.is_none() {
                let mut with_id = tenant.clone();
                with_id.cloud_id = Some(invocation.cloud_id.clone());
                tenants::upsert_install(&mut tx, &with_id).await?;
            }
            (
                TenantAction::ForgeLinked,
                json!({"installation": installation.installation_id, "cloud_id": invocation.cloud_id}),
            )
        }
        None => {
            let site_url = invocation
                .site_url
                .clone()
                .unwrap_or_else(|| invocation.api_base_url.clone());
            let tenant = Tenant {
                client_key: installation.tenant.clone(),
                kind: TenantKind::Forge,
                product: Product::Jira,
                app_key: installation.app_id.clone(),
                host: site_host.unwrap_or_else(|| invocation.cloud_id.clone()),
                base_url: site_url,
                display_url: None,
                cloud_id: Some(invocation.cloud_id.clone()),
                shared_secret_sealed: String::new(),
                state: TenantState::Installed,
                installed_at: now,
                updated_at: now,
                uninstalled_at: None,
            };
            tenants::upsert_install(&mut tx, &tenant).await?;
            (
                TenantAction::Installed,
                json!({"ingress": "forge", "installation": installation.installation_id,
                       "cloud_id": invocation.cloud_id, "base_url": tenant.base_url}),
            )
        }
    };
    tenant_event(&mut tx, &installation.tenant, action, now, details).await?;
    tx.commit().await?;
    tracing::info!(
        tenant = %installation.tenant,
        linked = existing.is_some(),
        "Forge installation registered"
    );
    Ok(installation.tenant)
}

/// The token sealed for storage, with the expiry it states.
fn seal(
    state: &AppState,
    invocation: &Invocation,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>), InstallationError> {
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
    let expires = jwt_expiry(token).unwrap_or(now + UNREADABLE_TOKEN_LIFETIME);
    let sealed = state
        .secret_key
        .seal(
            token.as_bytes(),
            &forge::token_context(&invocation.installation_id),
        )
        .map_err(|e| InstallationError::Seal(e.to_string()))?;
    Ok((sealed, expires))
}

/// The `exp` of a JWT, read without verifying it: Tollgate only passes the token on, and Jira
/// is who checks it.
fn jwt_expiry(token: &str) -> Option<DateTime<Utc>> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    DateTime::from_timestamp(claims["exp"].as_i64()?, 0)
}
