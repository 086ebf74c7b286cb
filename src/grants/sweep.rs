//! The reconcile sweep, the safety net under the jobs: grants past their expiry (a lost job,
//! an outage), revocations that failed, steps whose job vanished, leavers, and access removed
//! outside Tollgate.

use chrono::TimeDelta;
use serde_json::json;

use super::apply::{self, Subject};
use super::run;
use super::{notices, wall};
use crate::audit::Actor;
use crate::engine::EngineError;
use crate::engine::machine::{EndCause, State};
use crate::jobs::{self, Job};
use crate::orgchart::AccountId;
use crate::state::AppState;
use crate::store::grants::{self as steps, Phase, Status};
use crate::store::requests;

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

pub async fn sweep(state: &AppState) -> Result<SweepReport, EngineError> {
    let mut report = SweepReport::default();
    let now = state.clock.now();
    for request in requests::active_expiring_by(&state.store, now, 10_000).await? {
        if run::revoke_now(
            state,
            request.id,
            EndCause::Expired,
            "the access expired",
            sweeper(),
        )
        .await?
        {
            report.overdue += 1;
        }
    }
    for request in requests::in_states(&state.store, &[State::RevokeFailed]).await? {
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
                jobs::schedule(&mut tx, &job, wall(state, now)).await?;
                report.restarted_steps += 1;
            }
            tx.commit().await?;
        }
    }
    report.leavers = super::leavers::revoke_leavers(state).await?;
    report.drift = drift(state).await?;
    Ok(report)
}

/// Re-reads what can be read cheaply (IdP groups from the synced org chart, project roles)
/// and flags, once per step, access that is gone though Tollgate did not remove it.
async fn drift(state: &AppState) -> Result<usize, EngineError> {
    let mut flagged = 0;
    for request in requests::in_states(&state.store, &[State::Active]).await? {
        let rows = steps::read(&state.store, request.id).await?;
        let account = request.subject_account.clone().map(AccountId);
        let subject = Subject {
            tenant: &request.tenant,
            account: account.as_ref(),
        };
        for row in rows
            .iter()
            .filter(|r| r.grant_status == Status::Done && r.drift_at.is_none())
        {
            let holds = match apply::holds(state, &row.plan, &subject).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::debug!(
                        ticket = request.ticket_key,
                        error = e.message(),
                        "drift check skipped"
                    );
                    None
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
                &request,
                now,
                sweeper(),
                "grant.drift",
                json!({"step": row.step, "target": row.plan.applied}),
            )
            .await?;
            let key = format!("{}:drift:{}", request.id, row.step);
            crate::engine::notices::enqueue(&mut tx, &request, notices::drift(&request, row), key)
                .await?;
            tx.commit().await?;
            flagged += 1;
        }
    }
    Ok(flagged)
}
