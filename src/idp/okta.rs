//! Okta's Management API: users (manager from `profile.managerId` or a linked object), groups
//! with members and owners, `Link rel=next` paging, incremental reads by `lastUpdated`
//! (`filter`, which is consistent, unlike `search`), and membership by PUT/DELETE, which Okta
//! allows on `OKTA_GROUP`s only. Throttling follows `X-Rate-Limit-*` (see `rest`).

pub use crate::config::idp::{ManagerSource, OktaAuth, OktaConfig};
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use serde_json::Value;

use super::events::Reread;
use super::rest::{
    Credential, GROUPS, Grant, OAuth, Reply, RestClient, USERS, Vendor, error_message, resume_at,
};
use super::{Changes, Delta, Directory, GroupWriter, IdpError, Page};
use crate::change::Change;
use crate::config::Secret;
use crate::orgchart::{Email, EmploymentType, Group, Person, PersonId};
use crate::outbound::rfc3986;

const SKEW_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

#[derive(Debug)]
pub struct OktaDirectory {
    config: OktaConfig,
    client: RestClient,
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

impl OktaDirectory {
    pub fn new(config: OktaConfig) -> Self {
        let url = config.url.trim_end_matches('/').to_string();
        let credential = match &config.auth {
            OktaAuth::ApiToken(token) => {
                Credential::Header(Secret::new(format!("SSWS {}", token.expose())))
            }
            OktaAuth::ServiceApp {
                client_id,
                key_pem,
                key_id,
                token_url,
            } => Credential::OAuth(OAuth::new(
                token_url
                    .clone()
                    .unwrap_or_else(|| format!("{url}/oauth2/v1/token")),
                Grant::PrivateKeyJwt {
                    client_id: client_id.clone(),
                    key_pem: key_pem.clone(),
                    key_id: key_id.clone(),
                    scope: "okta.users.read okta.groups.manage".into(),
                },
            )),
        };
        Self {
            client: RestClient::new(Vendor::Okta, &url, credential),
            config,
        }
    }

    async fn read(&self, target: &str) -> Result<Reply, IdpError> {
        self.client
            .read(target, "it needs okta.users.read and okta.groups.manage")
            .await
    }

    /// Every item of a paged list, following `rel=next`.
    async fn read_all(&self, first: &str) -> Result<Vec<Value>, IdpError> {
        let mut items = Vec::new();
        let mut next = Some(first.to_string());
        while let Some(target) = next {
            let reply = self.read(&target).await?;
            items.extend(reply.items("Okta", &target, "", false)?);
            next = reply.link_next;
        }
        Ok(items)
    }

    fn person(user: &Value) -> Option<Person> {
        let profile = &user["profile"];
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let email = text(&profile["email"])
            .or_else(|| text(&profile["login"]))
            .and_then(|e| Email::parse(&e).ok())?;
        let mut attributes = std::collections::BTreeMap::new();
        for (key, field) in [
            ("employee_number", "employeeNumber"),
            ("division", "division"),
            ("organization", "organization"),
            ("city", "city"),
            ("country_code", "countryCode"),
        ] {
            if let Some(value) = text(&profile[field]) {
                attributes.insert(key.to_string(), value);
            }
        }
        if let Some(login) =
            text(&profile["login"]).filter(|l| !l.eq_ignore_ascii_case(email.as_str()))
        {
            attributes.insert("login".into(), login);
        }
        // Kept only when it says more than "active" (a hundred thousand copies add up).
        let status = user["status"].as_str().unwrap_or("ACTIVE");
        if status != "ACTIVE" {
            attributes.insert("okta_status".into(), status.to_string());
        }
        let name = [text(&profile["firstName"]), text(&profile["lastName"])]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        Some(Person {
            id: PersonId(user["id"].as_str()?.to_string()),
            display_name: text(&profile["displayName"])
                .or_else(|| (!name.is_empty()).then_some(name))
                .unwrap_or_else(|| email.to_string()),
            email,
            title: text(&profile["title"]),
            department: text(&profile["department"]),
            cost_center: text(&profile["costCenter"]),
            manager: text(&profile["managerId"]).map(PersonId),
            // Suspended and deprovisioned people have left or are locked out on purpose;
            // staged and locked-out people have not.
            active: !matches!(status, "SUSPENDED" | "DEPROVISIONED"),
            employment_type: text(&profile["userType"])
                .map(|t| EmploymentType::parse(&t))
                .unwrap_or(EmploymentType::FullTime),
            atlassian_account_id: None,
            attributes,
        })
    }

    /// People from a page of users, with their managers from linked objects when configured.
    async fn people(&self, users: &[Value]) -> Result<Vec<Person>, IdpError> {
        let mut people: Vec<Person> = users.iter().filter_map(Self::person).collect();
        if let ManagerSource::Linked(relationship) = &self.config.manager {
            let ids: Vec<PersonId> = people.iter().map(|p| p.id.clone()).collect();
            let managers: Vec<Option<PersonId>> = futures::stream::iter(ids)
                .map(|id| async move { self.linked_manager(&id, relationship).await })
                .buffered(self.config.concurrency.max(1))
                .try_collect()
                .await?;
            for (person, manager) in people.iter_mut().zip(managers) {
                person.manager = manager;
            }
        }
        Ok(people)
    }

