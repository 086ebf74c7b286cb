//! Which credential each kind of call needs, and whether the deployment has it.
//!
//! Connect tokens cannot reach everything (API-NOTES §1.7): site group membership, product
//! access and account listing need an organization Admin API key, a site-admin API token or the
//! SCIM directory key. Each operation declares its [`CredentialKind`]; [`Credentials::check`]
//! turns a missing one into an error naming the settings to add, so a grant plan fails at plan
//! time and not as a 403 halfway through provisioning.

use std::fmt;

use super::client::Credential;
use crate::config::{AtlassianConfig, Secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// The tenant's Connect shared secret (always present for an installed tenant).
    Connect,
    /// The organization Admin API key with the organization id.
    AdminApi,
    /// A site-admin service account's email and API token.
    SiteAdmin,
    /// The Atlassian SCIM directory's id and API key.
    ScimDirectory,
}

impl CredentialKind {
    /// The settings that provide this credential.
    pub fn settings(self) -> &'static [&'static str] {
        match self {
            Self::Connect => &[],
            Self::AdminApi => &[
                "TOLLGATE_ATLASSIAN_ORG_ID",
                "TOLLGATE_ATLASSIAN_ADMIN_API_KEY",
            ],
            Self::SiteAdmin => &[
                "TOLLGATE_ATLASSIAN_SITE_ADMIN_EMAIL",
                "TOLLGATE_ATLASSIAN_SITE_ADMIN_TOKEN",
            ],
            Self::ScimDirectory => &[
                "TOLLGATE_ATLASSIAN_SCIM_DIRECTORY_ID",
                "TOLLGATE_ATLASSIAN_SCIM_API_KEY",
            ],
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "the Connect install",
            Self::AdminApi => "the organization Admin API key",
            Self::SiteAdmin => "a site-admin API token",
            Self::ScimDirectory => "the Atlassian SCIM directory key",
        })
    }
}

/// Every operation the outbound layer offers, with the credential it is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    ReadIssue,
    IssueComment,
    TransitionIssue,
    ReadUser,
    ProjectRoleActors,
    JiraGroupMembership,
    ReadRequest,
    RequestComment,
    RequestParticipants,
    ReadApprovals,
    OrganizationMembership,
    SpaceRoles,
    OrganizationUsers,
    SiteGroupMembership,
    ProductAccess,
    AccountLifecycle,
    AccountActivity,
    ScimUserLookup,
    ScimGroupLookup,
}

impl Operation {
    pub fn credential(self) -> CredentialKind {
        match self {
            Self::JiraGroupMembership => CredentialKind::SiteAdmin,
            Self::OrganizationUsers
            | Self::SiteGroupMembership
            | Self::ProductAccess
            | Self::AccountLifecycle
            | Self::AccountActivity => CredentialKind::AdminApi,
            Self::ScimUserLookup | Self::ScimGroupLookup => CredentialKind::ScimDirectory,
            _ => CredentialKind::Connect,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ReadIssue => "reading an issue",
            Self::IssueComment => "commenting on an issue",
            Self::TransitionIssue => "transitioning an issue",
            Self::ReadUser => "reading an Atlassian account",
            Self::ProjectRoleActors => "changing a project role",
            Self::JiraGroupMembership => "changing a Jira group's members",
            Self::ReadRequest => "reading a JSM request",
            Self::RequestComment => "commenting on a JSM request",
            Self::RequestParticipants => "adding request participants",
            Self::ReadApprovals => "reading JSM approvals",
            Self::OrganizationMembership => "changing a JSM organization's members",
            Self::SpaceRoles => "changing a Confluence space role",
            Self::OrganizationUsers => "listing the organization's accounts",
            Self::SiteGroupMembership => "changing a site group's members",
            Self::ProductAccess => "changing product access",
            Self::AccountLifecycle => "disabling an Atlassian account",
            Self::AccountActivity => "reading when an account last used each product",
            Self::ScimUserLookup => "looking up an account in the SCIM directory",
            Self::ScimGroupLookup => "looking up a group in the SCIM directory",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} needs {}: set {}", operation.credential(), operation.credential().settings().join(" and "))]
pub struct MissingCredential {
    pub operation: Operation,
}

/// The organization-level credentials of this deployment.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub api_url: String,
    admin: Option<(String, Secret)>,
    site_admin: Option<(String, Secret)>,
    scim: Option<(String, Secret)>,
}

impl Credentials {
    pub fn from_config(config: &AtlassianConfig) -> Self {
        let pair = |id: &Option<String>, key: &Option<Secret>| match (id, key) {
            (Some(id), Some(key)) => Some((id.clone(), key.clone())),
            _ => None,
        };
        Self {
            api_url: config.api_url.trim_end_matches('/').to_string(),
            admin: pair(&config.org_id, &config.admin_api_key),
            site_admin: pair(&config.site_admin_email, &config.site_admin_token),
            scim: pair(&config.scim_directory_id, &config.scim_api_key),
        }
    }

