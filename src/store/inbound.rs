//! Inbound events: stored as they arrived, unique per tenant and delivery id.

use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Connect,
    Forge,
    JiraWebhook,
}

impl Door {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Forge => "forge",
            Self::JiraWebhook => "jira_webhook",
        }
    }
}

/// One delivery, as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The tenant it was authenticated as.
    pub tenant: TenantKey,
    pub ingress: Door,
    /// The sender's id for this delivery, stable across its retries.
    pub delivery_id: String,
    pub event_type: String,
    /// The body exactly as it arrived.
    pub payload: String,
    pub received_at: DateTime<Utc>,
    /// The token that signed it, where one signs each delivery (Connect): the same token may
    /// carry only the same body.
    pub signed: Option<SignedBy>,
}

/// A delivery's token and body, by their hashes, and when the token expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBy {
    pub token_hash: String,
    pub body_hash: String,
    pub expires_at: DateTime<Utc>,
}

use super::{Store, StoreError, Tx};
use crate::ids::{TenantKey, TicketKey};
use crate::{on_db, on_tx};

/// What orders an event among its ticket's: the issue key and Jira's timestamp (ms), when
/// the payload has them.
#[derive(serde::Deserialize, Default)]
struct Ordering {
    #[serde(default)]
    issue: Option<IssueKey>,
    #[serde(default)]
    timestamp: Option<i64>,
}

#[derive(serde::Deserialize)]
struct IssueKey {
    key: Option<String>,
}

fn ordering(payload: &str) -> (Option<TicketKey>, Option<i64>) {
    let o: Ordering = serde_json::from_str(payload).unwrap_or_default();
    let key = o.issue.and_then(|i| i.key);
    (key.and_then(|k| TicketKey::parse(&k).ok()), o.timestamp)
}

/// Inserts the delivery; `false` when the tenant already sent this delivery id.
/// How long after a token is first seen another body may still come with it: Atlassian's
/// webhook tokens carry no unique id, so deliveries to one path signed in the same second share
/// one. Later, another body under a seen token is a replay.
pub const SAME_TOKEN_WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// Records a delivery's token with its body (at `now`); says whether it was seen before, and
/// with which body.
pub async fn record_token(
    tx: &mut Tx,
    signed: &SignedBy,
    now: DateTime<Utc>,
) -> Result<crate::store::tenants::TokenUse, StoreError> {
    use crate::store::tenants::TokenUse;
    let inserted = on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO webhook_tokens (token_hash, body_hash, seen_at, expires_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (token_hash) DO NOTHING",
        )
        .bind(&signed.token_hash)
        .bind(&signed.body_hash)
        .bind(now)
        .bind(signed.expires_at)
        .execute(conn)
        .await
        .map(|r| r.rows_affected() == 1)
    })?;
    if inserted {
        return Ok(TokenUse::First);
    }
    let earlier: Option<(String, DateTime<Utc>)> = on_tx!(tx, |conn| {
        sqlx::query_as("SELECT body_hash, seen_at FROM webhook_tokens WHERE token_hash = $1")
            .bind(&signed.token_hash)
            .fetch_optional(conn)
            .await
    })?;
    Ok(match earlier {
        Some((hash, _)) if hash == signed.body_hash => TokenUse::Retry,
        Some((_, seen_at)) if now - seen_at > SAME_TOKEN_WINDOW => TokenUse::Replay,
        // Another delivery signed in the same second: its own event.
        _ => TokenUse::First,
    })
}

