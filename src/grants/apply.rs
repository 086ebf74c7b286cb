//! Applies (or undoes) one step in its system. Every write converges: "already a member" and
//! "not a member" are success, so a step re-run after a crash changes nothing twice.

use std::collections::HashSet;
use std::time::Duration;

use super::plan::{Step, Via, describe};
use crate::atlassian::{AtlassianError, Change, Site};
use crate::idp::{Connector, GroupWriter, IdpError};
use crate::ids::TenantKey;
use crate::orgchart::AccountId;
use crate::state::AppState;
use crate::store::tenants;
use crate::tenant::Product;
use crate::workflow::GrantTarget;
use crate::workflow::products;

/// Why a step did not work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepFailure {
    /// Try again later (429, 5xx, timeouts), not before `after` when the vendor said.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// Will not work as configured; the message says what to fix.
    Permanent(String),
}

impl StepFailure {
    pub fn message(&self) -> &str {
        match self {
            Self::Retry { why, .. } => why,
            Self::Permanent(why) => why,
        }
    }
}

impl From<AtlassianError> for StepFailure {
    fn from(e: AtlassianError) -> Self {
        use crate::atlassian::errors::CallError;
        match e {
            AtlassianError::Call(CallError::RateLimited { retry_after }) => Self::Retry {
                after: retry_after,
                why: "rate limited".into(),
            },
            e if e.is_retryable() => Self::Retry {
                after: None,
                why: e.to_string(),
            },
            e => Self::Permanent(e.to_string()),
        }
    }
}

impl From<IdpError> for StepFailure {
    fn from(e: IdpError) -> Self {
        match e {
            IdpError::Throttled { retry_after } => Self::Retry {
                after: retry_after,
                why: "the identity provider throttled us".into(),
            },
            e if e.is_retryable() => Self::Retry {
                after: None,
                why: e.to_string(),
            },
            e => Self::Permanent(e.to_string()),
        }
    }
}

/// Who the step is for.
pub struct Subject<'a> {
    pub tenant: &'a TenantKey,
    pub account: Option<&'a AccountId>,
}

fn not_found(what: String) -> StepFailure {
    StepFailure::Permanent(format!("{what} does not exist (check the catalog)"))
}

/// Sets the step's target to `granted` for the subject.
pub async fn apply(
    state: &AppState,
    step: &Step,
    subject: &Subject<'_>,
    granted: bool,
) -> Result<Change, StepFailure> {
    if let Via::Idp { .. } = step.via {
        let GrantTarget::IdpGroup { group } = &step.applied else {
            return Err(StepFailure::Permanent(
                "an IdP step must name an IdP group".into(),
            ));
        };
        let person = step
            .idp_person
            .as_ref()
            .ok_or_else(|| StepFailure::Permanent("the person's IdP id is unknown".into()))?;
        let connector = Connector::new(&state.config.idp.source, &state.store);
        return Ok(connector.set_member(group, person, granted).await?);
    }
    let account = subject.account.ok_or_else(|| {
        StepFailure::Permanent("the person's Atlassian account is unknown".into())
    })?;
    let (tenant, site) = state
        .site(subject.tenant)
        .await
        .map_err(|e| StepFailure::Permanent(e.to_string()))?;
    let a = &state.atlassian;
    match &step.applied {
        GrantTarget::JiraGroup { group } => {
            let id = a
                .group_id(&site, group)
                .await?
                .ok_or_else(|| not_found(describe(&step.applied)))?;
            Ok(match step.via {
                Via::AdminApi => a.set_site_group_member(&id, account, granted).await?,
                _ => {
                    a.set_jira_group_member(&site, &id, account, granted)
                        .await?
                }
            })
        }
        GrantTarget::JiraProjectRole { project, role } => {
            let id = a
                .project_role_id(&site, project, role)
                .await?
                .ok_or_else(|| not_found(describe(&step.applied)))?;
            Ok(a.set_role_actor(&site, project, id, account, granted)
                .await?)
        }
        GrantTarget::ConfluenceSpace { space, role } => {
            let wiki = confluence_site(state, &tenant.host).await?;
            let space_id = a
                .space_id(&wiki, space)
                .await?
                .ok_or_else(|| not_found(format!("Confluence space {space}")))?;
            let role_id = a
                .space_role_id(&wiki, role)
                .await?
                .ok_or_else(|| not_found(format!("Confluence space role {role}")))?;
            Ok(
                a.set_space_role(&wiki, space_id, account, &role_id, granted)
                    .await?,
            )
        }
        GrantTarget::JsmOrganization { organization } => {
            let id = a
                .organization_id(&site, organization)
                .await?
                .ok_or_else(|| not_found(describe(&step.applied)))?;
            Ok(a.set_organization_user(&site, id, account, granted).await?)
        }
        GrantTarget::AtlassianProduct { product, role } => {
            let cloud = state.config.atlassian.cloud_id.as_deref().ok_or_else(|| {
                StepFailure::Permanent("TOLLGATE_ATLASSIAN_CLOUD_ID is not set".into())
            })?;
            let assignment =
                products::assignment(product, role, cloud).map_err(StepFailure::Permanent)?;
            Ok(a.set_product_role(account, &assignment, granted).await?)
        }
        GrantTarget::IdpGroup { .. } => Err(StepFailure::Permanent(
            "an IdP group step must go through the identity provider".into(),
        )),
    }
}

/// The Confluence install on the same site.
async fn confluence_site(state: &AppState, host: &str) -> Result<Site, StepFailure> {
    let tenant = tenants::linked(&state.store, host, Product::Confluence)
        .await
        .map_err(|e| StepFailure::Retry {
            after: None,
            why: e.to_string(),
        })?
        .filter(|t| t.state.is_active())
        .ok_or_else(|| {
            StepFailure::Permanent(format!("Tollgate is not installed in Confluence on {host}"))
        })?;
    Site::from_tenant(&tenant, &state.secret_key).map_err(|_| {
        StepFailure::Permanent("the Confluence install's secret does not unseal".into())
    })
}

/// The accounts holding an Atlassian target now (a project role, a Jira group, a space role),
/// or `None` when it cannot be read or is not read this way. The drift check reads each target
/// once per sweep and checks every grant of it against that.
pub async fn holders(
    state: &AppState,
    tenant: &TenantKey,
    step: &Step,
) -> Result<Option<HashSet<String>>, StepFailure> {
    let (tenant, site) = state
        .site(tenant)
        .await
        .map_err(|e| StepFailure::Permanent(e.to_string()))?;
    let a = &state.atlassian;
    let accounts = match (&step.applied, &step.via) {
        (GrantTarget::JiraProjectRole { project, role }, _) => {
            let Some(id) = a.project_role_id(&site, project, role).await? else {
                return Ok(None);
            };
            a.role_actors(&site, project, id).await?.users
        }
        (GrantTarget::JiraGroup { group }, via) => {
            let Some(id) = a.group_id(&site, group).await? else {
                return Ok(None);
            };
            match via {
                Via::AdminApi => a.site_group_members(&id).await?,
                _ => a.jira_group_members(&site, &id).await?,
            }
        }
        (GrantTarget::ConfluenceSpace { space, role }, _) => {
            let wiki = confluence_site(state, &tenant.host).await?;
            let (Some(space_id), Some(role_id)) = (
                a.space_id(&wiki, space).await?,
                a.space_role_id(&wiki, role).await?,
            ) else {
                return Ok(None);
            };
            a.space_role_holders(&wiki, space_id, &role_id).await?
        }
        _ => return Ok(None),
    };
    Ok(Some(accounts.into_iter().map(|a| a.0).collect()))
}
