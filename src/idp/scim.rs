//! Any SCIM 2.0 service provider (RFC 7643/7644): Users with the enterprise extension's
//! `manager` and `department`, Groups with `members`; `startIndex`/`count` pages; incremental
//! by `meta.lastModified` where the server filters on it (else a full read); membership by
//! PATCH with `If-Match`, re-read on 412.

pub use crate::config::idp::ScimConfig;
use reqwest::Method;
use serde_json::{Value, json};

use super::rest::{Credential, Reply, RestClient, Vendor};
use super::{Changes, Delta, Directory, GroupWriter, IdpError, Page};
use crate::change::Change;
use crate::config::Secret;
use crate::orgchart::{Email, EmploymentType, Group, Person, PersonId};
use crate::outbound::vendor_message;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SKEW_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// How an answer that ends the list before its own count is described.
const EARLY_END: &str = "an empty page";
/// Attempts of a PATCH whose `If-Match` lost a race with another writer.
const PATCH_ATTEMPTS: usize = 3;

#[derive(Debug)]
pub struct ScimDirectory {
    config: ScimConfig,
    client: RestClient,
}

impl ScimDirectory {
    pub fn new(config: ScimConfig) -> Self {
        let token = Secret::new(format!("Bearer {}", config.token.expose()));
        Self {
            client: RestClient::new(Vendor::Scim, &config.url, Credential::Header(token)),
            config,
        }
    }

