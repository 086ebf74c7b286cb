//! Access requests and their decisions. Every change goes through [`update`], a compare-and-set
//! on `version`, inside a transaction that also appends the audit event.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, Tx};
use crate::ids::{AccountId, Email, PersonId, ResourceId, TenantKey, TicketKey};
pub use crate::lifecycle::Request;
use crate::lifecycle::{EndCause, State, Verdict};
use crate::{on_db, on_tx};

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    tenant: String,
    ticket_key: String,
    issue_id: String,
    state: String,
    stage: i64,
    requester_account: String,
    requester_email: Option<String>,
    subject_email: Option<String>,
    subject_person: Option<String>,
    resource: Option<String>,
    level: Option<String>,
    duration_seconds: Option<i64>,
    justification: String,
    workflow: Option<String>,
    workflow_version: Option<String>,
    routing: Option<String>,
    reason: Option<String>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    stage_started_at: Option<DateTime<Utc>>,
    parent_id: Option<String>,
    subject_account: Option<String>,
    granted_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    end_cause: Option<String>,
    partial: bool,
    run_id: Option<String>,
}

pub(crate) const COLUMNS: &str = "id, tenant, ticket_key, issue_id, state, stage, \
    requester_account, requester_email, subject_email, resource, level, duration_seconds, \
    justification, workflow, workflow_version, routing, reason, version, created_at, updated_at, \
    stage_started_at, parent_id, subject_account, granted_at, expires_at, ended_at, end_cause, \
    partial, subject_person, run_id";

impl TryFrom<Row> for Request {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        let (tenant, ticket_key) = super::stored_ticket(&r.tenant, &r.ticket_key)?;
        Ok(Request {
            id: Uuid::parse_str(&r.id)
                .map_err(|e| StoreError::corrupt(format!("request id {}: {e}", r.id)))?,
            state: State::parse(&r.state).ok_or_else(|| {
                StoreError::corrupt(format!("request {}: state `{}`", r.id, r.state))
            })?,
            plan: match &r.routing {
                Some(text) => {
                    Some(serde_json::from_str(text).map_err(|e| {
                        StoreError::corrupt(format!("request {} routing: {e}", r.id))
                    })?)
                }
                None => None,
            },
            parent_id: r
                .parent_id
                .as_deref()
                .map(Uuid::parse_str)
                .transpose()
                .map_err(|e| StoreError::corrupt(format!("request {} parent: {e}", r.id)))?,
            end_cause: match &r.end_cause {
                Some(text) => Some(EndCause::parse(text).ok_or_else(|| {
                    StoreError::corrupt(format!("request {}: end cause `{text}`", r.id))
                })?),
                None => None,
            },
            run_id: r
                .run_id
                .as_deref()
                .map(Uuid::parse_str)
                .transpose()
                .map_err(|e| StoreError::corrupt(format!("request {} run: {e}", r.id)))?,
            subject_account: r.subject_account.map(AccountId),
            granted_at: r.granted_at,
            expires_at: r.expires_at,
            ended_at: r.ended_at,
            partial: r.partial,
            tenant,
            ticket_key,
            issue_id: r.issue_id,
            stage: r.stage,
            requester_account: AccountId(r.requester_account),
            requester_email: stored_email(r.requester_email, r.id.as_str())?,
            subject_email: stored_email(r.subject_email, r.id.as_str())?,
            subject_person: r.subject_person.map(PersonId),
            resource: r.resource.map(ResourceId),
            level: r.level,
            duration_seconds: r.duration_seconds,
            justification: r.justification,
            workflow: r.workflow,
            workflow_version: r.workflow_version,
            reason: r.reason,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            stage_started_at: r.stage_started_at,
        })
    }
}

/// An email as stored: one that does not parse was not written by Tollgate.
fn stored_email(text: Option<String>, id: &str) -> Result<Option<Email>, StoreError> {
    text.map(|t| Email::parse(&t))
        .transpose()
        .map_err(|e| StoreError::corrupt(format!("request {id}: {e}")))
}

