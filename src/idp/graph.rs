//! Microsoft Entra ID through Microsoft Graph: users with their manager, groups with members
//! and owners, `@odata.nextLink` paging, incremental reads by delta links (`users/delta`,
//! `groups/delta`; an expired link means a full read), and membership by `$ref`. Groups
//! synced from on-premises AD, dynamic groups and distribution lists cannot be changed through
//! Graph: a clear error naming the group. Throttling follows `Retry-After` (see `rest`).

pub use crate::config::idp::GraphConfig;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use serde_json::{Value, json};

use super::events::Reread;
use super::rest::{
    Credential, GROUPS, Grant, OAuth, Reply, RestClient, USERS, Vendor, error_message, resume_at,
};
use super::{Changes, Delta, Directory, GroupWriter, IdpError, Page};
use crate::change::Change;
use crate::orgchart::{Email, EmploymentType, Group, Person, PersonId};
use crate::outbound::rfc3986;

const USER_FIELDS: &str = "id,displayName,mail,userPrincipalName,jobTitle,department,employeeId,employeeType,companyName,accountEnabled,employeeOrgData";
const GROUP_FIELDS: &str =
    "id,displayName,groupTypes,onPremisesSyncEnabled,mailEnabled,securityEnabled";

#[derive(Debug)]
pub struct GraphDirectory {
    config: GraphConfig,
    client: RestClient,
}