/// Forgets tokens that expired before `before` (a token past its expiry is refused anyway).
pub async fn forget_tokens(store: &Store, before: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(on_db!(store.db(), |pool| {
        sqlx::query("DELETE FROM webhook_tokens WHERE expires_at < $1")
            .bind(before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?)
}

pub async fn insert(tx: &mut Tx, id: Uuid, d: &Delivery) -> Result<bool, StoreError> {
    let (ticket, event_at) = ordering(&d.payload);
    let inserted = on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO inbound_events (id, tenant, ingress, delivery_id, event_type, payload, \
             received_at, ticket_key, event_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant, delivery_id) DO NOTHING",
        )
        .bind(id)
        .bind(d.tenant.as_str())
        .bind(d.ingress.as_str())
        .bind(&d.delivery_id)
        .bind(&d.event_type)
        .bind(&d.payload)
        .bind(d.received_at)
        .bind(ticket.as_deref())
        .bind(event_at)
        .execute(conn)
        .await
        .map(|r| r.rows_affected() == 1)
    })?;
    Ok(inserted)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEvent {
    pub id: Uuid,
    pub tenant: TenantKey,
    pub ingress: String,
    pub delivery_id: String,
    pub event_type: String,
    pub payload: String,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    /// Failed tries so far, and when the first failed (wall clock).
    pub attempts: i64,
    pub first_failed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Given up on: retries ran out, or the error was permanent.
    pub dead_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The issue it is about, and Jira's timestamp (ms): the order among its ticket's events.
    /// A body naming no valid issue key has none (it is taken alone, and refused as malformed).
    pub ticket_key: Option<TicketKey>,
    pub event_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    tenant: String,
    ingress: String,
    delivery_id: String,
    event_type: String,
    payload: String,
    received_at: DateTime<Utc>,
    processed_at: Option<DateTime<Utc>>,
    attempts: i64,
    first_failed_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    dead_at: Option<DateTime<Utc>>,
    next_attempt_at: Option<DateTime<Utc>>,
    ticket_key: Option<String>,
    event_at: Option<i64>,
}

const COLUMNS: &str = "id, tenant, ingress, delivery_id, event_type, payload, received_at, \
    processed_at, attempts, first_failed_at, last_error, dead_at, next_attempt_at, ticket_key, \
    event_at";

/// A stored event. Its tenant was authenticated before it was written, so one that does not
/// parse is damaged data; an issue key that does not parse (an older release kept any text)
/// orders nothing, as when a body names none.
fn from_row(r: Row) -> Result<InboundEvent, StoreError> {
    let tenant = TenantKey::parse(&r.tenant)
        .map_err(|e| StoreError::corrupt(format!("inbound event {}: {e}", r.id)))?;
    Ok(InboundEvent {
        id: r.id,
        tenant,
        ingress: r.ingress,
        delivery_id: r.delivery_id,
        event_type: r.event_type,
        payload: r.payload,
        received_at: r.received_at,
        processed_at: r.processed_at,
        attempts: r.attempts,
        first_failed_at: r.first_failed_at,
        last_error: r.last_error,
        dead_at: r.dead_at,
        next_attempt_at: r.next_attempt_at,
        ticket_key: r.ticket_key.and_then(|k| TicketKey::parse(&k).ok()),
        event_at: r.event_at,
    })
}

/// Events matching `condition` (binds `$1`…), as listed.
async fn select(
    store: &Store,
    condition: &str,
    bind: Option<DateTime<Utc>>,
) -> Result<Vec<InboundEvent>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM inbound_events WHERE {condition}");
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        let query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
        match bind {
            Some(at) => query.bind(at).fetch_all(pool).await,
            None => query.fetch_all(pool).await,
        }
    })?;
    rows.into_iter().map(from_row).collect()
}

/// A failed try: counted, with its error and when the next is due. `None` when the event was
/// processed or given up on meanwhile; else the attempts so far.
pub async fn failed(
    tx: &mut Tx,
    id: Uuid,
    error: &str,
    next_attempt_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let attempts: Option<i64> = on_tx!(tx, |conn| {
        sqlx::query_scalar(
            "UPDATE inbound_events SET attempts = attempts + 1, last_error = $2, \
             next_attempt_at = $3, first_failed_at = COALESCE(first_failed_at, $4) \
             WHERE id = $1 AND processed_at IS NULL AND dead_at IS NULL RETURNING attempts",
        )
        .bind(id)
        .bind(error)
        .bind(next_attempt_at)
        .bind(now)
        .fetch_optional(conn)
        .await
    })?;
    Ok(attempts)
}

/// Gives up on the event, with why; `false` when it was processed or dead already.
pub async fn mark_dead(
    tx: &mut Tx,
    id: Uuid,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let marked = on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE inbound_events SET dead_at = $2, last_error = $3, next_attempt_at = NULL \
             WHERE id = $1 AND processed_at IS NULL AND dead_at IS NULL",
        )
        .bind(id)
        .bind(at)
        .bind(reason)
        .execute(conn)
        .await
        .map(|r| r.rows_affected() == 1)
    })?;
    Ok(marked)
}