    /// One request with the shared client's retries on 429/5xx (honouring `Retry-After`);
    /// any other status is returned for the caller to interpret.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, IdpError> {
        let mut headers = vec![("accept", "application/scim+json, application/json")];
        if body.is_some() {
            headers.push(("content-type", "application/scim+json"));
        }
        if let Some(tag) = if_match {
            headers.push(("if-match", tag));
        }
        self.client.send(method, path, body, &headers).await
    }

    fn person(user: &Value) -> Option<Person> {
        let email = user["emails"]
            .as_array()
            .and_then(|emails| {
                emails
                    .iter()
                    .find(|e| e["primary"] == true)
                    .or_else(|| emails.first())
            })
            .and_then(|e| e["value"].as_str())
            .or_else(|| user["userName"].as_str())
            .and_then(|e| Email::parse(e).ok())?;
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let enterprise = &user[ENTERPRISE];
        let mut attributes = std::collections::BTreeMap::new();
        if let Some(n) = text(&enterprise["employeeNumber"]) {
            attributes.insert("employee_number".to_string(), n);
        }
        Some(Person {
            id: PersonId(user["id"].as_str()?.to_string()),
            display_name: text(&user["displayName"])
                .or_else(|| text(&user["name"]["formatted"]))
                .unwrap_or_else(|| email.to_string()),
            email,
            title: text(&user["title"]),
            department: text(&enterprise["department"]),
            cost_center: text(&enterprise["costCenter"]),
            manager: text(&enterprise["manager"]["value"]).map(PersonId),
            active: user["active"].as_bool().unwrap_or(true),
            employment_type: text(&user["userType"])
                .map(|t| EmploymentType::parse(&t))
                .unwrap_or(EmploymentType::FullTime),
            atlassian_account_id: None,
            attributes,
        })
    }

    fn group(group: &Value) -> Option<Group> {
        Some(Group {
            id: group["id"].as_str()?.to_string(),
            name: group["displayName"].as_str()?.to_string(),
            members: group["members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["type"].as_str().is_none_or(|t| t == "User"))
                .filter_map(|m| m["value"].as_str())
                .map(|id| PersonId(id.to_string()))
                .collect(),
            owners: Vec::new(),
        })
    }

    fn list_path(&self, resource: &str, start: u64, filter: Option<&str>) -> String {
        let mut path = format!(
            "/{resource}?startIndex={start}&count={}",
            self.config.page_size
        );
        if let Some(filter) = filter {
            path.push_str("&filter=");
            path.push_str(&crate::outbound::rfc3986(filter));
        }
        path
    }

    /// One list page: its resources and the next `startIndex`, if any. A page that ends the
    /// list before its own `totalResults` (a directory changing under a long read can do that
    /// once) is read once more before the read fails.
    async fn list(
        &self,
        resource: &str,
        start: u64,
        filter: Option<&str>,
    ) -> Result<(Vec<Value>, Option<u64>), IdpError> {
        match self.list_once(resource, start, filter).await {
            Err(IdpError::Unreadable(why)) if why.contains(EARLY_END) => {
                tracing::warn!(%why, "SCIM page ended the list early; reading it again");
                self.list_once(resource, start, filter).await
            }
            other => other,
        }
    }

    async fn list_once(
        &self,
        resource: &str,
        start: u64,
        filter: Option<&str>,
    ) -> Result<(Vec<Value>, Option<u64>), IdpError> {
        let path = self.list_path(resource, start, filter);
        let reply = self.call(Method::GET, &path, None, None).await?;
        if reply.status == 400 && filter.is_some() {
            return Err(IdpError::CursorExpired(format!(
                "the SCIM server does not filter {resource} by meta.lastModified: {}",
                message(&reply.body)
            )));
        }
        match reply.status {
            200 => {}
            401 | 403 => {
                return Err(IdpError::Config(format!(
                    "SCIM refused the token ({}): {}",
                    reply.status,
                    message(&reply.body)
                )));
            }
            _ => {
                return Err(IdpError::Refused(format!(
                    "SCIM {path}: {}",
                    message(&reply.body)
                )));
            }
        }
        let unreadable = |what: String| IdpError::Unreadable(format!("SCIM {path}: {what}"));
        let Some(total) = reply.body["totalResults"].as_u64() else {
            return Err(unreadable(
                "no totalResults: not a SCIM list response".into(),
            ));
        };
        // RFC 7644 §3.4.2: `Resources` may be left out only when there is nothing to list.
        let resources = match &reply.body["Resources"] {
            Value::Array(items) => items.clone(),
            Value::Null if total == 0 || start > total => Vec::new(),
            _ => return Err(unreadable("`Resources` is not a list".into())),
        };
        let read_to = start + resources.len() as u64;
        if resources.is_empty() && start <= total {
            // A page that ends the list early would make everyone after it a leaver.
            return Err(unreadable(format!(
                "{EARLY_END} at startIndex {start} of totalResults {total}"
            )));
        }
        let next = (read_to <= total).then_some(read_to);
        Ok((resources, next))
    }

    async fn group_by_name(&self, name: &str) -> Result<(Value, Option<String>), IdpError> {
        let filter = format!(
            "displayName eq \"{}\"",
            name.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let (found, _) = self
            .list("Groups", 1, Some(&filter))
            .await
            .map_err(|e| match e {
                IdpError::CursorExpired(m) => IdpError::Refused(m),
                other => other,
            })?;
        let id = found
            .first()
            .and_then(|g| g["id"].as_str())
            .ok_or_else(|| IdpError::NotFound(format!("SCIM group `{name}`")))?;
        let reply = self
            .call(Method::GET, &format!("/Groups/{id}"), None, None)
            .await?;
        if reply.status != 200 {
            return Err(IdpError::NotFound(format!("SCIM group `{name}`")));
        }
        Ok((reply.body, reply.etag))
    }
}

fn message(body: &Value) -> String {
    vendor_message(&body.to_string()).unwrap_or_else(|| "no detail".into())
}

fn encode(resource: &str, start: u64) -> String {
    format!("{resource}:{start}")
}

impl Directory for ScimDirectory {
    fn source(&self) -> String {
        format!("scim:{}", self.config.url.trim_end_matches('/'))
    }

    async fn start_cursor(&self) -> Result<String, IdpError> {
        Ok((crate::clock::wall() - SKEW_MARGIN).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }

    async fn read_page(&self, resume: Option<&str>) -> Result<Page, IdpError> {
        let (resource, start) = resume
            .and_then(|r| r.split_once(':'))
            .and_then(|(r, s)| Some((r, s.parse::<u64>().ok()?)))
            .unwrap_or(("Users", 1));
        let resource = if resource == "Groups" {
            "Groups"
        } else {
            "Users"
        };
        let (items, next) = self.list(resource, start.max(1), None).await?;
        let mut page = Page::default();
        if resource == "Users" {
            page.people = items.iter().filter_map(Self::person).collect();
            page.next = Some(next.map_or_else(|| encode("Groups", 1), |n| encode("Users", n)));
        } else {
            page.groups = items.iter().filter_map(Self::group).collect();
            page.next = next.map(|n| encode("Groups", n));
        }
        Ok(page)
    }

    /// Users and groups whose `meta.lastModified` is after the cursor. Deletions are not
    /// visible this way; the periodic full sync takes them out.
    async fn changes_since(&self, cursor: &str) -> Result<Changes, IdpError> {
        let next_cursor = self.start_cursor().await?;
        let filter = format!("meta.lastModified gt \"{cursor}\"");
        let mut deltas = Vec::new();
        for resource in ["Users", "Groups"] {
            let mut start = Some(1);
            while let Some(at) = start {
                let (items, next) = self.list(resource, at, Some(&filter)).await?;
                for item in &items {
                    let delta = if resource == "Users" {
                        Self::person(item).map(Delta::Person)
                    } else {
                        Self::group(item).map(Delta::Group)
                    };
                    deltas.extend(delta);
                }
                start = next;
            }
        }
        Ok(Changes {
            deltas,
            cursor: next_cursor,
        })
    }
}

impl GroupWriter for ScimDirectory {
    async fn set_member(
        &self,
        group: &str,
        person: &PersonId,
        member: bool,
    ) -> Result<Change, IdpError> {
        for _ in 0..PATCH_ATTEMPTS {
            let (current, etag) = self.group_by_name(group).await?;
            let present = Self::group(&current).is_some_and(|g| g.members.contains(person));
            if present == member {
                return Ok(Change::AlreadyInPlace);
            }
            let id = current["id"].as_str().unwrap_or_default();
            let operation = if member {
                json!({"op": "add", "path": "members", "value": [{"value": person.0}]})
            } else {
                json!({"op": "remove", "path": format!("members[value eq \"{}\"]", person.0)})
            };
            let body = json!({"schemas": [PATCH_OP], "Operations": [operation]});
            let reply = self
                .call(
                    Method::PATCH,
                    &format!("/Groups/{id}"),
                    Some(&body),
                    etag.as_deref(),
                )
                .await?;
            match reply.status {
                200 | 204 => return Ok(Change::Applied),
                // Someone changed the group since we read it: read again.
                412 => continue,
                401 | 403 => {
                    return Err(IdpError::GroupNotWritable {
                        group: group.to_string(),
                        reason: message(&reply.body),
                    });
                }
                404 => return Err(IdpError::NotFound(format!("SCIM group `{group}`"))),
                _ => {
                    let detail = message(&reply.body);
                    let read_only = reply.body["scimType"] == "mutability";
                    return Err(if read_only {
                        IdpError::GroupNotWritable {
                            group: group.to_string(),
                            reason: detail,
                        }
                    } else {
                        IdpError::Refused(format!("changing `{group}`: {detail}"))
                    });
                }
            }
        }
        Err(IdpError::Unavailable(format!(
            "group `{group}` kept changing under us ({PATCH_ATTEMPTS} attempts)"
        )))
    }
}
