//! Lifecycle callbacks: `installed` and `uninstalled` (RS256 signed installs), `enabled` and
//! `disabled` (HS256 with the tenant's secret).

use super::Connect;
use serde::Deserialize;

use super::auth::{self, AuthError, Checks, QshRule, RequestParts};
use crate::atlassian::jwt::TokenError;
use crate::audit::{TenantAction, tenant_event};
use crate::ids::TenantKey;
use crate::state::AppState;
use crate::store::{StoreError, tenants};
use crate::tenant::{Product, Tenant, TenantKind, TenantState, host_of};

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("invalid lifecycle payload: {0}")]
    Payload(String),
    #[error("the site `{0}` is not among the sites allowed to install (connect.allowed_sites)")]
    SiteNotAllowed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot seal the shared secret: {0}")]
    Seal(String),
}

/// The lifecycle body (ACE's `ClientInfo`); fields Tollgate does not use are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    key: String,
    client_key: TenantKey,
    shared_secret: Option<crate::config::Secret>,
    base_url: String,
    display_url: Option<String>,
    product_type: String,
    event_type: Option<String>,
    /// Sent by recent Connect installs [U]; kept so a later Forge installation of the same
    /// site finds this tenant.
    cloud_id: Option<String>,
}

fn parse(body: &[u8]) -> Result<Payload, LifecycleError> {
    // The client key is checked as it is read: an empty, overlong or control-character key
    // refuses the body.
    serde_json::from_slice(body).map_err(|e| LifecycleError::Payload(e.to_string()))
}

fn checks<'a>(state: &AppState, connect: &'a Connect) -> Checks<'a> {
    Checks {
        base_path: &connect.base_path,
        leeway_seconds: connect.leeway_seconds,
        now: state.clock.now(),
    }
}

/// What an `installed` callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    New,
    Reinstalled,
    /// The same token and body again: nothing changed.
    Retry,
}

/// A verified signed lifecycle call, its transaction open with the token recorded.
struct Signed {
    payload: Payload,
    client_key: TenantKey,
    tx: crate::store::Tx,
    now: chrono::DateTime<chrono::Utc>,
}

/// Verifies a signed-install token and records it: `None` for an exact retry (the token with
/// the same body seen before), an error for a replay with another body.
async fn verify_signed(
    state: &AppState,
    connect: &Connect,
    request: &RequestParts<'_>,
    body: &[u8],
) -> Result<Option<Signed>, LifecycleError> {
    let payload = parse(body)?;
    // Before anything is fetched or stored for it.
    if !connect.allowed_sites.allows(&payload.base_url) {
        return Err(LifecycleError::SiteNotAllowed(
            payload.base_url.chars().take(200).collect(),
        ));
    }
    let verified = auth::verify_install(
        &connect.keys,
        request,
        body,
        &payload.client_key,
        &connect.base_url,
        &checks(state, connect),
    )
    .await?;
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    match tenants::record_install_token(
        &mut tx,
        &verified.token_hash,
        &verified.client_key,
        &verified.body_hash,
        now,
    )
    .await?
    {
        tenants::TokenUse::Retry => Ok(None),
        tenants::TokenUse::Replay => Err(AuthError::Token(TokenError::Replayed).into()),
        tenants::TokenUse::First => Ok(Some(Signed {
            payload,
            client_key: verified.client_key,
            tx,
            now,
        })),
    }
}

