//! Org chart snapshots, the sync runs that produce them (with their staged pages, so a crash
//! resumes) and incremental cursors.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, Tx};
use crate::orgchart::OrgSnapshot;
use crate::{on_db, on_tx};

/// Snapshots kept besides the newest, for a look back after a bad sync.
const SNAPSHOTS_KEPT: i64 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub version: i64,
    pub source: String,
    pub taken_at: DateTime<Utc>,
    pub people: i64,
    pub groups: i64,
}

pub async fn latest_version(store: &Store) -> Result<Option<i64>, StoreError> {
    let row: (Option<i64>,) = on_db!(store.db(), |pool| {
        sqlx::query_as("SELECT MAX(version) FROM org_snapshots")
            .fetch_one(pool)
            .await
    })?;
    Ok(row.0)
}

/// [`latest_version`], inside a write transaction (which holds SQLite's lock; on PostgreSQL the
/// caller compares it with what it read before, and a newer one means it lost a race).
pub async fn latest_version_in(tx: &mut Tx) -> Result<Option<i64>, StoreError> {
    let row: (Option<i64>,) = on_tx!(tx, |conn| {
        sqlx::query_as("SELECT MAX(version) FROM org_snapshots")
            .fetch_one(&mut *conn)
            .await
    })?;
    Ok(row.0)
}

type SnapshotRow = (i64, String, DateTime<Utc>, i64, i64, String);

/// The newest snapshot, parsed.
pub async fn latest(store: &Store) -> Result<Option<(SnapshotInfo, OrgSnapshot)>, StoreError> {
    let row: Option<SnapshotRow> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT version, source, taken_at, people_count, group_count, body FROM org_snapshots \
             ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await
    })?;
    parse_snapshot(row)
}

/// Snapshot `version`, parsed, if it is still kept.
pub async fn snapshot(
    store: &Store,
    version: i64,
) -> Result<Option<(SnapshotInfo, OrgSnapshot)>, StoreError> {
    let row: Option<SnapshotRow> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT version, source, taken_at, people_count, group_count, body FROM org_snapshots \
             WHERE version = $1",
        )
        .bind(version)
        .fetch_optional(pool)
        .await
    })?;
    parse_snapshot(row)
}

fn parse_snapshot(
    row: Option<SnapshotRow>,
) -> Result<Option<(SnapshotInfo, OrgSnapshot)>, StoreError> {
    let Some((version, source, taken_at, people, groups, body)) = row else {
        return Ok(None);
    };
    let snapshot: OrgSnapshot = serde_json::from_str(&body)
        .map_err(|e| StoreError::corrupt(format!("org snapshot {version}: {e}")))?;
    let info = SnapshotInfo {
        version,
        source,
        taken_at,
        people,
        groups,
    };
    Ok(Some((info, snapshot)))
}

