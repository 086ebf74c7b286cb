//! A pending stage's clock: a reminder after `remind_after`, the approvers' managers added
//! beside them after `escalate_after`, and a decline after `decline_after` (counted from when the
//! stage opened; an escalation restarts the reminder and escalation clocks, not the decline).
//!
//! Each is a durable job scheduled in the transaction that opens the stage, naming the stage
//! and when it (re)started; a job that finds the request moved on does nothing.

pub use crate::lifecycle::approval::TimerKind;
use serde_json::json;

use crate::audit::{self, Actor};
use crate::failure::Failure;
use crate::ids::{TenantKey, TicketKey};
use crate::jobs::{self, JobError};
use crate::lifecycle::{Action, Approver, Event, State};
use crate::notices::{self, Notice};
use crate::orgchart::Email;
use crate::state::AppState;
use crate::store::Tx;
use crate::store::requests::{self, Request};

fn timeouts(state: &AppState, request: &Request) -> crate::workflow::Timeouts {
    // A lifecycle ticket's decisions (no workflow routed them) have the lifecycle's deadline.
    if request.run_id.is_some() {
        return state.config.lifecycle.timeouts();
    }
    state
        .workflows()
        .and_then(|w| {
            request
                .workflow
                .as_deref()
                .and_then(|id| w.workflow(id))
                .map(|w| w.timeouts)
        })
        .unwrap_or_default()
}

/// Schedules the open stage's timers (`escalated`: only the reminder and escalation restart).
pub async fn schedule(
    tx: &mut Tx,
    state: &AppState,
    request: &Request,
    escalated: bool,
) -> Result<(), JobError> {
    let t = timeouts(state, request);
    jobs::schedule_stage_timers(tx, &*state.clock, request, &t, escalated).await
}

/// Runs one timer, if the request is still where it was when the timer was set.
pub async fn fire(
    state: &AppState,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
    id: uuid::Uuid,
    (stage, epoch): (i64, i64),
    kind: TimerKind,
) -> Result<(), Failure> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    // By the request's id: a ticket may carry several (an extension, a lifecycle ticket's).
    let Some(mut request) = requests::lock_id(&mut tx, id).await? else {
        tx.rollback().await?;
        return Ok(());
    };
    let current_epoch = request.stage_started_at.map(|s| s.timestamp_micros());
    let stale = request.tenant != *tenant
        || request.ticket_key != *ticket_key
        || request.state != State::Pending
        || request.stage != stage
        || (kind != TimerKind::Decline && current_epoch != Some(epoch));
    if stale {
        tx.rollback().await?;
        return Ok(());
    }
    let mut plan = request.plan.clone().unwrap_or_default();
    let index = request.stage as usize;
    let Some(open) = plan.stages.get(index).cloned() else {
        tx.rollback().await?;
        return Ok(());
    };
    let t = timeouts(state, &request);
    let names = |list: &[Approver]| {
        list.iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (action, notice, details) = match kind {
        TimerKind::Remind => {
            let notice = Notice {
                template: "reminder".into(),
                context: json!({"approvers": names(&open.approvers), "stage": open.name, "stage_number": index + 1}),
                participants: Vec::new(),
                transition: None,
            };
            (Action::RequestReminded, notice, json!({"stage": index}))
        }
        TimerKind::Escalate => {
            // The approvers keep their say; their managers are added beside them.
            let added: Vec<Approver> = managers_of(state, tenant, &request, &open.approvers)
                .await?
                .into_iter()
                .filter(|m| !open.approvers.iter().any(|a| a.email == m.email))
                .collect();
            if added.is_empty() {
                tx.rollback().await?;
                tracing::info!(%ticket_key, "nobody above the approvers to escalate to");
                return Ok(());
            }
            let kept = names(&open.approvers);
            let stage = &mut plan.stages[index];
            stage.approvers.extend(added.iter().cloned());
            stage.why = format!("escalated: {} added beside {kept}", names(&added));
            let everyone = names(&stage.approvers);
            request.plan = Some(plan);
            request.stage_started_at = Some(now);
            let notice = Notice {
                template: "escalated".into(),
                context: json!({
                    "stage": open.name, "stage_number": index + 1, "added": names(&added),
                    "kept": kept, "after": t.escalate_after.map(crate::duration::format),
                }),
                participants: added.iter().filter_map(|a| a.account.clone()).collect(),
                transition: None,
            };
            (
                Action::RequestEscalated,
                notice,
                json!({"stage": index, "added": names(&added), "approvers": everyone}),
            )
        }
        TimerKind::Decline => {
            let after = t
                .decline_after
                .map(crate::duration::format)
                .unwrap_or_default();
            let reason = format!("no decision within {after}");
            let timed_out = Event::TimedOut {
                reason: reason.clone(),
            };
            let action = crate::lifecycle::apply(&mut request, timed_out, now)?.action;
            let notice = notices::declined(&request, None, Some(&reason));
            (action, notice, json!({"stage": index, "after": after}))
        }
    };
    if kind != TimerKind::Remind {
        request.updated_at = now;
        if !requests::update(&mut tx, &request).await? {
            tx.rollback().await?;
            return Ok(());
        }
        if kind == TimerKind::Escalate {
            schedule(&mut tx, state, &request, true).await?;
        }
        if kind == TimerKind::Decline {
            // A review left undecided ends the access it reviewed.
            crate::grants::review::on_declined(&mut tx, state, &request, now).await?;
        }
    }
    audit::append(
        &mut tx,
        &crate::audit::Event::of_request(
            &request,
            now,
            Actor::System("timer".into()),
            action,
            details,
        ),
    )
    .await?;
    let key = format!("{}:{}:{stage}:{epoch}", request.id, kind.as_str());
    notices::enqueue(&mut tx, &request, notice, key).await?;
    tx.commit().await?;
    tracing::info!(%ticket_key, timer = kind.as_str(), "stage timer fired");
    Ok(())
}

/// The approvers' managers (without the requester), resolved to accounts.
async fn managers_of(
    state: &AppState,
    tenant: &TenantKey,
    request: &Request,
    approvers: &[Approver],
) -> Result<Vec<Approver>, Failure> {
    let Some(org) = state.org.index() else {
        return Ok(Vec::new());
    };
    let (_, site) = state.site(tenant).await?;
    let requester = request
        .subject_email
        .as_deref()
        .or(request.requester_email.as_deref());
    let mut out: Vec<Approver> = Vec::new();
    for approver in approvers {
        let Some(idx) = Email::parse(&approver.email)
            .ok()
            .and_then(|e| org.by_email(&e))
        else {
            continue;
        };
        let Some(manager) = org.manager_of(idx) else {
            continue;
        };
        let person = org.person(manager);
        if Some(person.email.as_str()) == requester
            || out.iter().any(|a| a.email == person.email.as_str())
        {
            continue;
        }
        out.push(super::intake::approver(state, &site, &org, person.email.as_str()).await?);
    }
    Ok(out)
}