fn routing_json(request: &Request) -> Result<Option<String>, StoreError> {
    request
        .plan
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::corrupt(format!("routing: {e}")))
}

/// Inserts a new request; `false` when the ticket already has one (or, for a birthright grant,
/// when its run already made that resource and level).
pub async fn insert(tx: &mut Tx, r: &Request) -> Result<bool, StoreError> {
    let routing = routing_json(r)?;
    let inserted = on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO requests (id, tenant, ticket_key, issue_id, state, stage, requester_account, \
             requester_email, subject_email, resource, level, duration_seconds, justification, \
             workflow, workflow_version, routing, reason, version, created_at, updated_at, \
             stage_started_at, parent_id, subject_account, subject_person, run_id) VALUES ($1, $2, $3, \
             $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
             $22, $23, $24, $25) ON CONFLICT DO NOTHING",
        )
        .bind(r.id.to_string())
        .bind(r.tenant.as_str())
        .bind(r.ticket_key.as_str())
        .bind(&r.issue_id)
        .bind(r.state.as_str())
        .bind(r.stage)
        .bind(r.requester_account.as_str())
        .bind(r.requester_email.as_deref())
        .bind(r.subject_email.as_deref())
        .bind(r.resource.as_deref())
        .bind(&r.level)
        .bind(r.duration_seconds)
        .bind(&r.justification)
        .bind(&r.workflow)
        .bind(&r.workflow_version)
        .bind(&routing)
        .bind(&r.reason)
        .bind(r.version)
        .bind(r.created_at)
        .bind(r.updated_at)
        .bind(r.stage_started_at)
        .bind(r.parent_id.map(|p| p.to_string()))
        .bind(r.subject_account.as_deref())
        .bind(r.subject_person.as_ref().map(|p| p.0.as_str()))
        .bind(r.run_id.map(|id| id.to_string()))
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected() == 1)
    })?;
    Ok(inserted)
}

pub async fn by_ticket(
    store: &Store,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
) -> Result<Option<Request>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM requests WHERE tenant = $1 AND ticket_key = $2 AND parent_id IS NULL \
         AND run_id IS NULL"
    );
    let row: Option<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(tenant.as_str())
            .bind(ticket_key.as_str())
            .fetch_optional(pool)
            .await
    })?;
    row.map(Request::try_from).transpose()
}

/// Every pending request (for re-resolving open stages after the org chart changed).
pub async fn pending(store: &Store) -> Result<Vec<Request>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM requests WHERE state = '{}' ORDER BY created_at",
        State::Pending
    );
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_all(pool)
            .await
    })?;
    rows.into_iter().map(Request::try_from).collect()
}

/// The first request matching `condition` (binds `$1`, `$2`… in order), its row locked until
/// the transaction ends (the first lock of the documented order: request row, then audit
/// chain head).
async fn lock_where(
    tx: &mut Tx,
    condition: &str,
    binds: &[&str],
) -> Result<Option<Request>, StoreError> {
    let row: Option<Row> = match tx {
        Tx::Postgres(tx) => {
            let sql = format!("SELECT {COLUMNS} FROM requests WHERE {condition} FOR UPDATE");
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for b in binds {
                query = query.bind(*b);
            }
            query.fetch_optional(&mut **tx).await?
        }
        Tx::Sqlite(tx) => {
            // SQLite's write transaction already holds the database.
            let sql = format!("SELECT {COLUMNS} FROM requests WHERE {condition}");
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for b in binds {
                query = query.bind(*b);
            }
            query.fetch_optional(&mut **tx).await?
        }
    };
    row.map(Request::try_from).transpose()
}

/// The ticket's request (not an extension of it), locked.
pub async fn lock(
    tx: &mut Tx,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
) -> Result<Option<Request>, StoreError> {
    lock_where(
        tx,
        "tenant = $1 AND ticket_key = $2 AND parent_id IS NULL AND run_id IS NULL",
        &[tenant.as_str(), ticket_key.as_str()],
    )
    .await
}

