//! Inactive accounts. A scan (the `InactiveScan` job, every
//! `lifecycle.inactive_scan_interval`) reads each active person's Atlassian last-active dates
//! through the Admin API and judges them by the inactive-account policy
//! (`workflow::inactive`). Access unused longer than its rule allows becomes a case, one per
//! account, product and day last used; a person's new cases get an `inactive` lifecycle run,
//! which raises their lifecycle ticket and, per the rule, asks their manager to review the
//! access there or announces when it ends. Declined, undecided, or past its notice, the access
//! ends (the `InactiveEnd` job): the grants Tollgate made that give the product, then the
//! product seat itself. Using the product again before then clears the case.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::json;
use uuid::Uuid;

use super::asks::{self, Ask, Asking};
use super::changes::event_of;
use super::run::{finish, finish_in, open_ticket_once};
use crate::audit::{self, Actor, RunStep};
use crate::failure::Failure;
use crate::ids::AccountId;
use crate::jobs::{self, Job};
use crate::lifecycle::{EndCause, Event, State};
use crate::notices::{self, Notice};
use crate::orgchart::Person;
use crate::people::accounts;
use crate::state::AppState;
use crate::store::Tx;
use crate::store::inactive_cases::{self as cases, Case, CaseState, Change};
use crate::store::lifecycle_runs::{self as runs, Run, RunEvent, RunState};
use crate::store::requests;
use crate::workflow::inactive::{Action, Inactive};
use crate::workflow::{GrantTarget, products};

fn actor() -> Actor {
    Actor::System("inactive".into())
}

const FOUND: &[CaseState] = &[CaseState::Found];

/// What a scan did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// People whose last-active dates were read.
    pub people: usize,
    /// New cases (access found unused too long).
    pub found: usize,
    /// Open cases whose product was used again.
    pub cleared: usize,
    /// Lifecycle runs recorded for the new cases.
    pub runs: usize,
}

pub async fn scan_logged(state: &AppState) -> Result<(), Failure> {
    let scanned = scan(state).await?;
    tracing::info!(?scanned, "inactive-account scan");
    Ok(())
}

/// Reads and judges every active person's last-active dates (those the policy excludes are
/// never read). Nothing happens without a policy and a lifecycle ticket to say it in.
pub async fn scan(state: &AppState) -> Result<Scanned, Failure> {
    let mut scanned = Scanned::default();
    let Some(workflows) = state.workflows() else {
        return Ok(scanned);
    };
    let Some(policy) = workflows.inactive.as_ref() else {
        return Ok(scanned);
    };
    let Some(config) = &state.config.lifecycle.ticket else {
        tracing::warn!(
            "an inactive-account policy is loaded but no lifecycle ticket is configured (lifecycle.site, …): nothing judged"
        );
        return Ok(scanned);
    };
    let Some(org) = state.org.index() else {
        return Err(Failure::NotReady(
            "the org chart has not been synced yet".into(),
        ));
    };
    let (_, site) = state.jira_site_at(&config.site).await?;
    let now = state.clock.now();
    // One inactive run per person a day: a scan repeated the same day records none again.
    let version = i64::from(now.date_naive().num_days_from_ce());
    for idx in org.everyone() {
        let person = org.person(idx);
        if !person.active {
            continue;
        }
        let found =
            accounts::account_for(&state.store, &state.atlassian, &site, person, &*state.clock)
                .await?;
        let Some(account) = found else {
            continue;
        };
        if policy.excludes(&person.email, &account) {
            continue;
        }
        let Some(used) = state.atlassian.last_active(&account).await? else {
            continue;
        };
        scanned.people += 1;
        scanned.cleared += clear_used(state, &account, &used.products, now).await?;
        let inactive = policy.judge(&used.products, now);
        if !inactive.is_empty() {
            let recorded = record(state, person, &account, &inactive, version, now).await?;
            scanned.found += recorded;
            scanned.runs += usize::from(recorded > 0);
        }
    }
    Ok(scanned)
}

