//! Routing: which workflow applies to a request, whether a rule decides it outright, and who
//! must approve each stage. Pure: it reads the loaded workflows and the org index, nothing else.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::condition::{Facts, PersonFacts, RequestFacts, ResourceFacts};
use super::definition::{Owner, Require, Resource, Selector, Stage, Timeouts};
use super::load::Workflows;
use crate::orgchart::{Email, OrgIndex, PersonIdx};

/// How long the requester asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestedDuration {
    /// Nothing said: the resource's default applies.
    Unspecified,
    Permanent,
    For(Duration),
}

#[derive(Debug, Clone)]
pub struct RouteRequest<'a> {
    /// Who filed the ticket.
    pub filed_by: &'a Email,
    /// Whom the access is for, when not the filer.
    pub on_behalf_of: Option<&'a Email>,
    pub resource: &'a str,
    pub level: Option<&'a str>,
    pub duration: RequestedDuration,
    pub justification: &'a str,
    pub now: DateTime<Utc>,
}

/// Why a request cannot be routed at all (the engine declines it with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("there is no resource `{0}` in the catalog")]
    UnknownResource(String),
    #[error("resource `{resource}` has access levels ({choices}): say which one")]
    LevelRequired { resource: String, choices: String },
    #[error("resource `{resource}` has no access level `{level}` (it has {choices})")]
    UnknownLevel {
        resource: String,
        level: String,
        choices: String,
    },
    #[error("resource `{0}` has no access levels, but one was given")]
    NoLevels(String),
    #[error("{0} is not in the org chart")]
    UnknownPerson(Email),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Waiting for the stages' approvers.
    Pending,
    AutoApproved,
    /// Refused by a rule, or nobody is left who may approve.
    Denied,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StagePlan {
    pub name: String,
    /// Emails of everyone who may approve this stage, sorted.
    pub approvers: Vec<String>,
    /// `any`, `all` or a number, as written.
    pub require: String,
    /// How many of `approvers` must approve.
    pub required: usize,
    pub skipped: bool,
    pub why: String,
}

/// The routing decision, and everything that explains it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routing {
    pub resource: String,
    pub level: Option<String>,
    pub workflow: Option<String>,
    pub workflow_version: String,
    pub decision: Decision,
    /// `None` for permanent access.
    pub duration_seconds: Option<u64>,
    pub capped: bool,
    pub stages: Vec<StagePlan>,
    pub reasons: Vec<String>,
    #[serde(skip)]
    pub timeouts: Timeouts,
}