/// The request a decision in the ticket is about, locked: an extension waiting for approval,
/// else the ticket's request.
pub async fn lock_deciding(
    tx: &mut Tx,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
) -> Result<Option<Request>, StoreError> {
    let pending = State::Pending;
    lock_where(
        tx,
        &format!(
            "tenant = $1 AND ticket_key = $2 AND run_id IS NULL \
             AND (parent_id IS NULL OR state = '{pending}') \
             ORDER BY CASE WHEN parent_id IS NULL THEN 1 ELSE 0 END, created_at DESC LIMIT 1"
        ),
        &[tenant.as_str(), ticket_key.as_str()],
    )
    .await
}

/// The requests of lifecycle runs waiting for a decision in the ticket (a lifecycle ticket
/// carries several), oldest first.
pub async fn pending_of_runs(
    store: &Store,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
) -> Result<Vec<Request>, StoreError> {
    let condition = format!(
        "tenant = $1 AND ticket_key = $2 AND run_id IS NOT NULL AND state = '{}' \
         ORDER BY created_at, id",
        State::Pending
    );
    select(store, &condition, &[tenant.as_str(), ticket_key.as_str()]).await
}

pub async fn lock_id(tx: &mut Tx, id: Uuid) -> Result<Option<Request>, StoreError> {
    lock_where(tx, "id = $1", &[&id.to_string()]).await
}

async fn select(
    store: &Store,
    condition: &str,
    binds: &[&str],
) -> Result<Vec<Request>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM requests WHERE {condition}");
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
        for b in binds {
            query = query.bind(*b);
        }
        query.fetch_all(pool).await
    })?;
    rows.into_iter().map(Request::try_from).collect()
}

pub async fn get(store: &Store, id: Uuid) -> Result<Option<Request>, StoreError> {
    Ok(select(store, "id = $1", &[&id.to_string()]).await?.pop())
}

/// The grants of `person` (requested or birthright) that their leaving ends: held still, or
/// already ended as a leaver's, oldest first.
pub async fn ended_by_leaving(
    store: &Store,
    person: &PersonId,
) -> Result<Vec<Request>, StoreError> {
    let states = State::sql_list(State::holds_access);
    let leaver = EndCause::Leaver.as_str();
    select(
        store,
        &format!(
            "subject_person = $1 AND (state IN ({states}) OR end_cause = '{leaver}') \
             ORDER BY created_at, id"
        ),
        &[person.0.as_str()],
    )
    .await
}

/// The birthright grants made for `person` by any lifecycle run (not its reviews), oldest
/// first.
pub async fn birthright_of(store: &Store, person: &PersonId) -> Result<Vec<Request>, StoreError> {
    select(
        store,
        "subject_person = $1 AND run_id IS NOT NULL AND parent_id IS NULL \
         ORDER BY created_at, id",
        &[person.0.as_str()],
    )
    .await
}

/// Every birthright grant not over yet, oldest first (for the dry run).
pub async fn birthright_open(store: &Store) -> Result<Vec<Request>, StoreError> {
    let over = State::sql_list(State::is_final);
    select(
        store,
        &format!(
            "run_id IS NOT NULL AND parent_id IS NULL AND state NOT IN ({over}) \
             ORDER BY created_at, id"
        ),
        &[],
    )
    .await
}

