//! What a new org chart snapshot leads to, applied once whichever process wrote it (the
//! periodic sync, `tollgate org sync`, a replica noticing it): leavers lose access, the runs
//! of joiners, movers and leavers are recorded, then open stages are routed again. A snapshot
//! that would make too many people leavers at once is not believed: their removals are held, an alert is raised, and they wait for a person
//! (`tollgate org leavers --approve VERSION`), or are dropped when the people come back.

use std::collections::{HashMap, HashSet};

use crate::alerts::{self, Alert};
use crate::audit::HoldStep;
use crate::failure::Failure;
use crate::grants::leavers;
use crate::identity;
use crate::identity::changes::Changed;
use crate::orgchart::{Email, OrgSnapshot, Person, PersonId};
use crate::state::AppState;
use crate::store::lifecycle_runs::RunEvent;
use crate::store::org as org_store;
use crate::store::org_changes::{self, HeldPerson, Hold, HoldState};
use crate::store::requests;

/// What one application did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The snapshot now applied; `None` when there is none.
    pub version: Option<i64>,
    /// Grants revoked and open requests cancelled for leavers.
    pub leavers: usize,
    /// People whose removal waits for approval.
    pub held: usize,
    /// Open stages routed again.
    pub rerouted: usize,
    /// Lifecycle runs recorded for joiners, movers and leavers (queued, or held by the brake).
    pub lifecycle_runs: usize,
}

/// Applies the newest snapshot, if it (or an approval) is not applied yet. Two applications at
/// once (a replica's, a test's, `tollgate org sync`'s) must not both judge against the same
/// "before": one that finds another applied a snapshot meanwhile records nothing and starts
/// again from the one now applied.
pub async fn apply(state: &AppState) -> Result<Applied, Failure> {
    for _ in 0..APPLY_TRIES {
        if let Some(applied) = apply_once(state).await? {
            return Ok(applied);
        }
    }
    Err(Failure::NotReady(
        "the org chart kept being applied by another process; trying again later".into(),
    ))
}

/// Applications overtaken in a row before [`apply`] gives up for now (its job retries).
const APPLY_TRIES: usize = 5;

