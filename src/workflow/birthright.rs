//! Birthright policies: access a person has for who they are (their department, title, groups,
//! employment type, any attribute the identity source gives), without asking for it. Pure:
//! which catalog resources a person is due, read off the org chart. Granting and ending what
//! this says is the identity lifecycle's job.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::condition::{Condition, PersonFacts};
use crate::ids::ResourceId;
use crate::orgchart::{OrgIndex, Person, PersonIdx};

/// One policy of a `birthright:` file, checked at load.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub id: String,
    pub description: String,
    /// Whom it is for, over `person`.
    pub when: Condition,
    pub grants: Vec<Entitlement>,
    pub approval: Approval,
}

/// A catalog resource (at a level, where the resource has levels) a policy brings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Entitlement {
    pub resource: ResourceId,
    pub level: Option<String>,
}

/// Who approves a birthright grant before it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// Granted as soon as the person is due it.
    None,
    /// The person's manager approves it first, in the lifecycle ticket.
    Manager,
}

impl Approval {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "none" => Some(Self::None),
            "manager" => Some(Self::Manager),
            _ => None,
        }
    }
}

/// What a person is due, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Due {
    #[serde(flatten)]
    pub entitlement: Entitlement,
    /// Every policy that brings it, in file order.
    pub policies: Vec<String>,
    /// The least any of those policies asks: a person due something without approval by one
    /// policy is not made to wait for it by another.
    pub approval: Approval,
}

/// What `person` is due under `policies`, each entitlement once, in catalog order of first
/// mention; and the policies whose condition could not be judged for them (a missing
/// attribute, a type error), which bring nothing until fixed. Someone inactive is due nothing.
pub fn due(
    policies: &[Policy],
    org: &OrgIndex,
    person: PersonIdx,
    now: DateTime<Utc>,
) -> (Vec<Due>, Vec<String>) {
    let mut owed: Vec<Due> = Vec::new();
    let mut problems = Vec::new();
    if !org.person(person).active {
        return (owed, problems);
    }
    let facts = PersonFacts::of(org, person);
    for policy in policies {
        match policy.when.evaluate_person(&facts, now) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                problems.push(format!("birthright `{}`: {e}", policy.id));
                continue;
            }
        }
        for entitlement in &policy.grants {
            match owed.iter_mut().find(|d| d.entitlement == *entitlement) {
                Some(known) => {
                    known.policies.push(policy.id.clone());
                    known.approval = known.approval.min(policy.approval);
                }
                None => owed.push(Due {
                    entitlement: entitlement.clone(),
                    policies: vec![policy.id.clone()],
                    approval: policy.approval,
                }),
            }
        }
    }
    (owed, problems)
}

/// How a person's birthright changes from what they were due to what they are due now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Due now and not before: granted.
    pub start: Vec<Due>,
    /// Due before and not now: ended (after the grace period, for a mover).
    pub end: Vec<Entitlement>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.start.is_empty() && self.end.is_empty()
    }
}

/// The change from `before` to `after` (each what [`due`] said). An entitlement due under
/// other policies now than before is kept: it neither ends nor starts again.
pub fn change(before: &[Due], after: &[Due]) -> Change {
    let had = |e: &Entitlement| before.iter().any(|d| d.entitlement == *e);
    let has = |e: &Entitlement| after.iter().any(|d| d.entitlement == *e);
    Change {
        start: after
            .iter()
            .filter(|d| !had(&d.entitlement))
            .cloned()
            .collect(),
        end: before
            .iter()
            .filter(|d| !has(&d.entitlement))
            .map(|d| d.entitlement.clone())
            .collect(),
    }
}

