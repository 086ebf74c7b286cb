//! One site, one tenant: a plain webhook source joins its site's Connect or Forge tenant, so a
//! ticket is judged on one tenant whichever door its events came through. On the first event of
//! a source that holds no requests (`engine::tenant_for_ticket`), or on purpose with `tollgate
//! tenants link`.

use chrono::{DateTime, Utc};

use crate::audit::{TenantAction, tenant_event};
use crate::ids::TenantKey;
use crate::store::{Store, StoreError, tenants};
use crate::tenant::{TenantKind, WEBHOOK_SOURCE_PREFIX, webhook_source_key};

/// What linking a plain source to its site's Connect or Forge tenant does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPlan {
    pub source: TenantKey,
    pub site: TenantKey,
    pub host: String,
    /// The source's requests: they stay on its audit chain.
    pub requests: i64,
}

/// Why a source cannot be linked.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("no plain webhook source `{0}`")]
    NoSource(String),
    #[error("`{alias}` is already linked to {site}")]
    Linked { alias: TenantKey, site: TenantKey },
    #[error("no Connect or Forge tenant is installed for {0}: nothing to link to yet")]
    NoSite(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What linking `source` (a tenant key or a source name) would do.
pub async fn link_plan(store: &Store, source: &str) -> Result<LinkPlan, LinkError> {
    use crate::store::tenant_links;
    let key = if source.starts_with(WEBHOOK_SOURCE_PREFIX) {
        TenantKey::parse(source)
    } else {
        webhook_source_key(source)
    }
    .map_err(|_| LinkError::NoSource(source.to_string()))?;
    let Some(tenant) = tenants::get(store, &key)
        .await?
        .filter(|t| t.kind == TenantKind::JiraWebhook)
    else {
        return Err(LinkError::NoSource(source.to_string()));
    };
    if let Some(site) = tenant_links::site_of(store, &key).await? {
        return Err(LinkError::Linked { alias: key, site });
    }
    let Some(site) = tenant_links::app_tenant_of_site(store, &tenant).await? else {
        return Err(LinkError::NoSite(tenant.host));
    };
    Ok(LinkPlan {
        requests: tenant_links::requests_of(store, &key).await?,
        source: key,
        site: site.client_key,
        host: tenant.host,
    })
}

/// Links the source to its site tenant, with an audit event on both chains; false when another
/// run linked it first.
pub async fn link(
    store: &Store,
    plan: &LinkPlan,
    at: DateTime<Utc>,
    by: &str,
) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    if !crate::store::tenant_links::link(&mut tx, &plan.source, &plan.site, at, by).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    let details = serde_json::json!({
        "source": plan.source, "site_tenant": plan.site, "host": plan.host,
        "source_requests": plan.requests, "by": by,
    });
    for chain in [&plan.source, &plan.site] {
        tenant_event(&mut tx, chain, TenantAction::Linked, at, details.clone()).await?;
    }
    tx.commit().await?;
    tracing::info!(
        source = %plan.source,
        site = %plan.site,
        by,
        "plain webhook source linked to its site's tenant"
    );
    Ok(true)
}
