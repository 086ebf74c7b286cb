//! Which org chart snapshot has been applied (its leavers processed, its open stages
//! re-routed), and the removals held back by the leaver brake.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, Tx};
use crate::{on_db, on_tx};

/// The version whose consequences were applied last, if any.
pub async fn applied(store: &Store) -> Result<Option<i64>, StoreError> {
    let row: Option<(i64,)> = on_db!(store.db(), |pool| {
        sqlx::query_as("SELECT version FROM org_applied WHERE id = 1")
            .fetch_optional(pool)
            .await
    })?;
    Ok(row.map(|r| r.0))
}

/// [`applied`], inside the transaction that would move it, its row locked until the end
/// (SQLite's write transaction holds the lock already).
pub async fn applied_in(tx: &mut Tx) -> Result<Option<i64>, StoreError> {
    let row: Option<(i64,)> = match tx {
        Tx::Postgres(tx) => {
            sqlx::query_as("SELECT version FROM org_applied WHERE id = 1 FOR UPDATE")
                .fetch_optional(&mut **tx)
                .await?
        }
        Tx::Sqlite(tx) => {
            sqlx::query_as("SELECT version FROM org_applied WHERE id = 1")
                .fetch_optional(&mut **tx)
                .await?
        }
    };
    Ok(row.map(|r| r.0))
}

pub async fn set_applied(tx: &mut Tx, version: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO org_applied (id, version, applied_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, \
             applied_at = excluded.applied_at",
        )
        .bind(version)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Records the people an application of `version` believed gone (not those a person approved).
pub async fn record_departures(
    tx: &mut Tx,
    people: &[HeldPerson],
    version: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for person in people {
        on_tx!(tx, |conn| {
            sqlx::query(
                "INSERT INTO org_departures (person_id, version, left_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (person_id, version) DO NOTHING",
            )
            .bind(&person.id)
            .bind(version)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
    }
    Ok(())
}

/// How many people applications believed gone since `since`.
pub async fn departures_since(store: &Store, since: DateTime<Utc>) -> Result<usize, StoreError> {
    let count: i64 = on_db!(store.db(), |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM org_departures WHERE left_at > $1")
            .bind(since)
            .fetch_one(pool)
            .await
    })?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// A person whose removal is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldPerson {
    pub id: String,
    pub email: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    /// Waiting for a person to approve.
    Held,
    /// Approved: the next apply removes their access.
    Approved,
    /// Their access was removed.
    Done,
    /// Everyone came back before it was approved.
    Dropped,
}

impl HoldState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Approved => "approved",
            Self::Done => "done",
            Self::Dropped => "dropped",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "held" => Self::Held,
            "approved" => Self::Approved,
            "done" => Self::Done,
            "dropped" => Self::Dropped,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The snapshot that would have made them leavers: the hold's id.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub people: Vec<HeldPerson>,
    /// Active people in the chart before that snapshot.
    pub active_before: i64,
    pub state: HoldState,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

type HoldRow = (
    i64,
    DateTime<Utc>,
    String,
    i64,
    String,
    Option<String>,
    Option<DateTime<Utc>>,
);

fn hold(row: HoldRow) -> Result<Hold, StoreError> {
    let (version, created_at, people, active_before, state, decided_by, decided_at) = row;
    let corrupt = |what: String| StoreError::corrupt(what);
    Ok(Hold {
        version,
        created_at,
        people: serde_json::from_str(&people)
            .map_err(|e| corrupt(format!("org hold {version}: {e}")))?,
        active_before,
        state: HoldState::parse(&state)
            .ok_or_else(|| corrupt(format!("org hold {version}: state `{state}`")))?,
        decided_by,
        decided_at,
    })
}

/// Every hold, newest first.
pub async fn holds(store: &Store) -> Result<Vec<Hold>, StoreError> {
    let rows: Vec<HoldRow> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT version, created_at, people, active_before, state, decided_by, decided_at \
             FROM org_holds ORDER BY version DESC",
        )
        .fetch_all(pool)
        .await
    })?;
    rows.into_iter().map(hold).collect()
}