/// Active grants people asked for (not birthright, not extensions) of any of `resources`,
/// of `person` when given, oldest first: access that a move sends to review.
pub async fn requested_active(
    store: &Store,
    resources: &[ResourceId],
    person: Option<&PersonId>,
) -> Result<Vec<Request>, StoreError> {
    if resources.is_empty() {
        return Ok(Vec::new());
    }
    let mut binds: Vec<&str> = resources.iter().map(|r| r.0.as_str()).collect();
    let list = (1..=binds.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut condition = format!(
        "state = '{}' AND run_id IS NULL AND parent_id IS NULL AND resource IN ({list})",
        State::Active
    );
    if let Some(person) = person {
        binds.push(person.0.as_str());
        condition.push_str(&format!(" AND subject_person = ${}", binds.len()));
    }
    condition.push_str(" ORDER BY created_at, id");
    select(store, &condition, &binds).await
}

/// The grants `person` holds now (requested or birthright; not extensions or reviews), oldest
/// first.
pub async fn held_by(store: &Store, person: &PersonId) -> Result<Vec<Request>, StoreError> {
    let states = State::sql_list(State::holds_access);
    select(
        store,
        &format!(
            "subject_person = $1 AND parent_id IS NULL AND state IN ({states}) \
             ORDER BY created_at, id"
        ),
        &[person.0.as_str()],
    )
    .await
}

/// The birthright grants one lifecycle run made, oldest first.
pub async fn of_run(store: &Store, run: Uuid) -> Result<Vec<Request>, StoreError> {
    select(
        store,
        "run_id = $1 ORDER BY created_at, id",
        &[&run.to_string()],
    )
    .await
}

/// The extensions asked for on a grant, oldest first.
pub async fn children(store: &Store, parent: Uuid) -> Result<Vec<Request>, StoreError> {
    select(
        store,
        "parent_id = $1 ORDER BY created_at",
        &[&parent.to_string()],
    )
    .await
}

/// One page of the requests in `state`, by id after `after`: sweeps over every active grant
/// read them a page at a time, not all at once.
pub async fn page_in_state(
    store: &Store,
    state: State,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Request>, StoreError> {
    let after = after.map(|a| a.to_string()).unwrap_or_default();
    let sql =
        format!("SELECT {COLUMNS} FROM requests WHERE state = $1 AND id > $2 ORDER BY id LIMIT $3");
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(state.as_str())
            .bind(&after)
            .bind(limit)
            .fetch_all(pool)
            .await
    })?;
    rows.into_iter().map(Request::try_from).collect()
}

/// Requests in the states `pick` chooses, oldest first.
pub async fn in_states(
    store: &Store,
    pick: impl Fn(State) -> bool,
) -> Result<Vec<Request>, StoreError> {
    let list = State::sql_list(pick);
    select(
        store,
        &format!("state IN ({list}) ORDER BY created_at"),
        &[],
    )
    .await
}

/// Active grants whose expiry is at or before `until` (overdue ones included), soonest first.
pub async fn active_expiring_by(
    store: &Store,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Request>, StoreError> {
    let active = State::Active;
    let sql = format!(
        "SELECT {COLUMNS} FROM requests WHERE state = '{active}' AND expires_at IS NOT NULL \
         AND expires_at <= $1 ORDER BY expires_at, id LIMIT $2"
    );
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(until)
            .bind(limit)
            .fetch_all(pool)
            .await
    })?;
    rows.into_iter().map(Request::try_from).collect()
}

/// Active grants expiring in `(after, until]`.
pub async fn active_expiring_between(
    store: &Store,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Request>, StoreError> {
    let active = State::Active;
    let sql = format!(
        "SELECT {COLUMNS} FROM requests WHERE state = '{active}' AND expires_at > $1 \
         AND expires_at <= $2 ORDER BY expires_at"
    );
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(after)
            .bind(until)
            .fetch_all(pool)
            .await
    })?;
    rows.into_iter().map(Request::try_from).collect()
}

/// Writes the changed request if nobody changed it since it was read (`version` compared and
/// bumped); `false` when someone did, and nothing was written.
pub async fn update(tx: &mut Tx, r: &Request) -> Result<bool, StoreError> {
    let routing = routing_json(r)?;
    let updated = on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE requests SET state = $1, stage = $2, requester_email = $3, subject_email = $4, \
             resource = $5, level = $6, duration_seconds = $7, justification = $8, workflow = $9, \
             workflow_version = $10, routing = $11, reason = $12, updated_at = $13, \
             stage_started_at = $14, subject_account = $15, granted_at = $16, expires_at = $17, \
             ended_at = $18, end_cause = $19, partial = $20, subject_person = $21, \
             version = version + 1 WHERE id = $22 AND version = $23",
        )
        .bind(r.state.as_str())
        .bind(r.stage)
        .bind(r.requester_email.as_deref())
        .bind(r.subject_email.as_deref())
        .bind(r.resource.as_deref())
        .bind(&r.level)
        .bind(r.duration_seconds)
        .bind(&r.justification)
        .bind(&r.workflow)
        .bind(&r.workflow_version)
        .bind(&routing)
        .bind(&r.reason)
        .bind(r.updated_at)
        .bind(r.stage_started_at)
        .bind(r.subject_account.as_deref())
        .bind(r.granted_at)
        .bind(r.expires_at)
        .bind(r.ended_at)
        .bind(r.end_cause.map(EndCause::as_str))
        .bind(r.partial)
        .bind(r.subject_person.as_ref().map(|p| p.0.as_str()))
        .bind(r.id.to_string())
        .bind(r.version)
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected() == 1)
    })?;
    Ok(updated)
}

