//! Google Workspace through the Admin SDK Directory API: users (manager from `relations`,
//! title and department from the primary organization), groups with their members (owners are
//! members with role `OWNER`), `nextPageToken` paging, and membership by members insert and
//! delete. The directory has no change feed, so every sync reads it all. Credentials: a
//! service account with domain-wide delegation, acting as an admin (JWT bearer grant);
//! throttling (403/429 `rateLimitExceeded`) backs off exponentially (see `rest`).

pub use crate::config::idp::GoogleConfig;
use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use serde_json::{Value, json};

use super::rest::{
    Credential, GROUPS, Grant, OAuth, Reply, RestClient, USERS, Vendor, error_message, resume_at,
};
use super::{Changes, Directory, GroupWriter, IdpError, Page};
use crate::change::Change;
use crate::orgchart::{Email, EmploymentType, Group, Person, PersonId};
use crate::outbound::rfc3986;

const API: &str = "/admin/directory/v1";
pub const SCOPES: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly https://www.googleapis.com/auth/admin.directory.group.readonly https://www.googleapis.com/auth/admin.directory.group.member";

#[derive(Debug)]
pub struct GoogleDirectory {
    config: GoogleConfig,
    client: RestClient,
    /// Manager emails resolved to user ids (relations name managers by email).
    managers: std::sync::Mutex<HashMap<String, Option<String>>>,
}

fn primary(items: &Value) -> &Value {
    items
        .as_array()
        .and_then(|list| list.iter().find(|i| i["primary"] == true).or(list.first()))
        .unwrap_or(&Value::Null)
}

