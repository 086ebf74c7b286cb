//! Names to ids. Workflows name things as admins see them (project `FIN`, role
//! `Administrators`, group `fin-project-admins`, space `ENG`, organization `Acme Finance`);
//! the write APIs take ids. Each lookup answers `None` when the name does not exist, so a grant
//! step can say exactly which name is wrong.

use reqwest::Method;
use serde_json::Value;

use super::api::{Atlassian, AtlassianError, Site, segment, with_query};
use super::credentials::Operation;
use super::errors::CallError;

impl Atlassian {
    /// The id of project role `role` in `project` (Connect, READ).
    pub async fn project_role_id(
        &self,
        site: &Site,
        project: &str,
        role: &str,
    ) -> Result<Option<u64>, AtlassianError> {
        let key = format!("{}|role|{project}|{role}", site.base_url);
        let found = self
            .cached(key, async {
                Ok(self
                    .find_project_role(site, project, role)
                    .await?
                    .map(|id| id.to_string()))
            })
            .await?;
        Ok(found.and_then(|id| id.parse().ok()))
    }

    async fn find_project_role(
        &self,
        site: &Site,
        project: &str,
        role: &str,
    ) -> Result<Option<u64>, AtlassianError> {
        let path = format!("/rest/api/3/project/{}/role", segment(project));
        let roles: Value = match self.on_site(site, Method::GET, &path, None).await {
            Ok(reply) => reply.json()?,
            Err(CallError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // `{name: URL}`, the URL ending in the role's id.
        Ok(roles.as_object().and_then(|map| {
            map.iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(role))
                .and_then(|(_, url)| url.as_str()?.rsplit('/').next()?.parse().ok())
        }))
    }

    /// The id of the site group named exactly `name` (Connect, READ: the group picker).
    pub async fn group_id(
        &self,
        site: &Site,
        name: &str,
    ) -> Result<Option<String>, AtlassianError> {
        let path = with_query(
            "/rest/api/3/groups/picker",
            &[("query", name), ("maxResults", "100")],
        );
        let found: Value = self.on_site(site, Method::GET, &path, None).await?.json()?;
        Ok(found["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["name"].as_str() == Some(name))
            .and_then(|g| g["groupId"].as_str())
            .map(str::to_string))
    }

    /// The id of the Confluence space with key `key` (Connect, READ).
    pub async fn space_id(&self, site: &Site, key: &str) -> Result<Option<u64>, AtlassianError> {
        let cache_key = format!("{}|space|{key}", site.base_url);
        let found = self
            .cached(cache_key, async {
                Ok(self.find_space(site, key).await?.map(|id| id.to_string()))
            })
            .await?;
        Ok(found.and_then(|id| id.parse().ok()))
    }

    async fn find_space(&self, site: &Site, key: &str) -> Result<Option<u64>, AtlassianError> {
        let path = with_query("/api/v2/spaces", &[("keys", key)]);
        let spaces = self.confluence_pages(site, &path).await?;
        Ok(spaces
            .iter()
            .find(|s| s["key"].as_str() == Some(key))
            .and_then(|s| match &s["id"] {
                Value::String(id) => id.parse().ok(),
                other => other.as_u64(),
            }))
    }

    /// The id of the space role called `name` (Connect, READ).
    pub async fn space_role_id(
        &self,
        site: &Site,
        name: &str,
    ) -> Result<Option<String>, AtlassianError> {
        let key = format!("{}|space_role|{name}", site.base_url);
        self.cached(key, self.find_space_role(site, name)).await
    }

    async fn find_space_role(
        &self,
        site: &Site,
        name: &str,
    ) -> Result<Option<String>, AtlassianError> {
        Ok(self
            .space_roles(site)
            .await?
            .into_iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
            .map(|r| r.id))
    }

    /// The id of the JSM customer organization called `name` (Connect, READ).
    pub async fn organization_id(
        &self,
        site: &Site,
        name: &str,
    ) -> Result<Option<u64>, AtlassianError> {
        let all = self
            .jsm_pages(site, "/rest/servicedeskapi/organization")
            .await?;
        Ok(all
            .iter()
            .find(|o| {
                o["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .and_then(super::jsm::organization_id_of))
    }

    /// Whether the Atlassian SCIM directory provisions a group called `name`: then the IdP
    /// owns its membership and it must be granted through the IdP's group.
    pub async fn scim_provisions_group(&self, name: &str) -> Result<bool, AtlassianError> {
        let (directory, credential) = self.credentials().scim(Operation::ScimGroupLookup)?;
        let filter = format!("displayName eq \"{}\"", name.replace('"', ""));
        let path = with_query(
            &format!("/scim/directory/{}/Groups", segment(directory)),
            &[("filter", &filter)],
        );
        let page: Value = self
            .on_api(credential, Method::GET, &path, None)
            .await?
            .json()?;
        Ok(page["Resources"].as_array().into_iter().flatten().any(|g| {
            g["displayName"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        }))
    }
}
