//! The reconcile sweep, the safety net under the jobs: grants past their expiry (a lost job,
//! an outage), revocations that failed, steps whose job vanished, leavers, and access removed
//! outside Tollgate.

use chrono::TimeDelta;
use serde_json::json;

use std::collections::{HashMap, HashSet};

use super::apply;
use super::plan::{Via, target_key};
use super::run;
use super::{notices, wall};
use crate::audit::Actor;
use crate::failure::Failure;
use crate::ids::{TargetKey, TenantKey};
use crate::jobs::{self, Job};
use crate::lifecycle::{Action, EndCause, State};
use crate::state::AppState;
use crate::store::grants::{self as steps, Phase, Status};
use crate::store::requests;
use crate::workflow::GrantTarget;

/// A step pending this long without its job running is stalled.
const STALLED_AFTER: TimeDelta = TimeDelta::minutes(15);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub overdue: usize,
    pub retried_revocations: usize,
    pub restarted_steps: usize,
    pub leavers: usize,
    pub drift: usize,
}

fn sweeper() -> Actor {
    Actor::System("reconcile".into())
}

pub async fn sweep(state: &AppState) -> Result<SweepReport, Failure> {
    let mut report = SweepReport::default();
    let now = state.clock.now();
    // Overdue grants (after an outage there may be thousands) end in batches, as the
    // expiry window's jobs would have ended them.
    let overdue: Vec<(uuid::Uuid, i64)> = requests::active_expiring_by(&state.store, now, 10_000)
        .await?
        .iter()
        .filter_map(|r| Some((r.id, r.expires_at?.timestamp_micros())))
        .collect();
    for batch in overdue.chunks(super::expiry::BATCH_SIZE) {
        report.overdue += super::expiry::expire_many(state, batch).await?;
    }
    for request in requests::in_states(&state.store, |s| s == State::RevokeFailed).await? {
        if run::revoke_now(state, request.id, EndCause::Revoked, "revoked", sweeper()).await? {
            report.retried_revocations += 1;
        }
    }
    for phase in [Phase::Grant, Phase::Revoke] {
        for row in steps::stalled(&state.store, phase, now - STALLED_AFTER).await? {
            let mut tx = state.store.begin().await?;
            if steps::bump(&mut tx, row.request_id, row.step, phase, row.attempts, now).await? {
                let job = Job::GrantStep {
                    request: row.request_id,
                    step: row.step,
                    phase,
                    attempt: row.attempts + 1,
                };
                jobs::schedule(&mut tx, &job, wall(&*state.clock, now)).await?;
                report.restarted_steps += 1;
            }
            tx.commit().await?;
        }
    }
    // Leavers the brake holds wait for their approval here too.
    let held = crate::store::org_changes::held_people(&state.store).await?;
    report.leavers = super::leavers::revoke_leavers(state, &held).await?;
    report.drift = drift(state).await?;
    Ok(report)
}

/// Active grants read per page.
const PAGE: i64 = 500;

/// Re-reads what can be read cheaply — IdP groups from the synced org chart, project roles
/// (each read once per sweep, however many grants it has) — and flags, once per step, access
/// that is gone though Tollgate did not remove it.
async fn drift(state: &AppState) -> Result<usize, Failure> {
    let org = state.org.index();
    let org_taken = state.org.taken_at();
    // Who holds each Atlassian target, by (tenant, target key): read once per sweep.
    let mut holders: HashMap<(TenantKey, TargetKey), Option<HashSet<String>>> = HashMap::new();
    let mut flagged = 0;
    let mut after = None;
    loop {
        let page = requests::page_in_state(&state.store, State::Active, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let ids: Vec<_> = page.iter().map(|r| r.id).collect();
        let rows = steps::of_requests(&state.store, &ids).await?;
        for row in rows
            .iter()
            .filter(|r| r.grant_status == Status::Done && r.drift_at.is_none())
        {
            let Some(request) = page.iter().find(|r| r.id == row.request_id) else {
                continue;
            };
            let holds = match (&row.plan.via, &row.plan.applied) {
                // Only an org chart taken after the grant can say the grant is gone.
                (Via::Idp { .. }, GrantTarget::IdpGroup { group })
                    if org_taken > request.granted_at =>
                {
                    match (&org, &row.plan.idp_person) {
                        (Some(org), Some(person)) => org.is_member_by_id(group, person),
                        _ => None,
                    }
                }
                (Via::Idp { .. }, _) => None,
                (_, target) => {
                    let key = (request.tenant.clone(), target_key(target));
                    if !holders.contains_key(&key) {
                        let found = apply::holders(state, &request.tenant, &row.plan)
                            .await
                            .unwrap_or_else(|e| {
                                tracing::debug!(
                                    target = %key.1,
                                    error = e.message(),
                                    "drift check skipped"
                                );
                                None
                            });
                        holders.insert(key.clone(), found);
                    }
                    match (&holders[&key], &request.subject_account) {
                        (Some(members), Some(account)) => Some(members.contains(account.as_str())),
                        _ => None,
                    }
                }
            };
            if holds != Some(false) {
                continue;
            }
            let now = state.clock.now();
            let mut tx = state.store.begin().await?;
            steps::mark_drift(&mut tx, request.id, row.step, now).await?;
            run::event(
                &mut tx,
                request,
                now,
                sweeper(),
                Action::GrantDrift,
                json!({"step": row.step, "target": row.plan.applied}),
            )
            .await?;
            let key = format!("{}:drift:{}", request.id, row.step);
            crate::notices::enqueue(&mut tx, request, notices::drift(request, row), key).await?;
            tx.commit().await?;
            flagged += 1;
        }
    }
    Ok(flagged)
}
