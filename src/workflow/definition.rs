//! Validated workflow definitions: what the loader produces and routing reads.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::condition::Condition;
use crate::orgchart::Email;

pub use crate::ids::ResourceId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    User(Email),
    Group(String),
}

/// Where granting a resource takes effect. Executed by the grants layer; here only described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantTarget {
    IdpGroup { group: String },
    JiraGroup { group: String },
    JiraProjectRole { project: String, role: String },
    ConfluenceSpace { space: String, role: String },
    JsmOrganization { organization: String },
    AtlassianProduct { product: String, role: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    pub id: String,
    pub description: String,
    pub grants: Vec<GrantTarget>,
    pub workflow: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub id: ResourceId,
    pub name: String,
    pub description: String,
    pub owner: Option<Owner>,
    pub tags: Vec<String>,
    pub levels: Vec<Level>,
    pub max_duration: Option<Duration>,
    pub default_duration: Option<Duration>,
    pub permanent_allowed: bool,
    pub grants: Vec<GrantTarget>,
    pub on_failure: FailurePolicy,
    /// How long a step that keeps failing on a vendor's outage is retried before it fails.
    pub give_up_after: Duration,
    /// A requested grant of it is reviewed by the new manager when its holder moves (changes
    /// manager or department); declined or unanswered, it ends.
    pub review_on_move: bool,
}

/// How long a grant step is retried through a vendor's outage when the catalog does not say.
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What happens to the steps that worked when one step of a grant fails for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Undo them: the person gets everything or nothing.
    #[default]
    AllOrNothing,
    /// Keep them, and flag the grant as partial.
    KeepPartial,
}

impl Resource {
    pub fn level(&self, id: &str) -> Option<&Level> {
        self.levels.iter().find(|l| l.id == id)
    }

    /// Everything granting this resource at `level` touches: the resource's own grants, then
    /// the level's.
    pub fn grants_for(&self, level: Option<&str>) -> Vec<GrantTarget> {
        let mut grants = self.grants.clone();
        if let Some(level) = level.and_then(|l| self.level(l)) {
            grants.extend(level.grants.iter().cloned());
        }
        grants
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    resources: Vec<Resource>,
    by_id: HashMap<String, usize>,
}

impl Catalog {
    pub fn new(resources: Vec<Resource>) -> Self {
        let by_id = resources
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.0.clone(), i))
            .collect();
        Self { resources, by_id }
    }

    pub fn get(&self, id: &str) -> Option<&Resource> {
        self.by_id.get(id).map(|&i| &self.resources[i])
    }

    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    /// The resources whose holders' access is reviewed when they move.
    pub fn reviewed_on_move(&self) -> Vec<ResourceId> {
        self.resources
            .iter()
            .filter(|r| r.review_on_move)
            .map(|r| r.id.clone())
            .collect()
    }
}

/// Who may approve a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// The subject's manager; `level: 2` is the manager's manager (skip-level).
    Manager {
        level: u32,
    },
    DepartmentHead,
    ResourceOwner,
    User(Email),
    Group(String),
    Title(String),
    GroupOwner(String),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Manager { level: 1 } => f.write_str("manager"),
            Self::Manager { level } => write!(f, "manager (level {level})"),
            Self::DepartmentHead => f.write_str("department head"),
            Self::ResourceOwner => f.write_str("resource owner"),
            Self::User(email) => write!(f, "user {email}"),
            Self::Group(name) => write!(f, "members of group {name}"),
            Self::Title(title) => write!(f, "title \"{title}\""),
            Self::GroupOwner(name) => write!(f, "owners of group {name}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Require {
    Any,
    All,
    AtLeast(u32),
}

impl fmt::Display for Require {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::All => f.write_str("all"),
            Self::AtLeast(n) => write!(f, "{n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub condition: Condition,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    pub approvers: Vec<Selector>,
    pub require: Require,
    pub when: Option<Condition>,
    pub fallback: Vec<Selector>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    pub remind_after: Option<Duration>,
    pub escalate_after: Option<Duration>,
    pub decline_after: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliesTo {
    pub default: bool,
    pub resources: Vec<String>,
    pub tags: Vec<String>,
    pub levels: Vec<String>,
}

impl AppliesTo {
    /// Whether a non-default workflow covers `resource` at `level`: every criterion given must
    /// hold (a listed resource, any listed tag, a listed level).
    pub fn matches(&self, resource: &Resource, level: Option<&str>) -> bool {
        if self.default {
            return false;
        }
        let resource_ok = self.resources.is_empty() || self.resources.contains(&resource.id.0);
        let tags_ok = self.tags.is_empty() || self.tags.iter().any(|t| resource.tags.contains(t));
        let level_ok =
            self.levels.is_empty() || level.is_some_and(|l| self.levels.iter().any(|x| x == l));
        resource_ok && tags_ok && level_ok
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    pub id: String,
    pub description: String,
    pub applies_to: AppliesTo,
    pub auto_approve: Vec<Rule>,
    pub deny: Vec<Rule>,
    pub stages: Vec<Stage>,
    pub timeouts: Timeouts,
}

/// A Jira field, by id (`customfield_10050`, `description`) or by its display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldRef(pub String);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntakeFields {
    pub resource: FieldRef,
    pub level: Option<FieldRef>,
    pub duration: Option<FieldRef>,
    pub justification: Option<FieldRef>,
    pub on_behalf_of: Option<FieldRef>,
    /// The JSM Approvers field (a multi-user picker) to fill with the open stage's approvers.
    pub approvers: Option<FieldRef>,
}

/// How JSM tickets of one or more sites become access requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntakeMapping {
    /// Site hosts this mapping is for; empty for the default mapping.
    pub sites: Vec<String>,
    /// Request type names or ids that are access requests.
    pub request_types: Vec<String>,
    pub fields: IntakeFields,
    /// Transition (or status) names for an approved and a declined request.
    pub approved_transition: String,
    pub declined_transition: String,
    /// Resolutions that mean "take the access away now" (distinct from the normal Done).
    pub revoke_resolutions: Vec<String>,
}
