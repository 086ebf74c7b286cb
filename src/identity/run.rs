//! One lifecycle run (the `LifecycleRun` job): what the person is due now, less what their
//! birthright already holds, granted through the grant engine in their lifecycle ticket.
//!
//! Each step can be repeated after a crash: the ticket is looked for before it is raised
//! again (its description carries the run's reference), a run makes each resource and level
//! once (the store's uniqueness), and the run is finished in the transaction that stores its
//! grants, their audit events and their `Provision` jobs.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::joiners::event;
use crate::atlassian::Site;
use crate::atlassian::jsm::NewRequest;
use crate::audit::{self, Actor, RunStep};
use crate::failure::Failure;
use crate::ids::{AccountId, TenantKey, TicketKey};
use crate::lifecycle::{self, Action, Event, Request};
use crate::orgchart::Person;
use crate::people::accounts;
use crate::state::AppState;
use crate::store::lifecycle_runs::{self as runs, Run, RunState};
use crate::store::requests;
use crate::workflow::birthright::{self, Approval, Due, Entitlement};

fn actor() -> Actor {
    Actor::System("lifecycle".into())
}

/// The text a run's ticket carries so that it can be found again: the run's id, as one word.
pub fn reference(run: Uuid) -> String {
    format!("tollgate-run-{}", run.simple())
}

/// What the run's ticket says: what is being granted, and what waits for the manager.
pub fn description(name: &str, grants: &[&Due], approval: &[&Due], run: Uuid) -> String {
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
    let context = json!({
        "name": name,
        "grants": list(grants),
        "approval": list(approval),
        "reference": reference(run),
    });
    crate::notices::templates::render("joiner", &context).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the joiner template did not render");
        format!(
            "Birthright access for {name}. Reference: {}",
            reference(run)
        )
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
    let owed: Vec<&Due> = due
        .iter()
        .filter(|d| !held.contains(&d.entitlement))
        .collect();
    let (grants, approval): (Vec<&Due>, Vec<&Due>) =
        owed.iter().partition(|d| d.approval == Approval::None);
    if owed.is_empty() {
        return finish(state, &run, "nothing granted: nothing more is due", now).await;
    }
    let Some(config) = &state.config.lifecycle_ticket else {
        tracing::warn!(
            person = %person.email,
            "birthright is due but no lifecycle ticket is configured (lifecycle.site, …): nothing granted"
        );
        return finish(
            state,
            &run,
            "nothing granted: no lifecycle ticket is configured (lifecycle.site, lifecycle.service_desk, lifecycle.request_type)",
            now,
        )
        .await;
    };
    let (tenant, site) = state.jira_site_at(&config.site).await?;
    let account = accounts::account_for(
        &state.store,
        &state.atlassian,
        &site,
        &person,
        &*state.clock,
    )
    .await?;
    let ticket = match &run.ticket {
        Some(ticket) => ticket.clone(),
        None => {
            let text = description(&person.display_name, &grants, &approval, run.id);
            let opened = open_ticket(
                state,
                &run,
                &site,
                &tenant.client_key,
                config,
                account.as_ref(),
                &text,
            )
            .await?;
            let mut tx = state.store.begin().await?;
            runs::opened(&mut tx, run.id, &opened, now).await?;
            let with_ticket = Run {
                ticket: Some(opened.clone()),
                ..run.clone()
            };
            event(
                &mut tx,
                &with_ticket,
                RunStep::TicketOpened,
                json!({}),
                actor(),
                now,
            )
            .await?;
            tx.commit().await?;
            opened
        }
    };
    let run = Run {
        ticket: Some(ticket.clone()),
        ..run
    };

    let mut tx = state.store.begin().await?;
    let mut made = Vec::new();
    for due in &grants {
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
        made.push(label(&due.entitlement));
    }
    let waiting: Vec<String> = approval.iter().map(|d| label(&d.entitlement)).collect();
    let outcome = outcome(&made, &waiting);
    if runs::finish(&mut tx, run.id, &outcome, now).await? {
        let details =
            json!({"granted": made, "needs_manager_approval": waiting, "outcome": outcome});
        event(&mut tx, &run, RunStep::Finished, details, actor(), now).await?;
        tx.commit().await?;
        tracing::info!(person = %run.email, granted = made.len(), "joiner's birthright granted");
    } else {
        // Another worker finished it meanwhile: what it made stands, nothing of this one does.
        tx.rollback().await?;
    }
    Ok(())
}

/// What the person's birthright grants already hold or are on the way to.
async fn held(state: &AppState, run: &Run) -> Result<HashSet<Entitlement>, Failure> {
    Ok(requests::birthright_of(&state.store, &run.person)
        .await?
        .into_iter()
        .filter(|r| !r.state.is_final())
        .filter_map(|r| {
            Some(Entitlement {
                resource: r.resource?,
                level: r.level,
            })
        })
        .collect())
}

fn label(e: &Entitlement) -> String {
    match &e.level {
        Some(level) => format!("{} ({level})", e.resource),
        None => e.resource.to_string(),
    }
}

fn outcome(made: &[String], waiting: &[String]) -> String {
    let mut out = if made.is_empty() {
        "nothing granted".to_string()
    } else {
        format!("granting {}", made.join(", "))
    };
    if !waiting.is_empty() {
        out.push_str(&format!(
            "; needs the manager's approval (not requested: ask with an access request): {}",
            waiting.join(", ")
        ));
    }
    out
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

/// Raises the run's ticket on the person's behalf, unless an earlier attempt did (its
/// reference is searched for first); returns it.
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
    let summary = format!("Joiner: {} — starting access", run.name);
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

/// Finishes a run that granted nothing, with why.
async fn finish(
    state: &AppState,
    run: &Run,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let mut tx = state.store.begin().await?;
    if runs::finish(&mut tx, run.id, outcome, now).await? {
        event(
            &mut tx,
            run,
            RunStep::Finished,
            json!({"outcome": outcome}),
            actor(),
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
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

    #[test]
    fn the_ticket_says_what_is_granted_what_waits_and_how_to_find_it() {
        let github = due("github", Some("write"), &["engineering"], Approval::None);
        let wiki = due("wiki", None, &["all-staff", "engineering"], Approval::None);
        let prod = due("prod-db", Some("read"), &["oncall"], Approval::Manager);
        let run = Uuid::now_v7();
        let text = description("Gina Gray", &[&github, &wiki], &[&prod], run);
        assert!(text.starts_with("Welcome, Gina Gray."), "{text}");
        assert!(
            text.contains("- **github (write)** (birthright: engineering)"),
            "{text}"
        );
        assert!(
            text.contains("- **wiki** (birthright: all-staff, engineering)"),
            "{text}"
        );
        assert!(text.contains("manager's approval first"), "{text}");
        assert!(
            text.contains("- **prod-db (read)** (birthright: oncall)"),
            "{text}"
        );
        assert!(text.ends_with(&reference(run)), "{text}");
        let alone = description("Gina Gray", &[&github], &[], run);
        assert!(!alone.contains("manager"), "{alone}");
    }

    #[test]
    fn the_outcome_names_what_was_granted_and_what_waits() {
        assert_eq!(outcome(&[], &[]), "nothing granted");
        assert_eq!(
            outcome(
                &["github (write)".into(), "wiki".into()],
                &["prod-db (read)".into()]
            ),
            "granting github (write), wiki; needs the manager's approval (not requested: ask \
             with an access request): prod-db (read)"
        );
    }
}
