//! What an identity provider pushed through SCIM: users and groups as the resources it sent,
//! the people and groups the chart must drop, the counter that orders every write, and the
//! bearer tokens it pushes with (sealed).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Store, StoreError, Tx};
use crate::scim::Kind;
use crate::{on_db, on_tx};

/// One stored user or group.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub resource: Value,
    /// The number of its last write: its ETag, and what the org sync reads after.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a write stores besides the resource: the columns lookups use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `userName` or `displayName`, lower-cased.
    pub name: String,
    pub external_id: Option<String>,
    /// Users only: the person id, when the user has one.
    pub person_id: Option<String>,
}

fn table(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "scim_users",
        Kind::Group => "scim_groups",
    }
}

fn name_column(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "user_name",
        Kind::Group => "display_name",
    }
}

type RawRow = (String, String, i64, DateTime<Utc>, DateTime<Utc>);

fn row((id, resource, version, created_at, updated_at): RawRow) -> Result<Row, StoreError> {
    let resource = serde_json::from_str(&resource)
        .map_err(|e| StoreError::Corrupt(format!("SCIM resource {id}: {e}")))?;
    Ok(Row {
        id,
        resource,
        version,
        created_at,
        updated_at,
    })
}

fn rows(raw: Vec<RawRow>) -> Result<Vec<Row>, StoreError> {
    raw.into_iter().map(row).collect()
}

/// SQL built here names only this module's own tables and columns, never a value.
fn safe(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.to_string())
}

const COLUMNS: &str = "id, resource, version, created_at, updated_at";

/// The next write's number; the counter row stays locked until the transaction ends, so writes
/// commit in the order of their numbers.
pub async fn next_seq(tx: &mut Tx) -> Result<i64, StoreError> {
    let seq: i64 = on_tx!(tx, |conn| {
        sqlx::query_scalar("UPDATE scim_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq")
            .fetch_one(&mut *conn)
            .await
    })?;
    Ok(seq)
}

/// The number of the last committed write.
pub async fn current_seq(store: &Store) -> Result<i64, StoreError> {
    let seq: i64 = on_db!(store.db(), |pool| {
        sqlx::query_scalar("SELECT seq FROM scim_counter WHERE id = 1")
            .fetch_one(pool)
            .await
    })?;
    Ok(seq)
}

pub async fn get(store: &Store, kind: Kind, id: &str) -> Result<Option<Row>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM {} WHERE id = $1", table(kind));
    let raw: Option<RawRow> = on_db!(store.db(), |pool| {
        sqlx::query_as(safe(&sql))
            .bind(id)
            .fetch_optional(pool)
            .await
    })?;
    raw.map(row).transpose()
}

pub async fn get_in(tx: &mut Tx, kind: Kind, id: &str) -> Result<Option<Row>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM {} WHERE id = $1", table(kind));
    let raw: Option<RawRow> = on_tx!(tx, |conn| {
        sqlx::query_as(safe(&sql))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
    })?;
    raw.map(row).transpose()
}