/// Stores the new cases of one person with their run, its audit events and its job; how many
/// cases were new.
async fn record(
    state: &AppState,
    person: &Person,
    account: &AccountId,
    inactive: &[Inactive<'_>],
    version: i64,
    now: DateTime<Utc>,
) -> Result<usize, Failure> {
    let run = Run::new(
        person.id.clone(),
        person.email.clone(),
        person.display_name.clone(),
        (RunEvent::Inactive, RunState::Queued),
        version,
        now,
    );
    let mut tx = state.store.begin().await?;
    if !runs::insert(&mut tx, &run).await? {
        tx.rollback().await?;
        return Ok(0);
    }
    let mut stored = Vec::new();
    for found in inactive {
        let case = Case {
            id: Uuid::now_v7(),
            person: person.id.clone(),
            email: person.email.clone(),
            name: person.display_name.clone(),
            account: account.clone(),
            product: found.rule.product.clone(),
            since: found.since,
            action: found.rule.action.as_str().to_string(),
            state: CaseState::Found,
            ends_at: None,
            run_id: Some(run.id),
            request_id: None,
            outcome: None,
            created_at: now,
            updated_at: now,
        };
        if cases::insert(&mut tx, &case).await? {
            stored.push(case);
        }
    }
    if stored.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    for case in &stored {
        let details = json!({"action": case.action, "unused_days": unused_days(case.since, now)});
        case_event(&mut tx, case, &run, CaseState::Found, details, now).await?;
    }
    let products: Vec<&str> = stored.iter().map(|c| c.product.as_str()).collect();
    let details = json!({"held": false, "products": products});
    let system = Actor::System("inactive_scan".into());
    event_of(&mut tx, &run, RunStep::Recorded, details, system, now).await?;
    let job = Job::LifecycleRun {
        run: run.id,
        attempt: 0,
        since: 0,
    };
    jobs::schedule_now(&mut tx, &job).await?;
    tx.commit().await?;
    Ok(stored.len())
}

fn unused_days(since: NaiveDate, now: DateTime<Utc>) -> i64 {
    (now.date_naive() - since).num_days()
}

/// Clears the account's open cases whose product was used after the day they were found
/// unused (a review still waiting is withdrawn); how many.
async fn clear_used(
    state: &AppState,
    account: &AccountId,
    used: &[(String, NaiveDate)],
    now: DateTime<Utc>,
) -> Result<usize, Failure> {
    let mut cleared = 0;
    for case in cases::open_of(&state.store, account).await? {
        let used_again = used
            .iter()
            .any(|(product, day)| *product == case.product && *day > case.since);
        if used_again && clear(state, &case, now).await? {
            cleared += 1;
        }
    }
    Ok(cleared)
}

/// Clears one case (used again): withdraws its review, tells its ticket.
async fn clear(state: &AppState, case: &Case, now: DateTime<Utc>) -> Result<bool, Failure> {
    let run = match case.run_id {
        Some(id) => runs::get(&state.store, id).await?,
        None => None,
    };
    let mut tx = state.store.begin().await?;
    let open = [CaseState::Found, CaseState::Noticed, CaseState::Reviewing];
    let change = Change {
        outcome: Some("used again: it stays"),
        ..Change::default()
    };
    if !cases::set(&mut tx, case.id, &open, CaseState::Cleared, change, now).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    if let Some(id) = case.request_id
        && let Some(mut review) = requests::lock_id(&mut tx, id).await?
        && review.state == State::Pending
    {
        let reason = format!("{} was used again", case.product);
        let details = json!({"reason": reason, "case": case.id});
        let cancelled = Event::Cancelled { reason };
        crate::grants::run::transition(&mut tx, &mut review, cancelled, actor(), details, now)
            .await?;
    }
    if let Some(run) = &run {
        case_event(&mut tx, case, run, CaseState::Cleared, json!({}), now).await?;
        tell(&mut tx, case, run, false).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// An inactive run (the `LifecycleRun` job of one): raises the person's lifecycle ticket, asks
/// their manager to review what the policy reviews and announces the end of the rest.
pub(super) async fn execute(
    state: &AppState,
    run: &Run,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let found: Vec<Case> = cases::of_run(&state.store, run.id)
        .await?
        .into_iter()
        .filter(|c| c.state == CaseState::Found)
        .collect();
    if found.is_empty() {
        return finish(state, run, "nothing to do: every case is settled", now).await;
    }
    let Some(config) = &state.config.lifecycle.ticket else {
        return finish(
            state,
            run,
            "nothing done: no lifecycle ticket is configured (lifecycle.site, lifecycle.service_desk, lifecycle.request_type)",
            now,
        )
        .await;
    };
    let Some(org) = state.org.index() else {
        return Err(Failure::NotReady(
            "the org chart has not been synced yet".into(),
        ));
    };
    let Some(idx) = org.by_id(&run.person).filter(|i| org.person(*i).active) else {
        return finish(
            state,
            run,
            "nothing done: no longer active in the org chart",
            now,
        )
        .await;
    };
    let person = org.person(idx).clone();
    let workflows_version = state
        .workflows()
        .map(|w| w.version.clone())
        .unwrap_or_default();
    let (tenant, site) = state.jira_site_at(&config.site).await?;
    let (reviews, ending): (Vec<&Case>, Vec<&Case>) = found
        .iter()
        .partition(|c| c.action == Action::Review.as_str());
    let manager = match reviews.is_empty() {
        true => None,
        false => asks::manager(state, &site, &org, idx).await?,
    };
    let ends: Vec<DateTime<Utc>> = ending.iter().map(|c| now + notice_of(state, c)).collect();
    let account = found[0].account.clone();
    let text = description(
        &person.display_name,
        (&reviews, &ending, &ends),
        manager.as_ref().map(|m| m.name.as_str()),
        run.id,
    );
    let (run, ticket) = open_ticket_once(
        state,
        run,
        &site,
        &tenant.client_key,
        config,
        Some(&account),
        &text,
        now,
    )
    .await?;

    let mut tx = state.store.begin().await?;
    let mut outcome = Vec::new();
    match &manager {
        Some(manager) => {
            let asked: Vec<Ask<'_>> = reviews
                .iter()
                .map(|c| Ask::Inactive {
                    product: &c.product,
                    since: c.since,
                })
                .collect();
            let asking = Asking {
                run: &run,
                ticket: &ticket,
                person: &person,
                account: Some(&account),
                manager,
                workflows_version: &workflows_version,
            };
            for (index, request) in asks::store(&mut tx, state, &asking, &asked, now).await? {
                let case = reviews[index];
                let change = Change {
                    request: Some(request),
                    ..Change::default()
                };
                let details = json!({"request": request, "approver_email": manager.email});
                let to = (FOUND, CaseState::Reviewing);
                if move_case(&mut tx, (case, &run), to, change, details, now).await? {
                    outcome.push(format!("{} to review", case.product));
                }
            }
        }
        None => {
            for case in &reviews {
                let why = "no manager with an Atlassian account to review it: it stays";
                let change = Change {
                    outcome: Some(why),
                    ..Change::default()
                };
                let (to, details) = ((FOUND, CaseState::Kept), json!({"outcome": why}));
                if move_case(&mut tx, (case, &run), to, change, details, now).await? {
                    outcome.push(format!("{} kept (no manager to review it)", case.product));
                }
            }
        }
    }
    for (case, at) in ending.iter().zip(&ends) {
        let change = Change {
            ends_at: Some(*at),
            ..Change::default()
        };
        let (to, details) = ((FOUND, CaseState::Noticed), json!({"ends_at": at}));
        if move_case(&mut tx, (case, &run), to, change, details, now).await? {
            let job = Job::InactiveEnd { case: case.id };
            jobs::schedule(&mut tx, &job, jobs::wall(&*state.clock, *at)).await?;
            outcome.push(format!(
                "{} ends on {}",
                case.product,
                at.format("%Y-%m-%d %H:%M")
            ));
        }
    }
    let outcome = if outcome.is_empty() {
        "nothing changed".to_string()
    } else {
        outcome.join("; ")
    };
    if finish_in(&mut tx, &run, &outcome, json!({}), now).await? {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(())
}

/// How long an ending case is announced before it ends: its rule's notice as loaded now.
fn notice_of(state: &AppState, case: &Case) -> chrono::TimeDelta {
    let notice = state
        .workflows()
        .and_then(|w| w.inactive.clone())
        .and_then(|p| p.rules.into_iter().find(|r| r.product == case.product))
        .and_then(|r| match r.action {
            Action::End { notice } => Some(notice),
            Action::Review => None,
        })
        .unwrap_or(std::time::Duration::from_secs(14 * 86_400));
    chrono::TimeDelta::from_std(notice).unwrap_or(chrono::TimeDelta::days(14))
}

/// What an inactive run's ticket says.
fn description(
    name: &str,
    (reviews, ending, ends): (&[&Case], &[&Case], &[DateTime<Utc>]),
    manager: Option<&str>,
    run: Uuid,
) -> String {
    let item = |c: &Case| json!({"product": c.product, "since": c.since.to_string()});
    let context = json!({
        "name": name,
        "manager": manager,
        "reviewing": reviews.iter().map(|c| item(c)).collect::<Vec<_>>(),
        "ending": ending.iter().zip(ends).map(|(c, at)| {
            let mut i = item(c);
            i["ends"] = json!(at.format("%Y-%m-%d %H:%M").to_string());
            i
        }).collect::<Vec<_>>(),
        "reference": super::run::reference(run),
    });
    notices::templates::render("inactive", &context).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the inactive template did not render");
        format!(
            "{name}: unused access. Reference: {}",
            super::run::reference(run)
        )
    })
}

/// Ends the access of case `id` (the `InactiveEnd` job): once its notice is over, or its
/// review declined or undecided. Read again first: a product used since is cleared instead.
pub async fn end(state: &AppState, id: Uuid) -> Result<(), Failure> {
    let Some(case) = cases::get(&state.store, id).await? else {
        return Ok(());
    };
    let now = state.clock.now();
    // The job is due at the case's end (or at once, for a review declined): its schedule is
    // the clock, like a stage's timers.
    if !matches!(case.state, CaseState::Noticed | CaseState::Ending) {
        return Ok(());
    }
    let used = state.atlassian.last_active(&case.account).await?;
    let used_again = used.as_ref().is_some_and(|u| {
        u.products
            .iter()
            .any(|(p, day)| *p == case.product && *day > case.since)
    });
    if used_again {
        clear(state, &case, now).await?;
        return Ok(());
    }
    let Some(cloud) = state.config.atlassian.cloud_id.as_deref() else {
        return Err(Failure::NotReady(
            "TOLLGATE_ATLASSIAN_CLOUD_ID is not set: product access cannot be removed".into(),
        ));
    };
    let seat = products::assignment(&case.product, "user", cloud)
        .map_err(|e| Failure::Conflict(format!("{} cannot be removed: {e}", case.product)))?;
    // The grants Tollgate made that give the product end with it: else they would report
    // access Atlassian no longer gives.
    let giving = grants_giving(state, &case).await?;
    state
        .atlassian
        .set_product_role(&case.account, &seat, false)
        .await?;
    let run = match case.run_id {
        Some(run) => runs::get(&state.store, run).await?,
        None => None,
    };
    let mut tx = state.store.begin().await?;
    let reason = format!(
        "{} not used since {} (inactive-account policy)",
        case.product, case.since
    );
    for id in giving {
        let cause = (EndCause::Revoked, reason.as_str());
        crate::grants::run::revoke_held(&mut tx, state, id, cause, actor(), now).await?;
    }
    let change = Change {
        outcome: Some("product access removed"),
        ..Change::default()
    };
    let from = [CaseState::Noticed, CaseState::Ending];
    if !cases::set(&mut tx, case.id, &from, CaseState::Ended, change, now).await? {
        tx.rollback().await?;
        return Ok(());
    }
    if let Some(run) = &run {
        let details = json!({"role": seat.role, "resource": seat.resource, "reason": reason});
        case_event(&mut tx, &case, run, CaseState::Ended, details, now).await?;
        tell(&mut tx, &case, run, true).await?;
    }
    tx.commit().await?;
    tracing::info!(account = %case.account, product = case.product, "unused product access ended");
    Ok(())
}

/// The person's active grants whose resource gives the case's product.
async fn grants_giving(state: &AppState, case: &Case) -> Result<Vec<Uuid>, Failure> {
    let Some(workflows) = state.workflows() else {
        return Ok(Vec::new());
    };
    let gives = |resource: &str| {
        workflows.catalog.get(resource).is_some_and(|r| {
            r.grants.iter().any(|t| {
                matches!(t, GrantTarget::AtlassianProduct { product, .. } if *product == case.product)
            })
        })
    };
    Ok(requests::held_by(&state.store, &case.person)
        .await?
        .into_iter()
        .filter(|r| r.resource.as_ref().is_some_and(|id| gives(&id.0)))
        .map(|r| r.id)
        .collect())
}

/// Tells the run's ticket that the case ended or was cleared.
async fn tell(tx: &mut Tx, case: &Case, run: &Run, ended: bool) -> Result<(), Failure> {
    let Some((tenant, ticket, _)) = &run.ticket else {
        return Ok(());
    };
    let notice = Notice {
        template: "inactive_case".into(),
        context: json!({"ended": ended, "product": case.product, "since": case.since.to_string()}),
        participants: Vec::new(),
        transition: None,
    };
    let key = format!(
        "inactive:{}:{}",
        case.id,
        if ended { "ended" } else { "cleared" }
    );
    notices::enqueue_on(tx, (tenant, ticket), notice, key).await?;
    Ok(())
}

/// Moves `case` from one of `from` to `to`, with its audit event on the run's ticket;
/// whether it moved (it had moved on meanwhile, else).
async fn move_case(
    tx: &mut Tx,
    (case, run): (&Case, &Run),
    (from, to): (&[CaseState], CaseState),
    change: Change<'_>,
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<bool, Failure> {
    if !cases::set(tx, case.id, from, to, change, now).await? {
        return Ok(false);
    }
    case_event(tx, case, run, to, details, now).await?;
    Ok(true)
}

/// A case's audit event, on its run's ticket.
async fn case_event(
    tx: &mut Tx,
    case: &Case,
    run: &Run,
    to: CaseState,
    mut details: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    details["run"] = json!(run.id);
    let ticket = run.ticket.as_ref().map(|(tenant, key, _)| (tenant, key));
    let event = audit::Event::of_case(case, ticket, to, (actor(), now), details);
    audit::append(tx, &event).await?;
    Ok(())
}
