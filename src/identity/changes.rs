//! Who an applied snapshot shows joining (active now, not in the snapshot applied before it:
//! new hires, and people coming back) or moving (active in both, and due other birthright
//! now). Each gets a run, stored with its audit event and its job in the transaction that marks
//! the snapshot applied, so a crash loses none and repeats none. A wave of either larger than
//! the brake allows is held for a person to release.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::alerts::{self, Alert};
use crate::audit::{self, Action, Actor, RunStep};
use crate::failure::Failure;
use crate::ids::PersonId;
use crate::jobs::{self, Job};
use crate::orgchart::{OrgIndex, OrgSnapshot, Person};
use crate::state::AppState;
use crate::store::Tx;
use crate::store::lifecycle_runs::{self as runs, Run, RunEvent, RunState};
use crate::workflow::birthright::{self, Policy};
use crate::workflow::condition::PersonFacts;

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

/// People active in both charts whose facts changed so that their birthright changes (a new
/// department, title, group, attribute…: what they were due under `before` and are due under
/// `after` differ), or who hold access that asks for review on a move (`holds_reviewed`) and
/// have a new manager or department. The flag says the latter: their run sends that access to
/// the manager. A change nothing reads makes nobody a mover.
pub fn moved<'a>(
    policies: &[Policy],
    before: &OrgIndex,
    after: &'a OrgIndex,
    now: DateTime<Utc>,
    holds_reviewed: impl Fn(&PersonId) -> bool,
) -> Vec<(&'a Person, bool)> {
    after
        .everyone()
        .filter_map(|idx| {
            let person = after.person(idx);
            let was = before
                .by_id(&person.id)
                .filter(|was| person.active && before.person(*was).active)?;
            let (then, today) = (PersonFacts::of(before, was), PersonFacts::of(after, idx));
            if then == today {
                return None;
            }
            let review = (then.manager != today.manager || then.department != today.department)
                && holds_reviewed(&person.id);
            let birthright = !policies.is_empty() && {
                let (then, _) = birthright::due(policies, before, was, now);
                let (today, _) = birthright::due(policies, after, idx, now);
                !birthright::change(&then, &today).is_empty()
            };
            (birthright || review).then_some((person, review))
        })
        .collect()
}

/// Someone a snapshot shows joining, moving or leaving.
#[derive(Debug, Clone)]
pub struct Changed {
    pub person: Person,
    pub event: RunEvent,
    /// A mover whose access that asks for review on a move goes to their manager.
    pub review: bool,
}

/// What [`record`] did.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Runs stored (queued or held).
    pub runs: usize,
    /// The brake's alerts, to announce once the transaction commits.
    pub alerts: Vec<Alert>,
}

