//! Access the inactive-account policy found unused too long, one case per account, product and
//! day last used, and what became of it: told (to end), under review, kept, ended, or cleared
//! (used again before it ended).

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::{Store, StoreError, Tx};
use crate::ids::{AccountId, Email, PersonId};
use crate::{on_db, on_tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseState {
    /// Recorded by a scan; its run is queued.
    Found,
    /// `action: end`: the person is told; it ends at `ends_at` unless used again.
    Noticed,
    /// `action: review`: pending with the manager in the lifecycle ticket.
    Reviewing,
    /// The manager kept it (or nobody could be asked).
    Kept,
    /// Declined, undecided, or past its notice: being removed.
    Ending,
    Ended,
    /// Used again before it ended.
    Cleared,
}

impl CaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Found => "found",
            Self::Noticed => "noticed",
            Self::Reviewing => "reviewing",
            Self::Kept => "kept",
            Self::Ending => "ending",
            Self::Ended => "ended",
            Self::Cleared => "cleared",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "found" => Self::Found,
            "noticed" => Self::Noticed,
            "reviewing" => Self::Reviewing,
            "kept" => Self::Kept,
            "ending" => Self::Ending,
            "ended" => Self::Ended,
            "cleared" => Self::Cleared,
            _ => return None,
        })
    }

    /// Still open: using the product again clears it.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Found | Self::Noticed | Self::Reviewing)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub id: Uuid,
    pub person: PersonId,
    pub email: Email,
    pub name: String,
    pub account: AccountId,
    pub product: String,
    /// The day the product was last used.
    pub since: NaiveDate,
    /// `review` or `end`, as the rule said when it was found.
    pub action: String,
    pub state: CaseState,
    pub ends_at: Option<DateTime<Utc>>,
    pub run_id: Option<Uuid>,
    pub request_id: Option<Uuid>,
    pub outcome: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    person: String,
    email: String,
    name: String,
    account: String,
    product: String,
    since: String,
    action: String,
    state: String,
    ends_at: Option<DateTime<Utc>>,
    run_id: Option<String>,
    request_id: Option<String>,
    outcome: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, person, email, name, account, product, since, action, state, \
    ends_at, run_id, request_id, outcome, created_at, updated_at";

impl TryFrom<Row> for Case {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        let bad = |what: String| StoreError::corrupt(format!("inactive case {}: {what}", r.id));
        let uuid = |text: &Option<String>| {
            text.as_deref()
                .map(Uuid::parse_str)
                .transpose()
                .map_err(|e| bad(e.to_string()))
        };
        Ok(Case {
            id: Uuid::parse_str(&r.id).map_err(|e| bad(e.to_string()))?,
            person: PersonId(r.person.clone()),
            email: Email::parse(&r.email).map_err(&bad)?,
            name: r.name.clone(),
            account: AccountId(r.account.clone()),
            product: r.product.clone(),
            since: r
                .since
                .parse()
                .map_err(|e| bad(format!("day `{}`: {e}", r.since)))?,
            action: r.action.clone(),
            state: CaseState::parse(&r.state).ok_or_else(|| bad(format!("state `{}`", r.state)))?,
            ends_at: r.ends_at,
            run_id: uuid(&r.run_id)?,
            request_id: uuid(&r.request_id)?,
            outcome: r.outcome.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Stores a new case (state `found`, of `run`); `false` when the account, product and day
/// already have one.
pub async fn insert(tx: &mut Tx, case: &Case) -> Result<bool, StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO inactive_cases (id, person, email, name, account, product, since, \
             action, state, run_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
             ON CONFLICT (account, product, since) DO NOTHING",
        )
        .bind(case.id.to_string())
        .bind(case.person.0.as_str())
        .bind(case.email.as_str())
        .bind(&case.name)
        .bind(case.account.0.as_str())
        .bind(&case.product)
        .bind(case.since.to_string())
        .bind(&case.action)
        .bind(case.state.as_str())
        .bind(case.run_id.map(|id| id.to_string()))
        .bind(case.created_at)
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected() == 1)
    })
    .map_err(StoreError::from)
}

async fn select(store: &Store, condition: &str, binds: &[&str]) -> Result<Vec<Case>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM inactive_cases WHERE {condition}");
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
        for b in binds {
            query = query.bind(*b);
        }
        query.fetch_all(pool).await
    })?;
    rows.into_iter().map(Case::try_from).collect()
}

pub async fn get(store: &Store, id: Uuid) -> Result<Option<Case>, StoreError> {
    Ok(select(store, "id = $1", &[&id.to_string()]).await?.pop())
}

/// The cases a run was recorded for.
pub async fn of_run(store: &Store, run: Uuid) -> Result<Vec<Case>, StoreError> {
    select(
        store,
        "run_id = $1 ORDER BY product, id",
        &[&run.to_string()],
    )
    .await
}

/// The case a review request decides, read in the deciding transaction.
pub async fn of_request_in(tx: &mut Tx, request: Uuid) -> Result<Option<Case>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM inactive_cases WHERE request_id = $1");
    let row: Option<Row> = on_tx!(tx, |conn| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(request.to_string())
            .fetch_optional(&mut *conn)
            .await
    })?;
    row.map(Case::try_from).transpose()
}

/// An account's open cases (found, noticed, reviewing).
pub async fn open_of(store: &Store, account: &AccountId) -> Result<Vec<Case>, StoreError> {
    select(
        store,
        "account = $1 AND state IN ('found', 'noticed', 'reviewing') ORDER BY product, id",
        &[account.0.as_str()],
    )
    .await
}

/// Every case, newest first (for `tollgate report inactive`).
pub async fn all(store: &Store) -> Result<Vec<Case>, StoreError> {
    select(store, "1 = 1 ORDER BY created_at DESC, id DESC", &[]).await
}

/// Moves case `id` from one of `from` to `to` (with what was done, when it ends, which request
/// decides it); `false` when it was in none of them (moved on meanwhile).
pub async fn set(
    tx: &mut Tx,
    id: Uuid,
    from: &[CaseState],
    to: CaseState,
    change: Change<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let states = from
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE inactive_cases SET state = $2, updated_at = $3, \
         outcome = COALESCE($4, outcome), ends_at = COALESCE($5, ends_at), \
         request_id = COALESCE($6, request_id) WHERE id = $1 AND state IN ({states})"
    );
    on_tx!(tx, |conn| {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(id.to_string())
            .bind(to.as_str())
            .bind(now)
            .bind(change.outcome)
            .bind(change.ends_at)
            .bind(change.request.map(|r| r.to_string()))
            .execute(&mut *conn)
            .await
            .map(|done| done.rows_affected() == 1)
    })
    .map_err(StoreError::from)
}

/// What a state change records besides the state.
#[derive(Debug, Default, Clone, Copy)]
pub struct Change<'a> {
    pub outcome: Option<&'a str>,
    pub ends_at: Option<DateTime<Utc>>,
    pub request: Option<Uuid>,
}
