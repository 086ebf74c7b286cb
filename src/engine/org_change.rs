//! What a new org chart snapshot leads to, applied once whichever process wrote it (the
//! periodic sync, `tollgate org sync`, a replica noticing it): leavers lose access, then open
//! stages are routed again. A snapshot that would make too many people leavers at once is not
//! believed: their removals are held, an alert is raised, and they wait for a person
//! (`tollgate org leavers --approve VERSION`), or are dropped when the people come back.

use std::collections::HashSet;

use super::EngineError;
use crate::alerts::{self, Alert};
use crate::grants::leavers;
use crate::state::AppState;
use crate::store::org as org_store;
use crate::store::org_changes::{self, HeldPerson, Hold, HoldState};

/// What one application did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The snapshot now applied; `None` when there is none.
    pub version: Option<i64>,
    /// Grants revoked and open requests cancelled for leavers.
    pub leavers: usize,
    /// People whose removal waits for approval.
    pub held: usize,
    /// Open stages routed again.
    pub rerouted: usize,
}

/// Applies the newest snapshot, if it (or an approval) is not applied yet.
pub async fn apply(state: &AppState) -> Result<Applied, EngineError> {
    state.org.refresh(&state.store).await?;
    let Some((info, latest)) = org_store::latest(&state.store).await? else {
        return Ok(Applied::default());
    };
    let applied = org_changes::applied(&state.store).await?;
    let now = state.clock.now();
    let previous = match applied {
        Some(v) if v < info.version => org_store::snapshot(&state.store, v).await?,
        _ => None,
    };
    let active_now: HashSet<&str> = latest
        .people
        .iter()
        .filter(|p| p.active)
        .map(|p| p.id.0.as_str())
        .collect();

    let mut raised = None;
    let mut tx = state.store.begin().await?;
    let mut holds = org_changes::open_holds(&mut tx).await?;
    for hold in holds.iter_mut().filter(|h| h.state == HoldState::Held) {
        // Whoever is back is no leaver; a hold everyone came back from is dropped.
        let before = hold.people.len();
        hold.people.retain(|p| !active_now.contains(p.id.as_str()));
        if hold.people.len() != before {
            if hold.people.is_empty() {
                hold.state = HoldState::Dropped;
            }
            org_changes::update_hold(&mut tx, hold.version, &hold.people, hold.state).await?;
        }
    }
    if let Some((_, previous)) = &previous {
        let gone: Vec<HeldPerson> = previous
            .people
            .iter()
            .filter(|p| p.active && !active_now.contains(p.id.0.as_str()))
            .map(|p| HeldPerson {
                id: p.id.0.clone(),
                email: p.email.as_str().to_string(),
                name: p.display_name.clone(),
            })
            .collect();
        let active_before = previous.people.iter().filter(|p| p.active).count();
        let limit = state.config.idp.brake.limit(active_before);
        if gone.len() > limit {
            let hold = Hold {
                version: info.version,
                created_at: now,
                people: gone,
                active_before: active_before as i64,
                state: HoldState::Held,
                decided_by: None,
                decided_at: None,
            };
            if org_changes::insert_hold(&mut tx, &hold).await? {
                let alert = Alert::LeaverBrake {
                    version: info.version,
                    leavers: hold.people.len(),
                    active_before,
                    limit,
                };
                alerts::record(&mut tx, &alert, now).await?;
                raised = Some(alert);
                holds.push(hold);
            }
        }
    }
    tx.commit().await?;
    if let Some(alert) = &raised {
        alerts::announce(&state.metrics, alert);
    }

    let held: HashSet<String> = holds
        .iter()
        .filter(|h| h.state == HoldState::Held)
        .flat_map(|h| h.people.iter().map(|p| p.email.to_ascii_lowercase()))
        .collect();
    let touched = leavers::revoke_leavers(state, &held).await?;

    let mut tx = state.store.begin().await?;
    for hold in holds.iter().filter(|h| h.state == HoldState::Approved) {
        org_changes::update_hold(&mut tx, hold.version, &hold.people, HoldState::Done).await?;
    }
    org_changes::set_applied(&mut tx, info.version, now).await?;
    tx.commit().await?;
    let rerouted = super::reresolve::after_org_change(state).await?;
    let waiting = holds.iter().filter(|h| h.state == HoldState::Held).count();
    state.metrics.set_open_alerts(waiting);
    Ok(Applied {
        version: Some(info.version),
        leavers: touched,
        held: held.len(),
        rerouted,
    })
}
