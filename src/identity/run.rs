//! One lifecycle run (the `LifecycleRun` job), whatever its event: what the person is due now
//! is compared with what their birthright holds ([`changes`], pure); what is newly due is
//! granted through the grant engine in their lifecycle ticket, what is no longer due ends after
//! the grace period, and what was ending but is due again no longer ends.
//!
//! Each step can be repeated after a crash: the ticket is looked for before it is raised
//! again (its description carries the run's reference), a run makes each resource and level
//! once (the store's uniqueness), and the run is finished in the transaction that stores its
//! grants, their audit events and their `Provision` jobs.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::asks::{Ask, Asking};
use super::changes::event_of;
use crate::atlassian::Site;
use crate::atlassian::jsm::NewRequest;
use crate::audit::{self, Actor, RunStep};
use crate::failure::Failure;
use crate::ids::{AccountId, TenantKey, TicketKey};
use crate::lifecycle::{self, Action, Event, Request, State};
use crate::orgchart::Person;
use crate::people::accounts;
use crate::state::AppState;
use crate::store::lifecycle_runs::{self as runs, Run, RunEvent, RunState};
use crate::store::requests;
use crate::workflow::birthright::{self, Approval, Due, Entitlement};

fn actor() -> Actor {
    Actor::System("lifecycle".into())
}

/// The text a run's ticket carries so that it can be found again: the run's id, as one word.
pub fn reference(run: Uuid) -> String {
    format!("tollgate-run-{}", run.simple())
}

/// A birthright grant the person holds, or is being given.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub id: Uuid,
    pub entitlement: Entitlement,
    pub state: State,
    /// When it ends: set once the person is no longer due it.
    pub ends: Option<DateTime<Utc>>,
}

impl Held {
    /// A birthright grant as stored; `None` once it is over (or names no resource).
    pub fn of(request: Request) -> Option<Self> {
        if request.state.is_final() {
            return None;
        }
        Some(Self {
            id: request.id,
            entitlement: Entitlement {
                resource: request.resource?,
                level: request.level,
            },
            state: request.state,
            ends: request.expires_at,
        })
    }
}

/// What a run does.
#[derive(Debug, Default, PartialEq)]
pub struct Changes<'a> {
    /// Due, not held, no approval asked: granted now.
    pub grant: Vec<&'a Due>,
    /// Due, not held, behind the manager's approval: listed in the ticket.
    pub approval: Vec<&'a Due>,
    /// Held (active, no end yet) and no longer due: ends after the grace period.
    pub end: Vec<&'a Held>,
    /// Held and ending, and due again: no longer ends.
    pub keep: Vec<&'a Held>,
}

impl Changes<'_> {
    pub fn is_empty(&self) -> bool {
        self.grant.is_empty()
            && self.approval.is_empty()
            && self.end.is_empty()
            && self.keep.is_empty()
    }
}

/// What the person is `due`, against what their birthright `held`.
pub fn changes<'a>(due: &'a [Due], held: &'a [Held]) -> Changes<'a> {
    let holds = |d: &Due| held.iter().any(|h| h.entitlement == d.entitlement);
    let is_due = |h: &Held| due.iter().any(|d| d.entitlement == h.entitlement);
    let (grant, approval) = due
        .iter()
        .filter(|d| !holds(d))
        .partition(|d| d.approval == Approval::None);
    let active = |h: &&Held| h.state == State::Active;
    Changes {
        grant,
        approval,
        end: held
            .iter()
            .filter(active)
            .filter(|h| h.ends.is_none() && !is_due(h))
            .collect(),
        keep: held
            .iter()
            .filter(active)
            .filter(|h| h.ends.is_some() && is_due(h))
            .collect(),
    }
}

