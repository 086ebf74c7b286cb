//! Inbound events: stored as they arrived, unique per tenant and delivery id.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, Tx};
use crate::intake::Delivery;
use crate::{on_db, on_tx};

/// Inserts the delivery; `false` when the tenant already sent this delivery id.
pub async fn insert(tx: &mut Tx, id: Uuid, d: &Delivery) -> Result<bool, StoreError> {
    let inserted = on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO inbound_events (id, tenant, ingress, delivery_id, event_type, payload, \
             received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant, delivery_id) DO NOTHING",
        )
        .bind(id)
        .bind(&d.tenant)
        .bind(d.ingress.as_str())
        .bind(&d.delivery_id)
        .bind(&d.event_type)
        .bind(&d.payload)
        .bind(d.received_at)
        .execute(conn)
        .await
        .map(|r| r.rows_affected() == 1)
    })?;
    Ok(inserted)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEvent {
    pub id: Uuid,
    pub tenant: String,
    pub ingress: String,
    pub delivery_id: String,
    pub event_type: String,
    pub payload: String,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

type Row = (
    Uuid,
    String,
    String,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn from_row(r: Row) -> InboundEvent {
    InboundEvent {
        id: r.0,
        tenant: r.1,
        ingress: r.2,
        delivery_id: r.3,
        event_type: r.4,
        payload: r.5,
        received_at: r.6,
        processed_at: r.7,
    }
}

pub async fn get(store: &Store, id: Uuid) -> Result<Option<InboundEvent>, StoreError> {
    let row: Option<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT id, tenant, ingress, delivery_id, event_type, payload, received_at, \
             processed_at FROM inbound_events WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
    })?;
    Ok(row.map(from_row))
}

/// Events of a tenant, oldest first.
pub async fn list_for_tenant(store: &Store, tenant: &str) -> Result<Vec<InboundEvent>, StoreError> {
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT id, tenant, ingress, delivery_id, event_type, payload, received_at, \
             processed_at FROM inbound_events WHERE tenant = $1 ORDER BY received_at, id",
        )
        .bind(tenant)
        .fetch_all(pool)
        .await
    })?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Marks the events processed, in one transaction; an event already marked keeps its first
/// time. Returns how many were newly marked.
pub async fn mark_processed(
    store: &Store,
    ids: &[Uuid],
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut tx = store.begin().await?;
    let mut marked = 0;
    for id in ids {
        marked += on_tx!(&mut tx, |conn| {
            sqlx::query(
                "UPDATE inbound_events SET processed_at = $2 WHERE id = $1 AND processed_at IS NULL",
            )
            .bind(id)
            .bind(at)
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
        })?;
    }
    tx.commit().await?;
    Ok(marked)
}
