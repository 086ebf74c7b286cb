//! Joiners: who an applied snapshot shows active that the snapshot applied before it did not
//! (new hires, and people coming back). Each gets a run, stored with its audit event and its
//! job in the transaction that marks the snapshot applied, so a crash loses none and repeats
//! none. A wave larger than the brake allows is held for a person to release.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::alerts::{self, Alert};
use crate::audit::{self, Action, Actor, RunStep};
use crate::failure::Failure;
use crate::ids::PersonId;
use crate::jobs::{self, Job};
use crate::orgchart::{OrgSnapshot, Person};
use crate::state::AppState;
use crate::store::Tx;
use crate::store::lifecycle_runs::{self as runs, Run, RunEvent, RunState};

/// People active in `after` who were not active in `before`: an email change is the same
/// person (a rename), someone reactivated is a joiner again.
pub fn joined<'a>(before: &OrgSnapshot, after: &'a OrgSnapshot) -> Vec<&'a Person> {
    let was_active: HashSet<&PersonId> = before
        .people
        .iter()
        .filter(|p| p.active)
        .map(|p| &p.id)
        .collect();
    after
        .people
        .iter()
        .filter(|p| p.active && !was_active.contains(&p.id))
        .collect()
}

/// What [`record`] did.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Runs stored (queued or held).
    pub runs: usize,
    /// The brake's alert, to announce once the transaction commits.
    pub alert: Option<Alert>,
}

/// Stores a run per joiner of snapshot `version` and queues their jobs, in the caller's
/// transaction; held instead when there are more than the brake allows among
/// `active_before` people. Nothing is recorded while no birthright policy is loaded.
pub async fn record(
    tx: &mut Tx,
    state: &AppState,
    version: i64,
    joined: &[&Person],
    active_before: usize,
    now: DateTime<Utc>,
) -> Result<Recorded, Failure> {
    let has_policies = state.workflows().is_some_and(|w| !w.birthright.is_empty());
    if joined.is_empty() || !has_policies {
        return Ok(Recorded::default());
    }
    let limit = state.config.idp.brake.limit(active_before);
    let held = joined.len() > limit;
    let mut recorded = Recorded::default();
    for person in joined {
        let state = if held {
            RunState::Held
        } else {
            RunState::Queued
        };
        let run = Run::new(
            person.id.clone(),
            person.email.clone(),
            person.display_name.clone(),
            (RunEvent::Joiner, state),
            version,
            now,
        );
        if !runs::insert(tx, &run).await? {
            continue;
        }
        recorded.runs += 1;
        event(
            tx,
            &run,
            RunStep::Recorded,
            json!({"held": held}),
            Actor::System("org_sync".into()),
            now,
        )
        .await?;
        if !held {
            jobs::schedule_now(tx, &first_try(run.id)).await?;
        }
    }
    if held && recorded.runs > 0 {
        let alert = Alert::JoinerBrake {
            version,
            joiners: joined.len(),
            active_before,
            limit,
        };
        alerts::record(tx, &state.config, &alert, now).await?;
        recorded.alert = Some(alert);
    }
    Ok(recorded)
}

/// Lets the runs held for snapshot `version` go (`by` names who, for the audit log); how
/// many were released.
pub async fn release(
    store: &crate::store::Store,
    version: i64,
    by: &str,
    now: DateTime<Utc>,
) -> Result<usize, Failure> {
    let mut tx = store.begin().await?;
    let released = runs::release(&mut tx, version, now).await?;
    for id in &released {
        jobs::schedule_now(&mut tx, &first_try(*id)).await?;
    }
    if !released.is_empty() {
        audit::append(
            &mut tx,
            &audit::Event {
                at: now,
                tenant: None,
                request_id: None,
                ticket_key: None,
                actor: Actor::System(format!("operator:{by}")),
                action: Action::Lifecycle(RunStep::Released),
                target: None,
                details: json!({"version": version, "runs": released.len()}),
                workflow_version: None,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(released.len())
}

fn first_try(run: uuid::Uuid) -> Job {
    Job::LifecycleRun {
        run,
        attempt: 0,
        since: 0,
    }
}

/// A step of `run`, in the audit log's system chain.
pub(crate) async fn event(
    tx: &mut Tx,
    run: &Run,
    step: RunStep,
    mut details: serde_json::Value,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    details["run"] = json!(run.id);
    details["event"] = json!(run.event.as_str());
    details["email"] = json!(run.email.as_str());
    details["version"] = json!(run.version);
    audit::append(
        tx,
        &audit::Event {
            at: now,
            tenant: run.ticket.as_ref().map(|t| t.0.to_string()),
            request_id: None,
            ticket_key: run.ticket.as_ref().map(|t| t.1.to_string()),
            actor,
            action: Action::Lifecycle(step),
            target: Some(run.person.0.clone()),
            details,
            workflow_version: None,
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::joined;
    use crate::orgchart::{OrgSnapshot, test_person};

    #[test]
    fn joiners_are_the_newly_active_not_the_renamed() {
        let mut before = OrgSnapshot {
            people: vec![
                test_person("ann@example.com", None, "CEO", "EXEC"),
                test_person(
                    "bob@example.com",
                    Some("ann@example.com"),
                    "Engineer",
                    "ENG",
                ),
                test_person("cy@example.com", Some("ann@example.com"), "Engineer", "ENG"),
            ],
            ..OrgSnapshot::default()
        };
        before.people[2].active = false;
        let mut after = before.clone();
        // Bob's email changes (same person id); Cy comes back; Dee is new.
        after.people[1].email = crate::ids::Email::parse("robert@example.com").expect("email");
        after.people[2].active = true;
        after.people.push(test_person(
            "dee@example.com",
            Some("ann@example.com"),
            "Analyst",
            "FIN",
        ));
        let mut inactive_new = test_person("eve@example.com", None, "Contractor", "ENG");
        inactive_new.active = false;
        after.people.push(inactive_new);
        let names: Vec<&str> = joined(&before, &after)
            .iter()
            .map(|p| p.email.as_str())
            .collect();
        assert_eq!(names, ["cy@example.com", "dee@example.com"]);
    }
}