/// Events neither processed nor dead whose next try (or, never tried, their arrival) is
/// before `before`: their job was lost. Oldest first, at most `limit`.
pub async fn stranded(
    store: &Store,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<InboundEvent>, StoreError> {
    let condition = format!(
        "processed_at IS NULL AND dead_at IS NULL \
         AND COALESCE(next_attempt_at, received_at) < $1 ORDER BY received_at, id LIMIT {limit}"
    );
    select(store, &condition, Some(before)).await
}

/// The ticket's events neither processed nor dead, in the order Jira produced them (its
/// timestamp, then arrival).
pub async fn open_for_ticket(
    store: &Store,
    tenant: &TenantKey,
    ticket: &TicketKey,
) -> Result<Vec<InboundEvent>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM inbound_events WHERE tenant = $1 AND ticket_key = $2 \
         AND processed_at IS NULL AND dead_at IS NULL ORDER BY event_at, received_at, id"
    );
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(tenant.as_str())
            .bind(ticket.as_str())
            .fetch_all(pool)
            .await
    })?;
    rows.into_iter().map(from_row).collect()
}

/// Takes the ticket's lease for `holder` until `until`, if it is free, ran out, or is already
/// `holder`'s (a renewal); whether it was taken.
pub async fn lease_ticket(
    store: &Store,
    tenant: &TenantKey,
    ticket: &TicketKey,
    holder: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let taken = on_db!(store.db(), |pool| {
        sqlx::query(
            "INSERT INTO ticket_leases (tenant, ticket_key, holder, until) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant, ticket_key) DO UPDATE SET holder = excluded.holder, \
             until = excluded.until \
             WHERE ticket_leases.until < $5 OR ticket_leases.holder = excluded.holder",
        )
        .bind(tenant.as_str())
        .bind(ticket.as_str())
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() == 1)
    })?;
    Ok(taken)
}

pub async fn release_ticket(
    store: &Store,
    tenant: &TenantKey,
    ticket: &TicketKey,
    holder: &str,
) -> Result<(), StoreError> {
    on_db!(store.db(), |pool| {
        sqlx::query(
            "DELETE FROM ticket_leases WHERE tenant = $1 AND ticket_key = $2 AND holder = $3",
        )
        .bind(tenant.as_str())
        .bind(ticket.as_str())
        .bind(holder)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// The events given up on, oldest first.
pub async fn dead(store: &Store) -> Result<Vec<InboundEvent>, StoreError> {
    select(
        store,
        "dead_at IS NOT NULL AND processed_at IS NULL ORDER BY dead_at, id",
        None,
    )
    .await
}

/// Brings a dead event back for a fresh round of retries, due at `at`; `false` if it was not
/// dead.
pub async fn revive(tx: &mut Tx, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
    let revived = on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE inbound_events SET dead_at = NULL, attempts = 0, first_failed_at = NULL, \
             next_attempt_at = $2 WHERE id = $1 AND dead_at IS NOT NULL AND processed_at IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(conn)
        .await
        .map(|r| r.rows_affected() == 1)
    })?;
    Ok(revived)
}

pub async fn get(store: &Store, id: Uuid) -> Result<Option<InboundEvent>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM inbound_events WHERE id = $1");
    let row: Option<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(id)
            .fetch_optional(pool)
            .await
    })?;
    row.map(from_row).transpose()
}

/// Events of a tenant, oldest first.
pub async fn list_for_tenant(
    store: &Store,
    tenant: &TenantKey,
) -> Result<Vec<InboundEvent>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM inbound_events WHERE tenant = $1 ORDER BY received_at, id");
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(tenant.as_str())
            .fetch_all(pool)
            .await
    })?;
    rows.into_iter().map(from_row).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_ordered_by_its_issue_key_only_when_the_key_is_one() {
        let (key, at) = ordering(r#"{"issue": {"key": "IT-7"}, "timestamp": 5}"#);
        assert_eq!((key.as_deref(), at), (Some("IT-7"), Some(5)));
        // A body naming something else as its issue is taken alone (and refused later as
        // malformed), never queued behind a real ticket's events under a made-up key.
        for hostile in [
            r#"{"issue": {"key": "IT-7/../../admin"}}"#,
            r#"{"issue": {"key": ""}}"#,
            r#"{"issue": {"key": 7}}"#,
            "not json",
        ] {
            assert_eq!(ordering(hostile).0, None, "{hostile}");
        }
    }
}
