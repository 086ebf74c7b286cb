//! A grant's steps: one row per target, with a status for granting and one for revoking.
//! A step is applied by whoever *claims* it (a compare-and-set that also leases it), so two
//! deliveries of the same job, on two replicas, never both call the vendor.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, Tx};
use crate::grants::plan::Step;
use crate::{on_db, on_tx};

/// Granting or revoking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Grant,
    Revoke,
}

impl Phase {
    fn status_column(self) -> &'static str {
        match self {
            Self::Grant => "grant_status",
            Self::Revoke => "revoke_status",
        }
    }

    fn change_column(self) -> &'static str {
        match self {
            Self::Grant => "granted_change",
            Self::Revoke => "revoked_change",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Revoke => "revoke",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Running,
    Done,
    Failed,
    /// Nothing to do in this phase (revoking a step that was never applied, or access that
    /// was in place before Tollgate granted it, or that another grant still holds).
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "skipped" => Self::Skipped,
            _ => return None,
        })
    }

    pub fn is_settled(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    pub request_id: Uuid,
    pub step: i64,
    pub plan: Step,
    pub grant_status: Status,
    pub revoke_status: Option<Status>,
    pub attempts: i64,
    /// `applied`, `already_in_place`, `pre_existing` (already there before Tollgate's first try).
    pub granted_change: Option<String>,
    pub revoked_change: Option<String>,
    pub error: Option<String>,
    pub drift_at: Option<DateTime<Utc>>,
}

impl StepRow {
    pub fn status(&self, phase: Phase) -> Option<Status> {
        match phase {
            Phase::Grant => Some(self.grant_status),
            Phase::Revoke => self.revoke_status,
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    request_id: String,
    step: i64,
    plan: String,
    grant_status: String,
    revoke_status: Option<String>,
    attempts: i64,
    granted_change: Option<String>,
    revoked_change: Option<String>,
    error: Option<String>,
    drift_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "request_id, step, plan, grant_status, revoke_status, attempts, \
    granted_change, revoked_change, error, drift_at";

fn corrupt(what: String) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(what.into()))
}

impl TryFrom<Row> for StepRow {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        let status = |text: &str| {
            Status::parse(text).ok_or_else(|| corrupt(format!("step status `{text}`")))
        };
        Ok(StepRow {
            request_id: Uuid::parse_str(&r.request_id)
                .map_err(|e| corrupt(format!("step request id: {e}")))?,
            step: r.step,
            plan: serde_json::from_str(&r.plan)
                .map_err(|e| corrupt(format!("step plan of {}: {e}", r.request_id)))?,
            grant_status: status(&r.grant_status)?,
            revoke_status: r.revoke_status.as_deref().map(status).transpose()?,
            attempts: r.attempts,
            granted_change: r.granted_change,
            revoked_change: r.revoked_change,
            error: r.error,
            drift_at: r.drift_at,
        })
    }
}

/// Stores the plan's steps, all pending.
pub async fn insert(
    tx: &mut Tx,
    request: Uuid,
    subject: &str,
    steps: &[Step],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for (i, step) in steps.iter().enumerate() {
        let plan = serde_json::to_string(step).map_err(|e| corrupt(format!("step plan: {e}")))?;
        on_tx!(tx, |conn| {
            sqlx::query(
                "INSERT INTO grant_steps (request_id, step, plan, target_key, subject, \
                 grant_status, attempts, updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6) \
                 ON CONFLICT (request_id, step) DO NOTHING",
            )
            .bind(request.to_string())
            .bind(i as i64)
            .bind(&plan)
            .bind(step.target_key())
            .bind(subject)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|done| done.rows_affected())
        })?;
    }
    Ok(())
}

pub async fn of_request(tx: &mut Tx, request: Uuid) -> Result<Vec<StepRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM grant_steps WHERE request_id = $1 ORDER BY step");
    let rows: Vec<Row> = on_tx!(tx, |conn| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(request.to_string())
            .fetch_all(&mut *conn)
            .await
    })?;
    rows.into_iter().map(StepRow::try_from).collect()
}