/// Whether someone's move puts the access they asked for up for review (for resources that
/// say `review_on_move`): a new manager, or a new department. A new title alone does not.
pub fn moved_for_review(before: &Person, after: &Person) -> bool {
    before.manager != after.manager || before.department != after.department
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Email;
    use crate::orgchart::{EmploymentType, OrgSnapshot, test_person as person};

    fn org() -> OrgIndex {
        let mut noah = person(
            "noah@acme.example",
            Some("maya@acme.example"),
            "Software Engineer",
            "Engineering",
        );
        noah.attributes.insert("location".into(), "Berlin".into());
        let mut pablo = person(
            "pablo@acme.example",
            Some("maya@acme.example"),
            "Software Engineer",
            "Engineering",
        );
        pablo.employment_type = EmploymentType::Contractor;
        let mut quinn = person(
            "quinn@acme.example",
            Some("maya@acme.example"),
            "Software Engineer",
            "Engineering",
        );
        quinn.active = false;
        OrgIndex::build(OrgSnapshot {
            people: vec![
                person(
                    "maya@acme.example",
                    None,
                    "Engineering Manager",
                    "Engineering",
                ),
                noah,
                pablo,
                quinn,
                person("erin@acme.example", None, "Accountant", "Finance"),
            ],
            ..Default::default()
        })
    }

    fn policy(id: &str, when: &str, grants: &[(&str, Option<&str>)], approval: Approval) -> Policy {
        Policy {
            id: id.into(),
            description: String::new(),
            when: Condition::compile_for_person(when).expect("compiles"),
            grants: grants
                .iter()
                .map(|(r, l)| Entitlement {
                    resource: ResourceId(r.to_string()),
                    level: l.map(str::to_string),
                })
                .collect(),
            approval,
        }
    }

    fn due_for(policies: &[Policy], email: &str) -> (Vec<Due>, Vec<String>) {
        let org = org();
        let idx = org
            .by_email(&Email::parse(email).expect("email"))
            .expect("in the chart");
        due(
            policies,
            &org,
            idx,
            DateTime::from_timestamp(1_800_000_000, 0).expect("time"),
        )
    }

    fn names(owed: &[Due]) -> Vec<String> {
        owed.iter()
            .map(|d| match &d.entitlement.level {
                Some(level) => format!("{}:{level}", d.entitlement.resource),
                None => d.entitlement.resource.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_person_is_due_what_every_matching_policy_brings_once() {
        let policies = [
            policy(
                "engineering",
                r#"person.department == "Engineering""#,
                &[("github", None), ("datadog", Some("read"))],
                Approval::None,
            ),
            policy(
                "employees-in-berlin",
                r#"person.employment_type == "full_time" && person.attributes.location == "Berlin""#,
                &[("github", None), ("berlin-wiki", None)],
                Approval::Manager,
            ),
        ];
        let (noah, problems) = due_for(&policies, "noah@acme.example");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(names(&noah), ["github", "datadog:read", "berlin-wiki"]);
        // GitHub is Noah's by two policies; one asks no approval, so none is asked.
        assert_eq!(noah[0].policies, ["engineering", "employees-in-berlin"]);
        assert_eq!(noah[0].approval, Approval::None);
        assert_eq!(noah[2].approval, Approval::Manager);
        // Finance matches neither.
        assert!(due_for(&policies, "erin@acme.example").0.is_empty());
    }

    #[test]
    fn someone_inactive_is_due_nothing() {
        let policies = [policy(
            "everyone",
            "true",
            &[("github", None)],
            Approval::None,
        )];
        assert_eq!(
            names(&due_for(&policies, "maya@acme.example").0),
            ["github"]
        );
        assert!(due_for(&policies, "quinn@acme.example").0.is_empty());
    }

    #[test]
    fn a_condition_that_cannot_be_judged_brings_nothing_and_says_why() {
        // Pablo has no `location` attribute: the policy is not met, and the problem is named.
        let policies = [
            policy(
                "berlin",
                r#"person.attributes.location == "Berlin""#,
                &[("berlin-wiki", None)],
                Approval::None,
            ),
            policy(
                "contractors",
                r#"person.employment_type == "contractor""#,
                &[("contractor-portal", None)],
                Approval::None,
            ),
            // Not a yes or no: it brings nothing to anyone, and says so.
            policy(
                "by-department",
                "person.department",
                &[("github", None)],
                Approval::None,
            ),
        ];
        let (pablo, problems) = due_for(&policies, "pablo@acme.example");
        assert_eq!(names(&pablo), ["contractor-portal"]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("birthright `berlin`"), "{problems:?}");
        assert!(
            problems[1].contains("birthright `by-department`")
                && problems[1].contains("not true or false"),
            "{problems:?}"
        );
    }

    /// Noah moves from Engineering to Finance: the engineering tools end, finance's start, and
    /// what every employee has stays untouched.
    #[test]
    fn a_mover_ends_what_is_no_longer_due_and_starts_what_is_now() {
        let policies = [
            policy(
                "all-staff",
                r#"person.employment_type == "full_time""#,
                &[("zoom", None)],
                Approval::None,
            ),
            policy(
                "engineering",
                r#"person.department == "Engineering""#,
                &[("github", None), ("datadog", Some("read"))],
                Approval::None,
            ),
            policy(
                "finance",
                r#"person.department == "Finance""#,
                &[("netsuite", None), ("datadog", Some("read"))],
                Approval::Manager,
            ),
        ];
        let before_org = org();
        let noah = |org: &OrgIndex| {
            org.by_email(&Email::parse("noah@acme.example").expect("email"))
                .expect("Noah")
        };
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let (before, _) = due(&policies, &before_org, noah(&before_org), now);

        let mut snapshot = OrgSnapshot {
            people: before_org
                .everyone()
                .map(|i| before_org.person(i).clone())
                .collect(),
            ..Default::default()
        };
        let moved = snapshot
            .people
            .iter_mut()
            .find(|p| p.email.as_str() == "noah@acme.example")
            .expect("Noah");
        let was = moved.clone();
        moved.department = Some("Finance".into());
        moved.manager = Some(crate::ids::PersonId("erin@acme.example".into()));
        let now_is = moved.clone();
        let after_org = OrgIndex::build(snapshot);
        let (after, _) = due(&policies, &after_org, noah(&after_org), now);

        let moved = change(&before, &after);
        assert_eq!(names(&moved.start), ["netsuite"]);
        assert_eq!(moved.start[0].approval, Approval::Manager);
        assert_eq!(
            moved.end,
            [Entitlement {
                resource: ResourceId("github".into()),
                level: None
            }]
        );
        // Datadog read is due by another policy now: kept, not ended and granted again.
        assert!(!moved.is_empty());
        assert!(change(&after, &after).is_empty());
        assert!(moved_for_review(&was, &now_is));
        let mut retitled = was.clone();
        retitled.title = Some("Staff Engineer".into());
        assert!(
            !moved_for_review(&was, &retitled),
            "a new title alone is not a move"
        );
    }
}