/// One application; `None` when another one moved the applied snapshot while this one worked.
async fn apply_once(state: &AppState) -> Result<Option<Applied>, Failure> {
    state.org.refresh(&state.store).await?;
    let Some((info, latest)) = org_store::latest(&state.store).await? else {
        return Ok(Some(Applied::default()));
    };
    let applied = org_changes::applied(&state.store).await?;
    let now = state.clock.now();
    let previous = match applied {
        Some(v) if v < info.version => org_store::snapshot(&state.store, v).await?,
        _ => None,
    };
    let active_now: HashSet<&str> = latest
        .people
        .iter()
        .filter(|p| p.active)
        .map(|p| p.id.0.as_str())
        .collect();
    let active_emails: HashSet<String> = latest
        .people
        .iter()
        .filter(|p| p.active)
        .map(|p| p.email.as_str().to_ascii_lowercase())
        .collect();

    let mut tx = state.store.begin().await?;
    let mut holds = org_changes::open_holds(&mut tx).await?;
    for hold in holds.iter_mut().filter(|h| h.state == HoldState::Held) {
        // Whoever is back is no leaver; a hold everyone came back from is dropped.
        let before = hold.people.len();
        hold.people.retain(|p| {
            !active_now.contains(p.id.as_str())
                && !active_emails.contains(&p.email.to_ascii_lowercase())
        });
        if hold.people.len() != before {
            if hold.people.is_empty() {
                hold.state = HoldState::Dropped;
                hold_event(&mut tx, hold.version, HoldStep::Dropped, now).await?;
            }
            org_changes::update_hold(&mut tx, hold.version, &hold.people, hold.state).await?;
        }
    }
    tx.commit().await?;
    let held_before = org_changes::people_held_by(&holds);
    let found = leavers::leaving(state, &held_before).await?;

    // The brake: too many people gone since the last applied snapshot, or too many grants to
    // revoke at once.
    let brake = state.config.idp.brake;
    let mut gone: Vec<HeldPerson> = Vec::new();
    let mut active_before = active_now.len();
    if let Some((_, previous)) = &previous {
        gone = previous
            .people
            .iter()
            .filter(|p| p.active && !active_now.contains(p.id.0.as_str()))
            .map(|p| HeldPerson {
                id: p.id.0.clone(),
                email: p.email.as_str().to_string(),
                name: p.display_name.clone(),
            })
            .collect();
        active_before = previous.people.iter().filter(|p| p.active).count();
    }
    if let Some((_, previous)) = &previous {
        renamed(state, previous, &latest, now).await?;
    }
    let limit = brake.limit(active_before);
    // Leavers believed within the window count too: pushed changes bring them one at a time.
    let window = chrono::TimeDelta::from_std(state.config.idp.brake_window)
        .unwrap_or(chrono::TimeDelta::hours(1));
    let recent = if gone.is_empty() {
        0
    } else {
        org_changes::departures_since(&state.store, now - window).await?
    };
    let tripped = trips(
        &brake,
        gone.len() + recent,
        active_before,
        found.grants.len(),
    );
    let mut raised = None;
    // Who leaves with this application: those the brake believes now, and those a person
    // approved; their offboarding runs are recorded with it.
    let mut leaving: Vec<HeldPerson> = if tripped { Vec::new() } else { gone.clone() };
    leaving.extend(
        holds
            .iter()
            .filter(|h| h.state == HoldState::Approved)
            .flat_map(|h| h.people.iter().cloned()),
    );
    // A removal still waiting for a person takes in those who leave after it, so a mass
    // removal pushed one person at a time is one hold, approved once.
    let open_hold = holds
        .iter()
        .position(|h| h.state == HoldState::Held && now - h.created_at < window);
    let found = if let (true, Some(at)) = (tripped && !gone.is_empty(), open_hold) {
        let hold = &mut holds[at];
        for person in gone {
            if !hold.people.iter().any(|p| p.id == person.id) {
                hold.people.push(person);
            }
        }
        let mut tx = state.store.begin().await?;
        org_changes::update_hold(&mut tx, hold.version, &hold.people, hold.state).await?;
        tx.commit().await?;
        found.without(&org_changes::people_held_by(&holds))
    } else if tripped && !holds.iter().any(|h| h.version == info.version) {
        let mut people = gone;
        for grant in &found.grants {
            let id = grant.person.as_ref().map_or(&grant.email, |p| &p.0);
            if !people
                .iter()
                .any(|p| &p.id == id || p.email.eq_ignore_ascii_case(&grant.email))
            {
                people.push(HeldPerson {
                    id: id.clone(),
                    email: grant.email.clone(),
                    name: grant.email.clone(),
                });
            }
        }
        let hold = Hold {
            version: info.version,
            created_at: now,
            people,
            active_before: active_before as i64,
            state: HoldState::Held,
            decided_by: None,
            decided_at: None,
        };
        let alert = Alert::LeaverBrake {
            version: info.version,
            leavers: hold.people.len(),
            grants: found.grants.len(),
            active_before,
            limit,
        };
        let mut tx = state.store.begin().await?;
        if org_changes::insert_hold(&mut tx, &hold).await? {
            alerts::record(&mut tx, &state.config, &alert, now).await?;
            raised = Some(alert);
        }
        tx.commit().await?;
        holds.push(hold);
        found.without(&org_changes::people_held_by(&holds))
    } else {
        found
    };
    if let Some(alert) = &raised {
        alerts::announce(&state.metrics, alert);
    }
    let touched = leavers::remove(state, &found).await?;

    // Joiners and movers are recorded with the snapshot's application: once, never twice.
    let mut changed = match &previous {
        Some((_, previous)) => {
            identity_changes(state, previous, &latest, info.version, now).await?
        }
        None => Vec::new(),
    };
    changed.extend(leaving.iter().filter_map(leaver).map(|person| Changed {
        person,
        event: RunEvent::Leaver,
        review: false,
    }));
    let mut tx = state.store.begin().await?;
    if org_changes::applied_in(&mut tx).await? != applied {
        tx.rollback().await?;
        return Ok(None);
    }
    for hold in holds.iter().filter(|h| h.state == HoldState::Approved) {
        org_changes::update_hold(&mut tx, hold.version, &hold.people, HoldState::Done).await?;
        hold_event(&mut tx, hold.version, HoldStep::Done, now).await?;
    }
    let runs =
        identity::changes::record(&mut tx, state, info.version, &changed, active_before, now)
            .await?;
    if !tripped {
        let believed: Vec<HeldPerson> = leaving
            .iter()
            .filter(|p| !holds.iter().any(|h| h.people.iter().any(|x| x.id == p.id)))
            .cloned()
            .collect();
        org_changes::record_departures(&mut tx, &believed, info.version, now).await?;
    }
    org_changes::set_applied(&mut tx, info.version, now).await?;
    tx.commit().await?;
    for alert in &runs.alerts {
        alerts::announce(&state.metrics, alert);
    }
    let rerouted = super::reresolve::after_org_change(state).await?;
    let waiting = holds.iter().filter(|h| h.state == HoldState::Held).count();
    state.metrics.set_open_alerts(waiting);
    Ok(Some(Applied {
        version: Some(info.version),
        leavers: touched,
        held: holds
            .iter()
            .filter(|h| h.state == HoldState::Held)
            .map(|h| h.people.len())
            .sum(),
        rerouted,
        lifecycle_runs: runs.runs,
    }))
}