/// The person `person` now has the email `email` (a rename in the IdP): every request for them
/// that is not over shows it. Returns the tickets changed, as `(tenant, ticket)`.
pub async fn rename_person(
    tx: &mut Tx,
    person: &PersonId,
    email: &Email,
) -> Result<Vec<(TenantKey, TicketKey)>, StoreError> {
    // Ended requests keep the email they were decided and granted under.
    let over = State::sql_list(State::is_final);
    let mut changed = Vec::new();
    for column in ["subject_email", "requester_email"] {
        // The person is the subject when one is named, else the requester.
        let which = if column == "subject_email" {
            "subject_email IS NOT NULL"
        } else {
            "subject_email IS NULL"
        };
        let sql = format!(
            "UPDATE requests SET {column} = $1, version = version + 1 \
             WHERE subject_person = $2 AND {which} AND state NOT IN ({over}) \
             AND ({column} IS NULL OR {column} <> $1) RETURNING tenant, ticket_key"
        );
        let rows: Vec<(String, String)> = on_tx!(tx, |conn| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(email.as_str())
                .bind(&person.0)
                .fetch_all(&mut *conn)
                .await
        })?;
        for (tenant, ticket) in rows {
            changed.push(super::stored_ticket(&tenant, &ticket)?);
        }
    }
    changed.sort();
    changed.dedup();
    Ok(changed)
}

/// Accounts that decided stage `stage`.
pub async fn decided(tx: &mut Tx, request: Uuid, stage: i64) -> Result<Vec<AccountId>, StoreError> {
    let rows: Vec<(String,)> = on_tx!(tx, |conn| {
        sqlx::query_as(
            "SELECT approver_account FROM decisions WHERE request_id = $1 AND stage = $2",
        )
        .bind(request.to_string())
        .bind(stage)
        .fetch_all(&mut *conn)
        .await
    })?;
    Ok(rows.into_iter().map(|r| AccountId(r.0)).collect())
}

/// Whether this answer (a comment, a JSM approval) was already counted for the request.
pub async fn answered(tx: &mut Tx, request: Uuid, answer: &str) -> Result<bool, StoreError> {
    let row: Option<(String,)> = on_tx!(tx, |conn| {
        sqlx::query_as(
            "SELECT approver_account FROM decisions WHERE request_id = $1 AND answer = $2 LIMIT 1",
        )
        .bind(request.to_string())
        .bind(answer)
        .fetch_optional(&mut *conn)
        .await
    })?;
    Ok(row.is_some())
}

#[allow(clippy::too_many_arguments)]
pub async fn record_decision(
    tx: &mut Tx,
    request: Uuid,
    stage: i64,
    account: &AccountId,
    // As the routing named the approver (see `Approver::email`).
    email: &str,
    verdict: Verdict,
    via: &str,
    answer: &str,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let inserted = on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO decisions (request_id, stage, approver_account, approver_email, verdict, \
             via, answer, reason, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (request_id, stage, approver_account) DO NOTHING",
        )
        .bind(request.to_string())
        .bind(stage)
        .bind(account.as_str())
        .bind(email)
        .bind(verdict.as_str())
        .bind(via)
        .bind(answer)
        .bind(reason)
        .bind(at)
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected() == 1)
    })?;
    Ok(inserted)
}
