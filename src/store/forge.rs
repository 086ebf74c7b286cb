//! Forge installations: which tenant each one is, and the newest system token it sent.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, Tx};
use crate::ids::TenantKey;
use crate::{on_db, on_tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// `ari:cloud:ecosystem::installation/…`
    pub installation_id: String,
    pub tenant: TenantKey,
    pub app_id: String,
    pub cloud_id: String,
    pub api_base_url: String,
    /// Sealed with the context [`token_context`].
    pub system_token: Option<String>,
    pub token_expires_at: Option<DateTime<Utc>>,
    pub installed_at: DateTime<Utc>,
    pub uninstalled_at: Option<DateTime<Utc>>,
}

/// The context a system token is sealed in, so a token copied onto another row does not open.
pub fn token_context(installation_id: &str) -> String {
    format!("forge:{installation_id}:system_token")
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

macro_rules! select_installations {
    ($rest:literal) => {
        concat!(
            "SELECT installation_id, tenant, app_id, cloud_id, api_base_url, system_token, ",
            "token_expires_at, installed_at, uninstalled_at FROM forge_installations ",
            $rest
        )
    };
}

fn from_row(row: Row) -> Result<Installation, StoreError> {
    let (
        installation_id,
        tenant,
        app_id,
        cloud_id,
        api_base_url,
        system_token,
        token_expires_at,
        installed_at,
        uninstalled_at,
    ) = row;
    let tenant = TenantKey::parse(&tenant)
        .map_err(|e| StoreError::corrupt(format!("Forge installation {installation_id}: {e}")))?;
    Ok(Installation {
        installation_id,
        tenant,
        app_id,
        cloud_id,
        api_base_url,
        system_token,
        token_expires_at,
        installed_at,
        uninstalled_at,
    })
}

pub async fn get_in(
    tx: &mut Tx,
    installation_id: &str,
) -> Result<Option<Installation>, StoreError> {
    let row: Option<Row> = on_tx!(tx, |conn| {
        sqlx::query_as(select_installations!("WHERE installation_id = $1"))
            .bind(installation_id)
            .fetch_optional(&mut *conn)
            .await
    })?;
    row.map(from_row).transpose()
}

pub async fn get(store: &Store, installation_id: &str) -> Result<Option<Installation>, StoreError> {
    let row: Option<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(select_installations!("WHERE installation_id = $1"))
            .bind(installation_id)
            .fetch_optional(pool)
            .await
    })?;
    row.map(from_row).transpose()
}

/// The tenant's installation with the token that lasts longest (a site has one, but an app
/// reinstalled gets a new installation id).
pub async fn of_tenant(
    store: &Store,
    tenant: &TenantKey,
) -> Result<Option<Installation>, StoreError> {
    let row: Option<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(select_installations!(
            "WHERE tenant = $1 AND uninstalled_at IS NULL \
             ORDER BY token_expires_at IS NULL, token_expires_at DESC, installed_at DESC LIMIT 1"
        ))
        .bind(tenant.as_str())
        .fetch_optional(pool)
        .await
    })?;
    row.map(from_row).transpose()
}

/// Records a new installation (or one reinstalled after an uninstall).
pub async fn insert_in(tx: &mut Tx, installation: &Installation) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO forge_installations (installation_id, tenant, app_id, cloud_id, \
             api_base_url, system_token, token_expires_at, installed_at, updated_at, uninstalled_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, NULL) \
             ON CONFLICT (installation_id) DO UPDATE SET api_base_url = $5, system_token = $6, \
             token_expires_at = $7, updated_at = $8, uninstalled_at = NULL",
        )
        .bind(&installation.installation_id)
        .bind(installation.tenant.as_str())
        .bind(&installation.app_id)
        .bind(&installation.cloud_id)
        .bind(&installation.api_base_url)
        .bind(&installation.system_token)
        .bind(installation.token_expires_at)
        .bind(installation.installed_at)
        .execute(conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Keeps the token that lasts longer: invocations race, and an older token must not replace
/// a newer one. Also follows a moved `apiBaseUrl`.
pub async fn refresh_token(
    store: &Store,
    installation_id: &str,
    api_base_url: &str,
    sealed: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_db!(store.db(), |pool| {
        sqlx::query(
            "UPDATE forge_installations SET system_token = $2, token_expires_at = $3, \
             api_base_url = $4, updated_at = $5 WHERE installation_id = $1 \
             AND (token_expires_at IS NULL OR token_expires_at < $3)",
        )
        .bind(installation_id)
        .bind(sealed)
        .bind(expires_at)
        .bind(api_base_url)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Marks the installation removed and forgets its token.
pub async fn uninstall_in(
    tx: &mut Tx,
    installation_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE forge_installations SET uninstalled_at = $2, updated_at = $2, \
             system_token = NULL, token_expires_at = NULL WHERE installation_id = $1",
        )
        .bind(installation_id)
        .bind(at)
        .execute(conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}
