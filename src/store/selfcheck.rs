//! Rows behind the self-check job: requested, then run (once, however often the job is delivered).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, Tx};
use crate::{on_db, on_tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfCheck {
    pub id: Uuid,
    pub requested_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub ran_at: Option<DateTime<Utc>>,
    pub runs: i32,
}

pub async fn insert(
    tx: &mut Tx,
    id: Uuid,
    requested_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query("INSERT INTO self_checks (id, requested_at, due_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(requested_at)
            .bind(due_at)
            .execute(conn)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// Records a delivery of the job; `ran_at` keeps the first. Returns whether this was the first.
pub async fn record_run(store: &Store, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
    let first = on_db!(store.db(), |pool| {
        sqlx::query_scalar::<_, bool>(
            "UPDATE self_checks SET runs = runs + 1, ran_at = COALESCE(ran_at, $2) \
             WHERE id = $1 RETURNING ran_at = $2",
        )
        .bind(id)
        .bind(at)
        .fetch_optional(pool)
        .await
    })?;
    Ok(first.unwrap_or(false))
}

pub async fn get(store: &Store, id: Uuid) -> Result<Option<SelfCheck>, StoreError> {
    let row = on_db!(store.db(), |pool| {
        sqlx::query_as::<
            _,
            (
                Uuid,
                DateTime<Utc>,
                DateTime<Utc>,
                Option<DateTime<Utc>>,
                i32,
            ),
        >("SELECT id, requested_at, due_at, ran_at, runs FROM self_checks WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
    })?;
    Ok(
        row.map(|(id, requested_at, due_at, ran_at, runs)| SelfCheck {
            id,
            requested_at,
            due_at,
            ran_at,
            runs,
        }),
    )
}