    /// Only Connect: what a deployment without extra credentials has.
    pub fn connect_only(api_url: &str) -> Self {
        Self {
            api_url: api_url.trim_end_matches('/').to_string(),
            admin: None,
            site_admin: None,
            scim: None,
        }
    }

    pub fn has(&self, kind: CredentialKind) -> bool {
        match kind {
            CredentialKind::Connect => true,
            CredentialKind::AdminApi => self.admin.is_some(),
            CredentialKind::SiteAdmin => self.site_admin.is_some(),
            CredentialKind::ScimDirectory => self.scim.is_some(),
        }
    }

    /// `Ok` when `operation` can run here; the error names the settings to add.
    pub fn check(&self, operation: Operation) -> Result<(), MissingCredential> {
        if self.has(operation.credential()) {
            Ok(())
        } else {
            Err(MissingCredential { operation })
        }
    }

    /// The organization id and bearer credential of the Admin API.
    pub fn admin_api(&self, operation: Operation) -> Result<(&str, Credential), MissingCredential> {
        self.admin
            .as_ref()
            .map(|(org, key)| (org.as_str(), Credential::Bearer(key.expose().to_string())))
            .ok_or(MissingCredential { operation })
    }

    /// The SCIM directory id and its bearer credential.
    pub fn scim(&self, operation: Operation) -> Result<(&str, Credential), MissingCredential> {
        self.scim
            .as_ref()
            .map(|(dir, key)| (dir.as_str(), Credential::Bearer(key.expose().to_string())))
            .ok_or(MissingCredential { operation })
    }

    pub fn site_admin(&self, operation: Operation) -> Result<Credential, MissingCredential> {
        self.site_admin
            .as_ref()
            .map(|(email, token)| Credential::Basic {
                email: email.clone(),
                token: token.expose().to_string(),
            })
            .ok_or(MissingCredential { operation })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_credential_names_its_settings() {
        let credentials = Credentials::connect_only("https://api.atlassian.com/");
        assert_eq!(credentials.api_url, "https://api.atlassian.com");
        assert!(credentials.check(Operation::ProjectRoleActors).is_ok());
        let error = credentials
            .check(Operation::SiteGroupMembership)
            .expect_err("no admin key");
        assert_eq!(
            error.to_string(),
            "changing a site group's members needs the organization Admin API key: set TOLLGATE_ATLASSIAN_ORG_ID and TOLLGATE_ATLASSIAN_ADMIN_API_KEY"
        );
        // What a Jira group grant needs without the Admin API.
        assert!(
            credentials
                .check(Operation::JiraGroupMembership)
                .expect_err("no site admin")
                .to_string()
                .contains("TOLLGATE_ATLASSIAN_SITE_ADMIN_TOKEN")
        );
    }

    #[test]
    fn a_half_configured_credential_is_missing() {
        let config = AtlassianConfig {
            api_url: "https://api.atlassian.com".into(),
            org_id: Some("org-1".into()),
            admin_api_key: None,
            scim_directory_id: Some("dir".into()),
            scim_api_key: Some(Secret::new("k")),
            site_admin_email: None,
            site_admin_token: None,
            cloud_id: None,
            account_index_interval: std::time::Duration::from_secs(21_600),
            synced_groups: Vec::new(),
        };
        let credentials = Credentials::from_config(&config);
        assert!(!credentials.has(CredentialKind::AdminApi));
        assert!(credentials.has(CredentialKind::ScimDirectory));
        assert!(format!("{credentials:?}").contains("Secret(…)"));
    }
}