/// Routes one request.
pub fn route(
    workflows: &Workflows,
    org: &OrgIndex,
    request: &RouteRequest,
) -> Result<Routing, RouteError> {
    let resource = workflows
        .catalog
        .get(request.resource)
        .ok_or_else(|| RouteError::UnknownResource(request.resource.to_string()))?;
    let level = check_level(resource, request.level)?;
    let filer = org
        .by_email(request.filed_by)
        .ok_or_else(|| RouteError::UnknownPerson(request.filed_by.clone()))?;
    let subject = match request.on_behalf_of {
        Some(email) => org
            .by_email(email)
            .ok_or_else(|| RouteError::UnknownPerson(email.clone()))?,
        None => filer,
    };

    let mut reasons = Vec::new();
    let (duration, capped) = effective_duration(resource, request.duration, &mut reasons);
    let mut routing = Routing {
        resource: resource.id.0.clone(),
        level: level.map(str::to_string),
        workflow: None,
        workflow_version: workflows.version.clone(),
        decision: Decision::Pending,
        duration_seconds: duration.map(|d| d.as_secs()),
        capped,
        stages: Vec::new(),
        reasons,
        timeouts: Timeouts::default(),
    };
    let Some(workflow) = workflows.workflow_for(resource, level) else {
        routing.decision = Decision::Denied;
        routing
            .reasons
            .push(format!("no workflow applies to {}", routing.resource));
        return Ok(routing);
    };
    routing.workflow = Some(workflow.id.clone());
    routing.timeouts = workflow.timeouts;

    let facts = facts_for(org, subject, filer, request, resource, level, duration);

    // A deny rule beats every auto-approve rule; a deny rule that cannot be evaluated denies
    // (failing closed), an auto-approve rule that cannot be evaluated does not approve.
    for rule in &workflow.deny {
        match rule.condition.evaluate(&facts) {
            Ok(false) => {}
            Ok(true) => {
                routing.decision = Decision::Denied;
                routing.reasons.push(match &rule.reason {
                    Some(reason) => format!("denied by rule `{}`: {reason}", rule.name),
                    None => format!("denied by rule `{}`", rule.name),
                });
                return Ok(routing);
            }
            Err(e) => {
                routing.decision = Decision::Denied;
                routing.reasons.push(format!(
                    "deny rule `{}` could not be evaluated, so the request is denied: {e}",
                    rule.name
                ));
                return Ok(routing);
            }
        }
    }
    for rule in &workflow.auto_approve {
        match rule.condition.evaluate(&facts) {
            Ok(false) => {}
            Ok(true) => {
                routing.decision = Decision::AutoApproved;
                routing.reasons.push(match &rule.reason {
                    Some(reason) => format!("approved by rule `{}`: {reason}", rule.name),
                    None => format!("approved by rule `{}`", rule.name),
                });
                return Ok(routing);
            }
            Err(e) => routing.reasons.push(format!(
                "auto-approve rule `{}` could not be evaluated and was ignored: {e}",
                rule.name
            )),
        }
    }

    let mut resolver = Resolver {
        org,
        resource,
        subject,
        filer,
        certain: Vec::new(),
    };
    for stage in &workflow.stages {
        let (include, why) = match &stage.when {
            None => (true, String::new()),
            Some(condition) => match condition.evaluate(&facts) {
                Ok(true) => (true, format!("`{}` holds", condition.source())),
                Ok(false) => (false, format!("`{}` does not hold", condition.source())),
                Err(e) => (
                    true,
                    format!("kept because its condition could not be evaluated: {e}"),
                ),
            },
        };
        if !include {
            routing.stages.push(StagePlan {
                name: stage.name.clone(),
                approvers: Vec::new(),
                require: stage.require.to_string(),
                required: 0,
                skipped: true,
                why: format!("skipped: {why}"),
            });
            continue;
        }
        let plan = resolver.plan_stage(stage, &workflows.fallback_approvers, why);
        let short = plan.approvers.len() < plan.required;
        if short {
            routing.decision = Decision::Denied;
            routing.reasons.push(format!(
                "stage `{}` needs {} approver(s) but only {} may approve: {}",
                plan.name,
                plan.required,
                plan.approvers.len(),
                plan.why
            ));
        }
        routing.stages.push(plan);
        if short {
            return Ok(routing);
        }
    }
    if routing.stages.iter().all(|s| s.skipped) {
        routing.decision = Decision::AutoApproved;
        routing
            .reasons
            .push("no approval stage applies to this request".to_string());
    }
    Ok(routing)
}