/// A column a list may be narrowed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Narrow<'a> {
    Id(&'a str),
    /// `userName` / `displayName`, compared without regard to case.
    Name(&'a str),
    ExternalId(&'a str),
}

/// Every resource of a kind (or those a narrowing names), oldest first.
pub async fn list(
    store: &Store,
    kind: Kind,
    narrow: Option<Narrow<'_>>,
) -> Result<Vec<Row>, StoreError> {
    let (condition, value) = match narrow {
        None => (String::new(), String::new()),
        Some(Narrow::Id(v)) => (" WHERE id = $1".to_string(), v.to_string()),
        Some(Narrow::Name(v)) => (
            format!(" WHERE {} = $1", name_column(kind)),
            v.to_lowercase(),
        ),
        Some(Narrow::ExternalId(v)) => (" WHERE external_id = $1".to_string(), v.to_string()),
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM {}{condition} ORDER BY created_at, id",
        table(kind)
    );
    let raw: Vec<RawRow> = on_db!(store.db(), |pool| {
        let query = sqlx::query_as(safe(&sql));
        let query = if narrow.is_some() {
            query.bind(&value)
        } else {
            query
        };
        query.fetch_all(pool).await
    })?;
    rows(raw)
}

/// The id of the resource whose name (or person id) is taken, other than `except`.
pub async fn taken(
    tx: &mut Tx,
    kind: Kind,
    keys: &Keys,
    except: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let except = except.unwrap_or("");
    let by_name = format!(
        "SELECT id FROM {} WHERE {} = $1 AND id <> $2",
        table(kind),
        name_column(kind)
    );
    // Groups may share a name (RFC 7643 asks no uniqueness of displayName).
    if kind == Kind::User {
        let found: Option<String> = on_tx!(tx, |conn| {
            sqlx::query_scalar(safe(&by_name))
                .bind(&keys.name)
                .bind(except)
                .fetch_optional(&mut *conn)
                .await
        })?;
        if found.is_some() {
            return Ok(Some("userName".into()));
        }
    }
    if let Some(person) = &keys.person_id {
        let found: Option<String> = on_tx!(tx, |conn| {
            sqlx::query_scalar("SELECT id FROM scim_users WHERE person_id = $1 AND id <> $2")
                .bind(person)
                .bind(except)
                .fetch_optional(&mut *conn)
                .await
        })?;
        if found.is_some() {
            return Ok(Some("the person id".into()));
        }
    }
    Ok(None)
}

/// Writes a resource (new or replaced) at version `seq`.
pub async fn put(
    tx: &mut Tx,
    kind: Kind,
    id: &str,
    keys: &Keys,
    resource: &Value,
    seq: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let person = match kind {
        Kind::User => ", person_id",
        Kind::Group => "",
    };
    let (person_value, person_set) = match kind {
        Kind::User => (", $7", ", person_id = excluded.person_id"),
        Kind::Group => ("", ""),
    };
    let sql = format!(
        "INSERT INTO {table} (id, {name}, external_id, resource, version, created_at, updated_at{person}) \
         VALUES ($1, $2, $3, $4, $5, $6, $6{person_value}) \
         ON CONFLICT (id) DO UPDATE SET {name} = excluded.{name}, external_id = excluded.external_id, \
         resource = excluded.resource, version = excluded.version, updated_at = excluded.updated_at{person_set}",
        table = table(kind),
        name = name_column(kind),
    );
    let resource = resource.to_string();
    on_tx!(tx, |conn| {
        let query = sqlx::query(safe(&sql))
            .bind(id)
            .bind(&keys.name)
            .bind(&keys.external_id)
            .bind(&resource)
            .bind(seq)
            .bind(now);
        let query = if kind == Kind::User {
            query.bind(&keys.person_id)
        } else {
            query
        };
        query.execute(&mut *conn).await.map(|_| ())
    })?;
    Ok(())
}

/// The person id stored with a user.
pub async fn person_of(tx: &mut Tx, id: &str) -> Result<Option<String>, StoreError> {
    let found: Option<Option<String>> = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT person_id FROM scim_users WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
    })?;
    Ok(found.flatten())
}

pub async fn delete(tx: &mut Tx, kind: Kind, id: &str) -> Result<bool, StoreError> {
    let sql = format!("DELETE FROM {} WHERE id = $1", table(kind));
    let deleted = on_tx!(tx, |conn| {
        sqlx::query(safe(&sql))
            .bind(id)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(deleted > 0)
}

/// Groups that may list `member` (a text match; the caller checks each).
pub async fn groups_naming(tx: &mut Tx, member: &str) -> Result<Vec<Row>, StoreError> {
    let pattern = format!("%\"{}\"%", member.replace(['%', '_', '\\'], ""));
    let raw: Vec<RawRow> = on_tx!(tx, |conn| {
        sqlx::query_as(safe(&format!(
            "SELECT {COLUMNS} FROM scim_groups WHERE resource LIKE $1 ORDER BY id"
        )))
        .bind(&pattern)
        .fetch_all(&mut *conn)
        .await
    })?;
    rows(raw)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneKind {
    Person,
    Group,
}

impl GoneKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Person => "person",
            Self::Group => "group",
        }
    }
}

/// The chart drops `key` (a person id or group id) as of write `seq`.
pub async fn record_gone(
    tx: &mut Tx,
    seq: i64,
    kind: GoneKind,
    key: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query("INSERT INTO scim_gone (seq, kind, key, at) VALUES ($1, $2, $3, $4)")
            .bind(seq)
            .bind(kind.as_str())
            .bind(key)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// A page of every resource of a kind, by id after `after`.
pub async fn page(
    store: &Store,
    kind: Kind,
    after: &str,
    limit: i64,
) -> Result<Vec<Row>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {} WHERE id > $1 ORDER BY id LIMIT $2",
        table(kind)
    );
    let raw: Vec<RawRow> = on_db!(store.db(), |pool| {
        sqlx::query_as(safe(&sql))
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await
    })?;
    rows(raw)
}

