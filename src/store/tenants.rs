//! Tenants: the Atlassian sites (one row per product install) that installed the app.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, Tx};
use crate::ids::TenantKey;
use crate::tenant::{Product, Tenant, TenantKind, TenantState};
use crate::{on_db, on_tx};

type Row = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    String,
    Option<String>,
);

/// `SELECT <every column> FROM tenants <rest>`, as one literal (sqlx wants static SQL).
macro_rules! select_tenants {
    ($rest:literal) => {
        concat!(
            "SELECT client_key, product, app_key, base_url, host, display_url, shared_secret, ",
            "state, installed_at, updated_at, uninstalled_at, kind, cloud_id FROM tenants ",
            $rest
        )
    };
}

fn from_row(row: Row) -> Result<Tenant, StoreError> {
    let (
        client_key,
        product,
        app_key,
        base_url,
        host,
        display_url,
        shared_secret_sealed,
        state,
        installed_at,
        updated_at,
        uninstalled_at,
        kind,
        cloud_id,
    ) = row;
    let corrupt = |what: &str, value: &str| {
        StoreError::corrupt(format!("tenant {client_key}: unknown {what} `{value}`"))
    };
    let client_key = super::stored_tenant(&client_key)?;
    Ok(Tenant {
        product: Product::parse(&product).ok_or_else(|| corrupt("product", &product))?,
        state: TenantState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        kind: TenantKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        cloud_id,
        client_key,
        app_key,
        base_url,
        host,
        display_url,
        shared_secret_sealed,
        installed_at,
        updated_at,
        uninstalled_at,
    })
}

/// The tenant, read inside an open transaction (a read on another pooled connection while
/// holding SQLite's write lock can deadlock against writers waiting for that lock).
pub async fn get_in(tx: &mut Tx, client_key: &TenantKey) -> Result<Option<Tenant>, StoreError> {
    let row: Option<Row> = crate::on_tx!(tx, |conn| {
        sqlx::query_as(select_tenants!("WHERE client_key = $1"))
            .bind(client_key.as_str())
            .fetch_optional(&mut *conn)
            .await
    })?;
    row.map(from_row).transpose()
}

pub async fn get(store: &Store, client_key: &TenantKey) -> Result<Option<Tenant>, StoreError> {
    let row: Option<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(select_tenants!("WHERE client_key = $1"))
            .bind(client_key.as_str())
            .fetch_optional(pool)
            .await
    })?;
    row.map(from_row).transpose()
}

/// The other product's tenant on the same site (the Confluence install of a Jira site).
pub async fn linked(
    store: &Store,
    host: &str,
    product: Product,
) -> Result<Option<Tenant>, StoreError> {
    let row: Option<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(select_tenants!(
            "WHERE host = $1 AND product = $2 AND state <> 'uninstalled' ORDER BY updated_at DESC LIMIT 1"
        ))
            .bind(host)
            .bind(product.as_str())
            .fetch_optional(pool)
            .await
    })?;
    row.map(from_row).transpose()
}

/// Stores an install or reinstall: a reinstall updates the row and keeps `installed_at`.
pub async fn upsert_install(tx: &mut Tx, tenant: &Tenant) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO tenants (client_key, product, app_key, base_url, host, display_url, \
             shared_secret, state, installed_at, updated_at, uninstalled_at, kind, cloud_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12) \
             ON CONFLICT (client_key) DO UPDATE SET product = $2, app_key = $3, base_url = $4, \
             host = $5, display_url = $6, shared_secret = $7, state = $8, updated_at = $10, \
             uninstalled_at = NULL, kind = $11, cloud_id = COALESCE($12, tenants.cloud_id)",
        )
        .bind(tenant.client_key.as_str())
        .bind(tenant.product.as_str())
        .bind(&tenant.app_key)
        .bind(&tenant.base_url)
        .bind(&tenant.host)
        .bind(&tenant.display_url)
        .bind(&tenant.shared_secret_sealed)
        .bind(tenant.state.as_str())
        .bind(tenant.installed_at)
        .bind(tenant.updated_at)
        .bind(tenant.kind.as_str())
        .bind(&tenant.cloud_id)
        .execute(conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

pub async fn set_state(
    tx: &mut Tx,
    client_key: &TenantKey,
    state: TenantState,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let uninstalled_at = (state == TenantState::Uninstalled).then_some(at);
    on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE tenants SET state = $2, updated_at = $3, \
             uninstalled_at = COALESCE($4, uninstalled_at) WHERE client_key = $1",
        )
        .bind(client_key.as_str())
        .bind(state.as_str())
        .bind(at)
        .bind(uninstalled_at)
        .execute(conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// What a lifecycle token's earlier uses say about this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    First,
    /// The same token with the same body: an exact retry.
    Retry,
    /// The same token with a different body: a replay.
    Replay,
}

pub async fn record_install_token(
    tx: &mut Tx,
    token_hash: &str,
    client_key: &TenantKey,
    body_hash: &str,
    at: DateTime<Utc>,
) -> Result<TokenUse, StoreError> {
    let earlier: Option<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT body_hash FROM install_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(conn)
            .await
    })?;
    match earlier {
        Some(hash) if hash == body_hash => Ok(TokenUse::Retry),
        Some(_) => Ok(TokenUse::Replay),
        None => {
            on_tx!(tx, |conn| {
                sqlx::query(
                    "INSERT INTO install_tokens (token_hash, client_key, body_hash, seen_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(token_hash)
                .bind(client_key.as_str())
                .bind(body_hash)
                .bind(at)
                .execute(conn)
                .await
                .map(|_| ())
            })?;
            Ok(TokenUse::First)
        }
    }
}

