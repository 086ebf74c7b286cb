//! Identity lifecycle runs: one per person and event an org chart snapshot showed, with the
//! lifecycle ticket it opened and what became of it. A run's birthright grants are requests
//! carrying its id (`requests::of_run`).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, Tx};
use crate::ids::{Email, PersonId, TenantKey, TicketKey};
use crate::{on_db, on_tx};

/// What happened to the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEvent {
    /// Active in a snapshot, and not in the one applied before it.
    Joiner,
    /// Active in both, and due other birthright now.
    Mover,
    /// Gone from, or inactive in, a snapshot (once the leaver brake lets them go).
    Leaver,
    /// Atlassian access they have not used for longer than the inactive-account policy allows.
    Inactive,
}

impl RunEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Joiner => "joiner",
            Self::Mover => "mover",
            Self::Leaver => "leaver",
            Self::Inactive => "inactive",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "joiner" => Some(Self::Joiner),
            "mover" => Some(Self::Mover),
            "leaver" => Some(Self::Leaver),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Its job is queued (or running).
    Queued,
    /// Part of a wave the brake stopped: waits for `tollgate lifecycle release VERSION`.
    Held,
    /// Finished; `outcome` says how.
    Done,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Held => "held",
            Self::Done => "done",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "queued" => Self::Queued,
            "held" => Self::Held,
            "done" => Self::Done,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: Uuid,
    pub person: PersonId,
    pub email: Email,
    pub name: String,
    pub event: RunEvent,
    /// The org chart snapshot that showed the event.
    pub version: i64,
    pub state: RunState,
    /// The lifecycle ticket, once opened.
    pub ticket: Option<(TenantKey, TicketKey, String)>,
    /// When a ticket was first asked for (it may exist though its key was never stored).
    pub opening_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub created_at: DateTime<Utc>,
    /// A mover whose access that asks for review on a move goes to their manager.
    pub review: bool,
}

impl Run {
    /// A new run for `person`, queued or held.
    pub fn new(
        person: PersonId,
        email: Email,
        name: String,
        (event, state): (RunEvent, RunState),
        version: i64,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            person,
            email,
            name,
            event,
            version,
            state,
            ticket: None,
            opening_at: None,
            outcome: None,
            created_at: now,
            review: false,
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    person: String,
    email: String,
    name: String,
    event: String,
    version: i64,
    state: String,
    tenant: Option<String>,
    ticket_key: Option<String>,
    issue_id: Option<String>,
    opening_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
    created_at: DateTime<Utc>,
    review: bool,
}

const COLUMNS: &str = "id, person, email, name, event, version, state, tenant, ticket_key, \
    issue_id, opening_at, outcome, created_at, review";

impl TryFrom<Row> for Run {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::corrupt(format!("lifecycle run {}: {what}", r.id));
        let ticket = match (&r.tenant, &r.ticket_key, &r.issue_id) {
            (Some(tenant), Some(key), Some(issue)) => {
                let (tenant, key) = super::stored_ticket(tenant, key)?;
                Some((tenant, key, issue.clone()))
            }
            _ => None,
        };
        Ok(Run {
            id: Uuid::parse_str(&r.id).map_err(|e| bad(&e.to_string()))?,
            person: PersonId(r.person.clone()),
            email: Email::parse(&r.email).map_err(|e| bad(&e))?,
            name: r.name.clone(),
            event: RunEvent::parse(&r.event).ok_or_else(|| bad(&format!("event `{}`", r.event)))?,
            version: r.version,
            state: RunState::parse(&r.state).ok_or_else(|| bad(&format!("state `{}`", r.state)))?,
            ticket,
            opening_at: r.opening_at,
            outcome: r.outcome,
            created_at: r.created_at,
            review: r.review,
        })
    }
}

/// Stores a new run; `false` when the person already has one for this event and snapshot.
pub async fn insert(tx: &mut Tx, run: &Run) -> Result<bool, StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO lifecycle_runs (id, person, email, name, event, version, state, \
             created_at, updated_at, review) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) \
             ON CONFLICT (person, event, version) DO NOTHING",
        )
        .bind(run.id.to_string())
        .bind(run.person.0.as_str())
        .bind(run.email.as_str())
        .bind(&run.name)
        .bind(run.event.as_str())
        .bind(run.version)
        .bind(run.state.as_str())
        .bind(run.created_at)
        .bind(run.review)
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected() == 1)
    })
    .map_err(StoreError::from)
}

async fn select(store: &Store, condition: &str, bind: &str) -> Result<Vec<Run>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM lifecycle_runs WHERE {condition}");
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(bind)
            .fetch_all(pool)
            .await
    })?;
    rows.into_iter().map(Run::try_from).collect()
}

pub async fn get(store: &Store, id: Uuid) -> Result<Option<Run>, StoreError> {
    Ok(select(store, "id = $1", &id.to_string()).await?.pop())
}

/// A person's runs, oldest first.
pub async fn of_person(store: &Store, person: &PersonId) -> Result<Vec<Run>, StoreError> {
    select(store, "person = $1 ORDER BY created_at, id", &person.0).await
}

/// The runs of whoever has `email` (as each run recorded it), newest first.
pub async fn of_email(store: &Store, email: &Email) -> Result<Vec<Run>, StoreError> {
    select(
        store,
        "email = $1 ORDER BY created_at DESC, id DESC",
        email.as_str(),
    )
    .await
}

/// Every run, newest first (for `tollgate lifecycle runs`).
pub async fn recent(store: &Store, limit: i64) -> Result<Vec<Run>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM lifecycle_runs ORDER BY created_at DESC, id DESC LIMIT $1");
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(limit)
            .fetch_all(pool)
            .await
    })?;
    rows.into_iter().map(Run::try_from).collect()
}

/// Notes that a ticket is about to be asked for (committed before the call).
pub async fn opening(store: &Store, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
    on_db!(store.db(), |pool| {
        sqlx::query(
            "UPDATE lifecycle_runs SET opening_at = COALESCE(opening_at, $2), updated_at = $2 \
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Keeps the run's ticket (in the transaction that records its audit event).
pub async fn opened(
    tx: &mut Tx,
    id: Uuid,
    ticket: &(TenantKey, TicketKey, String),
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE lifecycle_runs SET tenant = $2, ticket_key = $3, issue_id = $4, \
             updated_at = $5 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(ticket.0.as_str())
        .bind(ticket.1.as_str())
        .bind(&ticket.2)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Finishes the run with `outcome`; `false` when it was not queued (finished already).
pub async fn finish(
    tx: &mut Tx,
    id: Uuid,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE lifecycle_runs SET state = 'done', outcome = $2, updated_at = $3 \
             WHERE id = $1 AND state = 'queued'",
        )
        .bind(id.to_string())
        .bind(outcome)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected() == 1)
    })
    .map_err(StoreError::from)
}

/// Queues the runs the brake held for snapshot `version`; returns their ids.
pub async fn release(
    tx: &mut Tx,
    version: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    let rows: Vec<(String,)> = on_tx!(tx, |conn| {
        sqlx::query_as(
            "UPDATE lifecycle_runs SET state = 'queued', updated_at = $2 \
             WHERE version = $1 AND state = 'held' RETURNING id",
        )
        .bind(version)
        .bind(now)
        .fetch_all(&mut *conn)
        .await
    })?;
    rows.into_iter()
        .map(|(id,)| {
            Uuid::parse_str(&id)
                .map_err(|e| StoreError::corrupt(format!("lifecycle run {id}: {e}")))
        })
        .collect()
}