/// Whether `level` suits `resource`: one of its levels when it has any, none when it has none.
/// The rule for a request, and for a birthright policy's grant.
pub(super) fn check_level<'r>(
    resource: &'r Resource,
    level: Option<&str>,
) -> Result<Option<&'r str>, RouteError> {
    let choices = || {
        resource
            .levels
            .iter()
            .map(|l| l.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (level, resource.levels.is_empty()) {
        (None, true) => Ok(None),
        (Some(_), true) => Err(RouteError::NoLevels(resource.id.0.clone())),
        (None, false) => Err(RouteError::LevelRequired {
            resource: resource.id.0.clone(),
            choices: choices(),
        }),
        (Some(l), false) => resource
            .level(l)
            .map(|found| Some(found.id.as_str()))
            .ok_or_else(|| RouteError::UnknownLevel {
                resource: resource.id.0.clone(),
                level: l.to_string(),
                choices: choices(),
            }),
    }
}

/// The duration that will be granted: what was asked, else the default, capped at the maximum.
fn effective_duration(
    resource: &Resource,
    requested: RequestedDuration,
    reasons: &mut Vec<String>,
) -> (Option<Duration>, bool) {
    let fmt = |d: Duration| crate::duration::format(d);
    let fallback = resource.default_duration.or(resource.max_duration);
    let wanted = match requested {
        RequestedDuration::For(d) => Some(d),
        RequestedDuration::Unspecified => match fallback {
            Some(d) => Some(d),
            None => {
                // The loader only allows this when permanent access is allowed.
                reasons.push("no duration asked and none set: permanent access".to_string());
                None
            }
        },
        RequestedDuration::Permanent if resource.permanent_allowed => None,
        RequestedDuration::Permanent => {
            let d = fallback.unwrap_or(Duration::from_secs(86_400));
            reasons.push(format!(
                "permanent access is not allowed for {}: granted for {} instead",
                resource.id,
                fmt(d)
            ));
            return (Some(d), true);
        }
    };
    match (wanted, resource.max_duration) {
        (Some(d), Some(max)) if d > max => {
            reasons.push(format!(
                "asked for {}, capped at the maximum of {}",
                fmt(d),
                fmt(max)
            ));
            (Some(max), true)
        }
        (wanted, _) => (wanted, false),
    }
}

fn facts_for(
    org: &OrgIndex,
    subject: PersonIdx,
    filer: PersonIdx,
    request: &RouteRequest,
    resource: &Resource,
    level: Option<&str>,
    duration: Option<Duration>,
) -> Facts {
    let person_facts = PersonFacts::of(org, subject);
    let resource_facts = ResourceFacts {
        id: resource.id.0.clone(),
        name: resource.name.clone(),
        tags: resource.tags.clone(),
        owner: match &resource.owner {
            Some(Owner::User(email)) => email.as_str().to_string(),
            Some(Owner::Group(group)) => group.clone(),
            None => String::new(),
        },
        level: level.unwrap_or_default().to_string(),
    };
    let request_facts = RequestFacts {
        duration,
        justification: request.justification.to_string(),
        on_behalf_of: request
            .on_behalf_of
            .map(|e| e.as_str().to_string())
            .unwrap_or_default(),
        filed_by: org.person(filer).email.as_str().to_string(),
    };
    Facts::new(&person_facts, &resource_facts, &request_facts, request.now)
}

/// Resolves selectors to people, leaving out whoever may not approve.
struct Resolver<'a> {
    org: &'a OrgIndex,
    resource: &'a Resource,
    subject: PersonIdx,
    filer: PersonIdx,
    /// People certain to approve an earlier stage (they were exactly its required approvers):
    /// two stages mean two people.
    certain: Vec<(PersonIdx, String)>,
}

