//! An approved extension (a child request asked for by `/extend` in the ticket) moves its
//! grant's expiry.

use chrono::TimeDelta;
use serde_json::json;
use uuid::Uuid;

use super::notices;
use super::run::{self, EXPIRY_WINDOW};
use crate::audit::Actor;
use crate::failure::Failure;
use crate::lifecycle::{self, Event, State};
use crate::state::AppState;
use crate::store::requests;

/// An approved extension moves its grant's expiry: the new total duration counts from when
/// the access was granted.
pub async fn apply_extension(state: &AppState, child_id: Uuid) -> Result<(), Failure> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let Some(mut child) = requests::lock_id(&mut tx, child_id).await? else {
        tx.rollback().await?;
        return Ok(());
    };
    let Some(parent_id) = child.parent_id else {
        tx.rollback().await?;
        return Ok(());
    };
    if child.state != State::Approved || child.granted_at.is_some() {
        tx.rollback().await?;
        return Ok(());
    }
    let Some(mut parent) = requests::lock_id(&mut tx, parent_id).await? else {
        tx.rollback().await?;
        return Ok(());
    };
    let (Some(granted), Some(total), Some(current)) =
        (parent.granted_at, child.duration_seconds, parent.expires_at)
    else {
        tx.rollback().await?;
        return Ok(());
    };
    let system = || Actor::System("grants".into());
    if parent.state != State::Active {
        let reason = format!("the access is {} now", parent.state.as_str());
        let details = json!({"reason": reason});
        let failed = Event::ExtensionFailed { reason };
        run::transition(&mut tx, &mut child, failed, system(), details, now).await?;
        tx.commit().await?;
        return Ok(());
    }
    let expires = (granted + TimeDelta::seconds(total)).max(current);
    let extended = Event::Extended {
        expires_at: expires,
        total_seconds: total,
    };
    let details =
        json!({"extension": child.id, "from": current, "to": expires, "total_seconds": total});
    run::transition(&mut tx, &mut parent, extended, system(), details, now).await?;
    let applied = Event::ExtensionApplied {
        expires_at: expires,
    };
    lifecycle::apply(&mut child, applied, now)?;
    run::save(&mut tx, &mut child).await?;
    run::tell(&mut tx, &parent, notices::extended(&parent, None)).await?;
    if expires <= now + EXPIRY_WINDOW {
        super::expiry::schedule_expiry(&mut tx, state, parent.id, expires).await?;
    }
    tx.commit().await?;
    Ok(())
}
