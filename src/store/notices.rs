//! Which ticket notices' comments were posted, by their key: `posting` before the call to
//! Jira, `sent` after it.

use chrono::{DateTime, Utc};

use super::{Store, StoreError};
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

/// Records that `key`'s comment is about to be posted (unless a run did so before); says
/// where it stood.
pub async fn begin(
    store: &Store,
    key: &str,
    tenant: &str,
    ticket_key: &str,
    at: DateTime<Utc>,
) -> Result<Posting, StoreError> {
    let inserted = on_db!(store.db(), |pool| {
        sqlx::query(
            "INSERT INTO notices_sent (key, tenant, ticket_key, sent_at, state) \
             VALUES ($1, $2, $3, $4, 'posting') ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(tenant)
        .bind(ticket_key)
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
