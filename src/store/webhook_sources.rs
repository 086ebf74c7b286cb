//! Plain-webhook sources: the credential each one's outbound calls use.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, Tx};
use crate::ids::TenantKey;
use crate::{on_db, on_tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub tenant: TenantKey,
    pub api_email: Option<String>,
    /// Sealed with the context [`token_context`].
    pub api_token: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub fn token_context(tenant: &str) -> String {
    format!("tenant:{tenant}:api_token")
}

type Row = (Option<String>, Option<String>, DateTime<Utc>);

fn from_row(tenant: &TenantKey, (api_email, api_token, created_at): Row) -> Source {
    Source {
        tenant: tenant.clone(),
        api_email,
        api_token,
        created_at,
    }
}

pub async fn get(store: &Store, tenant: &TenantKey) -> Result<Option<Source>, StoreError> {
    let row: Option<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT api_email, api_token, created_at FROM webhook_sources WHERE tenant = $1",
        )
        .bind(tenant.as_str())
        .fetch_optional(pool)
        .await
    })?;
    Ok(row.map(|row| from_row(tenant, row)))
}

pub async fn get_in(tx: &mut Tx, tenant: &TenantKey) -> Result<Option<Source>, StoreError> {
    let row: Option<Row> = on_tx!(tx, |conn| {
        sqlx::query_as(
            "SELECT api_email, api_token, created_at FROM webhook_sources WHERE tenant = $1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&mut *conn)
        .await
    })?;
    Ok(row.map(|row| from_row(tenant, row)))
}

/// Adds the source, or replaces its credential.
pub async fn upsert_in(tx: &mut Tx, source: &Source) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO webhook_sources (tenant, api_email, api_token, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant) DO UPDATE SET api_email = $2, \
             api_token = $3",
        )
        .bind(source.tenant.as_str())
        .bind(&source.api_email)
        .bind(&source.api_token)
        .bind(source.created_at)
        .execute(conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}
