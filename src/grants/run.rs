//! Running a grant: provisioning (plan, then one job per step), settling the request when
//! every step has settled, and revoking. Each transition is one transaction with its audit
//! event and the ticket notice; vendor calls happen outside any transaction, under a claim.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::apply::{self, StepFailure, Subject};
use super::plan::{self, Context};
use super::{notices, wall};
use crate::atlassian::{Change, CredentialKind};
use crate::audit::{self, Actor};
use crate::failure::Failure;
use crate::ids::{AccountId, PersonId};
use crate::jobs::{self, Job};
use crate::lifecycle::step::Settled;
use crate::lifecycle::{self, Action, EndCause, Event, State};
use crate::notices as ticket;
use crate::people::accounts;
use crate::state::AppState;
use crate::store::grants::{self as steps, Claim, Phase, Status, StepRow};
use crate::store::holdings::{self, Found, Holding, Join, Leave};
use crate::store::requests::{self, Request};
use crate::store::{StoreError, Tx, tenants};
use crate::tenant::Product;
use crate::workflow::{FailurePolicy, GrantTarget};

/// After this many failed tries in a row (each already rides out a few seconds of 429s and 5xx
/// within its call) the ticket is told, once, that the grant is delayed; the step goes on trying
/// for its resource's `give_up_after`.
const DELAY_NOTICE_AFTER: i64 = 2;

/// How long a claimed step is leased to its claimer, renewed every [`RENEW_EVERY`] while its
/// vendor call runs: a worker killed mid-call holds the step at most this long.
const LEASE: TimeDelta = TimeDelta::seconds(15);
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// Expiries this close are scheduled as soon as the grant is active (the expiry window job
/// picks up the later ones).
pub const EXPIRY_WINDOW: TimeDelta = TimeDelta::minutes(2);

fn system() -> Actor {
    Actor::System("grants".into())
}

/// The wait before attempt `attempt + 1`: doubling from 2 s, capped at 10 min, and never
/// sooner than the vendor asked.
pub fn backoff(attempt: i64, asked: Option<Duration>) -> Duration {
    let doubling = Duration::from_secs(2u64 << attempt.clamp(0, 9) as u32);
    doubling
        .min(Duration::from_secs(600))
        .max(asked.unwrap_or_default())
}

/// Writes the request (compare-and-set) and keeps the in-memory version in step. Callers hold
/// the row's lock, so a lost compare-and-set is a bug: a conflict, not an outage.
pub(crate) async fn save(tx: &mut Tx, request: &mut Request) -> Result<(), Failure> {
    if !requests::update(tx, request).await? {
        return Err(Failure::Conflict(format!(
            "request {} changed under its lock",
            request.id
        )));
    }
    request.version += 1;
    Ok(())
}

/// Applies `event` to the locked `request`, writes it, and appends its audit event with
/// `details`: the one way the grants change a request's state.
pub(crate) async fn transition(
    tx: &mut Tx,
    request: &mut Request,
    event: Event,
    actor: Actor,
    details: Value,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let moved = lifecycle::apply(request, event, now)?;
    save(tx, request).await?;
    self::event(tx, request, now, actor, moved.action, details).await
}

pub(crate) async fn event(
    tx: &mut Tx,
    request: &Request,
    now: DateTime<Utc>,
    actor: Actor,
    action: Action,
    details: Value,
) -> Result<(), Failure> {
    audit::append(
        tx,
        &crate::audit::Event::of_request(request, now, actor, action, details),
    )
    .await?;
    Ok(())
}

pub(crate) async fn tell(
    tx: &mut Tx,
    request: &Request,
    notice: crate::notices::Notice,
) -> Result<(), Failure> {
    let key = format!("{}:v{}", request.id, request.version);
    ticket::enqueue(tx, request, notice, key).await?;
    Ok(())
}