    async fn linked_manager(
        &self,
        person: &PersonId,
        relationship: &str,
    ) -> Result<Option<PersonId>, IdpError> {
        let reply = self
            .read(&format!(
                "/api/v1/users/{}/linkedObjects/{relationship}",
                rfc3986(&person.0)
            ))
            .await?;
        // Each entry links to the manager: `_links.self.href` ends in `/users/{id}`.
        Ok(reply
            .body
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|link| link["_links"]["self"]["href"].as_str())
            .filter_map(|href| href.rsplit('/').next())
            .find(|id| !id.is_empty())
            .map(|id| PersonId(id.to_string())))
    }

    /// A group with its members and owners (user owners; group owners are not people).
    async fn group(&self, group: &Value) -> Result<Option<Group>, IdpError> {
        let (Some(id), Some(name)) = (group["id"].as_str(), group["profile"]["name"].as_str())
        else {
            return Ok(None);
        };
        let limit = self.config.page_size;
        let members = self
            .read_all(&format!(
                "/api/v1/groups/{}/users?limit={limit}",
                rfc3986(id)
            ))
            .await?;
        let owners = self
            .read_all(&format!(
                "/api/v1/groups/{}/owners?limit={limit}",
                rfc3986(id)
            ))
            .await?;
        let ids = |items: &[Value]| {
            items
                .iter()
                .filter(|o| o["type"].as_str().is_none_or(|t| t == "USER"))
                .filter_map(|o| o["id"].as_str())
                .map(|id| PersonId(id.to_string()))
                .collect()
        };
        Ok(Some(Group {
            id: id.to_string(),
            name: name.to_string(),
            members: members
                .iter()
                .filter_map(|u| u["id"].as_str())
                .map(|id| PersonId(id.to_string()))
                .collect(),
            owners: ids(&owners),
        }))
    }

    async fn groups(&self, listed: &[Value]) -> Result<Vec<Group>, IdpError> {
        let groups: Vec<Option<Group>> = futures::stream::iter(listed.to_vec())
            .map(|g| async move { self.group(&g).await })
            .buffered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        Ok(groups.into_iter().flatten().collect())
    }

    fn first(&self, resource: &str, filter: Option<&str>) -> String {
        let mut target = format!("/api/v1/{resource}?limit={}", self.config.page_size);
        if let Some(filter) = filter {
            target.push_str("&filter=");
            target.push_str(&rfc3986(filter));
        }
        target
    }

    /// The group named `name`, exactly (Okta's `search` on `profile.name eq` is exact).
    async fn group_named(&self, name: &str) -> Result<Value, IdpError> {
        let target = format!(
            "/api/v1/groups?search={}",
            rfc3986(&format!("profile.name eq {}", quoted(name)))
        );
        self.read_all(&target)
            .await?
            .into_iter()
            .find(|g| g["profile"]["name"].as_str() == Some(name))
            .ok_or_else(|| IdpError::NotFound(format!("Okta group `{name}`")))
    }
}

