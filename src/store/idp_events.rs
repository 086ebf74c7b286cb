//! Events an identity provider's hooks delivered (Okta event hooks, Graph change
//! notifications): stored before they are acknowledged, once per event id, and marked done when
//! their re-read is applied.

use chrono::{DateTime, Utc};

use serde_json::Value;

use super::{Store, StoreError, Tx};
use crate::{on_db, on_tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: String,
    pub source: String,
    pub kind: String,
    /// What to read again, as `idp::events::Reread`s (the store does not read them).
    pub targets: Value,
    pub received_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
}

/// Stores event `id` of `kind`; `false` when its id was stored before (a redelivery).
pub async fn insert(
    tx: &mut Tx,
    source: &str,
    (id, kind): (&str, &str),
    targets: &Value,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let targets = targets.to_string();
    let added = on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO idp_events (id, source, kind, targets, received_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(source)
        .bind(kind)
        .bind(&targets)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(added == 1)
}

type Row = (
    String,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

pub async fn get(store: &Store, id: &str) -> Result<Option<StoredEvent>, StoreError> {
    let row: Option<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT id, source, kind, targets, received_at, done_at FROM idp_events WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
    })?;
    row.map(|(id, source, kind, targets, received_at, done_at)| {
        let targets = serde_json::from_str(&targets)
            .map_err(|e| StoreError::Corrupt(format!("idp event {id}: {e}")))?;
        Ok(StoredEvent {
            id,
            source,
            kind,
            targets,
            received_at,
            done_at,
        })
    })
    .transpose()
}

/// A change-notification subscription Tollgate holds with the identity provider (Graph).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSubscription {
    /// `users`, `groups`.
    pub resource: String,
    pub id: String,
    pub expires_at: DateTime<Utc>,
}

pub async fn subscriptions(store: &Store) -> Result<Vec<HookSubscription>, StoreError> {
    let rows: Vec<(String, String, DateTime<Utc>)> = on_db!(store.db(), |pool| {
        sqlx::query_as("SELECT resource, id, expires_at FROM hook_subscriptions ORDER BY resource")
            .fetch_all(pool)
            .await
    })?;
    Ok(rows
        .into_iter()
        .map(|(resource, id, expires_at)| HookSubscription {
            resource,
            id,
            expires_at,
        })
        .collect())
}

pub async fn save_subscription(
    store: &Store,
    subscription: &HookSubscription,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_db!(store.db(), |pool| {
        sqlx::query(
            "INSERT INTO hook_subscriptions (resource, id, expires_at, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (resource) DO UPDATE SET id = excluded.id, expires_at = excluded.expires_at, \
             updated_at = excluded.updated_at",
        )
        .bind(&subscription.resource)
        .bind(&subscription.id)
        .bind(subscription.expires_at)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

pub async fn done(store: &Store, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    on_db!(store.db(), |pool| {
        sqlx::query("UPDATE idp_events SET done_at = $1 WHERE id = $2 AND done_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}
