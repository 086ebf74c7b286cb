//! Jira platform v3 operations: issues, comments (ADF), transitions by name, users, project
//! role actors, and site group membership through a site-admin token (Connect may not).

use reqwest::Method;
use serde_json::{Value, json};

use super::adf;
use super::api::{Atlassian, AtlassianError, Change, Site, converge, segment, with_query};
use super::credentials::Operation;
use super::errors::CallError;
use crate::ids::{AccountId, Email, TicketKey};

/// An issue as read back through REST (webhook payloads may be incomplete).
#[derive(Debug, Clone)]
pub struct Issue {
    pub id: String,
    pub key: TicketKey,
    pub reporter: Option<AccountId>,
    pub status: Option<String>,
    pub project_key: Option<String>,
    /// Every field, custom ones included, as Jira returned them.
    pub fields: Value,
}

/// An Atlassian account as Jira shows it; the email only where the person's privacy settings
/// (or the Admin API) let us see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtlassianUser {
    pub account_id: AccountId,
    pub email: Option<Email>,
    pub display_name: String,
    pub active: bool,
}

impl AtlassianUser {
    fn from_jira(value: &Value) -> Option<Self> {
        Some(Self {
            account_id: AccountId(value.get("accountId")?.as_str()?.to_string()),
            email: value
                .get("emailAddress")
                .and_then(Value::as_str)
                .and_then(|e| Email::parse(e).ok()),
            display_name: value
                .get("displayName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            active: value.get("active").and_then(Value::as_bool).unwrap_or(true),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub id: String,
    pub name: String,
    pub to_status: String,
}

/// Who holds a project role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleActors {
    pub users: Vec<AccountId>,
    pub group_ids: Vec<String>,
}

/// A webhook Jira gave up delivering (kept about 72 hours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedWebhook {
    /// The delivery id it was sent with (`X-Atlassian-Webhook-Identifier`).
    pub id: String,
    pub body: Option<String>,
    pub url: String,
    /// Epoch milliseconds of its last failed retry.
    pub failure_time: i64,
}

/// Jira's global permission for its administrators.
const ADMINISTER: &str = "ADMINISTER";

fn issue_path(key: &TicketKey) -> String {
    format!("/rest/api/3/issue/{}", segment(key))
}

fn role_path(project: &str, role_id: u64) -> String {
    format!("/rest/api/3/project/{}/role/{role_id}", segment(project))
}

impl Atlassian {
    pub async fn issue(&self, site: &Site, key: &TicketKey) -> Result<Issue, AtlassianError> {
        let reply = self
            .on_site(site, Method::GET, &issue_path(key), None)
            .await?;
        let value: Value = reply.json()?;
        let fields = value.get("fields").cloned().unwrap_or(Value::Null);
        let text = |pointer: &str| {
            fields
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Ok(Issue {
            id: value["id"].as_str().unwrap_or_default().to_string(),
            // Jira answers with the key it has now (a moved issue's is new).
            key: value["key"]
                .as_str()
                .and_then(|k| TicketKey::parse(k).ok())
                .unwrap_or_else(|| key.clone()),
            reporter: text("/reporter/accountId").map(AccountId),
            status: text("/status/name"),
            project_key: text("/project/key"),
            fields,
        })
    }

    /// A comment on any Jira issue, as ADF; `internal` hides it from JSM customers. `notice`
    /// is kept on the comment (a comment property) so the comment can be found again by it.
    pub async fn comment(
        &self,
        site: &Site,
        key: &TicketKey,
        text: &str,
        internal: bool,
        notice: Option<&str>,
    ) -> Result<String, AtlassianError> {
        let mut body = json!({ "body": adf::render(text) });
        let mut properties = Vec::new();
        if internal {
            properties.push(json!({"key": "sd.public.comment", "value": {"internal": true}}));
        }
        if let Some(notice) = notice {
            properties
                .push(json!({"key": super::comments::NOTICE_PROPERTY, "value": {"key": notice}}));
        }
        if !properties.is_empty() {
            body["properties"] = json!(properties);
        }
        let path = format!("{}/comment", issue_path(key));
        let reply = self.on_site(site, Method::POST, &path, Some(body)).await?;
        Ok(reply.json::<Value>()?["id"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// Opens an issue (`summary`, `description` in the house's light markup); returns its key.
    pub async fn create_issue(
        &self,
        site: &Site,
        project: &str,
        issue_type: &str,
        summary: &str,
        description: &str,
    ) -> Result<String, AtlassianError> {
        let body = json!({"fields": {
            "project": {"key": project},
            "issuetype": {"name": issue_type},
            "summary": summary,
            "description": adf::render(description),
            "labels": ["tollgate-alert"],
        }});
        let reply = self
            .on_site(site, Method::POST, "/rest/api/3/issue", Some(body))
            .await?;
        Ok(reply.json::<Value>()?["key"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub async fn transitions(
        &self,
        site: &Site,
        key: &TicketKey,
    ) -> Result<Vec<Transition>, AtlassianError> {
        let path = format!("{}/transitions", issue_path(key));
        let reply = self.on_site(site, Method::GET, &path, None).await?;
        let value: Value = reply.json()?;
        Ok(value["transitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some(Transition {
                    id: t.get("id")?.as_str()?.to_string(),
                    name: t.get("name")?.as_str()?.to_string(),
                    to_status: t.pointer("/to/name")?.as_str()?.to_string(),
                })
            })
            .collect())
    }

    /// Moves the issue by the transition named `name` (or the one leading to a status of that
    /// name, case-insensitively). Already in that status counts as done.
    pub async fn transition(
        &self,
        site: &Site,
        key: &TicketKey,
        name: &str,
    ) -> Result<Change, AtlassianError> {
        let path = with_query(&issue_path(key), &[("fields", "status")]);
        let current: Value = self.on_site(site, Method::GET, &path, None).await?.json()?;
        let status = current
            .pointer("/fields/status/name")
            .and_then(Value::as_str);
        if status.is_some_and(|s| s.eq_ignore_ascii_case(name)) {
            return Ok(Change::AlreadyInPlace);
        }
        let available = self.transitions(site, key).await?;
        let chosen = available
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .or_else(|| {
                available
                    .iter()
                    .find(|t| t.to_status.eq_ignore_ascii_case(name))
            });
        let Some(transition) = chosen else {
            let names: Vec<&str> = available.iter().map(|t| t.name.as_str()).collect();
            return Err(AtlassianError::Refused(format!(
                "{key} has no transition `{name}` from status `{}`; available: {}",
                status.unwrap_or("?"),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        };
        let body = json!({"transition": {"id": transition.id}});
        let path = format!("{}/transitions", issue_path(key));
        self.on_site(site, Method::POST, &path, Some(body)).await?;
        Ok(Change::Applied)
    }

    /// Sets a user-picker field (JSM's Approvers) to exactly these accounts.
    pub async fn set_users_field(
        &self,
        site: &Site,
        key: &TicketKey,
        field: &str,
        accounts: &[AccountId],
    ) -> Result<(), AtlassianError> {
        let users: Vec<Value> = accounts.iter().map(|a| json!({"accountId": a.0})).collect();
        let mut fields = serde_json::Map::new();
        fields.insert(field.to_string(), Value::Array(users));
        let body = json!({ "fields": fields });
        self.on_site(site, Method::PUT, &issue_path(key), Some(body))
            .await?;
        Ok(())
    }

    /// Keys of the issues `jql` finds, through every page (`nextPageToken`).
    pub async fn search_keys(&self, site: &Site, jql: &str) -> Result<Vec<String>, AtlassianError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..1_000 {
            let mut params = vec![("jql", jql), ("maxResults", "100"), ("fields", "key")];
            if let Some(t) = token.as_deref() {
                params.push(("nextPageToken", t));
            }
            let path = with_query("/rest/api/3/search/jql", &params);
            let page: Value = self.on_site(site, Method::GET, &path, None).await?.json()?;
            keys.extend(
                page["issues"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i["key"].as_str().map(str::to_string)),
            );
            match page["nextPageToken"].as_str() {
                Some(next) if page["isLast"] != true => token = Some(next.to_string()),
                _ => break,
            }
        }
        Ok(keys)
    }

    /// Webhooks that failed after every retry, oldest first, after `after` (epoch ms).
    pub async fn failed_webhooks(
        &self,
        site: &Site,
        after: Option<i64>,
    ) -> Result<Vec<FailedWebhook>, AtlassianError> {
        const PAGE: usize = 100;
        let mut out: Vec<FailedWebhook> = Vec::new();
        let mut after = after;
        for _ in 0..1_000 {
            let page_size = PAGE.to_string();
            let after_text = after.map(|a| a.to_string());
            let mut params = vec![("maxResults", page_size.as_str())];
            if let Some(a) = after_text.as_deref() {
                params.push(("after", a));
            }
            let path = with_query("/rest/api/3/webhook/failed", &params);
            let page: Value = self.on_site(site, Method::GET, &path, None).await?.json()?;
            let values: Vec<FailedWebhook> = page["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| {
                    Some(FailedWebhook {
                        id: v.get("id")?.as_str()?.to_string(),
                        body: v.get("body").and_then(Value::as_str).map(str::to_string),
                        url: v
                            .get("url")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .into(),
                        failure_time: v.get("failureTime")?.as_i64()?,
                    })
                })
                .collect();
            let short = values.len() < PAGE;
            after = values.last().map(|v| v.failure_time).or(after);
            out.extend(values);
            if short {
                break;
            }
        }
        Ok(out)
    }

    /// The account, with its email where its privacy settings show it.
    pub async fn user(
        &self,
        site: &Site,
        account_id: &AccountId,
    ) -> Result<AtlassianUser, AtlassianError> {
        let path = with_query("/rest/api/3/user", &[("accountId", &account_id.0)]);
        let value: Value = self.on_site(site, Method::GET, &path, None).await?.json()?;
        AtlassianUser::from_jira(&value).ok_or_else(|| {
            CallError::Permanent {
                status: 200,
                message: "user without accountId".into(),
            }
            .into()
        })
    }

    /// The site's own base URL (`https://acme.atlassian.net`), as Jira states it: what a
    /// call through Forge's gateway does not otherwise learn.
    pub async fn server_base_url(&self, site: &Site) -> Result<String, AtlassianError> {
        let info: Value = self
            .on_site(site, Method::GET, "/rest/api/3/serverInfo", None)
            .await?
            .json()?;
        info["baseUrl"]
            .as_str()
            .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
            .map(|url| url.trim_end_matches('/').to_string())
            .ok_or_else(|| AtlassianError::Refused("serverInfo has no baseUrl".into()))
    }

    /// Whether the account holds Jira's *Administer Jira* global permission. A Connect app may
    /// ask this from its server about any account, without being an administrator itself.
    pub async fn is_jira_admin(
        &self,
        site: &Site,
        account_id: &AccountId,
    ) -> Result<bool, AtlassianError> {
        let body = json!({"accountId": account_id.0, "globalPermissions": [ADMINISTER]});
        let granted: Value = self
            .on_site(
                site,
                Method::POST,
                "/rest/api/3/permissions/check",
                Some(body),
            )
            .await?
            .json()?;
        Ok(granted["globalPermissions"]
            .as_array()
            .is_some_and(|held| held.iter().any(|p| p == ADMINISTER)))
    }

    /// Accounts whose visible email is `email` (the search matches more; we keep exact ones).
    pub async fn users_by_email(
        &self,
        site: &Site,
        email: &Email,
    ) -> Result<Vec<AtlassianUser>, AtlassianError> {
        let path = with_query("/rest/api/3/user/search", &[("query", email.as_str())]);
        let found = self.jira_pages(site, None, &path, "values").await?;
        Ok(found
            .iter()
            .filter_map(AtlassianUser::from_jira)
            .filter(|u| u.email.as_ref() == Some(email))
            .collect())
    }

    pub async fn role_actors(
        &self,
        site: &Site,
        project: &str,
        role_id: u64,
    ) -> Result<RoleActors, AtlassianError> {
        let path = role_path(project, role_id);
        let value: Value = self.on_site(site, Method::GET, &path, None).await?.json()?;
        let mut actors = RoleActors::default();
        for actor in value["actors"].as_array().into_iter().flatten() {
            if let Some(id) = actor
                .pointer("/actorUser/accountId")
                .and_then(Value::as_str)
            {
                actors.users.push(AccountId(id.to_string()));
            } else if let Some(id) = actor.pointer("/actorGroup/groupId").and_then(Value::as_str) {
                actors.group_ids.push(id.to_string());
            }
        }
        Ok(actors)
    }

    /// Puts the account in the project role (Connect, PROJECT_ADMIN).
    pub async fn set_role_actor(
        &self,
        site: &Site,
        project: &str,
        role_id: u64,
        account: &AccountId,
        member: bool,
    ) -> Result<Change, AtlassianError> {
        let path = role_path(project, role_id);
        let is_member = || async {
            Ok(self
                .role_actors(site, project, role_id)
                .await?
                .users
                .contains(account))
        };
        converge(member, is_member, || async {
            if member {
                let body = json!({"user": [account.0]});
                self.on_site(site, Method::POST, &path, Some(body)).await?;
            } else {
                let path = with_query(&path, &[("user", &account.0)]);
                self.on_site(site, Method::DELETE, &path, None).await?;
            }
            Ok(())
        })
        .await
    }

    /// Members of a Jira group (site-admin token: the Connect scope is ADMIN, and a site-admin
    /// token is what adds and removes anyway).
    pub async fn jira_group_members(
        &self,
        site: &Site,
        group_id: &str,
    ) -> Result<Vec<AccountId>, AtlassianError> {
        let credential = self
            .credentials()
            .site_admin(Operation::JiraGroupMembership)?;
        let path = with_query("/rest/api/3/group/member", &[("groupId", group_id)]);
        let found = self
            .jira_pages(site, Some(credential), &path, "values")
            .await?;
        Ok(found
            .iter()
            .filter_map(|u| u.get("accountId")?.as_str())
            .map(|id| AccountId(id.to_string()))
            .collect())
    }

    /// Adds to or removes from a Jira group with the site-admin token (inaccessible to Connect).
    pub async fn set_jira_group_member(
        &self,
        site: &Site,
        group_id: &str,
        account: &AccountId,
        member: bool,
    ) -> Result<Change, AtlassianError> {
        let credential = self
            .credentials()
            .site_admin(Operation::JiraGroupMembership)?;
        let is_member = || async {
            Ok(self
                .jira_group_members(site, group_id)
                .await?
                .contains(account))
        };
        converge(member, is_member, || async {
            if member {
                let path = with_query("/rest/api/3/group/user", &[("groupId", group_id)]);
                let body = json!({"accountId": account.0});
                self.on_site_as(site, credential, Method::POST, &path, Some(body))
                    .await?;
            } else {
                let path = with_query(
                    "/rest/api/3/group/user",
                    &[("groupId", group_id), ("accountId", &account.0)],
                );
                self.on_site_as(site, credential, Method::DELETE, &path, None)
                    .await?;
            }
            Ok(())
        })
        .await
    }
}
