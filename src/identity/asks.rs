//! What a run asks the person's manager to decide in the lifecycle ticket: birthright whose
//! policy says `approval: manager`, and (for a mover with a new manager or department) the
//! access they asked for whose resource says `review_on_move`. Each is a request of the run,
//! pending with the manager like any request's stage, so the ticket's `/approve` and
//! `/decline` decide it (one comment decides every one waiting in the ticket), its timers run
//! (reminded halfway, declined at `lifecycle.decide_within`), and what follows is the grant
//! engine's: an approved birthright is granted, a declined or undecided review ends the access.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::atlassian::Site;
use crate::audit::{self, Actor};
use crate::failure::Failure;
use crate::ids::{AccountId, ResourceId, TenantKey, TicketKey};
use crate::lifecycle::{self, Action, Approver, Event, Plan, PlannedStage, Request, State};
use crate::notices::{self, Notice};
use crate::orgchart::{OrgIndex, Person, PersonIdx};
use crate::people::accounts;
use crate::state::AppState;
use crate::store::Tx;
use crate::store::lifecycle_runs::Run;
use crate::store::requests;
use crate::workflow::birthright::Entitlement;

/// How far up the management chain a decision is looked for (a chart with a loop ends here).
const CHAIN: usize = 32;

/// Who decides in the person's lifecycle ticket: their first manager up the chain who is
/// active and has an Atlassian account (nobody can decide in a ticket without one).
pub async fn manager(
    state: &AppState,
    site: &Site,
    org: &OrgIndex,
    idx: PersonIdx,
) -> Result<Option<Approver>, Failure> {
    let mut at = org.manager_of(idx);
    for _ in 0..CHAIN {
        let Some(m) = at else { break };
        let person = org.person(m);
        if person.active
            && m != idx
            && let Some(account) =
                accounts::account_for(&state.store, &state.atlassian, site, person, &*state.clock)
                    .await?
        {
            return Ok(Some(Approver {
                email: person.email.to_string(),
                name: person.display_name.clone(),
                account: Some(account),
            }));
        }
        at = org.manager_of(m);
    }
    Ok(None)
}

/// The grants `person` asked for that their move sends to review: active, of a resource that
/// says `review_on_move`, and not under a review already.
pub async fn reviewable(
    state: &AppState,
    run: &Run,
    resources: &[ResourceId],
) -> Result<Vec<Request>, Failure> {
    let mut out = Vec::new();
    for grant in requests::requested_active(&state.store, resources, Some(&run.person)).await? {
        let children = requests::children(&state.store, grant.id).await?;
        let reviewing = children
            .iter()
            .any(|c| crate::grants::review::is_review(c) && c.state == State::Pending);
        if !reviewing {
            out.push(grant);
        }
    }
    Ok(out)
}

/// One thing to ask: birthright not held yet, a grant held, or product access unused.
pub enum Ask<'a> {
    Birthright {
        entitlement: &'a Entitlement,
        policies: &'a [String],
    },
    Review(&'a Request),
    Inactive {
        product: &'a str,
        since: NaiveDate,
    },
}

impl Ask<'_> {
    pub fn label(&self) -> String {
        let (resource, level) = match self {
            Ask::Birthright { entitlement, .. } => (&entitlement.resource, &entitlement.level),
            Ask::Review(grant) => match &grant.resource {
                Some(resource) => (resource, &grant.level),
                None => return format!("grant {}", grant.id),
            },
            Ask::Inactive { product, .. } => return format!("{product} (product access)"),
        };
        match level {
            Some(level) => format!("{resource} ({level})"),
            None => resource.to_string(),
        }
    }

    fn why(&self) -> String {
        match self {
            Ask::Birthright { policies, .. } => {
                format!(
                    "birthright ({}), granted once approved",
                    policies.join(", ")
                )
            }
            Ask::Review(_) => "asked for before the move; it ends unless approved".into(),
            Ask::Inactive { since, .. } => {
                format!("not used since {since}; it ends unless approved")
            }
        }
    }
}

/// Where the asks are made and for whom.
pub struct Asking<'a> {
    pub run: &'a Run,
    pub ticket: &'a (TenantKey, TicketKey, String),
    pub person: &'a Person,
    pub account: Option<&'a AccountId>,
    pub manager: &'a Approver,
    pub workflows_version: &'a str,
}