impl GoogleDirectory {
    pub fn new(config: GoogleConfig) -> Self {
        let credential = Credential::OAuth(OAuth::new(
            config.token_url.clone(),
            Grant::JwtBearer {
                issuer: config.client_email.clone(),
                subject: config.admin.clone(),
                key_pem: config.private_key.clone(),
                key_id: config.key_id.clone(),
                scope: SCOPES.into(),
            },
        ));
        Self {
            client: RestClient::new(
                Vendor::Google,
                &format!("{}{API}", config.api_url.trim_end_matches('/')),
                credential,
            )
            .with_budget(config.budget),
            config,
            managers: std::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn read(&self, target: &str) -> Result<Reply, IdpError> {
        self.client
            .read(
                target,
                &format!("the service account needs domain-wide delegation for {SCOPES}"),
            )
            .await
    }

    fn person(user: &Value, manager: Option<PersonId>) -> Option<Person> {
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let email = text(&user["primaryEmail"]).and_then(|e| Email::parse(&e).ok())?;
        let organization = primary(&user["organizations"]);
        let mut attributes = std::collections::BTreeMap::new();
        let employee_id = user["externalIds"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["type"] == "organization")
            .and_then(|e| text(&e["value"]));
        if let Some(id) = employee_id {
            attributes.insert("employee_number".into(), id);
        }
        if let Some(path) = text(&user["orgUnitPath"]) {
            attributes.insert("org_unit".into(), path);
        }
        Some(Person {
            id: PersonId(user["id"].as_str()?.to_string()),
            display_name: text(&user["name"]["fullName"]).unwrap_or_else(|| email.to_string()),
            email,
            title: text(&organization["title"]),
            department: text(&organization["department"]),
            cost_center: text(&organization["costCenter"]),
            manager,
            active: user["suspended"] != true && user["archived"] != true,
            employment_type: text(&organization["description"])
                .map(|t| EmploymentType::parse(&t))
                .unwrap_or(EmploymentType::FullTime),
            atlassian_account_id: None,
            attributes,
        })
    }

    fn manager_email(user: &Value) -> Option<String> {
        user["relations"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["type"] == "manager")
            .and_then(|r| r["value"].as_str())
            .map(str::to_lowercase)
    }

    /// The user id of each manager email: from the page itself, the cache, or one lookup.
    /// A manager Google does not know stays a dangling reference (the email), which the
    /// org chart reports.
    async fn managers_of(&self, users: &[Value]) -> Result<HashMap<String, PersonId>, IdpError> {
        let mut known: HashMap<String, PersonId> = HashMap::new();
        for user in users {
            if let (Some(email), Some(id)) = (user["primaryEmail"].as_str(), user["id"].as_str()) {
                known.insert(email.to_lowercase(), PersonId(id.to_string()));
            }
        }
        let mut unknown: Vec<String> = Vec::new();
        {
            let cache = self.managers.lock().unwrap_or_else(|e| e.into_inner());
            for email in users.iter().filter_map(Self::manager_email) {
                if known.contains_key(&email) || unknown.contains(&email) {
                    continue;
                }
                match cache.get(&email) {
                    Some(found) => {
                        let id = found.clone().unwrap_or_else(|| email.clone());
                        known.insert(email, PersonId(id));
                    }
                    None => unknown.push(email),
                }
            }
        }
        let looked_up: Vec<(String, Option<String>)> = futures::stream::iter(unknown)
            .map(|email| async move {
                let target = format!("/users/{}?fields=id", rfc3986(&email));
                match self.read(&target).await {
                    Ok(reply) => Ok((email, reply.body["id"].as_str().map(str::to_string))),
                    Err(IdpError::NotFound(_)) => Ok((email, None)),
                    Err(e) => Err(e),
                }
            })
            .buffered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        let mut cache = self.managers.lock().unwrap_or_else(|e| e.into_inner());
        for (email, id) in looked_up {
            cache.insert(email.clone(), id.clone());
            known.insert(email.clone(), PersonId(id.unwrap_or(email)));
        }
        Ok(known)
    }

    fn list(&self, resource: &str, max: u32, token: Option<&str>) -> String {
        let mut target = format!(
            "/{resource}?customer={}&maxResults={}",
            rfc3986(&self.config.customer),
            self.config.page_size.min(max)
        );
        if resource == USERS {
            target.push_str("&projection=full");
        }
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            target.push_str("&pageToken=");
            target.push_str(&rfc3986(token));
        }
        target
    }

    async fn group(&self, group: Value) -> Result<Option<Group>, IdpError> {
        let (Some(id), Some(name)) = (group["id"].as_str(), group["name"].as_str()) else {
            return Ok(None);
        };
        let (mut members, mut owners) = (Vec::new(), Vec::new());
        let mut token: Option<String> = None;
        loop {
            let mut target = format!("/groups/{}/members?maxResults=200", rfc3986(id));
            if let Some(t) = &token {
                target.push_str("&pageToken=");
                target.push_str(&rfc3986(t));
            }
            let reply = self.read(&target).await?;
            // Google leaves `members` out of an empty page.
            for member in reply.items("Google", &target, "/members", true)? {
                if member["type"] != "USER" {
                    continue;
                }
                let Some(user) = member["id"].as_str() else {
                    continue;
                };
                members.push(PersonId(user.to_string()));
                if member["role"] == "OWNER" {
                    owners.push(PersonId(user.to_string()));
                }
            }
            token = reply.body["nextPageToken"].as_str().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(Some(Group {
            id: id.to_string(),
            name: name.to_string(),
            members,
            owners,
        }))
    }

    /// A group's key: its email as given, else the id of the group with exactly this name.
    async fn group_key(&self, group: &str) -> Result<String, IdpError> {
        if group.contains('@') {
            return Ok(group.to_string());
        }
        let query = format!(
            "name='{}'",
            group.replace('\\', "\\\\").replace('\'', "\\'")
        );
        let target = format!(
            "/groups?customer={}&query={}",
            rfc3986(&self.config.customer),
            rfc3986(&query)
        );
        let reply = self.read(&target).await?;
        reply.body["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["name"].as_str() == Some(group))
            .and_then(|g| g["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| IdpError::NotFound(format!("Google group `{group}`")))
    }
}

impl Directory for GoogleDirectory {
    fn source(&self) -> String {
        format!("google:{}", self.config.customer)
    }

    async fn start_cursor(&self) -> Result<String, IdpError> {
        Ok("full-reads-only".into())
    }

    async fn read_page(&self, resume: Option<&str>) -> Result<Page, IdpError> {
        let (phase, token) = resume_at(resume);
        let mut page = Page::default();
        if phase == USERS {
            if token.is_none() {
                // A new full read: managers are looked up afresh (emails move between people).
                self.managers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
            }
            let target = self.list(USERS, 500, token);
            let reply = self.read(&target).await?;
            let users = reply.items("Google", &target, "/users", true)?;
            let managers = self.managers_of(&users).await?;
            page.people = users
                .iter()
                .filter_map(|u| {
                    let manager = Self::manager_email(u).and_then(|e| managers.get(&e).cloned());
                    Self::person(u, manager)
                })
                .collect();
            page.next = Some(match reply.body["nextPageToken"].as_str() {
                Some(next) => format!("{USERS} {next}"),
                None => format!("{GROUPS} "),
            });
        } else {
            let target = self.list(GROUPS, 200, token);
            let reply = self.read(&target).await?;
            let listed = reply.items("Google", &target, "/groups", true)?;
            let groups: Vec<Option<Group>> = futures::stream::iter(listed)
                .map(|g| async move { self.group(g).await })
                .buffered(self.config.concurrency.max(1))
                .try_collect()
                .await?;
            page.groups = groups.into_iter().flatten().collect();
            page.next = reply.body["nextPageToken"]
                .as_str()
                .map(|next| format!("{GROUPS} {next}"));
        }
        Ok(page)
    }

    async fn changes_since(&self, _cursor: &str) -> Result<Changes, IdpError> {
        Err(IdpError::CursorExpired(
            "Google Workspace's directory has no change feed: each sync reads it all".into(),
        ))
    }
}

impl GroupWriter for GoogleDirectory {
    async fn set_member(
        &self,
        group: &str,
        person: &PersonId,
        member: bool,
    ) -> Result<Change, IdpError> {
        let key = rfc3986(&self.group_key(group).await?);
        let reply = if member {
            let body = json!({"id": person.0, "role": "MEMBER"});
            self.client
                .send(
                    Method::POST,
                    &format!("/groups/{key}/members"),
                    Some(&body),
                    &[],
                )
                .await?
        } else {
            self.client
                .send(
                    Method::DELETE,
                    &format!("/groups/{key}/members/{}", rfc3986(&person.0)),
                    None,
                    &[],
                )
                .await?
        };
        let message = error_message(&reply.body);
        match reply.status {
            200 | 204 => Ok(Change::Applied),
            // "Member already exists."
            409 => Ok(Change::AlreadyInPlace),
            404 if !member && message.contains("memberKey") => Ok(Change::AlreadyInPlace),
            404 => Err(IdpError::NotFound(format!(
                "Google group `{group}` or user `{}`: {message}",
                person.0
            ))),
            400 | 403 => Err(IdpError::GroupNotWritable {
                group: group.to_string(),
                reason: message,
            }),
            401 => Err(IdpError::Config(format!(
                "Google refused the service account: {message}"
            ))),
            status => Err(IdpError::Refused(format!(
                "changing `{group}` ({status}): {message}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_reads_as_a_person() {
        let user = json!({"id": "1001", "primaryEmail": "Dee@acme.test", "suspended": true,
            "name": {"fullName": "Dee Veloper"},
            "organizations": [{"title": "Intern", "primary": false},
                              {"title": "Engineer", "department": "R&D", "costCenter": "42", "primary": true}],
            "externalIds": [{"type": "organization", "value": "E7"}],
            "relations": [{"type": "manager", "value": "Boss@acme.test"}]});
        assert_eq!(
            GoogleDirectory::manager_email(&user).as_deref(),
            Some("boss@acme.test")
        );
        let person =
            GoogleDirectory::person(&user, Some(PersonId("1000".into()))).expect("a person");
        assert_eq!(person.title.as_deref(), Some("Engineer"));
        assert_eq!(person.cost_center.as_deref(), Some("42"));
        assert_eq!(person.attributes["employee_number"], "E7");
        assert!(!person.active);
    }

    #[test]
    fn a_key_file_must_be_a_service_accounts() {
        let ok = r#"{"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com",
            "private_key": "-----BEGIN PRIVATE KEY-----\n...", "private_key_id": "k1",
            "token_uri": "https://oauth2.googleapis.com/token"}"#;
        let config = GoogleConfig::from_key_file(
            ok,
            "admin@acme.test".into(),
            "my_customer".into(),
            "https://admin.googleapis.com".into(),
            500,
            8,
        )
        .expect("valid");
        assert_eq!(config.key_id.as_deref(), Some("k1"));
        for bad in [
            "nope",
            r#"{"type": "authorized_user"}"#,
            r#"{"type": "service_account"}"#,
        ] {
            assert!(
                GoogleConfig::from_key_file(bad, "a".into(), "c".into(), "u".into(), 1, 1).is_err()
            );
        }
    }
}
