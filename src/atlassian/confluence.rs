//! Confluence v2 space roles (Connect, SPACE_ADMIN): the only space-permission write a Connect
//! app may make (v1 space permissions are inaccessible to it).

use reqwest::Method;
use serde_json::{Value, json};

use super::api::{Atlassian, AtlassianError, Change, Site, converge, with_query};
use crate::ids::AccountId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceRole {
    pub id: String,
    pub name: String,
}

fn assignments_path(space_id: u64) -> String {
    format!("/api/v2/spaces/{space_id}/role-assignments")
}

impl Atlassian {
    pub async fn space_roles(&self, site: &Site) -> Result<Vec<SpaceRole>, AtlassianError> {
        let values = self.confluence_pages(site, "/api/v2/space-roles").await?;
        Ok(values
            .iter()
            .filter_map(|r| {
                Some(SpaceRole {
                    id: r.get("id")?.as_str()?.to_string(),
                    name: r
                        .get("displayName")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                })
            })
            .collect())
    }

    /// The role ids the account holds directly in the space.
    pub async fn space_roles_of(
        &self,
        site: &Site,
        space_id: u64,
        account: &AccountId,
    ) -> Result<Vec<String>, AtlassianError> {
        let path = with_query(
            &assignments_path(space_id),
            &[("principal-id", &account.0), ("principal-type", "USER")],
        );
        let values = self.confluence_pages(site, &path).await?;
        Ok(values
            .iter()
            .filter(|a| {
                a.pointer("/principal/principalId").and_then(Value::as_str) == Some(&account.0)
            })
            .filter_map(|a| a.get("roleId")?.as_str().map(str::to_string))
            .collect())
    }

    /// The users holding `role_id` directly in the space (the sweep's drift check reads each
    /// granted space role once, not once per grant).
    pub async fn space_role_holders(
        &self,
        site: &Site,
        space_id: u64,
        role_id: &str,
    ) -> Result<Vec<AccountId>, AtlassianError> {
        let path = with_query(
            &assignments_path(space_id),
            &[("role-id", role_id), ("principal-type", "USER")],
        );
        let values = self.confluence_pages(site, &path).await?;
        Ok(values
            .iter()
            .filter(|a| a.get("roleId").and_then(Value::as_str) == Some(role_id))
            .filter_map(|a| a.pointer("/principal/principalId")?.as_str())
            .map(|id| AccountId(id.to_string()))
            .collect())
    }

    /// Gives the account `role_id` in the space, or takes it away (an assignment without a
    /// role removes the principal's role).
    pub async fn set_space_role(
        &self,
        site: &Site,
        space_id: u64,
        account: &AccountId,
        role_id: &str,
        assigned: bool,
    ) -> Result<Change, AtlassianError> {
        let has = || async {
            Ok(self
                .space_roles_of(site, space_id, account)
                .await?
                .iter()
                .any(|r| r == role_id))
        };
        converge(assigned, has, || async {
            let mut body =
                json!({"principal": {"principalType": "USER", "principalId": account.0}});
            if assigned {
                body["roleId"] = json!(role_id);
            }
            self.on_site(site, Method::POST, &assignments_path(space_id), Some(body))
                .await?;
            Ok(())
        })
        .await
    }
}