/// How many tenants exist (for readiness and tests).
pub async fn count(store: &Store) -> Result<i64, StoreError> {
    Ok(on_db!(store.db(), |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
            .fetch_one(pool)
            .await
    })?)
}

/// Client keys of the Jira Connect installs that are active (only Connect apps may read the
/// failed-webhook list).
pub async fn active_connect_jira(store: &Store) -> Result<Vec<TenantKey>, StoreError> {
    let rows: Vec<(String,)> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT client_key FROM tenants WHERE product = 'jira' AND kind = 'connect' \
             AND state IN ('installed', 'enabled') ORDER BY client_key",
        )
        .fetch_all(pool)
        .await
    })?;
    rows.into_iter()
        .map(|r| super::stored_tenant(&r.0))
        .collect()
}

/// Where reading a tenant's failed webhooks goes on from (epoch milliseconds).
pub async fn recovery_after(
    store: &Store,
    client_key: &TenantKey,
) -> Result<Option<i64>, StoreError> {
    let row: Option<(i64,)> = on_db!(store.db(), |pool| {
        sqlx::query_as("SELECT after_ms FROM webhook_recovery WHERE tenant = $1")
            .bind(client_key.as_str())
            .fetch_optional(pool)
            .await
    })?;
    Ok(row.map(|r| r.0))
}

pub async fn set_recovery_after(
    store: &Store,
    client_key: &TenantKey,
    after_ms: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_db!(store.db(), |pool| {
        sqlx::query(
            "INSERT INTO webhook_recovery (tenant, after_ms, checked_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant) DO UPDATE SET after_ms = excluded.after_ms, checked_at = excluded.checked_at",
        )
        .bind(client_key.as_str())
        .bind(after_ms)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// The Jira Connect install a Forge installation of the same site continues: matched on the
/// site's cloud id, else on its host.
pub async fn connect_jira_of_site_in(
    tx: &mut Tx,
    cloud_id: &str,
    host: Option<&str>,
) -> Result<Option<Tenant>, StoreError> {
    let row: Option<Row> = on_tx!(tx, |conn| {
        sqlx::query_as(select_tenants!(
            "WHERE product = 'jira' AND kind = 'connect' AND state <> 'uninstalled' \
             AND (cloud_id = $1 OR ($2 IS NOT NULL AND host = $2)) \
             ORDER BY COALESCE(cloud_id = $1, FALSE) DESC, updated_at DESC LIMIT 1"
        ))
        .bind(cloud_id)
        .bind(host)
        .fetch_optional(&mut *conn)
        .await
    })?;
    row.map(from_row).transpose()
}

/// The site's address, learnt after the tenant was registered (a Forge installation that did
/// not name its site).
pub async fn set_site(
    store: &Store,
    client_key: &TenantKey,
    base_url: &str,
    host: &str,
) -> Result<(), StoreError> {
    on_db!(store.db(), |pool| {
        sqlx::query("UPDATE tenants SET base_url = $2, host = $3 WHERE client_key = $1")
            .bind(client_key.as_str())
            .bind(base_url)
            .bind(host)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}
