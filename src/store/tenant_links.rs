//! Plain webhook sources linked to their site's Connect or Forge tenant: one site, one tenant,
//! whichever door an event came through.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, Tx};
use crate::ids::TenantKey;
use crate::tenant::Tenant;
use crate::{on_db, on_tx};

/// The site tenant `alias` is linked to, if any.
pub async fn site_of(store: &Store, alias: &TenantKey) -> Result<Option<TenantKey>, StoreError> {
    let site: Option<String> = on_db!(store.db(), |pool| {
        sqlx::query_scalar("SELECT site_tenant FROM tenant_links WHERE alias = $1")
            .bind(alias.as_str())
            .fetch_optional(pool)
            .await
    })?;
    site.as_deref().map(super::stored_tenant).transpose()
}

/// The tenants linked to `site`, oldest link first.
pub async fn aliases_of(store: &Store, site: &TenantKey) -> Result<Vec<TenantKey>, StoreError> {
    let aliases: Vec<String> = on_db!(store.db(), |pool| {
        sqlx::query_scalar(
            "SELECT alias FROM tenant_links WHERE site_tenant = $1 ORDER BY linked_at, alias",
        )
        .bind(site.as_str())
        .fetch_all(pool)
        .await
    })?;
    aliases
        .iter()
        .map(|key| super::stored_tenant(key))
        .collect()
}

/// `site` and every tenant linked to it.
pub async fn group_of(store: &Store, site: &TenantKey) -> Result<Vec<TenantKey>, StoreError> {
    let mut group = vec![site.clone()];
    group.extend(aliases_of(store, site).await?);
    Ok(group)
}

/// Links `alias` to `site`; false when it already was linked (to any site).
pub async fn link(
    tx: &mut Tx,
    alias: &TenantKey,
    site: &TenantKey,
    at: DateTime<Utc>,
    by: &str,
) -> Result<bool, StoreError> {
    Ok(on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO tenant_links (alias, site_tenant, linked_at, linked_by) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (alias) DO NOTHING",
        )
        .bind(alias.as_str())
        .bind(site.as_str())
        .bind(at)
        .bind(by)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected() == 1)
    })?)
}

/// The Connect or Forge Jira tenant of the site a plain source names (by host, or by cloud id
/// when the source knows it): what the source joins. Connect first, as Forge continues it.
pub async fn app_tenant_of_site(
    store: &Store,
    source: &Tenant,
) -> Result<Option<Tenant>, StoreError> {
    let client_key: Option<String> = on_db!(store.db(), |pool| {
        sqlx::query_scalar(
            "SELECT client_key FROM tenants WHERE product = 'jira' \
             AND kind IN ('connect', 'forge') AND state <> 'uninstalled' \
             AND (host = $1 OR ($2 IS NOT NULL AND cloud_id = $2)) \
             ORDER BY CASE kind WHEN 'connect' THEN 0 ELSE 1 END, updated_at DESC LIMIT 1",
        )
        .bind(&source.host)
        .bind(&source.cloud_id)
        .fetch_optional(pool)
        .await
    })?;
    match client_key {
        Some(key) => super::tenants::get(store, &super::stored_tenant(&key)?).await,
        None => Ok(None),
    }
}

/// How many requests a tenant holds (a source with none joins its site without asking).
pub async fn requests_of(store: &Store, tenant: &TenantKey) -> Result<i64, StoreError> {
    Ok(on_db!(store.db(), |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM requests WHERE tenant = $1")
            .bind(tenant.as_str())
            .fetch_one(pool)
            .await
    })?)
}
