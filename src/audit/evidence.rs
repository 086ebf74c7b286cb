//! The evidence bundle for one ticket: the request (and its extensions), the routing
//! explanation, every decision, every grant and revoke step with the vendor's outcome, the
//! request's audit events in full, the links from them to the nearest signed checkpoint, and
//! that checkpoint — so an auditor can check the record without database access
//! (docs/audit.md shows how, with `jq` and `sha256sum`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::checkpoint::{self, CheckpointKey};
use crate::ids::{TenantKey, TicketKey};
use crate::on_db;
use crate::store::grants::{self, Status};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("no request for ticket {0}")]
    NotFound(String),
    #[error("ticket {0} exists on several sites: name the tenant")]
    Ambiguous(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EvidenceError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

#[derive(Debug, sqlx::FromRow)]
struct RequestRow {
    id: String,
    tenant: String,
    parent_id: Option<String>,
    state: String,
    requester_account: String,
    requester_email: Option<String>,
    subject_email: Option<String>,
    resource: Option<String>,
    level: Option<String>,
    duration_seconds: Option<i64>,
    justification: String,
    workflow: Option<String>,
    workflow_version: Option<String>,
    routing: Option<String>,
    reason: Option<String>,
    created_at: DateTime<Utc>,
    granted_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    end_cause: Option<String>,
}

type DecisionRow = (
    String,
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
);
type EventRow = (String, i64, String, String, String, String);

fn time(at: Option<DateTime<Utc>>) -> Value {
    at.map(|at| Value::String(at.to_rfc3339_opts(SecondsFormat::Micros, true)))
        .unwrap_or(Value::Null)
}

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Builds the bundle for `ticket` (on `tenant`, or the only site that has it). Writes a
/// checkpoint at the chain's head first if none covers the ticket's newest event yet.
pub async fn bundle(
    store: &Store,
    key: &CheckpointKey,
    tenant: Option<&TenantKey>,
    ticket: &TicketKey,
) -> Result<Value, EvidenceError> {
    let requests: Vec<RequestRow> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT id, tenant, parent_id, state, requester_account, requester_email, \
             subject_email, resource, level, duration_seconds, justification, workflow, \
             workflow_version, routing, reason, created_at, granted_at, expires_at, ended_at, \
             end_cause FROM requests WHERE ticket_key = $1 AND ($2 IS NULL OR tenant = $2 \
             OR tenant IN (SELECT alias FROM tenant_links WHERE site_tenant = $2)) \
             ORDER BY created_at, id",
        )
        .bind(ticket.as_str())
        .bind(tenant.map(TenantKey::as_str))
        .fetch_all(pool)
        .await
    })?;
    let Some(first) = requests.first() else {
        return Err(EvidenceError::NotFound(ticket.to_string()));
    };
    let chain = first.tenant.clone();
    if requests.iter().any(|r| r.tenant != chain) {
        return Err(EvidenceError::Ambiguous(ticket.to_string()));
    }
    let ids: Vec<&str> = requests.iter().map(|r| r.id.as_str()).collect();
    let marks = super::report::placeholders(ids.len());
    let decisions: Vec<DecisionRow> = on_db!(store.db(), |pool| {
        let sql = format!(
            "SELECT request_id, stage, approver_account, approver_email, verdict, via, answer, \
             reason, decided_at FROM decisions WHERE request_id IN ({marks}) ORDER BY decided_at"
        );
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            q = q.bind(*id);
        }
        q.fetch_all(pool).await
    })?;
    let uuids: Vec<Uuid> = ids
        .iter()
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect();
    let steps = grants::of_requests(store, &uuids).await?;
    let events: Vec<EventRow> = on_db!(store.db(), |pool| {
        let sql = format!(
            "SELECT chain, seq, id, canonical, prev_hash, hash FROM audit_events \
             WHERE request_id IN ({marks}) ORDER BY chain, seq"
        );
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            q = q.bind(*id);
        }
        q.fetch_all(pool).await
    })?;

    // The signed checkpoint at or after the ticket's newest event, and the links up to it.
    let (low, high) = match (events.first(), events.last()) {
        (Some(first), Some(last)) => (first.1, last.1),
        _ => (0, 0),
    };
    let mut signed = checkpoint::of_chain(store, &chain).await?;
    if high > 0 && !signed.iter().any(|c| c.seq >= high) {
        let head: Option<(i64,)> = on_db!(store.db(), |pool| {
            sqlx::query_as("SELECT seq FROM audit_chains WHERE chain = $1")
                .bind(&chain)
                .fetch_optional(pool)
                .await
        })?;
        if let Some((head,)) = head {
            checkpoint::write_at(store, key, &chain, head, crate::clock::wall()).await?;
            signed = checkpoint::of_chain(store, &chain).await?;
        }
    }
    let nearest = signed.into_iter().find(|c| c.seq >= high && high > 0);
    let links: Vec<(i64, String, String)> = match &nearest {
        Some(cp) => on_db!(store.db(), |pool| {
            sqlx::query_as(
                "SELECT seq, prev_hash, hash FROM audit_events WHERE chain = $1 \
                 AND seq BETWEEN $2 AND $3 ORDER BY seq",
            )
            .bind(&chain)
            .bind(low)
            .bind(cp.seq)
            .fetch_all(pool)
            .await
        })?,
        None => Vec::new(),
    };

    Ok(json!({
        "format": "tollgate-evidence-v1",
        "generated_at": time(Some(crate::clock::wall())),
        "ticket": ticket,
        "tenant": chain,
        "requests": requests.iter().map(|r| json!({
            "id": r.id,
            "extension_of": r.parent_id,
            "state": r.state,
            "requester_account": r.requester_account,
            "requester_email": r.requester_email,
            "for": r.subject_email,
            "resource": r.resource,
            "level": r.level,
            "duration_seconds": r.duration_seconds,
            "justification": r.justification,
            "workflow": r.workflow,
            "workflow_version": r.workflow_version,
            "routing": r.routing.as_deref().map(parsed),
            "reason": r.reason,
            "requested_at": time(Some(r.created_at)),
            "granted_at": time(r.granted_at),
            "expires_at": time(r.expires_at),
            "ended_at": time(r.ended_at),
            "end_cause": r.end_cause,
            "decisions": decisions.iter().filter(|d| d.0 == r.id).map(|d| json!({
                "stage": d.1 + 1,
                "approver_account": d.2,
                "approver_email": d.3,
                "verdict": d.4,
                "via": d.5,
                "answer": d.6,
                "reason": d.7,
                "at": time(Some(d.8)),
            })).collect::<Vec<_>>(),
            "steps": steps.iter().filter(|s| s.request_id.to_string() == r.id).map(|s| json!({
                "step": s.step,
                "plan": s.plan.full(),
                "grant": s.grant_status.as_str(),
                "revoke": s.revoke_status.map(Status::as_str),
                "attempts": s.attempts,
                "granted_change": s.granted_change,
                "revoked_change": s.revoked_change,
                "error": s.error,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "events": events.iter().map(|e| json!({
            "chain": e.0, "seq": e.1, "id": e.2, "canonical": e.3, "prev_hash": e.4, "hash": e.5,
        })).collect::<Vec<_>>(),
        "links": links.iter().map(|(seq, prev, hash)| json!({
            "seq": seq, "prev_hash": prev, "hash": hash,
        })).collect::<Vec<_>>(),
        "checkpoint": nearest.map(|c| json!({
            "chain": c.chain,
            "seq": c.seq,
            "hash": c.hash,
            "at": time(Some(c.at)),
            "mac": c.mac,
            "key_id": c.key_id,
        })),
    }))
}