/// A leaver as the brake keeps them; someone whose stored email does not parse is logged and
/// left out of offboarding (their grants are still revoked).
fn leaver(held: &HeldPerson) -> Option<Person> {
    let email = Email::parse(&held.email)
        .inspect_err(|e| tracing::warn!(person = held.id, error = %e, "a leaver without a usable email: no offboarding run"))
        .ok()?;
    Some(Person::new(
        PersonId(held.id.clone()),
        email,
        held.name.clone(),
    ))
}

/// Who joined and who moved between two snapshots, when birthright policies are loaded or
/// resources ask for review on a move: a mover is judged on the same policies in both charts.
/// The newest chart's index is the one the cache already holds when it is of `version` (it
/// was refreshed just before); only the previous chart is indexed here.
async fn identity_changes(
    state: &AppState,
    before: &OrgSnapshot,
    after: &OrgSnapshot,
    version: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Changed>, Failure> {
    let Some(workflows) = state.workflows() else {
        return Ok(Vec::new());
    };
    let reviewed = workflows.catalog.reviewed_on_move();
    if workflows.birthright.is_empty() && reviewed.is_empty() {
        return Ok(Vec::new());
    }
    let holders: HashSet<PersonId> = requests::requested_active(&state.store, &reviewed, None)
        .await?
        .into_iter()
        .filter_map(|r| r.subject_person)
        .collect();
    let mut changed = Vec::new();
    if !workflows.birthright.is_empty() {
        changed.extend(
            identity::changes::joined(before, after)
                .into_iter()
                .map(|p| Changed {
                    person: p.clone(),
                    event: RunEvent::Joiner,
                    review: false,
                }),
        );
    }
    let today = match state.org.index() {
        Some(index) if state.org.version() == Some(version) => index,
        _ => std::sync::Arc::new(crate::orgchart::OrgIndex::build(after.clone())),
    };
    let then = crate::orgchart::OrgIndex::build(before.clone());
    let moved = identity::changes::moved(&workflows.birthright, &then, &today, now, |id| {
        holders.contains(id)
    });
    changed.extend(moved.into_iter().map(|(p, review)| Changed {
        person: p.clone(),
        event: RunEvent::Mover,
        review,
    }));
    Ok(changed)
}

/// People whose email changed between two snapshots: `(id, from, to)`.
fn renames(before: &OrgSnapshot, after: &OrgSnapshot) -> Vec<(PersonId, Email, Email)> {
    let was: HashMap<&PersonId, &Email> = before.people.iter().map(|p| (&p.id, &p.email)).collect();
    after
        .people
        .iter()
        .filter_map(|p| {
            let old = was.get(&p.id)?;
            (*old != &p.email).then(|| (p.id.clone(), (*old).clone(), p.email.clone()))
        })
        .collect()
}

/// An email change is a rename: the person keeps their grants and requests, which show the
/// new email; each rename is one audit event with the tickets it touched.
async fn renamed(
    state: &AppState,
    before: &OrgSnapshot,
    after: &OrgSnapshot,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Failure> {
    for (id, from, to) in renames(before, after) {
        let mut tx = state.store.begin().await?;
        let tickets = crate::store::requests::rename_person(&mut tx, &id, &to).await?;
        crate::store::accounts::renamed(&mut tx, &id, &to).await?;
        crate::audit::append(
            &mut tx,
            &crate::audit::Event {
                at: now,
                tenant: None,
                request_id: None,
                ticket_key: None,
                actor: crate::audit::Actor::System("org_sync".into()),
                action: crate::audit::Action::PersonRenamed,
                target: Some(id.0.clone()),
                details: serde_json::json!({
                    "person": id.0,
                    "from": from.as_str(),
                    "to": to.as_str(),
                    "tickets": tickets.iter().map(|(_, t)| t).collect::<Vec<_>>(),
                }),
                workflow_version: None,
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(person = id.0, from = %from, to = %to, "a person's email changed: renamed");
    }
    Ok(())
}

/// Approves the removals held for snapshot `version` (`by` names who, for the audit log) and
/// queues their application; `false` when nothing is held for it.
pub async fn approve(
    store: &crate::store::Store,
    version: i64,
    by: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, Failure> {
    // The approval, its audit event and the job that carries it out commit together.
    let mut tx = store.begin().await?;
    if !org_changes::approve_hold(&mut tx, version, by, now).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    append_hold_event(
        &mut tx,
        version,
        HoldStep::Approved,
        crate::audit::Actor::System(format!("operator:{by}")),
        now,
    )
    .await?;
    crate::jobs::schedule_now(
        &mut tx,
        &crate::jobs::Job::OrgApply {
            why: format!("hold:{version}:approved"),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// What became of a hold, in the audit log's system chain.
async fn append_hold_event(
    tx: &mut crate::store::Tx,
    version: i64,
    what: HoldStep,
    actor: crate::audit::Actor,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Failure> {
    crate::audit::append(
        tx,
        &crate::audit::Event {
            at: now,
            tenant: None,
            request_id: None,
            ticket_key: None,
            actor,
            action: crate::audit::Action::LeaverBrake(what),
            target: None,
            details: serde_json::json!({"version": version}),
            workflow_version: None,
        },
    )
    .await?;
    Ok(())
}

async fn hold_event(
    tx: &mut crate::store::Tx,
    version: i64,
    what: HoldStep,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Failure> {
    append_hold_event(
        tx,
        version,
        what,
        crate::audit::Actor::System("org_sync".into()),
        now,
    )
    .await
}

/// Whether a sync that makes `gone` of `active_before` people leavers, revoking `grants`, is
/// too much to believe at once.
fn trips(
    brake: &crate::config::LeaverBrake,
    gone: usize,
    active_before: usize,
    grants: usize,
) -> bool {
    gone > brake.limit(active_before) || grants > brake.max_grants
}

/// One org sync: the identity source read into a new snapshot (a full read at least daily), a
/// failure counted (an alert at the third in a row), the account index refreshed after a full
/// read, then the chart applied. `Err` only when trying again soon may help; a failure that
/// retrying cannot mend (bad settings, an empty source) is logged and waits for the next slot.
pub async fn sync(state: &AppState) -> Result<(), Failure> {
    use crate::idp::{Connector, Directory};
    let connector = Connector::new(&state.config.idp.source, &state.store);
    if matches!(connector, Connector::ScimPush(_))
        && crate::store::scim_resources::current_seq(&state.store).await? == 0
    {
        // Nothing pushed yet is no failing source: the chart starts with the first push.
        tracing::info!("waiting for the identity provider's first SCIM push");
        return Ok(());
    }
    let last_full = crate::store::org::last_full_sync(&state.store, &connector.source()).await?;
    let full = last_full.is_none_or(|at| state.clock.now() - at > FULL_SYNC_EVERY);
    let quiet = crate::people::sync::Quiet;
    let source = connector.source();
    let result =
        crate::people::sync::sync(&state.store, &connector, &*state.clock, full, &quiet).await;
    if let Err(e) = &result {
        sync_failed(state, &source, &e.to_string()).await?;
    }
    match result {
        Ok(report) => {
            tracing::info!(?report, "org chart synced");
            crate::store::org_changes::sync_succeeded(&state.store, &source).await?;
            if full {
                refresh_account_index(state).await;
            }
            apply_logged(state).await
        }
        Err(e) if e.is_retryable() => Err(Failure::OrgSync(e)),
        Err(e) => {
            // Retrying will not help (bad configuration, an empty source): say so loudly and
            // wait for the next slot.
            tracing::error!(error = %e, "org sync failed; the current org chart is kept");
            Ok(())
        }
    }
}

/// An identity provider's event (`idp_hooks`): the people and groups it names read again and
/// written onto the chart, which is then applied; an event that names nobody (Graph's "missed
/// notifications") runs the incremental sync instead. Done once: a redelivered job finds it done.
pub async fn reread(state: &AppState, event: &str) -> Result<(), Failure> {
    use crate::idp::{Connector, Directory};
    let Some(stored) = crate::store::idp_events::get(&state.store, event).await? else {
        return Ok(());
    };
    if stored.done_at.is_some() {
        return Ok(());
    }
    let targets: Vec<crate::idp::events::Reread> = serde_json::from_value(stored.targets)
        .map_err(|e| crate::store::StoreError::Corrupt(format!("idp event {event}: {e}")))?;
    if targets.is_empty() {
        sync(state).await?;
    } else {
        let connector = Connector::new(&state.config.idp.source, &state.store);
        let mut deltas = Vec::new();
        for target in &targets {
            let delta = connector
                .reread(target)
                .await
                .map_err(crate::people::sync::SyncError::from)?;
            deltas.push(delta);
        }
        let written = crate::people::sync::apply_reread(
            &state.store,
            &connector.source(),
            deltas,
            &*state.clock,
        )
        .await?;
        tracing::info!(event, kind = stored.kind, snapshot = ?written, "an identity provider's event was read again");
        if written.is_some() {
            apply_logged(state).await?;
        }
    }
    crate::store::idp_events::done(&state.store, event, state.clock.now()).await?;
    Ok(())
}

/// How long a Graph subscription is asked for (Graph allows 41,760 minutes for users and groups).
const SUBSCRIPTION_LIFE: chrono::TimeDelta = chrono::TimeDelta::days(28);
/// A subscription ending sooner than this is renewed.
const RENEW_WITHIN: chrono::TimeDelta = chrono::TimeDelta::days(3);

/// Keeps Graph's change notifications coming, when an Entra source has a `clientState`: a
/// subscription to users and one to groups, created (Graph validates `/hooks/graph` first),
/// renewed before they end, and created again when Graph dropped one. Graph keeps time by its
/// own clock, so the wall clock sets the dates.
pub async fn keep_subscriptions(state: &AppState) -> Result<(), Failure> {
    use crate::idp::graph::GraphDirectory;
    use crate::store::idp_events::{self, HookSubscription};
    let crate::config::IdpSource::Entra(config) = &state.config.idp.source else {
        return Ok(());
    };
    let Some(client_state) = &config.client_state else {
        return Ok(());
    };
    let graph = GraphDirectory::new(config.clone());
    let url = format!(
        "{}/hooks/graph",
        state.config.server.base_url.trim_end_matches('/')
    );
    let held = idp_events::subscriptions(&state.store).await?;
    let failed = |e| Failure::OrgSync(crate::people::sync::SyncError::Idp(e));
    for resource in ["users", "groups"] {
        let wall = crate::clock::wall();
        let until = wall + SUBSCRIPTION_LIFE;
        let subscribe = || graph.subscribe(resource, &url, client_state.expose(), until);
        let got = match held.iter().find(|s| s.resource == resource) {
            Some(s) if s.expires_at - wall > RENEW_WITHIN => continue,
            Some(s) => match graph.renew(&s.id, until).await {
                Err(crate::idp::IdpError::NotFound(_)) => subscribe().await,
                other => other,
            },
            None => subscribe().await,
        }
        .map_err(failed)?;
        tracing::info!(resource, id = got.id, expires = %got.expires, "Graph change notifications subscribed");
        let subscription = HookSubscription {
            resource: resource.to_string(),
            id: got.id,
            expires_at: got.expires,
        };
        idp_events::save_subscription(&state.store, &subscription, state.clock.now()).await?;
    }
    Ok(())
}

/// Reads the organization's account list into the account index, with a full org sync and at
/// most every `account_index_interval`. A failure keeps the index as it was (lookups that miss
/// it make one targeted query meanwhile).
async fn refresh_account_index(state: &AppState) {
    let max_age = chrono::TimeDelta::from_std(state.config.atlassian.account_index_interval)
        .unwrap_or(chrono::TimeDelta::hours(6));
    let refreshed = crate::people::accounts::refresh_index(
        &state.store,
        &state.atlassian,
        &*state.clock,
        max_age,
    )
    .await;
    if let Err(e) = refreshed {
        tracing::warn!(error = %e, "the account index could not be read; the stored one is kept");
    }
}

/// Failed syncs in a row before an alert.
const SYNC_FAILURES_ALERT: i64 = 3;

/// Counts a failed sync, and at the third in a row raises an alert (once per streak).
async fn sync_failed(state: &AppState, source: &str, error: &str) -> Result<(), Failure> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let failures = crate::store::org_changes::sync_failed(&mut tx, source, error, now).await?;
    let alert = (failures == SYNC_FAILURES_ALERT).then(|| Alert::SyncFailing {
        source: source.to_string(),
        failures,
        error: error.to_string(),
    });
    if let Some(alert) = &alert {
        alerts::record(&mut tx, &state.config, alert, now).await?;
    }
    tx.commit().await?;
    if let Some(alert) = &alert {
        alerts::announce(&state.metrics, alert);
    }
    Ok(())
}

/// [`apply`], saying what it did.
pub async fn apply_logged(state: &AppState) -> Result<(), Failure> {
    let applied = apply(state).await?;
    if applied.leavers > 0 || applied.held > 0 || applied.rerouted > 0 || applied.lifecycle_runs > 0
    {
        tracing::info!(?applied, "org chart applied");
    }
    Ok(())
}

/// A full read at least this often: incremental reads do not see removals.
const FULL_SYNC_EVERY: chrono::TimeDelta = chrono::TimeDelta::hours(24);

#[cfg(test)]
mod tests {
    use super::trips;
    use crate::config::LeaverBrake;

    #[test]
    fn the_brake_trips_on_too_many_people_or_too_many_grants() {
        let brake = LeaverBrake {
            share: 0.02,
            min_people: 10,
            max_grants: 100,
        };
        // 15 of 48 vanish: more than the floor of 10.
        assert!(trips(&brake, 15, 48, 15));
        // One leaver with a few grants goes through.
        assert!(!trips(&brake, 1, 48, 3));
        // 2 % of 100,000 is 2,000: 1,500 leavers are believed…
        assert!(!trips(&brake, 1_500, 100_000, 90));
        // …unless they would lose more grants at once than allowed.
        assert!(trips(&brake, 1_500, 100_000, 101));
    }
}
