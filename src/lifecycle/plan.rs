//! What one step of a grant does: the target the catalog asked for, the one applied, and the
//! system it goes through. Stored compactly with the request (a million grants are a million
//! plans); how a plan is made is `grants::plan`.

use serde::{Deserialize, Serialize};

use crate::ids::{PersonId, TargetKey};
use crate::workflow::GrantTarget;

/// The system a step changes, and how Tollgate authenticates to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The identity provider's group, through its connector (`ldap`, `scim`).
    Idp { source: String },
    /// The tenant's Connect install (project roles, space roles, JSM organizations).
    Connect,
    /// The organization Admin API key (site groups, product access).
    AdminApi,
    /// A site-admin service account's API token (Jira groups without the Admin API).
    SiteAdmin,
}

impl Via {
    pub fn describe(&self) -> String {
        match self {
            Self::Idp { source } => format!("the identity provider ({source})"),
            Self::Connect => "the Connect app".into(),
            Self::AdminApi => "the organization Admin API".into(),
            Self::SiteAdmin => "the site-admin account".into(),
        }
    }
}

/// One step of a grant: what the catalog asked for, what is applied, and through what.
/// Stored compactly (a million grants are a million plans): `applied` only when it differs
/// from `asked`, absent fields left out; [`Step::full`] spells it all out for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredStep", into = "StoredStep")]
pub struct Step {
    /// As the catalog wrote it.
    pub asked: GrantTarget,
    /// What is changed: differs from `asked` when a synced Atlassian group is granted through
    /// the IdP group that feeds it.
    pub applied: GrantTarget,
    pub via: Via,
    /// The person's id in the IdP, for IdP steps (kept so a leaver can still be removed after
    /// they vanished from the org chart).
    pub idp_person: Option<PersonId>,
    /// Why the step is what it is, when that is not obvious (in the plan and the ticket).
    pub note: Option<String>,
}

/// A step as stored: rows written before compaction carry every field and read the same.
#[derive(Serialize, Deserialize)]
struct StoredStep {
    asked: GrantTarget,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    applied: Option<GrantTarget>,
    via: Via,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idp_person: Option<PersonId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

impl From<StoredStep> for Step {
    fn from(stored: StoredStep) -> Self {
        Self {
            applied: stored.applied.unwrap_or_else(|| stored.asked.clone()),
            asked: stored.asked,
            via: stored.via,
            idp_person: stored.idp_person,
            note: stored.note,
        }
    }
}

impl From<Step> for StoredStep {
    fn from(step: Step) -> Self {
        Self {
            applied: (step.applied != step.asked).then_some(step.applied),
            asked: step.asked,
            via: step.via,
            idp_person: step.idp_person,
            note: step.note,
        }
    }
}

impl Step {
    /// A step applying `target` as asked, through `via`.
    pub fn direct(target: GrantTarget, via: Via) -> Self {
        Self {
            asked: target.clone(),
            applied: target,
            via,
            idp_person: None,
            note: None,
        }
    }

    /// Every field, for people reading it (evidence bundles).
    pub fn full(&self) -> serde_json::Value {
        serde_json::json!({
            "asked": self.asked,
            "applied": self.applied,
            "via": self.via,
            "idp_person": self.idp_person,
            "note": self.note,
        })
    }

    /// `kind:name`, the same for two grants of the same thing (to find overlapping grants).
    pub fn target_key(&self) -> TargetKey {
        target_key(&self.applied)
    }
}

pub fn target_key(target: &GrantTarget) -> TargetKey {
    TargetKey(match target {
        GrantTarget::IdpGroup { group } => format!("idp_group:{group}"),
        GrantTarget::JiraGroup { group } => format!("jira_group:{group}"),
        GrantTarget::JiraProjectRole { project, role } => {
            format!("jira_project_role:{project}:{role}")
        }
        GrantTarget::ConfluenceSpace { space, role } => format!("confluence_space:{space}:{role}"),
        GrantTarget::JsmOrganization { organization } => format!("jsm_organization:{organization}"),
        // Keyed by what the Admin API is given, not how the catalog spelled it: the admin
        // role of Jira Software and of JSM is one grant on one resource.
        GrantTarget::AtlassianProduct { product, role } => format!(
            "atlassian_product:{}:{role}",
            crate::workflow::products::resource_product(product, role)
        ),
    })
}
