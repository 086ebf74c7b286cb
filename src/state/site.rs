//! Which site to call back for a tenant, and with which credential, whichever door the tenant
//! came in by; and whether the org chart this process holds is the newest.

use crate::atlassian::{AtlassianError, Site};
use crate::failure::Failure;
use crate::ids::TenantKey;
use crate::store::tenants;
use crate::tenant::Tenant;

use super::AppState;

/// How long before its expiry a Forge system token is no longer used (a call must not start
/// with a token that lapses on the way).
const FORGE_TOKEN_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

impl AppState {
    /// The tenant row and the site to call back.
    pub async fn site(&self, client_key: &TenantKey) -> Result<(Tenant, Site), Failure> {
        let tenant = tenants::get(&self.store, client_key)
            .await?
            .filter(|t| t.state.is_active())
            .ok_or_else(|| Failure::Tenant(client_key.clone()))?;
        let site = self.site_of(&tenant).await?;
        Ok((tenant, site))
    }

    /// The Jira tenant installed on the site at `host` (a setting names it: alerts, the
    /// lifecycle's tickets), and the site to call.
    pub async fn jira_site_at(&self, host: &str) -> Result<(Tenant, Site), Failure> {
        let tenant = tenants::linked(&self.store, host, crate::tenant::Product::Jira)
            .await?
            .filter(|t| t.state.is_active())
            .ok_or_else(|| Failure::NoSite(host.to_string()))?;
        let site = self.site_of(&tenant).await?;
        Ok((tenant, site))
    }

    /// How to call the tenant's site: through its Forge installation while that has a fresh system
    /// token, else with what the tenant came in with (its Connect secret, or the API token of a
    /// webhook source).
    pub async fn site_of(&self, tenant: &Tenant) -> Result<Site, Failure> {
        use crate::store::{forge, webhook_sources};
        use crate::tenant::TenantKind;
        let unusable = || Failure::Tenant(tenant.client_key.clone());
        let now = self.clock.now();
        if let Some(installation) = forge::of_tenant(&self.store, &tenant.client_key).await?
            && let (Some(sealed), Some(expires)) =
                (&installation.system_token, installation.token_expires_at)
            && expires - FORGE_TOKEN_MARGIN > now
        {
            let context = forge::token_context(&installation.installation_id);
            match self
                .secret_key
                .unseal(sealed, &context)
                .map(String::from_utf8)
            {
                Ok(Ok(token)) => return Ok(Site::forge(tenant, &installation.api_base_url, token)),
                _ => tracing::error!(
                    tenant = %tenant.client_key,
                    "a Forge system token does not unseal: was TOLLGATE_SECRET_KEY changed?"
                ),
            }
        }
        match tenant.kind {
            TenantKind::Connect => {
                Site::from_tenant(tenant, &self.secret_key).map_err(|_| unusable())
            }
            TenantKind::JiraWebhook => {
                let source = webhook_sources::get(&self.store, &tenant.client_key).await?;
                let sealed = source
                    .as_ref()
                    .and_then(|s| s.api_email.clone().zip(s.api_token.clone()));
                let configured = &self.config.atlassian;
                match sealed {
                    Some((email, token)) => {
                        let token = self
                            .secret_key
                            .unseal(&token, &webhook_sources::token_context(&tenant.client_key))
                            .ok()
                            .and_then(|t| String::from_utf8(t).ok())
                            .ok_or_else(unusable)?;
                        Ok(Site::api_token(tenant, email, token))
                    }
                    // The deployment's site-admin token, when the source has none of its own.
                    None => match (&configured.site_admin_email, &configured.site_admin_token) {
                        (Some(email), Some(token)) => Ok(Site::api_token(
                            tenant,
                            email.clone(),
                            token.expose().to_string(),
                        )),
                        _ => Err(Failure::Atlassian(AtlassianError::Refused(format!(
                            "webhook source {} has no API token to call Jira with \
                             (tollgate webhook-source add … --api-email … --api-token-file …)",
                            tenant.client_key
                        )))),
                    },
                }
            }
            // Forge sends a token with every invocation and has no way to ask for one: until the
            // next invocation (the manifest's scheduled trigger calls at least hourly) calls wait.
            TenantKind::Forge => Err(Failure::Atlassian(AtlassianError::Call(
                crate::atlassian::errors::CallError::Transient(format!(
                    "no fresh Forge system token for {}: waiting for Forge's next invocation",
                    tenant.client_key
                )),
            ))),
        }
    }

    /// `NotReady` while a newer org chart than the one this process holds is stored (another
    /// process synced it): judging on the older one could route to someone who left.
    pub async fn newest_chart(&self) -> Result<(), Failure> {
        if self.org.is_newest(&self.store).await? {
            Ok(())
        } else {
            Err(Failure::NotReady(
                "a newer org chart is being loaded".into(),
            ))
        }
    }
}
