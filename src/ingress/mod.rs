//! Ingress: events from Atlassian, whichever door they came through (a Connect webhook, a Forge
//! remote call, a plain Jira webhook), written durably and deduplicated, then handed to a job
//! (`engine::events` processes them in ticket order). Nothing here knows about a door's token.
//!
//! Writes are grouped: concurrent deliveries wait on one writer that commits them together
//! (group commit), because one commit per request is what limits a webhook burst — each
//! caller still gets its answer only after its delivery is durable.

pub use crate::store::inbound::{Delivery, Door, SignedBy};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::jobs::{self, Job, JobError};
use crate::store::tenants::TokenUse;
use crate::store::{Store, StoreError, inbound};

/// The events Tollgate acts on; anything else is accepted and ignored.
pub const HANDLED_EVENTS: &[&str] = &[
    "jira:issue_created",
    "jira:issue_updated",
    "comment_created",
];

/// Most deliveries one transaction commits.
const MAX_BATCH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored and queued for processing.
    New(Uuid),
    /// Seen before (a retried delivery, or its token with the same body): nothing done.
    Duplicate,
    /// A token seen before with another body: a replay. Nothing stored.
    Replayed,
    /// An event type Tollgate does not act on.
    Ignored,
}

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("the intake writer has stopped")]
    Stopped,
    /// The batch this delivery was in could not be stored; nothing of it was.
    #[error("could not store the delivery: {0}")]
    Batch(String),
}

/// Stores deliveries (of handled event types: [`Writer::accept`] filters) and queues their
/// processing in one transaction. A delivery id the tenant sent before (in an earlier batch or
/// earlier in this one) is a duplicate and changes nothing.
async fn store_batch(
    store: &Store,
    deliveries: &[Delivery],
) -> Result<Vec<Accepted>, IngressError> {
    let mut tx = store.begin().await?;
    let mut outcomes = Vec::with_capacity(deliveries.len());
    let mut stored = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let id = Uuid::now_v7();
        if let Some(signed) = &delivery.signed {
            match inbound::record_token(&mut tx, signed, delivery.received_at).await? {
                TokenUse::First => {}
                TokenUse::Retry => {
                    outcomes.push(Accepted::Duplicate);
                    continue;
                }
                TokenUse::Replay => {
                    outcomes.push(Accepted::Replayed);
                    continue;
                }
            }
        }
        if inbound::insert(&mut tx, id, delivery).await? {
            stored.push(id);
            outcomes.push(Accepted::New(id));
        } else {
            outcomes.push(Accepted::Duplicate);
        }
    }
    if !stored.is_empty() {
        let job = Job::ProcessInbound { ids: stored };
        // Due at once on the wall clock the queue runs on (the app's clock may be a test's).
        jobs::schedule_new(&mut tx, &[(job, crate::clock::wall())]).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

type Reply = oneshot::Sender<Result<Accepted, String>>;

/// The group-commit writer's front door; cheap to clone.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<(Delivery, Reply)>,
}

impl Writer {
    /// Starts the writer task for `store`; `wake` tells this process's worker a batch is in.
    pub fn start(store: Store, wake: std::sync::Arc<crate::jobs::WakeSignal>) -> Self {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(writer(store, rx, wake));
        Self { tx }
    }

    /// Returns once the delivery is durable (or known to be a duplicate).
    pub async fn accept(&self, delivery: Delivery) -> Result<Accepted, IngressError> {
        if !HANDLED_EVENTS.contains(&delivery.event_type.as_str()) {
            tracing::debug!(
                event = delivery.event_type,
                "event type not handled; ignored"
            );
            return Ok(Accepted::Ignored);
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((delivery, reply))
            .await
            .map_err(|_| IngressError::Stopped)?;
        match answer.await {
            Ok(Ok(accepted)) => Ok(accepted),
            Ok(Err(message)) => Err(IngressError::Batch(message)),
            Err(_) => Err(IngressError::Stopped),
        }
    }
}

/// Takes whatever is waiting (at least one, at most [`MAX_BATCH`]) and commits it together. No
/// timer: under light load a batch is one delivery, under a burst it is everything queued.
async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<(Delivery, Reply)>,
    wake: std::sync::Arc<crate::jobs::WakeSignal>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (deliveries, replies): (Vec<Delivery>, Vec<Reply>) = batch.drain(..).unzip();
        match store_batch(&store, &deliveries).await {
            Ok(outcomes) => {
                wake.wake();
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, count = deliveries.len(), "intake batch not stored");
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}

/// A token's or a body's SHA-256, in hex: how a delivery is remembered without keeping what
/// signed it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}