/// An OData string literal: single quotes doubled.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl GraphDirectory {
    pub fn new(config: GraphConfig) -> Self {
        let graph_url = config.graph_url.trim_end_matches('/').to_string();
        let token_url = config.token_url.clone().unwrap_or_else(|| {
            format!(
                "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
                config.tenant
            )
        });
        let credential = Credential::OAuth(OAuth::new(
            token_url,
            Grant::ClientSecret {
                client_id: config.client_id.clone(),
                client_secret: config.client_secret.clone(),
                scope: "https://graph.microsoft.com/.default".into(),
            },
        ));
        Self {
            client: RestClient::new(Vendor::Graph, &graph_url, credential)
                .with_budget(config.budget),
            config,
        }
    }

    async fn read(&self, target: &str) -> Result<Reply, IdpError> {
        let reply = self
            .client
            .read(
                target,
                "it needs User.Read.All and GroupMember.ReadWrite.All",
            )
            .await;
        match reply {
            // An expired delta link: 410, or 400 `syncStateNotFound`.
            Err(IdpError::Refused(why))
                if why.contains("(410)") || why.contains("syncStateNotFound") =>
            {
                Err(IdpError::CursorExpired(why))
            }
            other => other,
        }
    }

    /// Every item of a paged collection and, for a delta, the delta link it ends with.
    async fn read_all(&self, first: &str) -> Result<(Vec<Value>, Option<String>), IdpError> {
        let mut items = Vec::new();
        let mut next = Some(first.to_string());
        while let Some(target) = next {
            let reply = self.read(&target).await?;
            items.extend(reply.items("Microsoft Graph", &target, "/value", false)?);
            next = reply.body["@odata.nextLink"].as_str().map(str::to_string);
            if next.is_none() {
                return Ok((
                    items,
                    reply.body["@odata.deltaLink"].as_str().map(str::to_string),
                ));
            }
        }
        Ok((items, None))
    }

    fn person(user: &Value) -> Option<Person> {
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let email = text(&user["mail"])
            .or_else(|| text(&user["userPrincipalName"]))
            .and_then(|e| Email::parse(&e).ok())?;
        let mut attributes = std::collections::BTreeMap::new();
        for (key, value) in [
            ("employee_number", &user["employeeId"]),
            ("company", &user["companyName"]),
            ("user_principal_name", &user["userPrincipalName"]),
            ("division", &user["employeeOrgData"]["division"]),
        ] {
            if let Some(value) = text(value) {
                attributes.insert(key.to_string(), value);
            }
        }
        Some(Person {
            id: PersonId(user["id"].as_str()?.to_string()),
            display_name: text(&user["displayName"]).unwrap_or_else(|| email.to_string()),
            email,
            title: text(&user["jobTitle"]),
            department: text(&user["department"]),
            cost_center: text(&user["employeeOrgData"]["costCenter"]),
            manager: text(&user["manager"]["id"]).map(PersonId),
            active: user["accountEnabled"].as_bool().unwrap_or(true),
            employment_type: text(&user["employeeType"])
                .map(|t| EmploymentType::parse(&t))
                .unwrap_or(EmploymentType::FullTime),
            atlassian_account_id: None,
            attributes,
        })
    }

    fn users_first(&self) -> String {
        format!(
            "/users?$select={USER_FIELDS}&$expand={}&$top={}",
            rfc3986("manager($select=id)"),
            self.config.page_size
        )
    }

    fn groups_first(&self) -> String {
        format!(
            "/groups?$select={GROUP_FIELDS}&$top={}",
            self.config.page_size
        )
    }

    /// A group with its user members and owners (nested groups and devices are not people).
    async fn group(&self, group: Value) -> Result<Option<Group>, IdpError> {
        let (Some(id), Some(name)) = (group["id"].as_str(), group["displayName"].as_str()) else {
            return Ok(None);
        };
        let users = |items: Vec<Value>| {
            items
                .into_iter()
                .filter(|m| {
                    m["@odata.type"]
                        .as_str()
                        .is_none_or(|t| t == "#microsoft.graph.user")
                })
                .filter_map(|m| m["id"].as_str().map(|id| PersonId(id.to_string())))
                .collect()
        };
        let top = self.config.page_size;
        let (members, _) = self
            .read_all(&format!("/groups/{id}/members?$select=id&$top={top}"))
            .await?;
        let (owners, _) = self
            .read_all(&format!("/groups/{id}/owners?$select=id&$top={top}"))
            .await?;
        Ok(Some(Group {
            id: id.to_string(),
            name: name.to_string(),
            members: users(members),
            owners: users(owners),
        }))
    }

    async fn groups(&self, listed: Vec<Value>) -> Result<Vec<Group>, IdpError> {
        let groups: Vec<Option<Group>> = futures::stream::iter(listed)
            .map(|g| async move { self.group(g).await })
            .buffered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        Ok(groups.into_iter().flatten().collect())
    }

    async fn user_by_id(&self, id: String) -> Result<Option<Person>, IdpError> {
        let target = format!(
            "/users/{}?$select={USER_FIELDS}&$expand={}",
            rfc3986(&id),
            rfc3986("manager($select=id)")
        );
        match self.read(&target).await {
            Ok(reply) => Ok(Self::person(&reply.body)),
            // Deleted since the delta said it changed.
            Err(IdpError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn group_by_id(&self, id: String) -> Result<Option<Group>, IdpError> {
        match self
            .read(&format!("/groups/{}?$select={GROUP_FIELDS}", rfc3986(&id)))
            .await
        {
            Ok(reply) => self.group(reply.body).await,
            Err(IdpError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delta_link(&self, resource: &str) -> Result<String, IdpError> {
        let (_, link) = self
            .read_all(&format!("/{resource}/delta?$select=id&$deltatoken=latest"))
            .await?;
        link.ok_or_else(|| IdpError::Refused(format!("Graph gave no delta link for {resource}")))
    }

    async fn group_named(&self, name: &str) -> Result<Value, IdpError> {
        let filter = format!("displayName eq {}", literal(name));
        let (found, _) = self
            .read_all(&format!(
                "/groups?$filter={}&$select={GROUP_FIELDS}",
                rfc3986(&filter)
            ))
            .await?;
        found
            .into_iter()
            .find(|g| g["displayName"].as_str() == Some(name))
            .ok_or_else(|| IdpError::NotFound(format!("Entra ID group `{name}`")))
    }
}

/// Why Graph will not let us change a group's members, if it will not.
fn not_writable(group: &Value) -> Option<&'static str> {
    if group["onPremisesSyncEnabled"] == true {
        return Some("it is synced from on-premises Active Directory; change it there");
    }
    let dynamic = group["groupTypes"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "DynamicMembership"));
    if dynamic {
        return Some("its membership is a dynamic rule");
    }
    let unified = group["groupTypes"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "Unified"));
    if group["mailEnabled"] == true && group["securityEnabled"] != true && !unified {
        return Some("it is a distribution list, which Graph cannot change (use Exchange)");
    }
    None
}

/// A change-notification subscription as Graph answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub expires: chrono::DateTime<chrono::Utc>,
}

impl GraphDirectory {
    /// Subscribes `notification_url` to changes of `resource` (`users`, `groups`) until
    /// `expires`; Graph validates the URL (our `/hooks/graph` echoes its token) before it answers.
    pub async fn subscribe(
        &self,
        resource: &str,
        notification_url: &str,
        client_state: &str,
        expires: chrono::DateTime<chrono::Utc>,
    ) -> Result<Subscription, IdpError> {
        let body = json!({
            "changeType": "created,updated,deleted",
            "notificationUrl": notification_url,
            "resource": resource,
            "expirationDateTime": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "clientState": client_state,
        });
        let reply = self
            .client
            .send(Method::POST, "/subscriptions", Some(&body), &[])
            .await?;
        Self::subscription(reply, &format!("subscribing to {resource}"))
    }

    /// Moves a subscription's end to `expires`; [`IdpError::NotFound`] when Graph dropped it.
    pub async fn renew(
        &self,
        id: &str,
        expires: chrono::DateTime<chrono::Utc>,
    ) -> Result<Subscription, IdpError> {
        let body = json!({
            "expirationDateTime": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        let reply = self
            .client
            .send(
                Method::PATCH,
                &format!("/subscriptions/{}", rfc3986(id)),
                Some(&body),
                &[],
            )
            .await?;
        if reply.status == 404 {
            return Err(IdpError::NotFound(format!("Graph subscription {id}")));
        }
        Self::subscription(reply, &format!("renewing subscription {id}"))
    }

    fn subscription(reply: super::rest::Reply, doing: &str) -> Result<Subscription, IdpError> {
        if !matches!(reply.status, 200 | 201) {
            return Err(IdpError::Refused(format!(
                "{doing} ({}): {}",
                reply.status,
                error_message(&reply.body)
            )));
        }
        let id = reply.body["id"].as_str().filter(|id| !id.is_empty());
        let expires = reply.body["expirationDateTime"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        match (id, expires) {
            (Some(id), Some(expires)) => Ok(Subscription {
                id: id.to_string(),
                expires: expires.with_timezone(&chrono::Utc),
            }),
            _ => Err(IdpError::Unreadable(format!(
                "{doing}: the answer has no id or expiry"
            ))),
        }
    }

    /// One user (with their manager) or one group (with members and owners), read again.
    pub async fn reread(&self, target: &Reread) -> Result<Delta, IdpError> {
        Ok(match target {
            Reread::Person(id) => self
                .user_by_id(id.clone())
                .await?
                .map_or_else(|| Delta::PersonGone(PersonId(id.clone())), Delta::Person),
            Reread::Group(id) => self
                .group_by_id(id.clone())
                .await?
                .map_or_else(|| Delta::GroupGone(id.clone()), Delta::Group),
        })
    }
}

impl Directory for GraphDirectory {
    fn source(&self) -> String {
        format!("entra:{}", self.config.tenant)
    }

    /// Delta links as of now for users and groups, as one JSON cursor.
    async fn start_cursor(&self) -> Result<String, IdpError> {
        Ok(json!({
            "users": self.delta_link(USERS).await?,
            "groups": self.delta_link(GROUPS).await?,
        })
        .to_string())
    }

    async fn read_page(&self, resume: Option<&str>) -> Result<Page, IdpError> {
        let (phase, target) = resume_at(resume);
        let target = match (phase, target) {
            (_, Some(target)) => target.to_string(),
            (GROUPS, None) => self.groups_first(),
            _ => self.users_first(),
        };
        let reply = self.read(&target).await?;
        let items = reply.items("Microsoft Graph", &target, "/value", false)?;
        let next = reply.body["@odata.nextLink"].as_str();
        let mut page = Page::default();
        if phase == USERS {
            page.people = items.iter().filter_map(Self::person).collect();
            page.next = Some(match next {
                Some(next) => format!("{USERS} {next}"),
                None => format!("{GROUPS} {}", self.groups_first()),
            });
        } else {
            page.groups = self.groups(items).await?;
            page.next = next.map(|next| format!("{GROUPS} {next}"));
        }
        Ok(page)
    }

    /// Follows the stored delta links. Delta items carry only what changed, so each changed
    /// user or group is read again whole; `@removed` ones are gone.
    async fn changes_since(&self, cursor: &str) -> Result<Changes, IdpError> {
        let links: Value = serde_json::from_str(cursor)
            .map_err(|_| IdpError::CursorExpired("not a Graph delta cursor".into()))?;
        let (Some(users_link), Some(groups_link)) =
            (links["users"].as_str(), links["groups"].as_str())
        else {
            return Err(IdpError::CursorExpired("not a Graph delta cursor".into()));
        };
        let (users, users_next) = self.read_all(users_link).await?;
        let (groups, groups_next) = self.read_all(groups_link).await?;
        let mut deltas = Vec::new();
        let mut changed_users = Vec::new();
        for user in &users {
            let Some(id) = user["id"].as_str() else {
                continue;
            };
            if user.get("@removed").is_some() {
                deltas.push(Delta::PersonGone(PersonId(id.to_string())));
            } else if !changed_users.iter().any(|u| u == id) {
                changed_users.push(id.to_string());
            }
        }
        let mut changed_groups = Vec::new();
        for group in &groups {
            let Some(id) = group["id"].as_str() else {
                continue;
            };
            if group.get("@removed").is_some() {
                deltas.push(Delta::GroupGone(id.to_string()));
            } else if !changed_groups.iter().any(|g| g == id) {
                changed_groups.push(id.to_string());
            }
        }
        let concurrency = self.config.concurrency.max(1);
        let people: Vec<Option<Person>> = futures::stream::iter(changed_users)
            .map(|id| async move { self.user_by_id(id).await })
            .buffered(concurrency)
            .try_collect()
            .await?;
        deltas.extend(people.into_iter().flatten().map(Delta::Person));
        let groups: Vec<Option<Group>> = futures::stream::iter(changed_groups)
            .map(|id| async move { self.group_by_id(id).await })
            .buffered(concurrency)
            .try_collect()
            .await?;
        deltas.extend(groups.into_iter().flatten().map(Delta::Group));
        let (Some(users), Some(groups)) = (users_next, groups_next) else {
            return Err(IdpError::Refused(
                "Graph's delta ended without a delta link".into(),
            ));
        };
        Ok(Changes {
            deltas,
            cursor: json!({"users": users, "groups": groups}).to_string(),
        })
    }
}

impl GroupWriter for GraphDirectory {
    async fn set_member(
        &self,
        group: &str,
        person: &PersonId,
        member: bool,
    ) -> Result<Change, IdpError> {
        let found = self.group_named(group).await?;
        if let Some(reason) = not_writable(&found) {
            return Err(IdpError::GroupNotWritable {
                group: group.to_string(),
                reason: reason.to_string(),
            });
        }
        let group_id = rfc3986(found["id"].as_str().unwrap_or_default());
        let user_id = rfc3986(&person.0);
        let reply = if member {
            let body = json!({
                "@odata.id": format!("{}/directoryObjects/{user_id}", self.client.base())
            });
            self.client
                .send(
                    Method::POST,
                    &format!("/groups/{group_id}/members/$ref"),
                    Some(&body),
                    &[],
                )
                .await?
        } else {
            self.client
                .send(
                    Method::DELETE,
                    &format!("/groups/{group_id}/members/{user_id}/$ref"),
                    None,
                    &[],
                )
                .await?
        };
        let message = error_message(&reply.body);
        match reply.status {
            200 | 204 => Ok(Change::Applied),
            // Graph's answer to adding a member twice.
            400 if member && message.contains("already exist") => Ok(Change::AlreadyInPlace),
            404 if !member => Ok(Change::AlreadyInPlace),
            404 => Err(IdpError::NotFound(format!(
                "Entra ID user `{}`: {message}",
                person.0
            ))),
            400 | 403 => Err(IdpError::GroupNotWritable {
                group: group.to_string(),
                reason: message,
            }),
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
        let user = json!({"id": "u2", "displayName": "Dee", "userPrincipalName": "dee@acme.test",
            "mail": null, "jobTitle": "Engineer", "accountEnabled": false,
            "employeeOrgData": {"costCenter": "42", "division": "R&D"},
            "manager": {"@odata.type": "#microsoft.graph.user", "id": "u1"}});
        let person = GraphDirectory::person(&user).expect("a person");
        assert_eq!(person.email.to_string(), "dee@acme.test");
        assert_eq!(person.manager, Some(PersonId("u1".into())));
        assert_eq!(person.cost_center.as_deref(), Some("42"));
        assert!(!person.active);
    }

    #[test]
    fn groups_graph_cannot_change_are_named() {
        let synced = json!({"onPremisesSyncEnabled": true, "groupTypes": []});
        assert!(not_writable(&synced).is_some_and(|r| r.contains("on-premises")));
        let dynamic = json!({"groupTypes": ["DynamicMembership"], "securityEnabled": true});
        assert!(not_writable(&dynamic).is_some_and(|r| r.contains("dynamic")));
        let list = json!({"groupTypes": [], "mailEnabled": true, "securityEnabled": false});
        assert!(not_writable(&list).is_some_and(|r| r.contains("distribution")));
        let m365 =
            json!({"groupTypes": ["Unified"], "mailEnabled": true, "securityEnabled": false});
        assert_eq!(not_writable(&m365), None);
        let security = json!({"groupTypes": [], "mailEnabled": false, "securityEnabled": true, "onPremisesSyncEnabled": null});
        assert_eq!(not_writable(&security), None);
    }

    #[test]
    fn odata_literals_double_their_quotes() {
        assert_eq!(literal("O'Brien's"), "'O''Brien''s'");
    }
}
