//! What the ticket is told: a comment from a template, request participants, and a
//! transition where the JSM workflow has one by that name. Built inside the transaction that
//! makes the change, delivered by a durable job (retried while Jira is unavailable).

pub mod templates;

pub use crate::lifecycle::notice::Notice;
use serde_json::{Value, json};

use crate::atlassian::{AtlassianError, Change};
use crate::failure::Failure;
use crate::ids::{TenantKey, TicketKey};
use crate::jobs::{self, Job, JobError};
use crate::lifecycle::Plan;
use crate::orgchart::AccountId;
use crate::state::AppState;
use crate::store::Tx;
use crate::store::requests::Request;

fn names(plan: &Plan, stage: usize) -> String {
    plan.stages
        .get(stage)
        .map(|s| {
            s.approvers
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn participants(plan: &Plan, stage: usize) -> Vec<AccountId> {
    plan.stages
        .get(stage)
        .map(|s| {
            s.approvers
                .iter()
                .filter_map(|a| a.account.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn base(request: &Request) -> Value {
    json!({
        "resource": request.resource,
        "level": request.level,
        "duration": duration_words(request.duration_seconds),
        "workflow_version": request.workflow_version,
    })
}

pub fn routed(state: &AppState, request: &Request) -> Notice {
    let plan = request.plan.clone().unwrap_or_default();
    let current = request.stage as usize;
    let stages: Vec<Value> = plan
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "number": i + 1, "name": s.name, "skipped": s.skipped, "why": s.why,
                "required": s.required, "approver_names": names(&plan, i), "current": i == current,
            })
        })
        .collect();
    let mut context = base(request);
    // The requester by name, as the org chart has it.
    let name = request.requester_email.as_ref().and_then(|e| {
        let org = state.org.index()?;
        org.by_email(e).map(|p| org.person(p).display_name.clone())
    });
    context["requester"] =
        json!(name.or(request.requester_email.as_ref().map(ToString::to_string)));
    context["stages"] = json!(stages);
    context["reasons"] = json!(plan.reasons.join("; "));
    Notice {
        template: "routed".into(),
        context,
        participants: participants(&plan, current),
        transition: None,
    }
}

pub fn invalid(request: &Request, reason: &str) -> Notice {
    let mut context = base(request);
    context["reason"] = json!(reason);
    Notice {
        template: "invalid".into(),
        context,
        participants: Vec::new(),
        transition: Some("Declined".into()),
    }
}

pub fn auto_approved(request: &Request) -> Notice {
    let mut context = base(request);
    let reasons = request.plan.as_ref().map(|p| p.reasons.join("; "));
    context["reasons"] = json!(reasons.unwrap_or_default());
    Notice {
        template: "auto_approved".into(),
        context,
        participants: Vec::new(),
        transition: Some("Approved".into()),
    }
}

/// A decision on one of a lifecycle ticket's requests: the ticket carries several, so it names
/// which, and what follows (granted or not; for a review, kept or ended).
fn decided_in_lifecycle(
    request: &Request,
    approved: bool,
    approver: Option<&str>,
    reason: Option<&str>,
) -> Notice {
    let mut context = base(request);
    context["approved"] = json!(approved);
    context["approver"] = json!(approver);
    context["reason"] = json!(reason);
    context["review"] = json!(request.reviews().is_some());
    Notice {
        template: "lifecycle_decided".into(),
        context,
        participants: Vec::new(),
        transition: None,
    }
}

pub fn declined(request: &Request, approver: Option<&str>, reason: Option<&str>) -> Notice {
    if request.run_id.is_some() {
        return decided_in_lifecycle(request, false, approver, reason);
    }
    let mut context = base(request);
    context["approver"] = json!(approver);
    context["reason"] = json!(reason);
    Notice {
        template: "declined".into(),
        context,
        participants: Vec::new(),
        transition: Some("Declined".into()),
    }
}

pub fn approved(request: &Request, approver: &str, reason: Option<&str>) -> Notice {
    if request.run_id.is_some() {
        return decided_in_lifecycle(request, true, Some(approver), reason);
    }
    let mut context = base(request);
    context["approver"] = json!(approver);
    context["reason"] = json!(reason);
    Notice {
        template: "approved".into(),
        context,
        participants: Vec::new(),
        transition: Some("Approved".into()),
    }
}

pub fn stage_approved(
    request: &Request,
    approver: &str,
    reason: Option<&str>,
    done: usize,
) -> Notice {
    let plan = request.plan.clone().unwrap_or_default();
    let next = request.stage as usize;
    let mut context = base(request);
    context["approver"] = json!(approver);
    context["reason"] = json!(reason);
    context["stage"] = json!(plan.stages.get(done).map(|s| &s.name));
    context["stage_number"] = json!(done + 1);
    context["next"] = json!(plan.stages.get(next).map(|s| &s.name));
    context["next_number"] = json!(next + 1);
    context["next_approvers"] = json!(names(&plan, next));
    Notice {
        template: "stage_approved".into(),
        context,
        participants: participants(&plan, next),
        transition: None,
    }
}

pub fn waiting(
    request: &Request,
    approver: &str,
    reason: Option<&str>,
    approvals: usize,
    required: usize,
) -> Notice {
    let plan = request.plan.clone().unwrap_or_default();
    let stage = request.stage as usize;
    let mut context = base(request);
    context["approver"] = json!(approver);
    context["reason"] = json!(reason);
    context["stage"] = json!(plan.stages.get(stage).map(|s| &s.name));
    context["stage_number"] = json!(stage + 1);
    context["approvals"] = json!(approvals);
    context["required"] = json!(required);
    Notice {
        template: "waiting".into(),
        context,
        participants: Vec::new(),
        transition: None,
    }
}

/// `who` is the person's display name; without one the answer speaks to "you" alone.
pub fn refused(who: Option<&str>, why: &str) -> Notice {
    Notice {
        template: "refused".into(),
        context: json!({"who": who, "why": why}),
        participants: Vec::new(),
        transition: None,
    }
}

/// Queues the notice in the caller's transaction; `key` makes it once-only.
pub async fn enqueue(
    tx: &mut Tx,
    request: &Request,
    notice: Notice,
    key: String,
) -> Result<(), JobError> {
    // A lifecycle ticket carries several requests of one run: no one of them moves its status.
    let notice = match request.run_id {
        Some(_) => Notice {
            transition: None,
            ..notice
        },
        None => notice,
    };
    enqueue_on(tx, (&request.tenant, &request.ticket_key), notice, key).await
}

/// Queues `notice` for a ticket no request names (a lifecycle ticket's own news).
pub async fn enqueue_on(
    tx: &mut Tx,
    (tenant, ticket_key): (&TenantKey, &TicketKey),
    notice: Notice,
    key: String,
) -> Result<(), JobError> {
    // Due at once, on the wall clock the queue runs on; its place in the ticket's order is
    // taken in the same transaction.
    let now = crate::clock::wall();
    crate::store::notices::queue(tx, &key, tenant, ticket_key, now).await?;
    let job = Job::TicketNotice {
        tenant: tenant.to_string(),
        ticket_key: ticket_key.to_string(),
        notice,
        key,
        attempt: 0,
        since: 0,
        round: 0,
        waited: 0,
    };
    jobs::schedule(tx, &job, now).await.map(|_| ())
}

/// What a notice job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Told {
    Done,
    /// An earlier notice of the ticket (this key) is not posted yet: try again shortly.
    Behind(String),
}

/// A notice that could not be delivered and will not be retried any more: kept as dead with
/// its reason, and an alert raised, in one transaction. (tenant, ticket, notice, key, round)
pub async fn give_up(
    state: &AppState,
    (tenant, ticket_key, notice, key, round): (&String, &String, &Notice, &String, i64),
    reason: &str,
) -> Result<(), JobError> {
    use crate::store::notices::{self as sent, DeadNotice};
    let now = crate::clock::wall();
    let dead = DeadNotice {
        key: key.clone(),
        tenant: tenant.clone(),
        ticket_key: ticket_key.clone(),
        notice: serde_json::to_string(notice)?,
        reason: reason.to_string(),
        dead_at: now,
        rounds: round,
    };
    let alert = crate::alerts::Alert::NoticeDead {
        notice: key.clone(),
        tenant: tenant.clone(),
        ticket_key: ticket_key.clone(),
        reason: reason.to_string(),
    };
    let mut tx = state.store.begin().await?;
    if sent::mark_dead(&mut tx, &dead).await? {
        crate::alerts::record(&mut tx, &state.config, &alert, state.clock.now()).await?;
    }
    tx.commit().await?;
    crate::alerts::announce(&state.metrics, &alert);
    tracing::error!(
        ticket_key,
        key,
        reason,
        "the ticket could not be told; given up, listed by `tollgate events list --dead`"
    );
    Ok(())
}

/// Queues dead notices again (`key`, or every one with `None`) for a fresh round of retries;
/// returns their keys.
pub async fn retry_dead(
    store: &crate::store::Store,
    key: Option<&str>,
) -> Result<Vec<String>, JobError> {
    let mut tx = store.begin().await?;
    let revived = crate::store::notices::revive(&mut tx, key).await?;
    for dead in &revived {
        let notice: Notice = serde_json::from_str(&dead.notice)?;
        let job = Job::TicketNotice {
            tenant: dead.tenant.clone(),
            ticket_key: dead.ticket_key.clone(),
            notice,
            key: dead.key.clone(),
            attempt: 0,
            since: 0,
            round: dead.rounds + 1,
            waited: 0,
        };
        jobs::schedule_now(&mut tx, &job).await?;
    }
    tx.commit().await?;
    Ok(revived.into_iter().map(|d| d.key).collect())
}

/// Tells the ticket: its comment once per `key`, then participants and the transition, which
/// are idempotent. The comment is recorded as being posted before the call and as sent after
/// it; a re-run that finds it being posted (its worker died in between) looks for the key in
/// the ticket's comments before posting it again.
pub async fn deliver(
    state: &AppState,
    tenant: &TenantKey,
    ticket_key: &TicketKey,
    notice: &Notice,
    key: &str,
) -> Result<Told, Failure> {
    // The ticket reads as things happened: an earlier notice still being tried goes first,
    // for at most `events.ticket_block` (then this one proceeds; that one keeps retrying).
    let block = chrono::TimeDelta::from_std(state.config.events.ticket_block)
        .unwrap_or(chrono::TimeDelta::minutes(10));
    if let Some(earlier) =
        crate::store::notices::earlier_unsent(&state.store, key, crate::clock::wall() - block)
            .await?
    {
        return Ok(Told::Behind(earlier));
    }
    let (tenant_row, site) = state.site(tenant).await?;
    let tenant_host = tenant_row.host.clone();
    // Resources by the name the catalog gives them.
    let mut context = notice.context.clone();
    if let (Some(id), Some(workflows)) = (context["resource"].as_str(), state.workflows())
        && let Some(resource) = workflows.catalog.get(id)
    {
        context["resource"] = json!(resource.name);
    }
    let text = templates::render(&notice.template, &context)
        .map_err(|e| Failure::Atlassian(AtlassianError::Refused(e)))?;
    use crate::store::notices::{self as sent, Posting};
    let posting = sent::begin(&state.store, key, tenant, ticket_key, state.clock.now()).await?;
    let posted_before = posting == Posting::Unsure
        && state
            .atlassian
            .issue_comments(&site, ticket_key)
            .await?
            .iter()
            .any(|c| c.notice.as_deref() == Some(key));
    if posting != Posting::Sent {
        if !posted_before {
            state
                .atlassian
                .comment(&site, ticket_key, &text, false, Some(key))
                .await?;
        }
        sent::sent(&state.store, key, state.clock.now()).await?;
    }
    if !notice.participants.is_empty() {
        state
            .atlassian
            .add_participants(&site, ticket_key, &notice.participants)
            .await?;
        // JSM's Approvers field, where the intake mapping names one, shows the open stage.
        let field = state.workflows().and_then(|w| {
            w.intake_for(&tenant_host)
                .and_then(|m| m.fields.approvers.as_ref())
                .map(|f| f.0.clone())
        });
        if let Some(field) = field {
            state
                .atlassian
                .set_users_field(&site, ticket_key, &field, &notice.participants)
                .await?;
        }
    }

    // The notice names the outcome; the intake mapping names the JSM transition for it.
    let transition = notice.transition.as_deref().map(|outcome| {
        let mapping = state
            .workflows()
            .and_then(|w| w.intake_for(&tenant_host).cloned());
        match (outcome, mapping) {
            ("Approved", Some(m)) => m.approved_transition,
            ("Declined", Some(m)) => m.declined_transition,
            (other, _) => other.to_string(),
        }
    });
    if let Some(name) = &transition {
        match state.atlassian.transition(&site, ticket_key, name).await {
            Ok(Change::Applied | Change::AlreadyInPlace) => {}
            // The JSM workflow has no such transition: the comment says it all.
            Err(AtlassianError::Refused(why)) => {
                tracing::debug!(%ticket_key, %why, "no transition")
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Told::Done)
}

/// A duration as the ticket says it (`7d`), from stored seconds.
pub fn duration_words(seconds: Option<i64>) -> Option<String> {
    seconds.map(|s| crate::duration::format(std::time::Duration::from_secs(s.max(0) as u64)))
}