impl Resolver<'_> {
    /// Why `person` may not approve, if they may not.
    fn excluded(&self, person: PersonIdx) -> Option<String> {
        let email = self.org.person(person).email.as_str();
        if person == self.subject && person == self.filer {
            Some(format!("{email} is the requester"))
        } else if person == self.subject {
            Some(format!("{email} is the person the access is for"))
        } else if person == self.filer {
            Some(format!("{email} filed the request"))
        } else if !self.org.person(person).active {
            Some(format!("{email} is inactive"))
        } else {
            self.certain
                .iter()
                .find(|(p, _)| *p == person)
                .map(|(_, stage)| format!("{email} already approves stage `{stage}`"))
        }
    }

    /// Walks up from `start` (inclusive) to the first person who may approve.
    fn first_eligible_from(&self, start: PersonIdx, notes: &mut Vec<String>) -> Option<PersonIdx> {
        let mut candidate = start;
        let mut chain = self.org.manager_chain(start);
        loop {
            match self.excluded(candidate) {
                None => return Some(candidate),
                Some(why) => {
                    let next = chain.next();
                    notes.push(match next {
                        Some(n) => format!("{why}, so next up: {}", self.org.person(n).email),
                        None => format!("{why}, and nobody is above them"),
                    });
                    candidate = next?;
                }
            }
        }
    }

    /// A person named as approver: themselves if they may approve; once they have left
    /// (inactive), their approvals are handed to the first of their managers who may; anyone
    /// else who may not (the requester) is left out.
    fn named(&self, person: PersonIdx, found: &mut BTreeSet<PersonIdx>, notes: &mut Vec<String>) {
        if self.org.person(person).active {
            match self.excluded(person) {
                None => {
                    found.insert(person);
                }
                Some(why) => notes.push(why),
            }
        } else if let Some(p) = self.first_eligible_from(person, notes) {
            found.insert(p);
        }
    }

    fn resolve(
        &self,
        selector: &Selector,
        found: &mut BTreeSet<PersonIdx>,
        notes: &mut Vec<String>,
    ) {
        let org = self.org;
        let mut add_all = |people: &[PersonIdx], notes: &mut Vec<String>| {
            for &p in people {
                match self.excluded(p) {
                    None => {
                        found.insert(p);
                    }
                    Some(why) => notes.push(why),
                }
            }
        };
        match selector {
            Selector::Manager { level } => {
                let mut chain = org.manager_chain(self.subject);
                match chain.nth(*level as usize - 1) {
                    Some(manager) => {
                        if let Some(p) = self.first_eligible_from(manager, notes) {
                            found.insert(p);
                        }
                    }
                    None => notes.push(format!(
                        "{} has no {}",
                        org.person(self.subject).email,
                        if *level == 1 {
                            "manager".to_string()
                        } else {
                            format!("manager {level} levels up")
                        }
                    )),
                }
            }
            Selector::DepartmentHead => match org.department_head(self.subject) {
                Some(head) => {
                    if let Some(p) = self.first_eligible_from(head, notes) {
                        found.insert(p);
                    }
                }
                None => notes.push(format!(
                    "{} has no department",
                    org.person(self.subject).email
                )),
            },
            Selector::ResourceOwner => match &self.resource.owner {
                Some(Owner::User(email)) => match org.by_email(email) {
                    Some(p) => self.named(p, found, notes),
                    None => notes.push(format!("owner {email} is not in the org chart")),
                },
                Some(Owner::Group(group)) => match org.group_members(group) {
                    Some(members) => add_all(members, notes),
                    None => notes.push(format!("owner group `{group}` is not in the org chart")),
                },
                None => notes.push(format!("{} has no owner", self.resource.id)),
            },
            Selector::User(email) => match org.by_email(email) {
                Some(p) => self.named(p, found, notes),
                None => notes.push(format!("{email} is not in the org chart")),
            },
            Selector::Group(group) => match org.group_members(group) {
                Some(members) => add_all(members, notes),
                None => notes.push(format!("group `{group}` is not in the org chart")),
            },
            Selector::GroupOwner(group) => match org.group_owners(group) {
                Some(owners) => add_all(owners, notes),
                None => notes.push(format!("group `{group}` is not in the org chart")),
            },
            Selector::Title(title) => {
                let people = org.with_title(title);
                if people.is_empty() {
                    notes.push(format!("nobody has the title \"{title}\""));
                }
                add_all(people, notes);
            }
        }
    }

    fn resolve_all(&self, selectors: &[Selector], notes: &mut Vec<String>) -> BTreeSet<PersonIdx> {
        let mut found = BTreeSet::new();
        for selector in selectors {
            self.resolve(selector, &mut found, notes);
        }
        found
    }

    fn plan_stage(
        &mut self,
        stage: &Stage,
        global_fallback: &[Selector],
        condition_why: String,
    ) -> StagePlan {
        let mut notes = Vec::new();
        let mut people = self.resolve_all(&stage.approvers, &mut notes);
        let named = stage
            .approvers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" + ");
        let mut why = vec![if condition_why.is_empty() {
            format!("approvers: {named}")
        } else {
            format!("included: {condition_why}; approvers: {named}")
        }];
        let required = |people: &BTreeSet<PersonIdx>| match stage.require {
            Require::Any => 1,
            Require::AtLeast(n) => n as usize,
            Require::All => people.len().max(1),
        };
        if people.len() < required(&people) && !stage.fallback.is_empty() {
            why.push(format!(
                "too few eligible approvers, so the stage fallback applies ({})",
                stage
                    .fallback
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" + ")
            ));
            people.extend(self.resolve_all(&stage.fallback, &mut notes));
        }
        if people.len() < required(&people) && !global_fallback.is_empty() {
            why.push(
                "too few eligible approvers, so the global fallback approvers apply".to_string(),
            );
            people.extend(self.resolve_all(global_fallback, &mut notes));
        }
        let required = required(&people);
        if !notes.is_empty() {
            notes.dedup();
            why.push(notes.join("; "));
        }
        let mut approvers: Vec<String> = people
            .iter()
            .map(|&p| self.org.person(p).email.as_str().to_string())
            .collect();
        approvers.sort();
        if people.len() == required {
            self.certain
                .extend(people.iter().map(|&p| (p, stage.name.clone())));
        }
        StagePlan {
            name: stage.name.clone(),
            approvers,
            require: stage.require.to_string(),
            required,
            skipped: false,
            why: why.join("; "),
        }
    }
}
