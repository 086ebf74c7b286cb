//! When the org chart changes (a sync wrote a new snapshot), each pending request's open stage
//! is routed again: an approver who left or a manager who changed is replaced, and the ticket
//! says so.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{self, Actor};
use crate::failure::Failure;
use crate::lifecycle::{Action, Approver, State};
use crate::notices::{self, Notice};
use crate::state::AppState;
use crate::store::requests::{self, Request};
use crate::workflow::{RequestedDuration, RouteRequest, route};

/// Re-resolves every pending request's open stage; returns how many changed.
pub async fn after_org_change(state: &AppState) -> Result<usize, Failure> {
    let (Some(org), Some(workflows)) = (state.org.index(), state.workflows()) else {
        return Ok(0);
    };
    let mut changed = 0;
    for pending in requests::pending(&state.store).await? {
        let (Some(filer), Some(resource)) =
            (pending.requester_email.clone(), pending.resource.clone())
        else {
            continue;
        };
        let subject = pending.subject_email.clone();
        let duration = match pending.duration_seconds {
            Some(s) => RequestedDuration::For(std::time::Duration::from_secs(s.max(0) as u64)),
            None => RequestedDuration::Permanent,
        };
        let Ok(routing) = route(
            &workflows,
            &org,
            &RouteRequest {
                filed_by: &filer,
                on_behalf_of: subject.as_ref(),
                resource: &resource,
                level: pending.level.as_deref(),
                duration,
                justification: &pending.justification,
                now: state.clock.now(),
            },
        ) else {
            continue;
        };
        let Some(plan) = &pending.plan else { continue };
        let index = pending.stage as usize;
        let Some(open) = plan.stages.get(index) else {
            continue;
        };
        let Some(fresh) = routing.stages.iter().find(|s| s.name == open.name) else {
            continue;
        };
        let mut before: Vec<&str> = open.approvers.iter().map(|a| a.email.as_str()).collect();
        let mut after: Vec<&str> = fresh.approvers.iter().map(String::as_str).collect();
        before.sort_unstable();
        after.sort_unstable();
        if before == after || after.is_empty() {
            continue;
        }
        let (_, site) = state.site(&pending.tenant).await?;
        let mut approvers = Vec::new();
        for email in &fresh.approvers {
            approvers.push(super::intake::approver(state, &site, &org, email).await?);
        }
        if replace(state, &pending, approvers, state.clock.now()).await? {
            changed += 1;
        }
    }
    Ok(changed)
}

/// Writes the new approvers of the open stage, if the request is still where it was.
async fn replace(
    state: &AppState,
    seen: &Request,
    approvers: Vec<Approver>,
    now: DateTime<Utc>,
) -> Result<bool, Failure> {
    let mut tx = state.store.begin().await?;
    let Some(mut request) = requests::lock(&mut tx, &seen.tenant, &seen.ticket_key).await? else {
        tx.rollback().await?;
        return Ok(false);
    };
    if request.state != State::Pending
        || request.stage != seen.stage
        || request.version != seen.version
    {
        tx.rollback().await?;
        return Ok(false);
    }
    let mut plan = request.plan.clone().unwrap_or_default();
    let index = request.stage as usize;
    let names = |list: &[Approver]| {
        list.iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let previous = names(&plan.stages[index].approvers);
    let now_names = names(&approvers);
    let participants = approvers.iter().filter_map(|a| a.account.clone()).collect();
    plan.stages[index].approvers = approvers;
    plan.stages[index].why = format!("the org chart changed (was {previous})");
    request.plan = Some(plan);
    request.updated_at = now;
    if !requests::update(&mut tx, &request).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    let stage_name = request
        .plan
        .as_ref()
        .map(|p| p.stages[index].name.clone())
        .unwrap_or_default();
    audit::append(
        &mut tx,
        &crate::audit::Event::of_request(
            &request,
            now,
            Actor::System("org-sync".into()),
            Action::RequestRerouted,
            json!({"stage": index, "from": previous, "to": now_names}),
        ),
    )
    .await?;
    let notice = Notice {
        template: "rerouted".into(),
        context: json!({"stage": stage_name, "stage_number": index + 1, "approvers": now_names, "previous": previous}),
        participants,
        transition: None,
    };
    notices::enqueue(
        &mut tx,
        &request,
        notice,
        format!("{}:v{}", request.id, request.version + 1),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