/// Writes a new snapshot; it becomes the newest when the transaction commits. Old ones beyond
/// the few kept are removed.
pub async fn save_snapshot(
    tx: &mut Tx,
    source: &str,
    taken_at: DateTime<Utc>,
    snapshot: &OrgSnapshot,
) -> Result<i64, StoreError> {
    let body = serde_json::to_string(snapshot)
        .map_err(|e| StoreError::corrupt(format!("org snapshot: {e}")))?;
    let (people, groups) = (snapshot.people.len() as i64, snapshot.groups.len() as i64);
    let (version,): (i64,) = on_tx!(tx, |conn| {
        sqlx::query_as(
            "INSERT INTO org_snapshots (source, taken_at, people_count, group_count, body) \
             VALUES ($1, $2, $3, $4, $5) RETURNING version",
        )
        .bind(source)
        .bind(taken_at)
        .bind(people)
        .bind(groups)
        .bind(&body)
        .fetch_one(&mut *conn)
        .await
    })?;
    on_tx!(tx, |conn| {
        // The snapshot last applied stays: the next one's leavers are counted against it.
        sqlx::query(
            "DELETE FROM org_snapshots WHERE version < $1 \
             AND version NOT IN (SELECT version FROM org_applied)",
        )
        .bind(version - SNAPSHOTS_KEPT)
        .execute(&mut *conn)
        .await
        .map(|_| ())
    })?;
    Ok(version)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Full,
    Incremental,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Incremental => "incremental",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRun {
    pub id: String,
    pub source: String,
    /// Where the interrupted read goes on from (the source's own page token).
    pub resume: Option<String>,
    pub pages: i64,
    /// The incremental cursor taken when the run started.
    pub start_cursor: Option<String>,
    /// Whether this run picks up one a crash interrupted.
    pub resumed: bool,
}

/// The unfinished full run of `source` if there is one (a crash interrupted it), else a new one.
pub async fn open_full_run(
    store: &Store,
    source: &str,
    start_cursor: &str,
    now: DateTime<Utc>,
) -> Result<SyncRun, StoreError> {
    let running: Option<(String, Option<String>, i64, Option<String>)> = on_db!(
        store.db(),
        |pool| {
            sqlx::query_as(
            "SELECT id, resume, pages, start_cursor FROM org_sync_runs WHERE source = $1 AND kind = 'full' \
             AND state = 'running' ORDER BY started_at DESC LIMIT 1",
        )
        .bind(source)
        .fetch_optional(pool)
        .await
        }
    )?;
    if let Some((id, resume, pages, start_cursor)) = running {
        return Ok(SyncRun {
            id,
            source: source.to_string(),
            resume,
            pages,
            start_cursor,
            resumed: true,
        });
    }
    let id = Uuid::now_v7().to_string();
    on_db!(store.db(), |pool| {
        sqlx::query(
            "INSERT INTO org_sync_runs (id, source, kind, state, pages, started_at, start_cursor) \
             VALUES ($1, $2, 'full', 'running', 0, $3, $4)",
        )
        .bind(&id)
        .bind(source)
        .bind(now)
        .bind(start_cursor)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(SyncRun {
        id,
        source: source.to_string(),
        resume: None,
        pages: 0,
        start_cursor: Some(start_cursor.to_string()),
        resumed: false,
    })
}

/// Stages a batch of `pages` pages (merged into one) and where the read goes on after them,
/// together: a crash after this resumes after them.
pub async fn stage_page(
    store: &Store,
    run_id: &str,
    page: &crate::orgchart::Page,
    pages: i64,
) -> Result<(), StoreError> {
    let (people, groups, resume) = (&page.people, &page.groups, page.next.as_deref());
    let mut items = Vec::with_capacity(people.len() + groups.len());
    for p in people {
        let body = serde_json::to_string(p)
            .map_err(|e| StoreError::corrupt(format!("staging {}: {e}", p.id.0)))?;
        items.push(("person", p.id.0.as_str(), body));
    }
    for g in groups {
        let body = serde_json::to_string(g)
            .map_err(|e| StoreError::corrupt(format!("staging {}: {e}", g.id)))?;
        items.push(("group", g.id.as_str(), body));
    }
    for d in &page.departments {
        let body = serde_json::to_string(d)
            .map_err(|e| StoreError::corrupt(format!("staging {}: {e}", d.name)))?;
        items.push(("department", d.name.as_str(), body));
    }
    // A batch of pages may hold an item twice (a source that pages while it changes); one
    // statement may not write a row twice, so the later copy wins.
    let mut seen = std::collections::HashSet::new();
    let mut items: Vec<_> = items
        .into_iter()
        .rev()
        .filter(|(kind, id, _)| seen.insert((*kind, *id)))
        .collect();
    items.reverse();
    let mut tx = store.begin().await?;
    // Multi-row inserts: one round trip per few hundred items, not per item.
    for chunk in items.chunks(500) {
        on_tx!(&mut tx, |conn| {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO org_sync_items (run_id, kind, item_id, body) ",
            );
            insert.push_values(chunk, |mut row, (kind, id, body)| {
                row.push_bind(run_id)
                    .push_bind(*kind)
                    .push_bind(*id)
                    .push_bind(body);
            });
            insert.push(" ON CONFLICT (run_id, kind, item_id) DO UPDATE SET body = excluded.body");
            insert.build().execute(&mut *conn).await.map(|_| ())
        })?;
    }
    on_tx!(&mut tx, |conn| {
        sqlx::query("UPDATE org_sync_runs SET resume = $1, pages = pages + $2 WHERE id = $3")
            .bind(resume)
            .bind(pages)
            .bind(run_id)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    })?;
    tx.commit().await
}

/// Everything a run staged, as a snapshot.
pub async fn staged(store: &Store, run_id: &str) -> Result<OrgSnapshot, StoreError> {
    // Read in keyset batches and parse each before the next: holding every staged row's text
    // beside the parsed snapshot would double the peak memory of a large sync.
    const BATCH: i64 = 5_000;
    let mut snapshot = OrgSnapshot::default();
    let mut after = (String::new(), String::new());
    loop {
        let rows: Vec<(String, String, String)> = on_db!(store.db(), |pool| {
            sqlx::query_as(
                "SELECT kind, item_id, body FROM org_sync_items \
                 WHERE run_id = $1 AND (kind > $2 OR (kind = $2 AND item_id > $3)) \
                 ORDER BY kind, item_id LIMIT $4",
            )
            .bind(run_id)
            .bind(&after.0)
            .bind(&after.1)
            .bind(BATCH)
            .fetch_all(pool)
            .await
        })?;
        let done = (rows.len() as i64) < BATCH;
        for (kind, id, body) in rows {
            let bad =
                |e: serde_json::Error| StoreError::corrupt(format!("staged {kind} {id}: {e}"));
            match kind.as_str() {
                "person" => snapshot
                    .people
                    .push(serde_json::from_str(&body).map_err(bad)?),
                "department" => snapshot
                    .departments
                    .push(serde_json::from_str(&body).map_err(bad)?),
                _ => snapshot
                    .groups
                    .push(serde_json::from_str(&body).map_err(bad)?),
            }
            after = (kind, id);
        }
        if done {
            return Ok(snapshot);
        }
    }
}

/// Ends a run (`done` or `failed`) and drops what it staged.
pub async fn finish_run(
    tx: &mut Tx,
    run_id: &str,
    failed: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query("DELETE FROM org_sync_items WHERE run_id = $1")
            .bind(run_id)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    })?;
    on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE org_sync_runs SET state = $1, error = $2, finished_at = $3 WHERE id = $4",
        )
        .bind(if failed.is_some() { "failed" } else { "done" })
        .bind(failed)
        .bind(now)
        .bind(run_id)
        .execute(&mut *conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Records a finished incremental run (they stage nothing: their deltas apply in one go).
pub async fn record_incremental(
    tx: &mut Tx,
    source: &str,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO org_sync_runs (id, source, kind, state, pages, started_at, finished_at) \
             VALUES ($1, $2, 'incremental', 'done', 1, $3, $4)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(source)
        .bind(started_at)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// When the last full sync of `source` finished.
pub async fn last_full_sync(
    store: &Store,
    source: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row: Option<(DateTime<Utc>,)> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT finished_at FROM org_sync_runs WHERE source = $1 AND kind = 'full' \
             AND state = 'done' ORDER BY finished_at DESC LIMIT 1",
        )
        .bind(source)
        .fetch_optional(pool)
        .await
    })?;
    Ok(row.map(|r| r.0))
}

pub async fn cursor(store: &Store, source: &str) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> = on_db!(store.db(), |pool| {
        sqlx::query_as("SELECT cursor FROM org_sync_cursors WHERE source = $1")
            .bind(source)
            .fetch_optional(pool)
            .await
    })?;
    Ok(row.map(|r| r.0))
}

/// Moves the cursor from `from` to `to`; `false` when another sync moved it first (the caller
/// then drops what it read from `from`).
pub async fn advance_cursor(
    tx: &mut Tx,
    source: &str,
    (from, to): (&str, &str),
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let moved = on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE org_sync_cursors SET cursor = $1, updated_at = $2 WHERE source = $3 AND cursor = $4",
        )
        .bind(to)
        .bind(now)
        .bind(source)
        .bind(from)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(moved == 1)
}

pub async fn set_cursor(
    tx: &mut Tx,
    source: &str,
    cursor: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO org_sync_cursors (source, cursor, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        )
        .bind(source)
        .bind(cursor)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}
