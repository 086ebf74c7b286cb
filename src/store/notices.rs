//! Which ticket notices' comments were posted, by their key.

use chrono::{DateTime, Utc};

use super::{Store, StoreError};
use crate::on_db;

pub async fn sent(store: &Store, key: &str) -> Result<bool, StoreError> {
    let row: Option<String> = on_db!(store.db(), |pool| {
        sqlx::query_scalar("SELECT key FROM notices_sent WHERE key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await
    })?;
    Ok(row.is_some())
}

pub async fn record(
    store: &Store,
    key: &str,
    tenant: &str,
    ticket_key: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_db!(store.db(), |pool| {
        sqlx::query(
            "INSERT INTO notices_sent (key, tenant, ticket_key, sent_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(tenant)
        .bind(ticket_key)
        .bind(at)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}
