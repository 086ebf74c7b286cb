//! The bearer tokens an identity provider pushes with: issued by `tollgate scim-push token
//! issue` (shown once, kept sealed with the secret key), several valid at once so one can be
//! rotated without a gap, revoked by id.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::audit::{self, Action, Actor, ScimStep};
use crate::scim::ScimError;
use crate::state::AppState;
use crate::store::scim_resources::{self as stored, Token, token_context};
use crate::store::{Store, StoreError};

/// Who pushed: the token's id and name, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pusher {
    pub token: String,
    pub name: String,
}

impl Pusher {
    pub fn actor(&self) -> Actor {
        Actor::System(format!("scim:{}", self.name))
    }
}

const PREFIX: &str = "tgscim_";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot seal the token: {0}")]
    Seal(String),
    #[error("cannot make a random token: {0}")]
    Random(String),
}

/// Issues a token named `name`; returns its id and the token, which is never shown again.
pub async fn issue(
    store: &Store,
    key: &crate::secrets::SecretKey,
    name: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(String, String), TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    let secret = format!("{PREFIX}{}", B64.encode(bytes));
    let id = Uuid::new_v4().to_string();
    let sealed = key
        .seal(secret.as_bytes(), &token_context(&id))
        .map_err(|e| TokenError::Seal(e.to_string()))?;
    let token = Token {
        id: id.clone(),
        name: name.to_string(),
        sealed,
        created_at: now,
        revoked_at: None,
        last_pushed_at: None,
    };
    let mut tx = store.begin().await?;
    stored::add_token(&mut tx, &token).await?;
    audit::append(&mut tx, &event(ScimStep::TokenIssued, &id, name, by, now)).await?;
    tx.commit().await?;
    Ok((id, secret))
}

/// Revokes the token `id`; `false` when no active token has it.
pub async fn revoke(
    store: &Store,
    id: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    // Read before the write transaction: a second connection wanted while it holds SQLite's
    // write lock can wait on a pool the lock's other waiters have drained.
    let name = stored::tokens(store, false)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .map(|t| t.name)
        .unwrap_or_default();
    let mut tx = store.begin().await?;
    if !stored::revoke_token(&mut tx, id, now).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    audit::append(&mut tx, &event(ScimStep::TokenRevoked, id, &name, by, now)).await?;
    tx.commit().await?;
    Ok(true)
}

fn event(step: ScimStep, id: &str, name: &str, by: &str, now: DateTime<Utc>) -> audit::Event {
    audit::Event {
        at: now,
        tenant: None,
        request_id: None,
        ticket_key: None,
        actor: Actor::System(by.to_string()),
        action: Action::ScimPush(step),
        target: Some(id.to_string()),
        details: serde_json::json!({ "token": id, "name": name }),
        workflow_version: None,
    }
}

/// The pusher whose token `offered` is; every active token is compared (in constant time), so
/// two can be valid during a rotation.
pub async fn authenticate(state: &AppState, offered: &str) -> Result<Pusher, ScimError> {
    let tokens = stored::tokens(&state.store, true)
        .await
        .map_err(|e| ScimError::unavailable(format!("tokens cannot be read: {e}")))?;
    if tokens.is_empty() {
        return Err(ScimError::unauthorized(
            "no SCIM token is issued yet: run `tollgate scim-push token issue`",
        ));
    }
    let mut found = None;
    for token in tokens {
        let Ok(secret) = state
            .secret_key
            .unseal(&token.sealed, &token_context(&token.id))
        else {
            tracing::warn!(
                token = token.id,
                "a SCIM token cannot be unsealed with the configured keys"
            );
            continue;
        };
        let same =
            std::str::from_utf8(&secret).is_ok_and(|s| crate::secrets::same_secret(offered, s));
        if same && found.is_none() {
            found = Some(Pusher {
                token: token.id,
                name: token.name,
            });
        }
    }
    found.ok_or_else(|| ScimError::unauthorized("the bearer token is not valid"))
}
