//! Events an identity provider's hooks delivered (Okta event hooks, Graph change
//! notifications): stored before they are acknowledged, once per event id, and marked done when
//! their re-read is applied.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, Tx};
use crate::idp::events::{Received, Reread};
use crate::{on_db, on_tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: String,
    pub source: String,
    pub kind: String,
    pub targets: Vec<Reread>,
    pub received_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
}

/// Stores an event; `false` when its id was stored before (a redelivery).
pub async fn insert(
    tx: &mut Tx,
    source: &str,
    event: &Received,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let targets = serde_json::to_string(&event.targets)
        .map_err(|e| StoreError::Internal(format!("targets: {e}")))?;
    let added = on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO idp_events (id, source, kind, targets, received_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(source)
        .bind(&event.kind)
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