/// What the run's ticket says: what is being granted, what ends and when, what no longer ends,
/// and what waits for the manager.
pub fn description(
    event: RunEvent,
    name: &str,
    (changes, reviewed): (&Changes<'_>, &[String]),
    manager: Option<&str>,
    ends: DateTime<Utc>,
    run: Uuid,
) -> String {
    let list = |dues: &[&Due]| -> Vec<Value> {
        dues.iter()
            .map(|d| {
                json!({
                    "resource": d.entitlement.resource,
                    "level": d.entitlement.level,
                    "policies": d.policies.join(", "),
                })
            })
            .collect()
    };
    let labels =
        |held: &[&Held]| -> Vec<String> { held.iter().map(|h| label(&h.entitlement)).collect() };
    let context = json!({
        "joiner": event == RunEvent::Joiner,
        "name": name,
        "grants": list(&changes.grant),
        "approval": list(&changes.approval),
        "ending": labels(&changes.end),
        "kept": labels(&changes.keep),
        "reviewed": reviewed,
        "manager": manager,
        "ends": ends.format("%Y-%m-%d %H:%M").to_string(),
        "reference": reference(run),
    });
    crate::notices::templates::render("lifecycle", &context).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the lifecycle template did not render");
        format!(
            "Birthright access for {name}. Reference: {}",
            reference(run)
        )
    })
}

/// What a leaver's ticket says was done.
pub fn leaver_description(name: &str, done: &[String], run: Uuid) -> String {
    let context = json!({"leaver": true, "name": name, "done": done, "reference": reference(run)});
    crate::notices::templates::render("lifecycle", &context).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the lifecycle template did not render");
        format!("{name} has left. Reference: {}", reference(run))
    })
}