/// Called in the transaction that approves a request: the grant starts once it commits.
pub async fn on_approved(tx: &mut Tx, request: &Request) -> Result<(), Failure> {
    jobs::schedule_now(
        tx,
        &Job::Provision {
            request: request.id,
            attempt: 0,
            since: 0,
        },
    )
    .await?;
    Ok(())
}

/// What a plan needs to know, looked up before it is made.
async fn context_inputs(
    state: &AppState,
    request: &Request,
    targets: &[GrantTarget],
) -> Result<(Option<PersonId>, Option<AccountId>, HashSet<String>, bool), Failure> {
    let (tenant, site) = state.site(&request.tenant).await?;
    // A worker started before the first sync, or one that has not yet noticed another's,
    // must not plan without the person: the plan would be refused for good.
    let Some(org) = state.org.index() else {
        return Err(Failure::NotReady(
            "the org chart has not been synced yet".into(),
        ));
    };
    let person = org
        .by_id_or_email(request.subject_person.as_ref(), request.subject())
        .map(|idx| org.person(idx).clone());
    if person.is_none() {
        state.newest_chart().await?;
    }
    let account = match (&request.subject_email, &person) {
        // Filed for themselves: the reporter's account is theirs.
        (None, _) => Some(request.requester_account.clone()),
        (Some(_), Some(person)) => {
            accounts::account_for(&state.store, &state.atlassian, &site, person, &*state.clock)
                .await?
        }
        (Some(_), None) => None,
    };
    let mut synced: HashSet<String> = state
        .config
        .atlassian
        .synced_groups
        .iter()
        .map(|g| g.to_lowercase())
        .collect();
    if state
        .atlassian
        .credentials()
        .has(CredentialKind::ScimDirectory)
    {
        for target in targets {
            if let GrantTarget::JiraGroup { group } = target
                && !synced.contains(&group.to_lowercase())
                && state.atlassian.scim_provisions_group(group).await?
            {
                synced.insert(group.to_lowercase());
            }
        }
    }
    let confluence = targets
        .iter()
        .any(|t| matches!(t, GrantTarget::ConfluenceSpace { .. }))
        && tenants::linked(&state.store, &tenant.host, Product::Confluence)
            .await?
            .is_some_and(|t| t.state.is_active());
    Ok((person.map(|p| p.id), account, synced, confluence))
}

/// The `Provision` job: plans the grant of an approved request and starts its steps (or, for
/// an extension, moves the grant's expiry; for a review, keeps the access).
pub async fn provision(state: &AppState, id: Uuid) -> Result<(), Failure> {
    let Some(request) = requests::get(&state.store, id).await? else {
        return Ok(());
    };
    if request.state != State::Approved {
        return Ok(());
    }
    if super::review::is_review(&request) {
        return super::review::kept(state, id).await;
    }
    if request.parent_id.is_some() {
        return super::extend::apply_extension(state, id).await;
    }
    let workflows = state.workflows();
    let resource = request
        .resource
        .as_deref()
        .and_then(|r| workflows.as_ref()?.catalog.get(r).cloned());
    let planned = match &resource {
        None => Err(vec![format!(
            "the resource `{}` is no longer in the catalog",
            request.resource.as_deref().unwrap_or("?")
        )]),
        Some(resource) => {
            let targets = resource.grants_for(request.level.as_deref());
            let (idp_person, account, synced, confluence) =
                context_inputs(state, &request, &targets).await?;
            let idp = match &state.config.idp.source {
                crate::config::IdpSource::File(_) => Err(
                    "the org chart comes from org.yaml, which Tollgate cannot change; connect an IdP (TOLLGATE_IDP_KIND=scim or ldap)"
                        .to_string(),
                ),
                crate::config::IdpSource::ScimPush(_) => Err(
                    "the org chart is pushed by the identity provider (scim_push), whose groups Tollgate cannot change; grant the group in the IdP or use an Atlassian target"
                        .to_string(),
                ),
                other => {
                    use crate::idp::Directory;
                    Ok(crate::idp::Connector::new(other, &state.store).source())
                }
            };
            let ctx = Context {
                credentials: state.atlassian.credentials(),
                idp,
                idp_person,
                synced_groups: &synced,
                confluence_installed: confluence,
                cloud_id: state.config.atlassian.cloud_id.as_deref(),
            };
            let planned = plan::plan(&targets, &ctx).and_then(|steps| {
                let needs_account = steps
                    .iter()
                    .any(|s| !matches!(s.via, plan::Via::Idp { .. }));
                if needs_account && account.is_none() {
                    Err(vec![format!(
                        "the Atlassian account of {} could not be found",
                        request.subject().unwrap_or("the person")
                    )])
                } else {
                    Ok(steps)
                }
            });
            planned.map(|steps| (steps, account))
        }
    };

    record_plan(state, id, planned).await
}

