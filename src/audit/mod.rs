//! The audit log, written from the first state change: every transition commits together with
//! its event. [`append`] is the only writer.
//!
//! Events are chained per tenant (and a `system` chain for events without one): each stores its
//! canonical bytes ([`canonical`], RFC 8785) and `sha256(previous hash ‖ canonical bytes)`, with
//! its chain and sequence number inside the canonical bytes, so an edited, reordered or deleted
//! event breaks the chain. Appending locks the chain's head row for the rest of the transaction.
//! **Lock order**: a transaction that changes a request locks the request row first, then the
//! chain head (through `append`), never the other way round, so two writers cannot deadlock.

pub mod action;
pub mod canonical;
pub mod checkpoint;
pub mod evidence;
pub mod report;
pub mod verify;

pub use action::{Action, HoldStep, RunStep, ScimStep, TenantAction};
pub use verify::Break;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::ids::TenantKey;
use crate::on_tx;
use crate::store::{StoreError, Tx};

/// The `prev_hash` of a chain's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
pub const SYSTEM_CHAIN: &str = "system";

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The person a request is for, or who filed it (an Atlassian account id or an email).
    Person(String),
    /// An approver deciding.
    Approver(String),
    /// Tollgate itself (routing, timers, sync) or an operator's CLI.
    System(String),
}

impl Actor {
    fn kind(&self) -> &'static str {
        match self {
            Self::Person(_) => "person",
            Self::Approver(_) => "approver",
            Self::System(_) => "system",
        }
    }

    fn id(&self) -> &str {
        match self {
            Self::Person(id) | Self::Approver(id) | Self::System(id) => id,
        }
    }
}

/// One thing that happened.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub tenant: Option<String>,
    pub request_id: Option<Uuid>,
    pub ticket_key: Option<String>,
    pub actor: Actor,
    /// `request.routed`, `decision.approved`, `tenant.installed`, … (stored by its name).
    pub action: Action,
    pub target: Option<String>,
    pub details: Value,
    /// The workflows version that decided it, when one did.
    pub workflow_version: Option<String>,
}

impl Event {
    /// An event about `request`, on its tenant's chain, naming the workflow version that
    /// routed it.
    pub fn of_request(
        request: &crate::lifecycle::Request,
        at: DateTime<Utc>,
        actor: Actor,
        action: crate::lifecycle::Action,
        details: Value,
    ) -> Self {
        Self {
            at,
            tenant: Some(request.tenant.to_string()),
            request_id: Some(request.id),
            ticket_key: Some(request.ticket_key.to_string()),
            actor,
            action: Action::Request(action),
            target: request.resource.as_deref().map(str::to_string),
            details,
            workflow_version: request.workflow_version.clone(),
        }
    }

    /// An inactive case's move to `to`, on the chain of the lifecycle ticket it is told in
    /// (`ticket`), naming the review deciding it when there is one; its case, product, day
    /// last used and person are added to `details`.
    pub fn of_case(
        case: &crate::store::inactive_cases::Case,
        ticket: Option<(&crate::ids::TenantKey, &crate::ids::TicketKey)>,
        to: crate::store::inactive_cases::CaseState,
        (actor, at): (Actor, DateTime<Utc>),
        mut details: Value,
    ) -> Self {
        details["case"] = serde_json::json!(case.id);
        details["product"] = serde_json::json!(case.product);
        details["since"] = serde_json::json!(case.since.to_string());
        details["email"] = serde_json::json!(case.email.as_str());
        Self {
            at,
            tenant: ticket.map(|t| t.0.to_string()),
            request_id: case.request_id,
            ticket_key: ticket.map(|t| t.1.to_string()),
            actor,
            action: Action::Inactive(to),
            target: Some(case.account.to_string()),
            details,
            workflow_version: None,
        }
    }
}

/// An appended event's place in its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub id: Uuid,
    pub chain: String,
    pub seq: i64,
    pub hash: String,
}

/// `sha256(previous hash ‖ canonical bytes)`, hex.
pub fn chain_hash(prev_hash: &str, canonical: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical.as_bytes());
    hex::encode(hasher.finalize())
}

/// The canonical form of an event at a position in its chain.
fn canonical_form(event: &Event, id: Uuid, chain: &str, seq: i64, prev_hash: &str) -> String {
    canonical::to_string(&json!({
        "id": id.to_string(),
        "chain": chain,
        "seq": seq,
        "prev_hash": prev_hash,
        "at": event.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "tenant": event.tenant,
        "request_id": event.request_id.map(|r| r.to_string()),
        "ticket_key": event.ticket_key,
        "actor": {"kind": event.actor.kind(), "id": event.actor.id()},
        "action": event.action.name(),
        "target": event.target,
        "details": event.details,
        "workflow_version": event.workflow_version,
    }))
}