/// Carries out run `id`; a run that is not queued (held, finished, unknown) is left alone.
pub async fn execute(state: &AppState, id: Uuid) -> Result<(), Failure> {
    let Some(run) = runs::get(&state.store, id).await? else {
        return Ok(());
    };
    if run.state != RunState::Queued {
        return Ok(());
    }
    let now = state.clock.now();
    match run.event {
        RunEvent::Leaver => return super::offboard::offboard(state, &run, now).await,
        RunEvent::Inactive => return super::inactive::execute(state, &run, now).await,
        RunEvent::Joiner | RunEvent::Mover => {}
    }
    let Some(workflows) = state.workflows() else {
        return Err(Failure::NotReady("no workflows are loaded".into()));
    };
    let Some(org) = state.org.index() else {
        return Err(Failure::NotReady(
            "the org chart has not been synced yet".into(),
        ));
    };
    let found = org.by_id(&run.person).filter(|idx| org.person(*idx).active);
    let Some(idx) = found else {
        return finish(
            state,
            &run,
            "nothing granted: no longer active in the org chart",
            now,
        )
        .await;
    };
    let person = org.person(idx).clone();
    let (due, problems) = birthright::due(&workflows.birthright, &org, idx, now);
    for problem in &problems {
        tracing::warn!(person = %person.email, %problem, "a birthright condition could not be judged");
    }
    let held = held(state, &run).await?;
    let changes = changes(&due, &held);
    let reviews = match run.review {
        true => {
            let resources = workflows.catalog.reviewed_on_move();
            super::asks::reviewable(state, &run, &resources).await?
        }
        false => Vec::new(),
    };
    if changes.is_empty() && reviews.is_empty() {
        return finish(
            state,
            &run,
            "nothing changed: the birthright held is what is due",
            now,
        )
        .await;
    }
    let Some(config) = &state.config.lifecycle.ticket else {
        tracing::warn!(
            person = %person.email,
            "birthright changes but no lifecycle ticket is configured (lifecycle.site, …): nothing done"
        );
        return finish(
            state,
            &run,
            "nothing done: no lifecycle ticket is configured (lifecycle.site, lifecycle.service_desk, lifecycle.request_type)",
            now,
        )
        .await;
    };
    let grace = chrono::TimeDelta::from_std(state.config.lifecycle.grace_period)
        .unwrap_or(chrono::TimeDelta::days(7));
    // A second try keeps the end the first announced.
    let ends = run.created_at.max(now - grace) + grace;
    let (tenant, site) = state.jira_site_at(&config.site).await?;
    let account = accounts::account_for(
        &state.store,
        &state.atlassian,
        &site,
        &person,
        &*state.clock,
    )
    .await?;
    let asks: Vec<Ask<'_>> = changes
        .approval
        .iter()
        .map(|d| Ask::Birthright {
            entitlement: &d.entitlement,
            policies: &d.policies,
        })
        .chain(reviews.iter().map(Ask::Review))
        .collect();
    let manager = match asks.is_empty() {
        true => None,
        false => super::asks::manager(state, &site, &org, idx).await?,
    };
    let reviewed: Vec<String> = reviews.iter().map(|g| Ask::Review(g).label()).collect();
    let text = description(
        run.event,
        &person.display_name,
        (&changes, &reviewed),
        manager.as_ref().map(|m| m.name.as_str()),
        ends,
        run.id,
    );
    let (run, ticket) = open_ticket_once(
        state,
        &run,
        &site,
        &tenant.client_key,
        config,
        account.as_ref(),
        &text,
        now,
    )
    .await?;

    let mut tx = state.store.begin().await?;
    let mut done = Done::default();
    for due in &changes.grant {
        let request = birthright_request(
            &run,
            &ticket,
            &person,
            account.clone(),
            due,
            &workflows.version,
            now,
        )?;
        if !requests::insert(&mut tx, &request).await? {
            continue;
        }
        let details = json!({
            "birthright": due.policies, "run": run.id, "requester_email": request.requester_email,
            "resource": request.resource, "level": request.level,
        });
        let of_request =
            |action, details| audit::Event::of_request(&request, now, actor(), action, details);
        audit::append(&mut tx, &of_request(Action::RequestReceived, details)).await?;
        audit::append(
            &mut tx,
            &of_request(
                Action::RequestAutoApproved,
                json!({"state": request.state.as_str(), "workflow": request.workflow, "reason": "birthright"}),
            ),
        )
        .await?;
        crate::grants::run::on_approved(&mut tx, &request).await?;
        done.granted.push(label(&due.entitlement));
    }
    for held in &changes.end {
        let why = json!({"run": run.id, "reason": "birthright no longer due", "ends": ends});
        if reschedule(&mut tx, held, Event::EndScheduled { at: ends }, why, now).await? {
            done.ending.push(label(&held.entitlement));
        }
    }
    for held in &changes.keep {
        let why = json!({"run": run.id, "reason": "birthright due again"});
        if reschedule(&mut tx, held, Event::EndCancelled, why, now).await? {
            done.kept.push(label(&held.entitlement));
        }
    }
    match &manager {
        Some(manager) => {
            let asking = Asking {
                run: &run,
                ticket: &ticket,
                person: &person,
                account: account.as_ref(),
                manager,
                workflows_version: &workflows.version,
            };
            let asked = super::asks::store(&mut tx, state, &asking, &asks, now).await?;
            done.asked = asked.iter().map(|(i, _)| asks[*i].label()).collect();
        }
        None => done.unasked = asks.iter().map(Ask::label).collect(),
    }
    let outcome = done.outcome(ends);
    let details = json!({
        "granted": done.granted, "ending": done.ending, "ends": ends, "kept": done.kept,
        "asked_manager": done.asked, "no_manager_to_ask": done.unasked,
    });
    if finish_in(&mut tx, &run, &outcome, details, now).await? {
        tx.commit().await?;
        tracing::info!(person = %run.email, event = run.event.as_str(), %outcome, "lifecycle run done");
    } else {
        // Another worker finished it meanwhile: what it made stands, nothing of this one does.
        tx.rollback().await?;
    }
    Ok(())
}

/// Moves a held grant's end (scheduled or cancelled) if it is still as the run saw it; whether
/// it did.
async fn reschedule(
    tx: &mut crate::store::Tx,
    held: &Held,
    event: Event,
    details: Value,
    now: DateTime<Utc>,
) -> Result<bool, Failure> {
    let Some(mut request) = requests::lock_id(tx, held.id).await? else {
        return Ok(false);
    };
    if request.state != State::Active || request.expires_at != held.ends {
        return Ok(false);
    }
    crate::grants::run::transition(tx, &mut request, event, actor(), details, now).await?;
    Ok(true)
}

/// What a run did, for its outcome and its audit event.
#[derive(Debug, Default)]
struct Done {
    granted: Vec<String>,
    ending: Vec<String>,
    kept: Vec<String>,
    /// Asked of the manager in the ticket.
    asked: Vec<String>,
    /// Needing the manager, who could not be found (or has no Atlassian account).
    unasked: Vec<String>,
}

