//! The plain-webhook front door, for Jira Cloud sites that cannot install an app:
//! each registered source is a tenant `jira-webhook:{name}` with its own shared secret. Jira
//! signs a secret-bearing webhook's body with HMAC-SHA256 and sends `X-Hub-Signature:
//! sha256=<hex>`; outbound calls use the source's site-admin API token.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::audit::{TenantAction, tenant_event};
use crate::ids::TenantKey;
use crate::secrets::SecretKey;
use crate::store::{Store, StoreError, tenants, webhook_sources};
use crate::tenant::{Product, Tenant, TenantKind, TenantState, host_of, webhook_source_key};

/// The header Jira puts a secret-bearing webhook's signature in.
pub const SIGNATURE_HEADER: &str = "x-hub-signature";

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot seal a secret: {0}")]
    Seal(String),
}

/// The tenant of the source `name` (names go into the webhook URL: lower-case letters, digits
/// and dashes).
pub fn check_name(name: &str) -> Result<TenantKey, SourceError> {
    webhook_source_key(name).map_err(SourceError::Invalid)
}

/// A source as registered: where Jira must send, and the secret to enter there.
#[derive(Debug)]
pub struct Registered {
    pub tenant: TenantKey,
    pub url: String,
    /// Shown once, to paste into Jira's webhook form; stored only sealed.
    pub secret: String,
}

/// The site-admin account outbound calls of the source use.
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub email: String,
    pub token: crate::config::Secret,
}

/// Registers `name` for the site at `site_url`, or gives it a new secret (and API token, if
/// one is given) when it exists.
pub async fn register(
    store: &Store,
    key: &SecretKey,
    tollgate_url: &str,
    name: &str,
    site_url: &str,
    api: Option<ApiToken>,
    now: DateTime<Utc>,
) -> Result<Registered, SourceError> {
    let tenant_key = check_name(name)?;
    if let Some(api) = &api
        && (api.token.expose().is_empty() || !api.email.contains('@'))
    {
        return Err(SourceError::Invalid(
            "the API token is empty or the email is not an email address".into(),
        ));
    }
    let site_url = site_url.trim_end_matches('/');
    let host = host_of(site_url)
        .filter(|_| site_url.starts_with("https://") || site_url.starts_with("http://"))
        .ok_or_else(|| SourceError::Invalid(format!("`{site_url}` is not a site URL")))?;
    let secret = {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|e| SourceError::Seal(e.to_string()))?;
        hex::encode(bytes)
    };
    let seal = |value: &str, context: &str| {
        key.seal(value.as_bytes(), context)
            .map_err(|e| SourceError::Seal(e.to_string()))
    };
    let mut tx = store.begin().await?;
    let existing = tenants::get_in(&mut tx, &tenant_key).await?;
    if existing
        .as_ref()
        .is_some_and(|t| t.kind != TenantKind::JiraWebhook)
    {
        return Err(SourceError::Invalid(format!(
            "{tenant_key} exists and is not a webhook source"
        )));
    }
    let tenant = Tenant {
        client_key: tenant_key.clone(),
        kind: TenantKind::JiraWebhook,
        product: Product::Jira,
        app_key: "jira-webhook".into(),
        base_url: site_url.to_string(),
        host,
        display_url: None,
        cloud_id: None,
        shared_secret_sealed: seal(&secret, &Tenant::secret_context(&tenant_key))?,
        state: TenantState::Installed,
        installed_at: existing.as_ref().map_or(now, |t| t.installed_at),
        updated_at: now,
        uninstalled_at: None,
    };
    tenants::upsert_install(&mut tx, &tenant).await?;
    let stored = match &api {
        Some(api) => webhook_sources::Source {
            tenant: tenant_key.clone(),
            api_email: Some(api.email.clone()),
            api_token: Some(seal(
                api.token.expose(),
                &webhook_sources::token_context(&tenant_key),
            )?),
            created_at: now,
        },
        // A new secret alone keeps the API token already stored.
        None => match webhook_sources::get_in(&mut tx, &tenant_key).await? {
            Some(kept) => kept,
            None => webhook_sources::Source {
                tenant: tenant_key.clone(),
                api_email: None,
                api_token: None,
                created_at: now,
            },
        },
    };
    webhook_sources::upsert_in(&mut tx, &stored).await?;
    let action = if existing.is_some() {
        TenantAction::SecretRotated
    } else {
        TenantAction::Installed
    };
    tenant_event(
        &mut tx,
        &tenant_key,
        action,
        now,
        serde_json::json!({"ingress": "jira_webhook", "base_url": site_url,
                           "api_token": stored.api_token.is_some()}),
    )
    .await?;
    tx.commit().await?;
    Ok(Registered {
        url: format!(
            "{}/webhooks/jira/{name}",
            tollgate_url.trim_end_matches('/')
        ),
        tenant: tenant_key,
        secret,
    })
}

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`, compared in
/// constant time.
pub fn signature_matches(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Some(claimed) = hex::decode(hex).ok() else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&claimed).is_ok()
}

/// The source's tenant if it exists, is active, and the body's signature is right.
pub async fn authenticate(
    store: &Store,
    key: &SecretKey,
    name: &str,
    signature: Option<&str>,
    body: &[u8],
) -> Result<Option<Tenant>, StoreError> {
    let Ok(tenant_key) = check_name(name) else {
        return Ok(None);
    };
    let Some(tenant) = tenants::get(store, &tenant_key)
        .await?
        .filter(|t| t.kind == TenantKind::JiraWebhook && t.state.is_active())
    else {
        return Ok(None);
    };
    let Ok(secret) = key.unseal(
        &tenant.shared_secret_sealed,
        &Tenant::secret_context(&tenant.client_key),
    ) else {
        tracing::error!(
            tenant = %tenant.client_key,
            "a webhook source's secret does not unseal: was TOLLGATE_SECRET_KEY changed?"
        );
        return Ok(None);
    };
    Ok(signature_matches(&secret, body, signature).then_some(tenant))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_the_body_in_hex() {
        // `printf '{"a":1}' | openssl dgst -sha256 -hmac s3cret`
        let computed = "sha256=5910e62016ef5034272c926c27071992a465c2335cecf41851bda071577f4f6d";
        let body = br#"{"a":1}"#;
        assert!(signature_matches(b"s3cret", body, Some(computed)));
        assert!(signature_matches(
            b"s3cret",
            body,
            Some(&computed.to_uppercase().replace("SHA256", "sha256"))
        ));
        assert!(!signature_matches(b"other", body, Some(computed)));
        assert!(!signature_matches(b"s3cret", br#"{"a":2}"#, Some(computed)));
        assert!(!signature_matches(b"s3cret", body, None));
        assert!(!signature_matches(b"s3cret", body, Some("sha1=abcd")));
        assert!(!signature_matches(b"s3cret", body, Some("sha256=zz")));
    }

    #[test]
    fn an_api_token_never_prints_its_token() {
        let token = ApiToken {
            email: "admin@acme.example".into(),
            token: crate::config::Secret::new("ATATT-very-secret"),
        };
        let shown = format!("{token:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("admin@acme.example"), "{shown}");
    }
}