impl OktaDirectory {
    /// One user (with their manager) or one group (with members and owners), read again.
    pub async fn reread(&self, target: &Reread) -> Result<Delta, IdpError> {
        match target {
            Reread::Person(id) => {
                match self.read(&format!("/api/v1/users/{}", rfc3986(id))).await {
                    Ok(reply) => Ok(self
                        .people(std::slice::from_ref(&reply.body))
                        .await?
                        .into_iter()
                        .next()
                        .map_or_else(|| Delta::PersonGone(PersonId(id.clone())), Delta::Person)),
                    Err(IdpError::NotFound(_)) => Ok(Delta::PersonGone(PersonId(id.clone()))),
                    Err(e) => Err(e),
                }
            }
            Reread::Group(id) => {
                match self.read(&format!("/api/v1/groups/{}", rfc3986(id))).await {
                    Ok(reply) => Ok(self
                        .group(&reply.body)
                        .await?
                        .map_or_else(|| Delta::GroupGone(id.clone()), Delta::Group)),
                    Err(IdpError::NotFound(_)) => Ok(Delta::GroupGone(id.clone())),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

impl Directory for OktaDirectory {
    fn source(&self) -> String {
        format!("okta:{}", self.client.base())
    }

    async fn start_cursor(&self) -> Result<String, IdpError> {
        Ok((crate::clock::wall() - SKEW_MARGIN)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }

    async fn read_page(&self, resume: Option<&str>) -> Result<Page, IdpError> {
        let (phase, target) = resume_at(resume);
        let target = target.map_or_else(|| self.first(phase, None), str::to_string);
        let reply = self.read(&target).await?;
        let items = reply.items("Okta", &target, "", false)?;
        let mut page = Page::default();
        if phase == USERS {
            page.people = self.people(&items).await?;
            page.next = Some(match reply.link_next {
                Some(next) => format!("{USERS} {next}"),
                None => format!("{GROUPS} {}", self.first(GROUPS, None)),
            });
        } else {
            page.groups = self.groups(&items).await?;
            page.next = reply.link_next.map(|next| format!("{GROUPS} {next}"));
        }
        Ok(page)
    }

    /// People and groups whose `lastUpdated` (or a group's `lastMembershipUpdated`) is after
    /// the cursor. Deprovisioned people come back inactive; deleted groups are not visible
    /// this way and leave with the next full read.
    async fn changes_since(&self, cursor: &str) -> Result<Changes, IdpError> {
        if chrono::DateTime::parse_from_rfc3339(cursor).is_err() {
            return Err(IdpError::CursorExpired(format!(
                "`{cursor}` is not an Okta time"
            )));
        }
        let next_cursor = self.start_cursor().await?;
        let since = quoted(cursor);
        let users = self
            .read_all(&self.first(USERS, Some(&format!("lastUpdated gt {since}"))))
            .await?;
        let groups = self
            .read_all(&self.first(
                GROUPS,
                Some(&format!(
                    "lastUpdated gt {since} or lastMembershipUpdated gt {since}"
                )),
            ))
            .await?;
        let mut deltas: Vec<Delta> = self
            .people(&users)
            .await?
            .into_iter()
            .map(Delta::Person)
            .collect();
        deltas.extend(self.groups(&groups).await?.into_iter().map(Delta::Group));
        Ok(Changes {
            deltas,
            cursor: next_cursor,
        })
    }
}

impl GroupWriter for OktaDirectory {
    async fn set_member(
        &self,
        group: &str,
        person: &PersonId,
        member: bool,
    ) -> Result<Change, IdpError> {
        let found = self.group_named(group).await?;
        let kind = found["type"].as_str().unwrap_or("OKTA_GROUP");
        if kind != "OKTA_GROUP" {
            let reason = match kind {
                "APP_GROUP" => {
                    "it is imported from an application (APP_GROUP); change it at its source"
                }
                "BUILT_IN" => "it is one of Okta's built-in groups (BUILT_IN)",
                _ => "Okta allows membership changes on OKTA_GROUP groups only",
            };
            return Err(IdpError::GroupNotWritable {
                group: group.to_string(),
                reason: reason.to_string(),
            });
        }
        let group_id = found["id"].as_str().unwrap_or_default();
        let person_path = rfc3986(&person.0);
        let current = self
            .read_all(&format!("/api/v1/users/{person_path}/groups"))
            .await
            .map_err(|e| match e {
                IdpError::NotFound(_) => IdpError::NotFound(format!("Okta user `{}`", person.0)),
                other => other,
            })?;
        let present = current.iter().any(|g| g["id"].as_str() == Some(group_id));
        if present == member {
            return Ok(Change::AlreadyInPlace);
        }
        let method = if member { Method::PUT } else { Method::DELETE };
        let target = format!("/api/v1/groups/{}/users/{person_path}", rfc3986(group_id));
        let reply = self.client.send(method, &target, None, &[]).await?;
        match reply.status {
            204 | 200 => Ok(Change::Applied),
            404 if !member => Ok(Change::AlreadyInPlace),
            404 => Err(IdpError::NotFound(format!(
                "Okta group `{group}` or user `{}`: {}",
                person.0,
                error_message(&reply.body)
            ))),
            400 | 403 => Err(IdpError::GroupNotWritable {
                group: group.to_string(),
                reason: error_message(&reply.body),
            }),
            401 => Err(IdpError::Config(format!(
                "Okta refused the credential: {}",
                error_message(&reply.body)
            ))),
            status => Err(IdpError::Refused(format!(
                "changing `{group}` ({status}): {}",
                error_message(&reply.body)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_user_reads_as_a_person() {
        let user = json!({"id": "00u2", "status": "SUSPENDED", "profile": {
            "login": "Dev@Acme.test", "firstName": "Dee", "lastName": "Veloper",
            "title": "Engineer", "department": "R&D", "costCenter": "42",
            "managerId": "00u1", "userType": "Contractor", "employeeNumber": "7"}});
        let person = OktaDirectory::person(&user).expect("a person");
        assert_eq!(person.id, PersonId("00u2".into()));
        assert_eq!(person.email.to_string(), "dev@acme.test");
        assert_eq!(person.display_name, "Dee Veloper");
        assert_eq!(person.manager, Some(PersonId("00u1".into())));
        assert!(!person.active, "suspended");
        assert_eq!(person.employment_type, EmploymentType::Contractor);
        assert_eq!(person.attributes["employee_number"], "7");
        assert_eq!(person.attributes["okta_status"], "SUSPENDED");
        assert!(OktaDirectory::person(&json!({"id": "00u3", "profile": {}})).is_none());
    }

    #[test]
    fn manager_sources_parse() {
        assert_eq!(
            ManagerSource::parse("managerId"),
            Ok(ManagerSource::ManagerId)
        );
        assert_eq!(
            ManagerSource::parse("linked:manager"),
            Ok(ManagerSource::Linked("manager".into()))
        );
        assert!(ManagerSource::parse("linked:").is_err());
        assert!(ManagerSource::parse("linked:a/b").is_err());
        assert!(ManagerSource::parse("boss").is_err());
    }
}