impl Done {
    fn outcome(&self, ends: DateTime<Utc>) -> String {
        let mut parts = Vec::new();
        if !self.granted.is_empty() {
            parts.push(format!("granting {}", self.granted.join(", ")));
        }
        if !self.ending.is_empty() {
            parts.push(format!(
                "ending {} on {}",
                self.ending.join(", "),
                ends.format("%Y-%m-%d %H:%M")
            ));
        }
        if !self.kept.is_empty() {
            parts.push(format!("no longer ending {}", self.kept.join(", ")));
        }
        if !self.asked.is_empty() {
            parts.push(format!(
                "asked the manager to decide: {}",
                self.asked.join(", ")
            ));
        }
        if !self.unasked.is_empty() {
            parts.push(format!(
                "needs a manager's decision, and no manager with an Atlassian account was \
                 found (not asked): {}",
                self.unasked.join(", ")
            ));
        }
        if parts.is_empty() {
            "nothing changed".into()
        } else {
            parts.join("; ")
        }
    }
}

/// What the person's birthright grants hold or are on the way to (not over).
async fn held(state: &AppState, run: &Run) -> Result<Vec<Held>, Failure> {
    Ok(requests::birthright_of(&state.store, &run.person)
        .await?
        .into_iter()
        .filter_map(Held::of)
        .collect())
}

fn label(e: &Entitlement) -> String {
    match &e.level {
        Some(level) => format!("{} ({level})", e.resource),
        None => e.resource.to_string(),
    }
}

/// A birthright grant: a request of the run on its ticket, approved by its policy.
fn birthright_request(
    run: &Run,
    ticket: &(TenantKey, TicketKey, String),
    person: &Person,
    account: Option<AccountId>,
    due: &Due,
    workflows_version: &str,
    now: DateTime<Utc>,
) -> Result<Request, Failure> {
    let mut request = Request {
        resource: Some(due.entitlement.resource.clone()),
        level: due.entitlement.level.clone(),
        justification: due
            .policies
            .iter()
            .map(|p| format!("birthright:{p}"))
            .collect::<Vec<_>>()
            .join(", "),
        workflow: due.policies.first().map(|p| format!("birthright:{p}")),
        requester_email: Some(person.email.clone()),
        subject_email: Some(person.email.clone()),
        subject_person: Some(person.id.clone()),
        subject_account: account.clone(),
        run_id: Some(run.id),
        ..Request::received(
            Uuid::now_v7(),
            ticket.0.clone(),
            ticket.1.clone(),
            ticket.2.clone(),
            // Raised on the person's behalf: they are its reporter.
            account.unwrap_or_else(|| AccountId("unknown".into())),
            workflows_version.to_string(),
            now,
        )
    };
    lifecycle::apply(&mut request, Event::AutoApproved, now)?;
    Ok(request)
}

/// A run's lifecycle ticket: its tenant, key and issue id.
pub type Ticket = (TenantKey, TicketKey, String);

