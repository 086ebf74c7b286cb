//! Intake: events from Atlassian, whichever door they came through (Connect webhooks today;
//! Forge remote calls and plain Jira webhooks later), written durably and deduplicated, then
//! handed to a job. Nothing here knows about Connect.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::jobs::{self, Job, JobError};
use crate::store::{Store, StoreError, inbound};

/// The events Tollgate acts on; anything else is accepted and ignored.
pub const HANDLED_EVENTS: &[&str] = &[
    "jira:issue_created",
    "jira:issue_updated",
    "comment_created",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    Connect,
    Forge,
    JiraWebhook,
}

impl Ingress {
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
pub struct Delivery<'a> {
    /// The tenant it was authenticated as.
    pub tenant: &'a str,
    pub ingress: Ingress,
    /// The sender's id for this delivery, stable across its retries.
    pub delivery_id: &'a str,
    pub event_type: &'a str,
    /// The body exactly as it arrived.
    pub payload: &'a str,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored and queued for processing.
    New(Uuid),
    /// Seen before (a retried delivery): nothing done.
    Duplicate,
    /// An event type Tollgate does not act on.
    Ignored,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Job(#[from] JobError),
}

/// Stores the delivery and queues its processing in one transaction; a delivery id seen before
/// for the tenant is a duplicate and changes nothing.
pub async fn accept(store: &Store, delivery: &Delivery<'_>) -> Result<Accepted, IntakeError> {
    if !HANDLED_EVENTS.contains(&delivery.event_type) {
        tracing::debug!(
            event = delivery.event_type,
            tenant = delivery.tenant,
            "event type not handled; ignored"
        );
        return Ok(Accepted::Ignored);
    }
    let id = Uuid::now_v7();
    let mut tx = store.begin().await?;
    if !inbound::insert(&mut tx, id, delivery).await? {
        tx.rollback().await?;
        return Ok(Accepted::Duplicate);
    }
    jobs::schedule(&mut tx, &Job::ProcessInbound { id }, delivery.received_at).await?;
    tx.commit().await?;
    Ok(Accepted::New(id))
}
