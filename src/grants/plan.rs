//! From a resource's grant targets to the steps that apply them: which system each step goes
//! through and with which credential. Pure: what needs I/O (whether a group is SCIM-synced,
//! whether Confluence is installed, who the person is in the IdP) is looked up before and
//! passed in, so every rule here is a unit test.

use std::collections::HashSet;

use crate::atlassian::{CredentialKind, Credentials, Operation};
use crate::ids::PersonId;
use crate::workflow::GrantTarget;

pub use crate::lifecycle::plan::{Step, Via, target_key};

/// Whether the target lives in one site (a project or space role, a JSM organization), rather
/// than in the organization that every site of the deployment shares (IdP groups, the
/// organization's groups and product access).
pub fn per_site(target: &GrantTarget) -> bool {
    matches!(
        target,
        GrantTarget::JiraProjectRole { .. }
            | GrantTarget::ConfluenceSpace { .. }
            | GrantTarget::JsmOrganization { .. }
    )
}

/// A target in words, for the ticket.
pub fn describe(target: &GrantTarget) -> String {
    match target {
        GrantTarget::IdpGroup { group } => format!("IdP group {group}"),
        GrantTarget::JiraGroup { group } => format!("Jira group {group}"),
        GrantTarget::JiraProjectRole { project, role } => {
            format!("role {role} in Jira project {project}")
        }
        GrantTarget::ConfluenceSpace { space, role } => {
            format!("role {role} in Confluence space {space}")
        }
        GrantTarget::JsmOrganization { organization } => {
            format!("JSM organization {organization}")
        }
        GrantTarget::AtlassianProduct { product, role } => format!("{product} ({role})"),
    }
}

/// What the plan needs to know about this deployment.
#[derive(Debug)]
pub struct Context<'a> {
    pub credentials: &'a Credentials,
    /// The IdP connector's name when it can change groups, else why it cannot.
    pub idp: Result<String, String>,
    /// The person's id in the IdP, when they are in the org chart.
    pub idp_person: Option<PersonId>,
    /// Atlassian groups fed from the IdP by SCIM (configured or detected), lowercased.
    pub synced_groups: &'a HashSet<String>,
    pub confluence_installed: bool,
    pub cloud_id: Option<&'a str>,
}