/// The run with its ticket: the one it has, else one raised now (and kept, with its audit
/// event), on `account`'s behalf when given.
#[allow(clippy::too_many_arguments)]
pub(super) async fn open_ticket_once(
    state: &AppState,
    run: &Run,
    site: &Site,
    tenant: &TenantKey,
    config: &crate::config::LifecycleTicketConfig,
    account: Option<&AccountId>,
    description: &str,
    now: DateTime<Utc>,
) -> Result<(Run, Ticket), Failure> {
    if let Some(ticket) = &run.ticket {
        return Ok((run.clone(), ticket.clone()));
    }
    let opened = open_ticket(state, run, site, tenant, config, account, description).await?;
    let mut tx = state.store.begin().await?;
    runs::opened(&mut tx, run.id, &opened, now).await?;
    let run = Run {
        ticket: Some(opened.clone()),
        ..run.clone()
    };
    event_of(
        &mut tx,
        &run,
        RunStep::TicketOpened,
        json!({}),
        actor(),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((run, opened))
}

/// Raises the run's ticket, unless an earlier attempt did (its reference is searched for
/// first); returns it.
async fn open_ticket(
    state: &AppState,
    run: &Run,
    site: &Site,
    tenant: &TenantKey,
    config: &crate::config::LifecycleTicketConfig,
    account: Option<&AccountId>,
    description: &str,
) -> Result<(TenantKey, TicketKey, String), Failure> {
    if run.opening_at.is_some() {
        let jql = format!("text ~ \"\\\"{}\\\"\"", reference(run.id));
        let found = state.atlassian.search_keys(site, &jql).await?;
        if let Some(key) = found.iter().find_map(|k| TicketKey::parse(k).ok()) {
            let issue = state.atlassian.issue(site, &key).await?;
            tracing::info!(run = %run.id, %key, "the run's ticket was raised before; using it");
            return Ok((tenant.clone(), key, issue.id));
        }
    }
    runs::opening(&state.store, run.id, state.clock.now()).await?;
    let summary = match run.event {
        RunEvent::Joiner => format!("Joiner: {} — starting access", run.name),
        RunEvent::Mover => format!("Mover: {} — access changes", run.name),
        RunEvent::Leaver => format!("Leaver: {} — access removed", run.name),
        RunEvent::Inactive => format!("Inactive: {} — unused access", run.name),
    };
    let (key, issue_id) = state
        .atlassian
        .create_request(
            site,
            &NewRequest {
                service_desk: &config.service_desk,
                request_type: &config.request_type,
                summary: &summary,
                description,
                on_behalf_of: account,
            },
        )
        .await?;
    Ok((tenant.clone(), key, issue_id))
}

/// Finishes a run that could not be carried out (an error retrying cannot mend, or one that
/// outlasted `events.retry_for`): nothing more is granted by it, and it says why.
pub async fn give_up(state: &AppState, id: Uuid, why: &str) -> Result<(), Failure> {
    let Some(run) = runs::get(&state.store, id).await? else {
        return Ok(());
    };
    tracing::error!(run = %id, person = %run.email, error = why, "a lifecycle run failed");
    finish(state, &run, &format!("failed: {why}"), state.clock.now()).await
}

/// Finishes a run that granted nothing (or a leaver's), with why or what was done.
pub(super) async fn finish(
    state: &AppState,
    run: &Run,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let mut tx = state.store.begin().await?;
    finish_in(&mut tx, run, outcome, json!({}), now).await?;
    tx.commit().await?;
    Ok(())
}

/// Finishes a queued run with `outcome` and its audit event (`details` and the outcome) in the
/// caller's transaction; `false` when another worker finished it meanwhile.
pub(super) async fn finish_in(
    tx: &mut crate::store::Tx,
    run: &Run,
    outcome: &str,
    mut details: Value,
    now: DateTime<Utc>,
) -> Result<bool, Failure> {
    if !runs::finish(tx, run.id, outcome, now).await? {
        return Ok(false);
    }
    details["outcome"] = json!(outcome);
    event_of(tx, run, RunStep::Finished, details, actor(), now).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ResourceId;

    fn due(resource: &str, level: Option<&str>, policies: &[&str], approval: Approval) -> Due {
        Due {
            entitlement: Entitlement {
                resource: ResourceId(resource.into()),
                level: level.map(str::to_string),
            },
            policies: policies.iter().map(|p| p.to_string()).collect(),
            approval,
        }
    }

    fn held(resource: &str, state: State, ends: Option<DateTime<Utc>>) -> Held {
        Held {
            id: Uuid::now_v7(),
            entitlement: Entitlement {
                resource: ResourceId(resource.into()),
                level: None,
            },
            state,
            ends,
        }
    }

    #[test]
    fn a_run_grants_the_new_ends_the_old_and_keeps_what_is_due_again() {
        let soon: DateTime<Utc> = "2026-12-07T09:00:00Z".parse().expect("time");
        let due = [
            due("wiki", None, &["all-staff"], Approval::None),
            due("netsuite", None, &["finance"], Approval::None),
            due(
                "ledger",
                Some("admin"),
                &["finance-leads"],
                Approval::Manager,
            ),
            due("zoom", None, &["all-staff"], Approval::None),
        ];
        let held = [
            // Held and still due: nothing to do.
            held("wiki", State::Active, None),
            // No longer due: ends.
            held("github", State::Active, None),
            // No longer due and already ending: left to end.
            held("datadog", State::Active, Some(soon)),
            // Ending, and due again: kept.
            held("zoom", State::Active, Some(soon)),
            // Still being granted: neither granted again nor ended.
            held("figma", State::Provisioning, None),
        ];
        let found = changes(&due, &held);
        let names = |dues: &[&Due]| -> Vec<String> {
            dues.iter()
                .map(|d| d.entitlement.resource.to_string())
                .collect()
        };
        let ids = |held: &[&Held]| -> Vec<String> {
            held.iter()
                .map(|h| h.entitlement.resource.to_string())
                .collect()
        };
        assert_eq!(names(&found.grant), ["netsuite"]);
        assert_eq!(names(&found.approval), ["ledger"]);
        assert_eq!(ids(&found.end), ["github"]);
        assert_eq!(ids(&found.keep), ["zoom"]);
        assert!(changes(&due[..1], &held[..1]).is_empty(), "nothing changes");
    }

    #[test]
    fn the_ticket_says_what_is_granted_ends_waits_and_how_to_find_it() {
        let github = due("github", Some("write"), &["engineering"], Approval::None);
        let wiki = due("wiki", None, &["all-staff", "engineering"], Approval::None);
        let prod = due("prod-db", Some("read"), &["oncall"], Approval::Manager);
        let run = Uuid::now_v7();
        let ends = "2026-12-11T09:30:00Z".parse().expect("time");
        let joiner = Changes {
            grant: vec![&github, &wiki],
            approval: vec![&prod],
            ..Changes::default()
        };
        let text = description(
            RunEvent::Joiner,
            "Gina Gray",
            (&joiner, &[]),
            Some("Maya Moss"),
            ends,
            run,
        );
        assert!(text.starts_with("Welcome, Gina Gray. The access"), "{text}");
        assert!(
            text.contains("- **github (write)** (birthright: engineering)"),
            "{text}"
        );
        assert!(
            text.contains("- **wiki** (birthright: all-staff, engineering)"),
            "{text}"
        );
        assert!(
            text.contains("which Maya Moss approves first, in this ticket"),
            "{text}"
        );
        assert!(
            text.contains("- **prod-db (read)** (birthright: oncall)"),
            "{text}"
        );
        assert!(!text.contains("ends on"), "{text}");
        assert!(text.ends_with(&reference(run)), "{text}");

        let old = held("datadog", State::Active, None);
        let back = held("zoom", State::Active, Some(ends));
        let mover = Changes {
            grant: vec![&github],
            end: vec![&old],
            keep: vec![&back],
            ..Changes::default()
        };
        let text = description(
            RunEvent::Mover,
            "Noah Nash",
            (&mover, &["payroll (admin)".to_string()]),
            None,
            ends,
            run,
        );
        assert!(
            text.starts_with("Noah Nash, your role has changed."),
            "{text}"
        );
        assert!(
            text.contains("this access ends on 2026-12-11 09:30 (UTC)"),
            "{text}"
        );
        assert!(text.contains("- **datadog**"), "{text}");
        assert!(text.contains("no longer ends:\n\n- **zoom**"), "{text}");
        assert!(
            text.contains("is reviewed, and no manager with an Atlassian account was found: it stays:\n\n- **payroll (admin)**"),
            "{text}"
        );
        assert!(!text.contains("approves first"), "{text}");
    }

    #[test]
    fn the_outcome_names_each_change() {
        let ends = "2026-12-11T09:30:00Z".parse().expect("time");
        assert_eq!(Done::default().outcome(ends), "nothing changed");
        let done = Done {
            granted: vec!["github (write)".into(), "wiki".into()],
            ending: vec!["datadog".into()],
            kept: vec!["zoom".into()],
            asked: vec!["prod-db (read)".into(), "payroll".into()],
            unasked: vec!["ledger".into()],
        };
        assert_eq!(
            done.outcome(ends),
            "granting github (write), wiki; ending datadog on 2026-12-11 09:30; no longer \
             ending zoom; asked the manager to decide: prod-db (read), payroll; needs a \
             manager's decision, and no manager with an Atlassian account was found (not \
             asked): ledger"
        );
    }
}