/// The `Provision` job gave up (its retryable error lasted `events.retry_for`): the request
/// fails with the reason, and the ticket is told, rather than waiting approved for ever.
pub async fn give_up_provision(state: &AppState, id: Uuid, why: String) -> Result<(), Failure> {
    record_plan(state, id, Err(vec![why])).await
}

/// Stores a plan's outcome: the steps and their jobs, or the request failed with the problems.
async fn record_plan(
    state: &AppState,
    id: Uuid,
    planned: Result<(Vec<plan::Step>, Option<AccountId>), Vec<String>>,
) -> Result<(), Failure> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let Some(mut request) = requests::lock_id(&mut tx, id).await? else {
        tx.rollback().await?;
        return Ok(());
    };
    if request.state != State::Approved {
        tx.rollback().await?;
        return Ok(());
    }
    match planned {
        Err(problems) => {
            let reason = problems.join("; ");
            let refused = Event::Refused {
                reason: reason.clone(),
            };
            let details = json!({"problems": problems});
            transition(&mut tx, &mut request, refused, system(), details, now).await?;
            tell(
                &mut tx,
                &request,
                notices::failed(&request, &[], Some(&reason)),
            )
            .await?;
        }
        Ok((planned, account)) => {
            steps::insert(&mut tx, request.id, &planned, now).await?;
            let described: Vec<Value> = planned
                .iter()
                .map(|s| json!({"target": s.asked, "applied": s.applied, "via": s.via, "note": s.note}))
                .collect();
            let event = Event::Planned { account };
            let details = json!({"steps": described});
            transition(&mut tx, &mut request, event, system(), details, now).await?;
            for i in 0..planned.len() {
                let job = Job::GrantStep {
                    request: request.id,
                    step: i as i64,
                    phase: Phase::Grant,
                    attempt: 0,
                };
                jobs::schedule_now(&mut tx, &job).await?;
            }
            settle(&mut tx, state, &mut request, now).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// When a step that keeps failing on retryable errors gives up: its resource's
/// `give_up_after` (default 24 h) after its first failure.
fn give_up_at(
    state: &AppState,
    request: &Request,
    row: &StepRow,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let after = state
        .workflows()
        .and_then(|w| {
            let resource = request.resource.as_deref()?;
            w.catalog.get(resource).map(|r| r.give_up_after)
        })
        .unwrap_or(crate::workflow::definition::DEFAULT_GIVE_UP_AFTER);
    row.failing_since.unwrap_or(now) + TimeDelta::from_std(after).unwrap_or(TimeDelta::days(1))
}

/// What happened to one step this time.
enum Outcome {
    /// The access is in place for this grant.
    Granted(Found),
    /// The access is gone (`applied`: this step removed it; `already_in_place`: it was gone).
    Removed(&'static str),
    Skipped(String),
    Failed(StepFailure),
}

/// The holding a step's target is for this request's person: per site for targets that live
/// in one, else shared by every site of the deployment.
fn holding(request: &Request, row: &StepRow) -> Holding {
    let scope = if super::plan::per_site(&row.plan.applied) {
        request.tenant.to_string()
    } else {
        holdings::ORG_SCOPE.to_string()
    };
    Holding {
        scope,
        target_key: row.plan.target_key(),
        person: request.person_key(),
    }
}

/// How long a grant waits for another grant's removal of the same access to finish.
const WAIT_FOR_REMOVAL: Duration = Duration::from_secs(5);

/// Claims the step for this attempt: `Some(retaken)` when ours. A live lease on the same attempt
/// is another run of this job, usually one whose worker died mid-call (its job was handed to
/// this worker): wait for the lease to run out, as long as one lease at most, rather than leave
/// the step to the sweep.
async fn claim(
    state: &AppState,
    id: Uuid,
    index: i64,
    phase: Phase,
    attempt: i64,
) -> Result<Option<bool>, Failure> {
    let waited = std::time::Instant::now();
    let longest = LEASE.to_std().unwrap_or(Duration::from_secs(15)) + RENEW_EVERY;
    loop {
        let now = state.clock.now();
        match steps::claim(&state.store, id, index, phase, attempt, now, now + LEASE).await? {
            Claim::Taken { retaken } => return Ok(Some(retaken)),
            Claim::NotOurs => return Ok(None),
            Claim::Leased { until } => {
                if waited.elapsed() >= longest {
                    // Renewed all along: its holder is alive and will settle it.
                    return Ok(None);
                }
                let left = (until - now).to_std().unwrap_or_default();
                tokio::time::sleep(left.clamp(Duration::from_millis(200), RENEW_EVERY)).await;
            }
        }
    }
}

/// The `GrantStep` job: applies or undoes one step, once, then settles the request.
pub async fn step(
    state: &AppState,
    id: Uuid,
    index: i64,
    phase: Phase,
    attempt: i64,
) -> Result<(), Failure> {
    let Some(retaken) = claim(state, id, index, phase, attempt).await? else {
        return Ok(());
    };
    let Some(request) = requests::get(&state.store, id).await? else {
        return Ok(());
    };
    let rows = steps::read(&state.store, id).await?;
    let Some(row) = rows.iter().find(|r| r.step == index) else {
        return Ok(());
    };
    let held = holding(&request, row);
    // The lease is renewed while the vendor call runs, so a slow call is never taken over.
    let run = run_one(state, &request, row, &held, phase, attempt, retaken);
    let outcome = crate::lease::renewing(run, RENEW_EVERY, || async {
        let until = state.clock.now() + LEASE;
        if let Err(e) = steps::renew(&state.store, id, index, phase, attempt, until).await {
            tracing::warn!(request = %id, step = index, error = %e, "lease not renewed");
        }
    })
    .await?;

    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let Some(mut request) = requests::lock_id(&mut tx, id).await? else {
        tx.rollback().await?;
        return Ok(());
    };
    // What settles the step this time (a retry leaves it pending), and what the audit says.
    let (status, change, error, action, extra) = match outcome {
        Outcome::Granted(found) => {
            let predates = holdings::granted(&mut tx, &held, id, index, Some(found), now).await?;
            let change = match found {
                Found::Applied => "applied",
                Found::InPlace { .. } if predates == Some(true) => "pre_existing",
                Found::InPlace { .. } => "already_in_place",
            };
            let extra = json!({"change": change});
            (
                Status::Done,
                Some(change),
                None,
                Action::StepDone(phase),
                extra,
            )
        }
        Outcome::Removed(change) => {
            holdings::removed(&mut tx, &held, id, index, true, now).await?;
            let extra = json!({"change": change});
            (
                Status::Done,
                Some(change),
                None,
                Action::StepDone(phase),
                extra,
            )
        }
        Outcome::Skipped(why) => {
            if phase == Phase::Grant {
                holdings::granted(&mut tx, &held, id, index, None, now).await?;
            }
            let extra = json!({"why": why});
            (
                Status::Skipped,
                None,
                Some(why),
                Action::StepSkipped(phase),
                extra,
            )
        }
        Outcome::Failed(StepFailure::Retry { after, why })
            if now < give_up_at(state, &request, row, now) =>
        {
            steps::retry(&mut tx, id, index, phase, attempt + 1, &why, now).await?;
            if phase == Phase::Grant && attempt + 1 == DELAY_NOTICE_AFTER {
                let until = give_up_at(state, &request, row, now);
                let notice = notices::delayed(&request, row, &why, until);
                ticket::enqueue(&mut tx, &request, notice, format!("{id}:delayed")).await?;
            }
            let wait = backoff(attempt, after);
            let due = now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::minutes(10));
            let job = Job::GrantStep {
                request: id,
                step: index,
                phase,
                attempt: attempt + 1,
            };
            jobs::schedule(&mut tx, &job, wall(&*state.clock, due)).await?;
            tracing::info!(ticket = %request.ticket_key, step = index, ?wait, %why, "step will be retried");
            tx.commit().await?;
            return Ok(());
        }
        Outcome::Failed(failure) => {
            match phase {
                Phase::Grant => holdings::granted(&mut tx, &held, id, index, None, now).await?,
                Phase::Revoke => {
                    holdings::removed(&mut tx, &held, id, index, false, now).await?;
                    None
                }
            };
            let why = failure.message().to_string();
            let extra = json!({"error": why, "attempts": attempt + 1});
            (
                Status::Failed,
                None,
                Some(why),
                Action::StepFailed(phase),
                extra,
            )
        }
    };
    steps::settle(
        &mut tx,
        id,
        index,
        phase,
        status,
        change,
        error.as_deref(),
        now,
    )
    .await?;
    let mut details = json!({"step": index, "target": row.plan.applied, "via": row.plan.via});
    if let (Some(details), Some(extra)) = (details.as_object_mut(), extra.as_object()) {
        details.extend(extra.clone());
    }
    event(&mut tx, &request, now, system(), action, details).await?;
    settle(&mut tx, state, &mut request, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Decides with the other holders of the target, then calls the vendor if there is anything
/// to change. The decision commits before the call: a grant joining while the last holder
/// removes the access waits for the removal, so it never finds in place what is about to go.
async fn run_one(
    state: &AppState,
    request: &Request,
    row: &StepRow,
    held: &Holding,
    phase: Phase,
    attempt: i64,
    retaken: bool,
) -> Result<Outcome, Failure> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let decided = match phase {
        Phase::Grant => match holdings::join(&mut tx, held, request.id, row.step, now).await? {
            Join::Joined => None,
            Join::Wait { ticket } => Some(Outcome::Failed(StepFailure::Retry {
                after: Some(WAIT_FOR_REMOVAL),
                why: format!("{ticket} is removing this access; granting it again after that"),
            })),
        },
        Phase::Revoke => match holdings::leave(&mut tx, held, request.id, row.step, now).await? {
            Leave::Remove => None,
            Leave::Predates => Some(Outcome::Skipped(
                "held before Tollgate first granted it".into(),
            )),
            Leave::HeldBy { ticket } => {
                Some(Outcome::Skipped(format!("still granted by {ticket}")))
            }
        },
    };
    tx.commit().await?;
    if let Some(outcome) = decided {
        return Ok(outcome);
    }
    let account = request.subject_account.clone();
    let subject = Subject {
        tenant: &request.tenant,
        account: account.as_ref(),
    };
    let granting = phase == Phase::Grant;
    Ok(
        match apply::apply(state, &row.plan, &subject, granting).await {
            Ok(Change::Applied) if granting => Outcome::Granted(Found::Applied),
            Ok(Change::AlreadyInPlace) if granting => Outcome::Granted(Found::InPlace {
                first_try: attempt == 0 && !retaken,
            }),
            Ok(Change::Applied) => Outcome::Removed("applied"),
            Ok(Change::AlreadyInPlace) => Outcome::Removed("already_in_place"),
            Err(failure) => Outcome::Failed(failure),
        },
    )
}

/// Moves the request on once every step of its phase has settled.
pub(crate) async fn settle(
    tx: &mut Tx,
    state: &AppState,
    request: &mut Request,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let rows = steps::of_request(tx, request.id).await?;
    let statuses: Vec<_> = rows
        .iter()
        .map(|r| (r.grant_status, r.revoke_status))
        .collect();
    let keep_partial = state
        .workflows()
        .and_then(|w| {
            request
                .resource
                .as_deref()
                .and_then(|r| w.catalog.get(r).map(|r| r.on_failure))
        })
        .unwrap_or_default()
        == FailurePolicy::KeepPartial;
    let Some(settled) = lifecycle::step::settled(request.state, &statuses, keep_partial) else {
        return Ok(());
    };
    match settled {
        Settled::Granted { partial } => activate(tx, state, request, &rows, partial, now).await,
        Settled::NothingApplied { failed } => {
            let details = json!({"failed": failed});
            transition(tx, request, Event::NothingApplied, system(), details, now).await?;
            tell(tx, request, notices::failed(request, &rows, None)).await
        }
        Settled::RollBack { failed, of } => {
            let reason = format!(
                "{failed} of {of} steps failed, and {} is all-or-nothing",
                request.resource.as_deref().unwrap_or("the resource")
            );
            Box::pin(begin_revoke(
                tx,
                state,
                request,
                EndCause::Rollback,
                &reason,
                system(),
                now,
            ))
            .await
        }
        Settled::UndoFailed { failed } => {
            let details = json!({"failed": failed});
            transition(tx, request, Event::UndoFailed, system(), details, now).await?;
            tracing::error!(
                ticket = %request.ticket_key,
                failed,
                "ALERT: access could not be removed; the reconcile sweep will retry"
            );
            tell(tx, request, notices::revoke_failed(request, &rows)).await
        }
        Settled::Undone => {
            let cause = request.end_cause.unwrap_or(EndCause::Revoked);
            let details = json!({"cause": cause.as_str(), "reason": request.reason});
            transition(tx, request, Event::Undone, system(), details, now).await?;
            let notice = match cause {
                EndCause::Rollback => notices::failed(request, &rows, request.reason.as_deref()),
                EndCause::Expired => notices::ended(request, &rows, true),
                EndCause::Revoked | EndCause::Leaver => notices::ended(request, &rows, false),
            };
            tell(tx, request, notice).await
        }
    }
}

async fn activate(
    tx: &mut Tx,
    state: &AppState,
    request: &mut Request,
    rows: &[StepRow],
    partial: bool,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let moved = lifecycle::apply(request, Event::Granted { partial }, now)?;
    save(tx, request).await?;
    event(
        tx,
        request,
        now,
        system(),
        moved.action,
        json!({"expires_at": request.expires_at, "steps": rows.iter().map(|r| json!({"target": r.plan.applied, "status": r.grant_status.as_str(), "change": r.granted_change})).collect::<Vec<_>>()}),
    )
    .await?;
    tell(tx, request, notices::granted(request, rows)).await?;
    if let Some(at) = request.expires_at
        && at <= now + EXPIRY_WINDOW
    {
        super::expiry::schedule_expiry(tx, state, request.id, at).await?;
    }
    Ok(())
}

/// Starts taking the access away: every applied step is undone by its own job.
pub async fn begin_revoke(
    tx: &mut Tx,
    state: &AppState,
    request: &mut Request,
    cause: EndCause,
    reason: &str,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    begin_revoke_into(tx, state, request, cause, reason, actor, now, None).await
}

/// [`begin_revoke`], with the steps to undo handed to `batch` (request, step, attempt) for
/// one [`Job::RevokeSteps`] instead of a job each, when a batch is given.
#[allow(clippy::too_many_arguments)]
pub async fn begin_revoke_into(
    tx: &mut Tx,
    state: &AppState,
    request: &mut Request,
    cause: EndCause,
    reason: &str,
    actor: Actor,
    now: DateTime<Utc>,
    mut batch: Option<&mut Vec<(Uuid, i64, i64)>>,
) -> Result<(), Failure> {
    let revoke = Event::Revoke {
        cause,
        reason: reason.to_string(),
    };
    let details = json!({"cause": cause.as_str(), "reason": reason});
    transition(tx, request, revoke, actor, details, now).await?;
    let todo = steps::start_revoke(tx, request.id, now).await?;
    for (step, attempt) in &todo {
        if let Some(batch) = batch.as_deref_mut() {
            batch.push((request.id, *step, *attempt));
            continue;
        }
        let job = Job::GrantStep {
            request: request.id,
            step: *step,
            phase: Phase::Revoke,
            attempt: *attempt,
        };
        jobs::schedule_now(tx, &job).await?;
    }
    settle(tx, state, request, now).await
}

/// How many steps of a [`Job::RevokeSteps`] are undone at the same time.
const REVOKE_CONCURRENCY: usize = 16;

/// The `RevokeSteps` job: undoes each step as its own `GrantStep` job would (claimed, so a
/// second delivery of this job, or a retry of a step, applies nothing twice), several at a
/// time. A store error fails the job, and its retry skips the steps already settled.
pub async fn revoke_steps(state: &AppState, items: &[(Uuid, i64, i64)]) -> Result<(), Failure> {
    // Owned tasks: each step is a future of its own, a bounded number in flight.
    let mut pending = items.iter().copied();
    let mut running = tokio::task::JoinSet::new();
    let mut results = Vec::with_capacity(items.len());
    loop {
        while running.len() < REVOKE_CONCURRENCY
            && let Some((id, index, attempt)) = pending.next()
        {
            let state = state.clone();
            running.spawn(async move { step(&state, id, index, Phase::Revoke, attempt).await });
        }
        match running.join_next().await {
            Some(Ok(result)) => results.push(result),
            Some(Err(e)) => results.push(Err(Failure::Store(StoreError::Internal(format!(
                "a revocation step stopped: {e}"
            ))))),
            None => break,
        }
    }
    let mut retry = None;
    for result in results {
        match result {
            Ok(()) => {}
            Err(e) if e.is_retryable() => retry = retry.or(Some(e)),
            Err(e) => tracing::error!(error = %e, "a revocation step failed for good"),
        }
    }
    retry.map_or(Ok(()), Err)
}

/// Revokes the request's access now, if it holds any that is not already being removed.
/// `false` when there was nothing to revoke.
pub async fn revoke_now(
    state: &AppState,
    id: Uuid,
    cause: EndCause,
    reason: &str,
    actor: Actor,
) -> Result<bool, Failure> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    if !revoke_held(&mut tx, state, id, (cause, reason), actor, now).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

/// [`revoke_now`] inside the caller's transaction (the request row locked there, before the
/// audit chain head): `false` when there was nothing to revoke.
pub async fn revoke_held(
    tx: &mut Tx,
    state: &AppState,
    id: Uuid,
    (cause, reason): (EndCause, &str),
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<bool, Failure> {
    let Some(mut request) = requests::lock_id(tx, id).await? else {
        return Ok(false);
    };
    if !matches!(request.state, State::Active | State::RevokeFailed) {
        return Ok(false);
    }
    // A retried revocation keeps the cause it started with.
    let cause = if request.state == State::RevokeFailed {
        request.end_cause.unwrap_or(cause)
    } else {
        cause
    };
    let reason = if request.state == State::RevokeFailed {
        request.reason.clone().unwrap_or_else(|| reason.to_string())
    } else {
        reason.to_string()
    };
    begin_revoke(tx, state, &mut request, cause, &reason, actor, now).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_honours_the_vendor() {
        assert_eq!(backoff(0, None), Duration::from_secs(2));
        assert_eq!(backoff(3, None), Duration::from_secs(16));
        assert_eq!(backoff(11, None), Duration::from_secs(600));
        assert_eq!(
            backoff(0, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
    }
}
