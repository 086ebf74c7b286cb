//! Which ticket notices' comments were posted, by their key: `posting` before the call to
//! Jira, `sent` after it.

use chrono::{DateTime, Utc};

use super::{Store, StoreError};
use crate::ids::{TenantKey, TicketKey};
use crate::on_db;

/// Where a notice's comment stands when a job is about to post it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posting {
    /// Never tried: post it.
    New,
    /// Tried by a run that did not record the outcome (its worker died): the comment may be in
    /// the ticket already.
    Unsure,
    /// Posted.
    Sent,
}

/// Records `key` as queued, last among its ticket's notices, in the transaction that queues
/// its job (a second queueing of the same key changes nothing).
pub async fn queue(
    tx: &mut super::Tx,
    key: &str,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    crate::on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO notices_sent (key, tenant, ticket_key, sent_at, state, queued_at, seq) \
             VALUES ($1, $2, $3, $4, 'queued', $4, \
                 (SELECT COALESCE(MAX(seq), 0) + 1 FROM notices_sent \
                  WHERE tenant = $2 AND ticket_key = $3)) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(tenant.as_str())
        .bind(ticket_key.as_str())
        .bind(at)
        .execute(&mut *conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// An earlier notice of `key`'s ticket, queued after `since`, that is neither posted nor
/// given up on: `key` waits for it.
pub async fn earlier_unsent(
    store: &Store,
    key: &str,
    since: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    Ok(on_db!(store.db(), |pool| {
        sqlx::query_scalar(
            "SELECT e.key FROM notices_sent n JOIN notices_sent e \
                 ON e.tenant = n.tenant AND e.ticket_key = n.ticket_key AND e.seq < n.seq \
             WHERE n.key = $1 AND e.state IN ('queued', 'posting') AND e.queued_at > $2 \
               AND NOT EXISTS (SELECT 1 FROM dead_notices d WHERE d.key = e.key) \
             ORDER BY e.seq LIMIT 1",
        )
        .bind(key)
        .bind(since)
        .fetch_optional(pool)
        .await
    })?)
}

/// Records that `key`'s comment is about to be posted (unless a run did so before); says
/// where it stood.
pub async fn begin(
    store: &Store,
    key: &str,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
    at: DateTime<Utc>,
) -> Result<Posting, StoreError> {
    let taken = on_db!(store.db(), |pool| {
        sqlx::query(
            "UPDATE notices_sent SET state = 'posting', sent_at = $2 \
             WHERE key = $1 AND state = 'queued'",
        )
        .bind(key)
        .bind(at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() == 1)
    })?;
    if taken {
        return Ok(Posting::New);
    }
    // Queued before notices were ordered (no `queued` row), or posted before.
    let inserted = on_db!(store.db(), |pool| {
        sqlx::query(
            "INSERT INTO notices_sent (key, tenant, ticket_key, sent_at, state) \
             VALUES ($1, $2, $3, $4, 'posting') ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(tenant.as_str())
        .bind(ticket_key.as_str())
        .bind(at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() == 1)
    })?;
    if inserted {
        return Ok(Posting::New);
    }
    let state: Option<String> = on_db!(store.db(), |pool| {
        sqlx::query_scalar("SELECT state FROM notices_sent WHERE key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await
    })?;
    Ok(match state.as_deref() {
        Some("sent") => Posting::Sent,
        _ => Posting::Unsure,
    })
}

pub async fn sent(store: &Store, key: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
    on_db!(store.db(), |pool| {
        sqlx::query("UPDATE notices_sent SET state = 'sent', sent_at = $2 WHERE key = $1")
            .bind(key)
            .bind(at)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// A notice given up on, as listed for an operator.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadNotice {
    pub key: String,
    pub tenant: String,
    pub ticket_key: String,
    /// The notice, as its job carried it (JSON).
    pub notice: String,
    pub reason: String,
    pub dead_at: DateTime<Utc>,
    pub rounds: i64,
}

type DeadRow = (String, String, String, String, String, DateTime<Utc>, i64);

fn dead_from(row: DeadRow) -> DeadNotice {
    let (key, tenant, ticket_key, notice, reason, dead_at, rounds) = row;
    DeadNotice {
        key,
        tenant,
        ticket_key,
        notice,
        reason,
        dead_at,
        rounds,
    }
}

/// Records the notice as given up on (again, if it was before); false when it already is.
pub async fn mark_dead(tx: &mut super::Tx, dead: &DeadNotice) -> Result<bool, StoreError> {
    Ok(crate::on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO dead_notices (key, tenant, ticket_key, notice, reason, dead_at, rounds) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&dead.key)
        .bind(&dead.tenant)
        .bind(&dead.ticket_key)
        .bind(&dead.notice)
        .bind(&dead.reason)
        .bind(dead.dead_at)
        .bind(dead.rounds)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected() == 1)
    })?)
}

/// Every notice given up on, oldest first.
pub async fn dead(store: &Store) -> Result<Vec<DeadNotice>, StoreError> {
    let rows: Vec<DeadRow> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT key, tenant, ticket_key, notice, reason, dead_at, rounds FROM dead_notices \
             ORDER BY dead_at, key",
        )
        .fetch_all(pool)
        .await
    })?;
    Ok(rows.into_iter().map(dead_from).collect())
}

/// Takes `key`'s dead notice (every one with `None`) out of the list, in the caller's
/// transaction, to queue it again.
pub async fn revive(tx: &mut super::Tx, key: Option<&str>) -> Result<Vec<DeadNotice>, StoreError> {
    let rows: Vec<DeadRow> = crate::on_tx!(tx, |conn| {
        sqlx::query_as(
            "DELETE FROM dead_notices WHERE ($1 IS NULL OR key = $1) \
             RETURNING key, tenant, ticket_key, notice, reason, dead_at, rounds",
        )
        .bind(key)
        .fetch_all(&mut *conn)
        .await
    })?;
    Ok(rows.into_iter().map(dead_from).collect())
}