/// The deployment-wide events (no tenant) with this action, oldest first, as recorded.
pub async fn system_events(
    store: &crate::store::Store,
    action: &str,
) -> Result<Vec<Value>, StoreError> {
    events(store, None, action).await
}

/// The events of `tenant`'s chain (the deployment's own with `None`) with this action, oldest
/// first, as recorded.
pub async fn events(
    store: &crate::store::Store,
    tenant: Option<&str>,
    action: &str,
) -> Result<Vec<Value>, StoreError> {
    let rows: Vec<(String,)> = crate::on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT canonical FROM audit_events WHERE action = $1 \
             AND (tenant = $2 OR (tenant IS NULL AND $2 IS NULL)) ORDER BY seq",
        )
        .bind(action)
        .bind(tenant)
        .fetch_all(pool)
        .await
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(canonical,)| serde_json::from_str(&canonical).ok())
        .collect())
}

/// Appends `event` to its chain inside the caller's transaction.
pub async fn append(tx: &mut Tx, event: &Event) -> Result<Appended, StoreError> {
    let chain = event
        .tenant
        .clone()
        .unwrap_or_else(|| SYSTEM_CHAIN.to_string());
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO audit_chains (chain, seq, head_hash) VALUES ($1, 0, $2) \
             ON CONFLICT (chain) DO NOTHING",
        )
        .bind(&chain)
        .bind(GENESIS)
        .execute(&mut *conn)
        .await
        .map(|_| ())
    })?;
    // The head row, locked until commit (SQLite's write transaction already holds the lock).
    let (seq, prev_hash): (i64, String) = match tx {
        Tx::Postgres(tx) => {
            sqlx::query_as("SELECT seq, head_hash FROM audit_chains WHERE chain = $1 FOR UPDATE")
                .bind(&chain)
                .fetch_one(&mut **tx)
                .await?
        }
        Tx::Sqlite(tx) => {
            sqlx::query_as("SELECT seq, head_hash FROM audit_chains WHERE chain = $1")
                .bind(&chain)
                .fetch_one(&mut **tx)
                .await?
        }
    };
    let id = Uuid::now_v7();
    let seq = seq + 1;
    let canonical = canonical_form(event, id, &chain, seq, &prev_hash);
    let hash = chain_hash(&prev_hash, &canonical);
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO audit_events (chain, seq, id, at, tenant, request_id, ticket_key, \
             actor_kind, actor, action, target, workflow_version, canonical, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&chain)
        .bind(seq)
        .bind(id.to_string())
        .bind(event.at)
        .bind(&event.tenant)
        .bind(event.request_id.map(|r| r.to_string()))
        .bind(&event.ticket_key)
        .bind(event.actor.kind())
        .bind(event.actor.id())
        .bind(event.action.name())
        .bind(&event.target)
        .bind(&event.workflow_version)
        .bind(&canonical)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(&mut *conn)
        .await
        .map(|_| ())
    })?;
    on_tx!(tx, |conn| {
        sqlx::query("UPDATE audit_chains SET seq = $1, head_hash = $2 WHERE chain = $3")
            .bind(seq)
            .bind(&hash)
            .bind(&chain)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    })?;
    if seq % checkpoint::CHECKPOINT_EVERY == 0 {
        let job = crate::jobs::Job::AuditCheckpoint {
            chain: chain.clone(),
            seq,
        };
        crate::jobs::schedule_now(tx, &job)
            .await
            .map_err(|e| match e {
                crate::jobs::JobError::Store(e) => e,
                other => StoreError::Internal(other.to_string()),
            })?;
    }
    Ok(Appended {
        id,
        chain,
        seq,
        hash,
    })
}

/// Walks one chain from its start, link by link (without its checkpoints: see
/// [`verify::verify`] for the full check). Returns how many events it checked.
pub async fn verify_chain(
    store: &crate::store::Store,
    chain: &str,
) -> Result<Result<i64, Break>, StoreError> {
    let report = verify::walk(store, chain, &[]).await?;
    Ok(match report.broken {
        Some(broken) => Err(broken),
        None => Ok(report.events),
    })
}
/// Records something that happened to a tenant (installed, linked, …) on its own chain, in the
/// transaction that makes it.
pub async fn tenant_event(
    tx: &mut Tx,
    client_key: &TenantKey,
    action: TenantAction,
    now: chrono::DateTime<chrono::Utc>,
    details: serde_json::Value,
) -> Result<(), StoreError> {
    let event = Event {
        at: now,
        tenant: Some(client_key.to_string()),
        request_id: None,
        ticket_key: None,
        actor: Actor::System("atlassian".into()),
        action: Action::Tenant(action),
        target: Some(client_key.to_string()),
        details,
        workflow_version: None,
    };
    append(tx, &event).await.map(|_| ())
}
