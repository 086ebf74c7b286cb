//! The identity provider's event hooks, beside a polled Okta or Entra ID source: Okta event
//! hooks (their one-time verification, an authorization header whose value is the configured
//! secret) and Microsoft Graph change notifications (the `validationToken` handshake, every
//! notification's `clientState` checked). A delivery is stored with its audit event and its job
//! in one transaction before it is acknowledged, once per event id; the job reads again just the
//! people and groups it names (`engine::org_change::reread`). The periodic sync stays the net.

use crate::audit::{self, Action, Actor};
use crate::idp::events::{Received, Reread};
use crate::jobs::{self, Job};
use crate::state::AppState;
use crate::store::{StoreError, idp_events};

/// Which hook delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Okta,
    Graph,
}

impl Hook {
    pub fn source(self) -> &'static str {
        match self {
            Self::Okta => "okta",
            Self::Graph => "entra",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot queue the re-read: {0}")]
    Queue(String),
}

/// Stores what was delivered; returns how many events were new (a redelivery adds none).
pub async fn record(
    state: &AppState,
    hook: Hook,
    received: &[Received],
) -> Result<usize, RecordError> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let mut new = 0;
    for event in received {
        let targets = serde_json::to_value(&event.targets).unwrap_or_default();
        let key = (event.id.as_str(), event.kind.as_str());
        if !idp_events::insert(&mut tx, hook.source(), key, &targets, now).await? {
            continue;
        }
        let target = event.targets.first().map(|t| match t {
            Reread::Person(id) | Reread::Group(id) => id.clone(),
        });
        audit::append(
            &mut tx,
            &audit::Event {
                at: now,
                tenant: None,
                request_id: None,
                ticket_key: None,
                actor: Actor::System(format!("{}:event_hook", hook.source())),
                action: Action::IdpEventReceived,
                target,
                details: serde_json::json!({ "event": event.id, "type": event.kind, "targets": targets }),
                workflow_version: None,
            },
        )
        .await?;
        jobs::schedule(
            &mut tx,
            &Job::IdpEvent {
                id: event.id.clone(),
            },
            crate::clock::wall(),
        )
        .await
        .map_err(|e| RecordError::Queue(e.to_string()))?;
        new += 1;
    }
    tx.commit().await?;
    Ok(new)
}
