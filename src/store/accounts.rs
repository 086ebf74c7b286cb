//! People matched to Atlassian accounts, per organization and by IdP person id, and the
//! organization's account index (the Admin API's user list, kept locally so that finding an
//! account is a read, not a walk of the organization).

use chrono::{DateTime, Utc};

use super::{Store, StoreError, Tx};
use crate::ids::{AccountId, Email, PersonId};
use crate::{on_db, on_tx};

/// A stored match of a person to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub account: AccountId,
    pub found_by: String,
}

pub async fn match_for(
    store: &Store,
    org: &str,
    person: &PersonId,
) -> Result<Option<Match>, StoreError> {
    let row: Option<(String, String)> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT account_id, found_by FROM account_matches WHERE org = $1 AND person = $2",
        )
        .bind(org)
        .bind(&person.0)
        .fetch_optional(pool)
        .await
    })?;
    Ok(row.map(|(account, found_by)| Match {
        account: AccountId(account),
        found_by,
    }))
}

/// The person a stored match gives an account.
pub async fn person_for(
    store: &Store,
    org: &str,
    account: &AccountId,
) -> Result<Option<PersonId>, StoreError> {
    let row: Option<String> = on_db!(store.db(), |pool| {
        sqlx::query_scalar(
            "SELECT person FROM account_matches WHERE org = $1 AND account_id = $2 LIMIT 1",
        )
        .bind(org)
        .bind(&account.0)
        .fetch_optional(pool)
        .await
    })?;
    Ok(row.map(PersonId))
}

/// Stores (or replaces) the person's match in `org`.
pub async fn remember(
    store: &Store,
    org: &str,
    person: &PersonId,
    email: &Email,
    account: &AccountId,
    found_by: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_db!(store.db(), |pool| {
        sqlx::query(
            "INSERT INTO account_matches (org, person, email, account_id, found_by, resolved_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org, person) DO UPDATE SET \
             email = excluded.email, account_id = excluded.account_id, \
             found_by = excluded.found_by, resolved_at = excluded.resolved_at",
        )
        .bind(org)
        .bind(&person.0)
        .bind(email.as_str())
        .bind(&account.0)
        .bind(found_by)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// The person's email changed: their matches keep their account and show the new email.
pub async fn renamed(tx: &mut Tx, person: &PersonId, email: &Email) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query("UPDATE account_matches SET email = $1 WHERE person = $2")
            .bind(email.as_str())
            .bind(&person.0)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// An account as the organization lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexed {
    pub account: AccountId,
    pub email: Option<Email>,
    pub name: String,
    pub active: bool,
}

/// When the index of `org` was last read whole, and how many accounts it had.
pub async fn index_refreshed(
    store: &Store,
    org: &str,
) -> Result<Option<(DateTime<Utc>, i64)>, StoreError> {
    Ok(on_db!(store.db(), |pool| {
        sqlx::query_as("SELECT refreshed_at, accounts FROM account_index_runs WHERE org = $1")
            .bind(org)
            .fetch_optional(pool)
            .await
    })?)
}

/// Rows written per statement when the index is replaced.
const CHUNK: usize = 500;

/// Replaces the index of `org` with `accounts`, in one transaction.
pub async fn replace_index(
    store: &Store,
    org: &str,
    accounts: &[Indexed],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query("DELETE FROM account_index WHERE org = $1")
            .bind(org)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    })?;
    for chunk in accounts.chunks(CHUNK) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = i * 5;
                format!(
                    "($1, ${}, ${}, ${}, ${}, ${})",
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6
                )
            })
            .collect();
        // An organization lists each account once; a repeat on a page boundary is kept once.
        let sql = format!(
            "INSERT INTO account_index (org, account_id, email, name, active, seen_at) VALUES {} \
             ON CONFLICT (org, account_id) DO NOTHING",
            rows.join(", ")
        );
        on_tx!(&mut tx, |conn| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(org);
            for a in chunk {
                query = query
                    .bind(&a.account.0)
                    .bind(a.email.as_ref().map(|e| e.as_str().to_string()))
                    .bind(&a.name)
                    .bind(a.active)
                    .bind(now);
            }
            query.execute(&mut *conn).await.map(|_| ())
        })?;
    }
    on_tx!(&mut tx, |conn| {
        sqlx::query(
            "INSERT INTO account_index_runs (org, refreshed_at, accounts) VALUES ($1, $2, $3) \
             ON CONFLICT (org) DO UPDATE SET refreshed_at = excluded.refreshed_at, \
             accounts = excluded.accounts",
        )
        .bind(org)
        .bind(now)
        .bind(accounts.len() as i64)
        .execute(&mut *conn)
        .await
        .map(|_| ())
    })?;
    tx.commit().await
}

/// Adds one account found by a targeted query (the index has no change feed between reads).
pub async fn index_one(
    store: &Store,
    org: &str,
    account: &Indexed,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_db!(store.db(), |pool| {
        sqlx::query(
            "INSERT INTO account_index (org, account_id, email, name, active, seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org, account_id) DO UPDATE SET \
             email = excluded.email, seen_at = excluded.seen_at",
        )
        .bind(org)
        .bind(&account.account.0)
        .bind(account.email.as_ref().map(|e| e.as_str().to_string()))
        .bind(&account.name)
        .bind(account.active)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// The accounts of `org` with this email (normally one; an active one first).
pub async fn indexed_by_email(
    store: &Store,
    org: &str,
    email: &Email,
) -> Result<Vec<AccountId>, StoreError> {
    let rows: Vec<String> = on_db!(store.db(), |pool| {
        sqlx::query_scalar(
            "SELECT account_id FROM account_index WHERE org = $1 AND email = $2 \
             ORDER BY active DESC, account_id",
        )
        .bind(org)
        .bind(email.as_str())
        .fetch_all(pool)
        .await
    })?;
    Ok(rows.into_iter().map(AccountId).collect())
}

/// The email the index has for an account.
pub async fn indexed_email(
    store: &Store,
    org: &str,
    account: &AccountId,
) -> Result<Option<Email>, StoreError> {
    let row: Option<Option<String>> = on_db!(store.db(), |pool| {
        sqlx::query_scalar("SELECT email FROM account_index WHERE org = $1 AND account_id = $2")
            .bind(org)
            .bind(&account.0)
            .fetch_optional(pool)
            .await
    })?;
    Ok(row.flatten().and_then(|e| Email::parse(&e).ok()))
}