/// What changed in writes `from` (exclusive) to `upto` (inclusive).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changed {
    pub users: Vec<Row>,
    pub groups: Vec<Row>,
    /// (write, kind, key), in write order.
    pub gone: Vec<(i64, GoneKind, String)>,
}

pub async fn changed(store: &Store, from: i64, upto: i64) -> Result<Changed, StoreError> {
    let of = |kind: Kind| {
        format!(
            "SELECT {COLUMNS} FROM {} WHERE version > $1 AND version <= $2 ORDER BY version",
            table(kind)
        )
    };
    let (users, groups) = (of(Kind::User), of(Kind::Group));
    type GoneRow = (i64, String, String);
    let (users, groups, gone): (Vec<RawRow>, Vec<RawRow>, Vec<GoneRow>) =
        on_db!(store.db(), |pool| {
            let users = sqlx::query_as(safe(&users))
                .bind(from)
                .bind(upto)
                .fetch_all(pool)
                .await?;
            let groups = sqlx::query_as(safe(&groups))
                .bind(from)
                .bind(upto)
                .fetch_all(pool)
                .await?;
            let gone = sqlx::query_as(
                "SELECT seq, kind, key FROM scim_gone WHERE seq > $1 AND seq <= $2 ORDER BY seq",
            )
            .bind(from)
            .bind(upto)
            .fetch_all(pool)
            .await?;
            Ok::<_, sqlx::Error>((users, groups, gone))
        })?;
    Ok(Changed {
        users: rows(users)?,
        groups: rows(groups)?,
        gone: gone
            .into_iter()
            .map(|(seq, kind, key)| {
                let kind = if kind == "group" {
                    GoneKind::Group
                } else {
                    GoneKind::Person
                };
                (seq, kind, key)
            })
            .collect(),
    })
}

/// Every user's lookup columns: (id, person id, userName, externalId), for resolving managers
/// and group members to person ids.
pub async fn user_keys(
    store: &Store,
) -> Result<Vec<(String, Option<String>, String, Option<String>)>, StoreError> {
    let keys = on_db!(store.db(), |pool| {
        sqlx::query_as("SELECT id, person_id, user_name, external_id FROM scim_users")
            .fetch_all(pool)
            .await
    })?;
    Ok(keys)
}

/// A bearer token an identity provider pushes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    pub name: String,
    /// Sealed with the context [`token_context`].
    pub sealed: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_pushed_at: Option<DateTime<Utc>>,
}

pub fn token_context(id: &str) -> String {
    format!("scim_token:{id}")
}

pub async fn add_token(tx: &mut Tx, token: &Token) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query("INSERT INTO scim_tokens (id, name, token, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&token.id)
            .bind(&token.name)
            .bind(&token.sealed)
            .bind(token.created_at)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

type TokenRow = (
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// Every token, newest first; `active_only` leaves out revoked ones.
pub async fn tokens(store: &Store, active_only: bool) -> Result<Vec<Token>, StoreError> {
    let sql = format!(
        "SELECT id, name, token, created_at, revoked_at, last_pushed_at FROM scim_tokens{} \
         ORDER BY created_at DESC, id",
        if active_only {
            " WHERE revoked_at IS NULL"
        } else {
            ""
        }
    );
    let raw: Vec<TokenRow> = on_db!(store.db(), |pool| sqlx::query_as(safe(&sql))
        .fetch_all(pool)
        .await)?;
    Ok(raw
        .into_iter()
        .map(
            |(id, name, sealed, created_at, revoked_at, last_pushed_at)| Token {
                id,
                name,
                sealed,
                created_at,
                revoked_at,
                last_pushed_at,
            },
        )
        .collect())
}

/// Revokes a token; `false` when there is no such active token.
pub async fn revoke_token(tx: &mut Tx, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let done = on_tx!(tx, |conn| {
        sqlx::query("UPDATE scim_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(done > 0)
}

pub async fn token_pushed(tx: &mut Tx, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query("UPDATE scim_tokens SET last_pushed_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    })?;
    Ok(())
}