/// The steps of several requests at once (a sweep reads a page of grants in one query).
pub async fn of_requests(store: &Store, requests: &[Uuid]) -> Result<Vec<StepRow>, StoreError> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=requests.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM grant_steps WHERE request_id IN ({}) ORDER BY request_id, step",
        placeholders.join(", ")
    );
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
        for id in requests {
            query = query.bind(id.to_string());
        }
        query.fetch_all(pool).await
    })?;
    rows.into_iter().map(StepRow::try_from).collect()
}

pub async fn read(store: &Store, request: Uuid) -> Result<Vec<StepRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM grant_steps WHERE request_id = $1 ORDER BY step");
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(request.to_string())
            .fetch_all(pool)
            .await
    })?;
    rows.into_iter().map(StepRow::try_from).collect()
}

/// How a claim went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours; `retaken` when an earlier claim's lease ran out (its holder may have applied the
    /// change before it died).
    Taken { retaken: bool },
    /// Done, failed, leased by someone else, or this job's attempt is stale.
    NotOurs,
}

/// Claims step `step` of `request` for `phase` at `attempt`, leasing it until `lease_until`.
pub async fn claim(
    store: &Store,
    request: Uuid,
    step: i64,
    phase: Phase,
    attempt: i64,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Claim, StoreError> {
    let column = phase.status_column();
    let sql = format!(
        "UPDATE grant_steps SET {column} = 'running', leased_until = $1, updated_at = $2 \
         WHERE request_id = $3 AND step = $4 AND attempts = $5 AND ({column} = 'pending' \
         OR ({column} = 'running' AND leased_until < $2))"
    );
    // Whether an earlier claim held it is read first (it only informs `retaken`).
    let before = format!("SELECT {column} FROM grant_steps WHERE request_id = $1 AND step = $2");
    let prior: Option<(Option<String>,)> = on_db!(store.db(), |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(before.clone()))
            .bind(request.to_string())
            .bind(step)
            .fetch_optional(pool)
            .await
    })?;
    let retaken = matches!(prior, Some((Some(ref s),)) if s == "running");
    let updated = on_db!(store.db(), |pool| {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(lease_until)
            .bind(now)
            .bind(request.to_string())
            .bind(step)
            .bind(attempt)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
    })?;
    Ok(if updated == 1 {
        Claim::Taken { retaken }
    } else {
        Claim::NotOurs
    })
}

/// Records a phase's outcome for the step and releases its lease.
#[allow(clippy::too_many_arguments)]
pub async fn settle(
    tx: &mut Tx,
    request: Uuid,
    step: i64,
    phase: Phase,
    status: Status,
    change: Option<&str>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE grant_steps SET {} = $1, {} = COALESCE($2, {}), error = $3, leased_until = NULL, \
         updated_at = $4 WHERE request_id = $5 AND step = $6",
        phase.status_column(),
        phase.change_column(),
        phase.change_column()
    );
    on_tx!(tx, |conn| {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(status.as_str())
            .bind(change)
            .bind(error)
            .bind(now)
            .bind(request.to_string())
            .bind(step)
            .execute(&mut *conn)
            .await
            .map(|done| done.rows_affected())
    })?;
    Ok(())
}

/// Puts the step back to pending for another try, as attempt `attempts`.
pub async fn retry(
    tx: &mut Tx,
    request: Uuid,
    step: i64,
    phase: Phase,
    attempts: i64,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE grant_steps SET {} = 'pending', attempts = $1, error = $2, leased_until = NULL, \
         updated_at = $3 WHERE request_id = $4 AND step = $5",
        phase.status_column()
    );
    on_tx!(tx, |conn| {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(attempts)
            .bind(error)
            .bind(now)
            .bind(request.to_string())
            .bind(step)
            .execute(&mut *conn)
            .await
            .map(|done| done.rows_affected())
    })?;
    Ok(())
}