/// The steps for `targets`, or every reason they cannot all be applied (nothing is applied
/// then: a plan that would fail halfway is refused whole).
pub fn plan(targets: &[GrantTarget], ctx: &Context) -> Result<Vec<Step>, Vec<String>> {
    let mut steps = Vec::new();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for target in targets {
        match step(target, ctx) {
            Ok(step) => {
                // A level repeating its resource's grant is one step.
                if seen.insert(step.target_key()) {
                    steps.push(step);
                }
            }
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(steps)
    } else {
        Err(problems)
    }
}

fn needs(ctx: &Context, operation: Operation, what: &str) -> Result<(), String> {
    ctx.credentials
        .check(operation)
        .map_err(|missing| format!("{what}: {missing}"))
}

fn idp_step(
    group: &str,
    asked: &GrantTarget,
    ctx: &Context,
    note: Option<String>,
) -> Result<Step, String> {
    let what = describe(asked);
    let source = ctx.idp.clone().map_err(|why| format!("{what}: {why}"))?;
    let person = ctx
        .idp_person
        .clone()
        .ok_or_else(|| format!("{what}: the person is not in the org chart"))?;
    Ok(Step {
        asked: asked.clone(),
        applied: GrantTarget::IdpGroup {
            group: group.to_string(),
        },
        via: Via::Idp { source },
        idp_person: Some(person),
        note,
    })
}

fn step(target: &GrantTarget, ctx: &Context) -> Result<Step, String> {
    let simple = |via: Via| Step::direct(target.clone(), via);
    let what = describe(target);
    match target {
        GrantTarget::IdpGroup { group } => idp_step(group, target, ctx, None),
        GrantTarget::JiraGroup { group } if ctx.synced_groups.contains(&group.to_lowercase()) => {
            // Writing to a SCIM-synced group from the Atlassian side is undone (or refused) by
            // the next sync: the IdP owns its members.
            let note = format!(
                "{group} is synced from the identity provider by SCIM, so it is granted through the IdP group {group}"
            );
            idp_step(group, target, ctx, Some(note))
        }
        GrantTarget::JiraGroup { .. } => {
            if ctx.credentials.has(CredentialKind::AdminApi) {
                Ok(simple(Via::AdminApi))
            } else if ctx.credentials.has(CredentialKind::SiteAdmin) {
                Ok(simple(Via::SiteAdmin))
            } else {
                Err(format!(
                    "{what}: Jira group membership is closed to Connect apps; set {} (Admin API) or {} (site-admin account)",
                    CredentialKind::AdminApi.settings().join(" and "),
                    CredentialKind::SiteAdmin.settings().join(" and ")
                ))
            }
        }
        GrantTarget::JiraProjectRole { .. } => {
            needs(ctx, Operation::ProjectRoleActors, &what)?;
            Ok(simple(Via::Connect))
        }
        GrantTarget::ConfluenceSpace { .. } => {
            if !ctx.confluence_installed {
                return Err(format!(
                    "{what}: Tollgate is not installed in Confluence on this site"
                ));
            }
            needs(ctx, Operation::SpaceRoles, &what)?;
            Ok(simple(Via::Connect))
        }
        GrantTarget::JsmOrganization { .. } => {
            needs(ctx, Operation::OrganizationMembership, &what)?;
            Ok(simple(Via::Connect))
        }
        GrantTarget::AtlassianProduct { .. } => {
            needs(ctx, Operation::ProductAccess, &what)?;
            if ctx.cloud_id.is_none() {
                return Err(format!(
                    "{what}: product access names the site by its cloud id; set TOLLGATE_ATLASSIAN_CLOUD_ID"
                ));
            }
            Ok(simple(Via::AdminApi))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AtlassianConfig, Secret};

    fn credentials(admin: bool) -> Credentials {
        Credentials::from_config(&AtlassianConfig {
            api_url: "https://api.atlassian.com".into(),
            org_id: admin.then(|| "org".into()),
            admin_api_key: admin.then(|| Secret::new("k")),
            scim_directory_id: None,
            scim_api_key: None,
            site_admin_email: None,
            site_admin_token: None,
            cloud_id: None,
            account_index_interval: std::time::Duration::from_secs(21_600),
            synced_groups: Vec::new(),
        })
    }

    #[test]
    fn steps_are_stored_compactly_and_old_rows_still_read() {
        let group = GrantTarget::IdpGroup {
            group: "fin-tools".into(),
        };
        let step = Step {
            asked: group.clone(),
            applied: group.clone(),
            via: Via::Idp {
                source: "ldap".into(),
            },
            idp_person: None,
            note: None,
        };
        let stored = serde_json::to_string(&step).expect("json");
        assert_eq!(
            stored,
            r#"{"asked":{"idp_group":{"group":"fin-tools"}},"via":{"idp":{"source":"ldap"}}}"#
        );
        assert_eq!(serde_json::from_str::<Step>(&stored).expect("reads"), step);
        // As rows were written before: every field, nulls included.
        let old = r#"{"asked":{"idp_group":{"group":"fin-tools"}},"applied":{"idp_group":{"group":"fin-tools"}},"via":{"idp":{"source":"ldap"}},"idp_person":null,"note":null}"#;
        assert_eq!(serde_json::from_str::<Step>(old).expect("reads"), step);
        // A synced Jira group granted through the IdP keeps both.
        let synced = Step {
            asked: GrantTarget::JiraGroup {
                group: "fin-tools".into(),
            },
            ..step.clone()
        };
        let stored = serde_json::to_string(&synced).expect("json");
        assert!(stored.contains("applied"), "{stored}");
        assert_eq!(
            serde_json::from_str::<Step>(&stored).expect("reads"),
            synced
        );
        assert_eq!(
            synced.full()["applied"],
            serde_json::json!({"idp_group": {"group": "fin-tools"}})
        );
    }

    fn ctx<'a>(credentials: &'a Credentials, synced: &'a HashSet<String>) -> Context<'a> {
        Context {
            credentials,
            idp: Ok("ldap".into()),
            idp_person: Some(PersonId("uid=erin".into())),
            synced_groups: synced,
            confluence_installed: true,
            cloud_id: None,
        }
    }

    fn group(name: &str) -> GrantTarget {
        GrantTarget::JiraGroup { group: name.into() }
    }

    #[test]
    fn each_target_goes_through_the_system_that_can_change_it() {
        let creds = credentials(true);
        let synced = HashSet::new();
        let steps = plan(
            &[
                GrantTarget::IdpGroup {
                    group: "NetSuite Users".into(),
                },
                group("fin-admins"),
                GrantTarget::JiraProjectRole {
                    project: "FIN".into(),
                    role: "Administrators".into(),
                },
                GrantTarget::ConfluenceSpace {
                    space: "ENG".into(),
                    role: "Collaborator".into(),
                },
            ],
            &ctx(&creds, &synced),
        )
        .expect("plan");
        let vias: Vec<&Via> = steps.iter().map(|s| &s.via).collect();
        assert_eq!(
            vias,
            [
                &Via::Idp {
                    source: "ldap".into()
                },
                &Via::AdminApi,
                &Via::Connect,
                &Via::Connect
            ]
        );
        assert_eq!(steps[0].idp_person.as_deref(), Some("uid=erin"));
    }

    #[test]
    fn a_synced_group_is_granted_through_the_idp_and_the_plan_says_so() {
        let creds = credentials(false);
        let synced: HashSet<String> = ["fin-admins".to_string()].into();
        let steps = plan(&[group("FIN-Admins")], &ctx(&creds, &synced)).expect("plan");
        assert_eq!(
            steps[0].applied,
            GrantTarget::IdpGroup {
                group: "FIN-Admins".into()
            }
        );
        assert!(steps[0].note.as_deref().is_some_and(|n| n.contains("SCIM")));
    }

    #[test]
    fn every_missing_credential_is_named_before_anything_is_applied() {
        let creds = credentials(false);
        let synced = HashSet::new();
        let mut c = ctx(&creds, &synced);
        c.idp = Err("the org chart comes from org.yaml, which Tollgate cannot change".into());
        c.confluence_installed = false;
        let problems = plan(
            &[
                GrantTarget::IdpGroup { group: "G".into() },
                group("fin-admins"),
                GrantTarget::ConfluenceSpace {
                    space: "ENG".into(),
                    role: "Viewer".into(),
                },
                GrantTarget::AtlassianProduct {
                    product: "confluence".into(),
                    role: "user".into(),
                },
            ],
            &c,
        )
        .expect_err("refused");
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("org.yaml"));
        assert!(problems[1].contains("TOLLGATE_ATLASSIAN_SITE_ADMIN_TOKEN"));
        assert!(problems[2].contains("not installed in Confluence"));
        assert!(problems[3].contains("TOLLGATE_ATLASSIAN_ADMIN_API_KEY"));
    }

    #[test]
    fn the_same_target_twice_is_one_step() {
        let creds = credentials(true);
        let synced = HashSet::new();
        let steps = plan(&[group("a"), group("a")], &ctx(&creds, &synced)).expect("plan");
        assert_eq!(steps.len(), 1);
    }

    #[test]
    fn product_access_is_keyed_by_what_the_admin_api_is_given() {
        let product = |product: &str, role: &str| {
            target_key(&GrantTarget::AtlassianProduct {
                product: product.into(),
                role: role.into(),
            })
        };
        // Both name the admin role on the Jira platform's resource: one access, one holding.
        assert_eq!(
            product("jira-software", "admin"),
            product("jira-servicedesk", "admin")
        );
        assert_eq!(
            product("jira-software", "admin"),
            "atlassian_product:jira:admin"
        );
        assert_ne!(
            product("jira-software", "user"),
            product("jira-servicedesk", "user")
        );
    }
}