/// Holds still waiting or approved but not yet carried out.
pub async fn open_holds(tx: &mut Tx) -> Result<Vec<Hold>, StoreError> {
    let rows: Vec<HoldRow> = on_tx!(tx, |conn| {
        sqlx::query_as(
            "SELECT version, created_at, people, active_before, state, decided_by, decided_at \
             FROM org_holds WHERE state IN ('held', 'approved') ORDER BY version",
        )
        .fetch_all(&mut *conn)
        .await
    })?;
    rows.into_iter().map(hold).collect()
}

fn people_json(people: &[HeldPerson]) -> Result<String, StoreError> {
    serde_json::to_string(people).map_err(|e| StoreError::corrupt(format!("held people: {e}")))
}

/// Records a new hold; a hold for the same snapshot already there is kept as it is.
pub async fn insert_hold(tx: &mut Tx, hold: &Hold) -> Result<bool, StoreError> {
    let people = people_json(&hold.people)?;
    let inserted = on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO org_holds (version, created_at, people, active_before, state) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (version) DO NOTHING",
        )
        .bind(hold.version)
        .bind(hold.created_at)
        .bind(&people)
        .bind(hold.active_before)
        .bind(hold.state.as_str())
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(inserted == 1)
}

/// Sets who is held and the state (people who came back leave the hold).
pub async fn update_hold(
    tx: &mut Tx,
    version: i64,
    people: &[HeldPerson],
    state: HoldState,
) -> Result<(), StoreError> {
    let people = people_json(people)?;
    on_tx!(tx, |conn| {
        sqlx::query("UPDATE org_holds SET people = $1, state = $2 WHERE version = $3")
            .bind(&people)
            .bind(state.as_str())
            .bind(version)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// Approves a waiting hold, in the caller's transaction (with its audit event); `false` when
/// there is no such hold waiting.
pub async fn approve_hold(
    tx: &mut Tx,
    version: i64,
    by: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changed = on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE org_holds SET state = 'approved', decided_by = $1, decided_at = $2 \
             WHERE version = $3 AND state = 'held'",
        )
        .bind(by)
        .bind(now)
        .bind(version)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(changed == 1)
}

/// What became of the removals held for snapshot `version`, whatever it was.
pub async fn hold_state(store: &Store, version: i64) -> Result<Option<HoldState>, StoreError> {
    let state: Option<String> = on_db!(store.db(), |pool| {
        sqlx::query_scalar("SELECT state FROM org_holds WHERE version = $1")
            .bind(version)
            .fetch_optional(pool)
            .await
    })?;
    state
        .map(|s| {
            HoldState::parse(&s)
                .ok_or_else(|| StoreError::corrupt(format!("hold {version}: state `{s}`")))
        })
        .transpose()
}

/// The people whose removal is held (person ids and lower-case emails): leavers not to act
/// on yet.
pub async fn held_people(store: &Store) -> Result<std::collections::HashSet<String>, StoreError> {
    Ok(people_held_by(&holds(store).await?))
}

/// The people `holds` still hold: their person ids and lower-case emails.
pub fn people_held_by(holds: &[Hold]) -> std::collections::HashSet<String> {
    holds
        .iter()
        .filter(|h| h.state == HoldState::Held)
        .flat_map(|h| h.people.iter())
        .flat_map(|p| [p.id.clone(), p.email.to_ascii_lowercase()])
        .collect()
}

/// Records a failed sync of `source`; returns how many failed in a row, this one included.
pub async fn sync_failed(
    tx: &mut Tx,
    source: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let (failures,): (i64,) = on_tx!(tx, |conn| {
        sqlx::query_as(
            "INSERT INTO org_sync_failures (source, failures, last_error, since) \
             VALUES ($1, 1, $2, $3) \
             ON CONFLICT (source) DO UPDATE SET failures = org_sync_failures.failures + 1, \
             last_error = excluded.last_error RETURNING CAST(failures AS BIGINT)",
        )
        .bind(source)
        .bind(error)
        .bind(now)
        .fetch_one(&mut *conn)
        .await
    })?;
    Ok(failures)
}

/// A sync of `source` succeeded: the count starts again.
pub async fn sync_succeeded(store: &Store, source: &str) -> Result<(), StoreError> {
    on_db!(store.db(), |pool| {
        sqlx::query("DELETE FROM org_sync_failures WHERE source = $1")
            .bind(source)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}