/// Stores a pending request per ask, with its audit events and its timers, and one notice
/// asking the manager (added to the ticket) to decide; what was asked (its index in `asks`)
/// and the request deciding it (an ask the run made before is left out).
pub async fn store(
    tx: &mut Tx,
    state: &AppState,
    asking: &Asking<'_>,
    asks: &[Ask<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<(usize, Uuid)>, Failure> {
    let timeouts = state.config.lifecycle.timeouts();
    let mut asked = Vec::new();
    let mut first = None;
    for (index, ask) in asks.iter().enumerate() {
        let request = pending(asking, ask, now)?;
        if !requests::insert(tx, &request).await? {
            continue;
        }
        let actor = || Actor::System("lifecycle".into());
        let of =
            |action, details| audit::Event::of_request(&request, now, actor(), action, details);
        let details = json!({
            "run": asking.run.id, "resource": request.resource, "level": request.level,
            "requester_email": request.requester_email, "why": request.justification,
            "review_of": request.parent_id,
        });
        audit::append(tx, &of(Action::RequestReceived, details)).await?;
        let routed =
            json!({"state": request.state.as_str(), "approver_email": asking.manager.email});
        audit::append(tx, &of(Action::RequestRouted, routed)).await?;
        crate::jobs::schedule_stage_timers(tx, &*state.clock, &request, &timeouts, false).await?;
        let review = !matches!(ask, Ask::Birthright { .. });
        asked.push((ask.label(), ask.why(), review, (index, request.id)));
        first.get_or_insert(request);
    }
    let Some(first) = first else {
        return Ok(Vec::new());
    };
    let deadline = now
        + chrono::TimeDelta::from_std(state.config.lifecycle.decide_within)
            .unwrap_or(chrono::TimeDelta::days(14));
    let notice = Notice {
        template: "lifecycle_decide".into(),
        context: json!({
            "manager": asking.manager.name,
            "name": asking.person.display_name,
            "deadline": deadline.format("%Y-%m-%d %H:%M").to_string(),
            "items": asked.iter().map(|(label, why, _, _)| json!({"label": label, "why": why})).collect::<Vec<_>>(),
            "reviews": asked.iter().any(|(_, _, review, _)| *review),
        }),
        participants: asking.manager.account.iter().cloned().collect(),
        transition: None,
    };
    notices::enqueue(tx, &first, notice, format!("run:{}:decide", asking.run.id)).await?;
    Ok(asked.into_iter().map(|(_, _, _, asked)| asked).collect())
}

/// The pending request an ask makes: one stage, the manager's.
fn pending(asking: &Asking<'_>, ask: &Ask<'_>, now: DateTime<Utc>) -> Result<Request, Failure> {
    let (tenant, key, issue) = asking.ticket;
    let person = asking.person;
    let base = Request::received(
        Uuid::now_v7(),
        tenant.clone(),
        key.clone(),
        issue.clone(),
        asking
            .account
            .cloned()
            .unwrap_or_else(|| AccountId("unknown".into())),
        asking.workflows_version.to_string(),
        now,
    );
    let (why, stage) = match ask {
        Ask::Birthright { policies, .. } => (
            policies
                .iter()
                .map(|p| format!("birthright:{p}"))
                .collect::<Vec<_>>()
                .join(", "),
            "the manager approves the birthright",
        ),
        Ask::Review(_) => (
            format!("review_on_move: {} moved", person.display_name),
            "the new manager reviews access asked for before the move",
        ),
        Ask::Inactive { since, .. } => (
            format!("inactive: not used since {since}"),
            "the manager reviews access unused too long",
        ),
    };
    let mut request = Request {
        requester_email: Some(person.email.clone()),
        subject_email: Some(person.email.clone()),
        subject_person: Some(person.id.clone()),
        subject_account: asking.account.cloned(),
        run_id: Some(asking.run.id),
        workflow: Some(match ask {
            Ask::Birthright { policies, .. } => format!(
                "birthright:{}",
                policies.first().map(String::as_str).unwrap_or_default()
            ),
            Ask::Review(_) => "review_on_move".into(),
            Ask::Inactive { product, .. } => {
                format!("{}{product}", crate::grants::review::INACTIVE)
            }
        }),
        justification: why.clone(),
        plan: Some(Plan {
            stages: vec![PlannedStage {
                name: "manager".into(),
                approvers: vec![asking.manager.clone()],
                required: 1,
                skipped: false,
                why: stage.into(),
            }],
            reasons: vec![why],
        }),
        ..base
    };
    match ask {
        Ask::Birthright { entitlement, .. } => {
            request.resource = Some(entitlement.resource.clone());
            request.level = entitlement.level.clone();
        }
        Ask::Review(grant) => {
            request.resource = grant.resource.clone();
            request.level = grant.level.clone();
            request.parent_id = Some(grant.id);
            request.subject_account = grant.subject_account.clone().or(request.subject_account);
        }
        Ask::Inactive { product, .. } => {
            request.resource = Some(ResourceId(product.to_string()));
        }
    }
    lifecycle::apply(&mut request, Event::Routed { stage: 0 }, now)?;
    Ok(request)
}