pub async fn mark_drift(
    tx: &mut Tx,
    request: Uuid,
    step: i64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE grant_steps SET drift_at = $1 WHERE request_id = $2 AND step = $3 \
             AND drift_at IS NULL",
        )
        .bind(at)
        .bind(request.to_string())
        .bind(step)
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected())
    })?;
    Ok(())
}

/// Another grant (not `except`) for the same person still holds this target: a revocation
/// must leave it in place. Returns that grant's ticket.
pub async fn held_elsewhere(
    store: &Store,
    target_key: &str,
    tenant: &str,
    subject_email: &str,
    except: Uuid,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT r.ticket_key FROM grant_steps s JOIN requests r ON r.id = s.request_id \
             WHERE s.subject = $3 AND s.target_key = $1 AND s.grant_status = 'done' \
             AND s.revoke_status IS NULL AND r.tenant = $2 AND r.id <> $4 \
             AND r.state IN ('active', 'provisioning') LIMIT 1",
        )
        .bind(target_key)
        .bind(tenant)
        .bind(subject_email)
        .bind(except.to_string())
        .fetch_optional(pool)
        .await
    })?;
    Ok(row.map(|r| r.0))
}

/// Steps of `phase` left pending or running since before `stale_before`: their job was lost
/// (deleted, or its worker died holding the lease).
pub async fn stalled(
    store: &Store,
    phase: Phase,
    stale_before: DateTime<Utc>,
) -> Result<Vec<StepRow>, StoreError> {
    let column = phase.status_column();
    let sql = format!(
        "SELECT {COLUMNS} FROM grant_steps WHERE {column} IN ('pending', 'running') \
         AND updated_at < $1 AND (leased_until IS NULL OR leased_until < $1) ORDER BY updated_at"
    );
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(stale_before)
            .fetch_all(pool)
            .await
    })?;
    rows.into_iter().map(StepRow::try_from).collect()
}

/// Makes a stalled step pending again under the next attempt, so a fresh job may claim it;
/// `false` when someone moved it meanwhile.
pub async fn bump(
    tx: &mut Tx,
    request: Uuid,
    step: i64,
    phase: Phase,
    attempts: i64,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let sql = format!(
        "UPDATE grant_steps SET {} = 'pending', attempts = attempts + 1, leased_until = NULL, \
         updated_at = $1 WHERE request_id = $2 AND step = $3 AND attempts = $4",
        phase.status_column()
    );
    let done = on_tx!(tx, |conn| {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(now)
            .bind(request.to_string())
            .bind(step)
            .bind(attempts)
            .execute(&mut *conn)
            .await
            .map(|done| done.rows_affected())
    })?;
    Ok(done == 1)
}

/// Starts (or restarts, after failures) revoking: steps that were applied become pending,
/// the others skipped; failed revocations are tried again. Returns the steps to run with
/// their attempt numbers.
pub async fn start_revoke(
    tx: &mut Tx,
    request: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<(i64, i64)>, StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE grant_steps SET revoke_status = CASE WHEN grant_status = 'done' \
             THEN 'pending' ELSE 'skipped' END, attempts = attempts + 1, error = NULL, \
             leased_until = NULL, updated_at = $1 WHERE request_id = $2 \
             AND (revoke_status IS NULL OR revoke_status = 'failed')",
        )
        .bind(now)
        .bind(request.to_string())
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected())
    })?;
    let rows: Vec<(i64, i64)> = on_tx!(tx, |conn| {
        sqlx::query_as(
            "SELECT step, attempts FROM grant_steps WHERE request_id = $1 \
             AND revoke_status = 'pending' ORDER BY step",
        )
        .bind(request.to_string())
        .fetch_all(&mut *conn)
        .await
    })?;
    Ok(rows)
}