pub async fn installed(
    state: &AppState,
    connect: &Connect,
    request: &RequestParts<'_>,
    body: &[u8],
) -> Result<Installed, LifecycleError> {
    let Some(Signed {
        payload,
        client_key,
        mut tx,
        now,
    }) = verify_signed(state, connect, request, body).await?
    else {
        return Ok(Installed::Retry);
    };
    if !connect.descriptors.is_our_key(&payload.key) {
        return Err(LifecycleError::Payload(format!(
            "`{}` is not this app's key",
            payload.key
        )));
    }
    let product = Product::parse(&payload.product_type).ok_or_else(|| {
        LifecycleError::Payload(format!("unknown productType `{}`", payload.product_type))
    })?;
    let secret = payload
        .shared_secret
        .as_ref()
        .map(crate::config::Secret::expose)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| LifecycleError::Payload("sharedSecret is missing".into()))?;
    let host = host_of(&payload.base_url).ok_or_else(|| {
        LifecycleError::Payload(format!("baseUrl `{}` is not a URL", payload.base_url))
    })?;
    let existing = tenants::get_in(&mut tx, &client_key).await?;
    let sealed = state
        .secret_key
        .seal(secret.as_bytes(), &Tenant::secret_context(&client_key))
        .map_err(|e| LifecycleError::Seal(e.to_string()))?;
    let tenant = Tenant {
        client_key: client_key.clone(),
        kind: TenantKind::Connect,
        cloud_id: payload.cloud_id.filter(|c| !c.is_empty() && c.len() <= 100),
        product,
        app_key: payload.key,
        base_url: payload.base_url.trim_end_matches('/').to_string(),
        host,
        display_url: payload.display_url,
        shared_secret_sealed: sealed,
        state: TenantState::Installed,
        installed_at: existing.as_ref().map_or(now, |t| t.installed_at),
        updated_at: now,
        uninstalled_at: None,
    };
    tenants::upsert_install(&mut tx, &tenant).await?;
    let action = if existing.is_some() {
        TenantAction::Reinstalled
    } else {
        TenantAction::Installed
    };
    tenant_event(
        &mut tx,
        &tenant.client_key,
        action,
        now,
        serde_json::json!({
            "product": product.as_str(), "base_url": tenant.base_url, "app_key": tenant.app_key,
        }),
    )
    .await?;
    tx.commit().await?;
    connect.tenants.forget(&tenant.client_key);
    tracing::info!(
        client_key = %tenant.client_key,
        product = product.as_str(),
        base_url = tenant.base_url,
        reinstall = existing.is_some(),
        "app installed"
    );
    Ok(if existing.is_some() {
        Installed::Reinstalled
    } else {
        Installed::New
    })
}

pub async fn uninstalled(
    state: &AppState,
    connect: &Connect,
    request: &RequestParts<'_>,
    body: &[u8],
) -> Result<(), LifecycleError> {
    let Some(Signed {
        client_key,
        mut tx,
        now,
        ..
    }) = verify_signed(state, connect, request, body).await?
    else {
        return Ok(());
    };
    // The tenant's data and audit history stay; a reinstall picks them up again.
    tenants::set_state(&mut tx, &client_key, TenantState::Uninstalled, now).await?;
    tenant_event(
        &mut tx,
        &client_key,
        TenantAction::Uninstalled,
        now,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    connect.tenants.forget(&client_key);
    tracing::info!(client_key = %client_key, "app uninstalled");
    Ok(())
}

/// `enabled` / `disabled`. They may arrive after `uninstalled` (even without a token): an
/// uninstalled tenant stays uninstalled.
pub async fn set_enabled(
    state: &AppState,
    connect: &Connect,
    request: &RequestParts<'_>,
    body: &[u8],
    enabled: bool,
) -> Result<(), LifecycleError> {
    let payload = parse(body)?;
    let existing = tenants::get(&state.store, &payload.client_key).await?;
    if request.authorization.is_none()
        && existing
            .as_ref()
            .is_some_and(|t| t.state == TenantState::Uninstalled)
    {
        tracing::debug!(
            client_key = %payload.client_key,
            "late unsigned lifecycle call for an uninstalled tenant; ignored"
        );
        return Ok(());
    }
    let verified = auth::verify_request(
        &state.store,
        &state.secret_key,
        &connect.tenants,
        request,
        &checks(state, connect),
        QshRule::Exact,
    )
    .await?;
    if verified.tenant.client_key != payload.client_key {
        return Err(AuthError::Token(TokenError::ClientKeyMismatch {
            body: payload.client_key.into(),
            iss: verified.tenant.client_key.into(),
        })
        .into());
    }
    if verified.tenant.state == TenantState::Uninstalled {
        return Ok(());
    }
    let target = if enabled {
        TenantState::Enabled
    } else {
        TenantState::Disabled
    };
    let mut tx = state.store.begin().await?;
    let now = state.clock.now();
    tenants::set_state(&mut tx, &payload.client_key, target, now).await?;
    let action = if enabled {
        TenantAction::Enabled
    } else {
        TenantAction::Disabled
    };
    tenant_event(
        &mut tx,
        &payload.client_key,
        action,
        now,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    connect.tenants.forget(&payload.client_key);
    tracing::info!(
        client_key = %payload.client_key,
        state = target.as_str(),
        event = payload.event_type.as_deref().unwrap_or("-"),
        "app lifecycle"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_install_payload_never_prints_its_shared_secret() {
        let body = br#"{"key": "io.tollgate.access", "clientKey": "c-1",
            "sharedSecret": "s3cr3t-value-that-signs-everything", "baseUrl": "https://acme.atlassian.net",
            "productType": "jira"}"#;
        let payload = parse(body).expect("parses");
        let shown = format!("{payload:?} {payload:#?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert_eq!(
            payload
                .shared_secret
                .as_ref()
                .map(crate::config::Secret::expose),
            Some("s3cr3t-value-that-signs-everything")
        );
    }
}