/// Stores a run per joiner, mover and leaver of snapshot `version` and queues their jobs, in
/// the caller's transaction; joiners (or movers) more than the brake allows among
/// `active_before` are held instead (leavers come here once the leaver brake let them go).
/// Joiners and movers are recorded while birthright policies are loaded, leavers while the
/// lifecycle ticket is configured: without either there is nothing for a run to do.
pub async fn record(
    tx: &mut Tx,
    state: &AppState,
    version: i64,
    people: &[Changed],
    active_before: usize,
    now: DateTime<Utc>,
) -> Result<Recorded, Failure> {
    let has_policies = state.workflows().is_some_and(|w| !w.birthright.is_empty());
    let mut recorded = Recorded::default();
    let limit = state.config.idp.brake.limit(active_before);
    for event in [RunEvent::Joiner, RunEvent::Mover, RunEvent::Leaver] {
        let wanted = |c: &Changed| match event {
            RunEvent::Joiner => has_policies,
            RunEvent::Mover => has_policies || c.review,
            RunEvent::Leaver => state.config.lifecycle.ticket.is_some(),
            // Recorded by the inactive-account scan, never by a snapshot.
            RunEvent::Inactive => false,
        };
        let of_event: Vec<&Changed> = people
            .iter()
            .filter(|c| c.event == event && wanted(c))
            .collect();
        let held = event != RunEvent::Leaver && of_event.len() > limit;
        let mut stored = 0;
        for changed in &of_event {
            let (person, review) = (&changed.person, changed.review);
            let state = if held {
                RunState::Held
            } else {
                RunState::Queued
            };
            let run = Run {
                review,
                ..Run::new(
                    person.id.clone(),
                    person.email.clone(),
                    person.display_name.clone(),
                    (event, state),
                    version,
                    now,
                )
            };
            if !runs::insert(tx, &run).await? {
                continue;
            }
            stored += 1;
            event_of(
                tx,
                &run,
                RunStep::Recorded,
                json!({"held": held, "review": review}),
                Actor::System("org_sync".into()),
                now,
            )
            .await?;
            if !held {
                jobs::schedule_now(tx, &first_try(run.id)).await?;
            }
        }
        recorded.runs += stored;
        if held && stored > 0 {
            let alert = Alert::LifecycleBrake {
                version,
                event: event.as_str().to_string(),
                people: of_event.len(),
                active_before,
                limit,
            };
            alerts::record(tx, &state.config, &alert, now).await?;
            recorded.alerts.push(alert);
        }
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
pub(crate) async fn event_of(
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
    use super::{joined, moved};
    use crate::orgchart::{OrgIndex, OrgSnapshot, test_person};
    use crate::workflow::birthright::{Approval, Entitlement, Policy};
    use crate::workflow::condition::Condition;

    #[test]
    fn movers_are_those_whose_birthright_changes_not_every_edit() {
        let policy = Policy {
            id: "engineering".into(),
            description: String::new(),
            when: Condition::compile_for_person("person.department == \"ENG\"").expect("condition"),
            grants: vec![Entitlement {
                resource: crate::ids::ResourceId("github".into()),
                level: None,
            }],
            approval: Approval::None,
        };
        let before = OrgSnapshot {
            people: vec![
                test_person("ann@example.com", None, "CEO", "EXEC"),
                test_person(
                    "bob@example.com",
                    Some("ann@example.com"),
                    "Engineer",
                    "ENG",
                ),
                test_person("cy@example.com", Some("ann@example.com"), "Engineer", "ENG"),
                test_person("dee@example.com", Some("ann@example.com"), "Analyst", "FIN"),
                test_person(
                    "eli@example.com",
                    Some("ann@example.com"),
                    "Engineer",
                    "ENG",
                ),
            ],
            ..OrgSnapshot::default()
        };
        let mut after = before.clone();
        // Bob moves to finance (loses github); Cy gets a new title (same birthright); Dee moves
        // to engineering (gains it); Eli gets a new manager (same birthright); Ann leaves (a
        // leaver, not a mover).
        after.people[1].department = Some("FIN".into());
        after.people[2].title = Some("Staff Engineer".into());
        after.people[3].department = Some("ENG".into());
        after.people[4].manager = Some(after.people[3].id.clone());
        after.people[0].active = false;
        let then = OrgIndex::build(before);
        let today = OrgIndex::build(after);
        let now = "2026-12-04T09:00:00Z".parse().expect("time");
        let names = |found: Vec<(&crate::orgchart::Person, bool)>| -> Vec<(String, bool)> {
            found
                .iter()
                .map(|(p, review)| (p.email.to_string(), *review))
                .collect()
        };
        let policies = std::slice::from_ref(&policy);
        assert_eq!(
            names(moved(policies, &then, &today, now, |_| false)),
            [
                ("bob@example.com".into(), false),
                ("dee@example.com".into(), false)
            ]
        );
        assert!(
            moved(&[], &then, &today, now, |_| false).is_empty(),
            "no policy and nothing to review: no mover"
        );
        // Everyone holds access up for review: a new manager or department sends it to review;
        // a new title does not.
        assert_eq!(
            names(moved(policies, &then, &today, now, |_| true)),
            [
                ("bob@example.com".into(), true),
                ("dee@example.com".into(), true),
                ("eli@example.com".into(), true),
            ]
        );
        assert_eq!(
            names(moved(&[], &then, &today, now, |_| true)),
            [
                ("bob@example.com".into(), true),
                ("dee@example.com".into(), true),
                ("eli@example.com".into(), true),
            ]
        );
    }

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
