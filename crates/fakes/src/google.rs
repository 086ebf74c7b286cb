//! A stateful fake of Google's Admin SDK Directory API (users, groups, members) and its token
//! endpoint, as documented (API-NOTES §4.3, §3), every call checked against what
//! the discovery document says (`tests/contract/google.json`):
//! - `pageToken` → `nextPageToken`; `maxResults` at most 500 for users, 200 for groups and
//!   members; `customer` or `domain` required on lists;
//! - users with `relations[type=manager]` (by email) and `organizations`; `users/{key}` by id
//!   or email;
//! - groups `query=name='…'`; members with roles (owners are `OWNER` members);
//! - members insert → 200, twice → 409 "Member already exists."; delete → 204, not a member →
//!   404 "Resource Not Found: memberKey"; dynamic groups refused;
//! - a service account's JWT bearer grant at `/token`, for an admin it may act as;
//! - `{"error": {"code", "message", "errors": [{"reason", "domain", "message"}]}}` bodies.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::contract::Contract;
use super::harness::{FakeRequest, FakeResponse, Fault, Vendor};

const PREFIX: &str = "/admin/directory/v1/";

/// The operations this fake serves (besides its token endpoint), as the discovery document
/// names them: the contract data keeps what it says of each (`tests/contract/google.json`).
pub const OPERATIONS: &[(&str, &str)] = &[
    ("GET", "/admin/directory/v1/users"),
    ("GET", "/admin/directory/v1/users/{userKey}"),
    ("GET", "/admin/directory/v1/groups"),
    ("GET", "/admin/directory/v1/groups/{groupKey}/members"),
    ("POST", "/admin/directory/v1/groups/{groupKey}/members"),
    (
        "DELETE",
        "/admin/directory/v1/groups/{groupKey}/members/{memberKey}",
    ),
];

#[derive(Debug, Clone)]
pub struct GoogleUser {
    pub id: String,
    pub primary_email: String,
    pub full_name: String,
    pub title: Option<String>,
    pub manager_email: Option<String>,
    pub suspended: bool,
}

#[derive(Debug, Clone)]
pub struct GoogleGroup {
    pub id: String,
    pub email: String,
    pub name: String,
    /// Member user id → role (`OWNER`, `MANAGER`, `MEMBER`).
    pub members: BTreeMap<String, String>,
    pub dynamic: bool,
}

pub struct FakeGoogle {
    pub users: BTreeMap<String, GoogleUser>,
    pub groups: BTreeMap<String, GoogleGroup>,
    /// Service account email → (public key PEM, admins it may act as).
    accounts: HashMap<String, (String, Vec<String>)>,
    issued: Vec<(String, DateTime<Utc>)>,
    next_id: u64,
}

pub fn google_error(status: u16, reason: &str, message: &str) -> FakeResponse {
    FakeResponse::json(
        status,
        json!({"error": {"code": status, "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}]}}),
    )
}

impl Default for FakeGoogle {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeGoogle {
    pub fn new() -> Self {
        Self {
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            accounts: HashMap::new(),
            issued: Vec::new(),
            next_id: 100_000_000_000_000_000,
        }
    }

    pub fn service_account(mut self, email: &str, public_pem: &str, admins: &[&str]) -> Self {
        self.accounts.insert(
            email.to_string(),
            (
                public_pem.to_string(),
                admins.iter().map(|a| a.to_string()).collect(),
            ),
        );
        self
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    pub fn add_user(
        &mut self,
        email: &str,
        name: &str,
        manager_email: Option<&str>,
        title: &str,
    ) -> String {
        let id = self.new_id();
        self.users.insert(
            id.clone(),
            GoogleUser {
                id: id.clone(),
                primary_email: email.to_string(),
                full_name: name.to_string(),
                title: Some(title.to_string()),
                manager_email: manager_email.map(str::to_string),
                suspended: false,
            },
        );
        id
    }

    /// A group named `name` (email `name@acme.test`); the first of `members` is its owner.
    pub fn add_group(&mut self, name: &str, members: &[&str]) -> String {
        let id = format!("0{}", self.new_id());
        let members = members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                (
                    m.to_string(),
                    if i == 0 { "OWNER" } else { "MEMBER" }.to_string(),
                )
            })
            .collect();
        self.groups.insert(
            id.clone(),
            GoogleGroup {
                id: id.clone(),
                email: format!("{name}@acme.test"),
                name: name.to_string(),
                members,
                dynamic: false,
            },
        );
        id
    }

    fn user_by_key(&self, key: &str) -> Option<&GoogleUser> {
        self.users.get(key).or_else(|| {
            self.users
                .values()
                .find(|u| u.primary_email.eq_ignore_ascii_case(key))
        })
    }

    fn group_key(&self, key: &str) -> Option<String> {
        if self.groups.contains_key(key) {
            return Some(key.to_string());
        }
        self.groups
            .values()
            .find(|g| g.email.eq_ignore_ascii_case(key))
            .map(|g| g.id.clone())
    }

    fn user_json(user: &GoogleUser) -> Value {
        let mut value = json!({
            "kind": "admin#directory#user", "id": user.id, "primaryEmail": user.primary_email,
            "name": {"fullName": user.full_name}, "suspended": user.suspended, "archived": false,
            "orgUnitPath": "/", "isAdmin": false,
            "organizations": [{"title": user.title, "primary": true, "customType": ""}],
        });
        if let Some(manager) = &user.manager_email {
            value["relations"] = json!([{"value": manager, "type": "manager"}]);
        }
        value
    }

    fn token(&mut self, request: &FakeRequest, now: DateTime<Utc>) -> FakeResponse {
        let form: HashMap<String, String> = request.form().into_iter().collect();
        let refuse = |error: &str, description: &str| {
            FakeResponse::json(
                400,
                json!({"error": error, "error_description": description}),
            )
        };
        if form.get("grant_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        {
            return refuse("unsupported_grant_type", "Invalid grant_type.");
        }
        let Some(assertion) = form.get("assertion") else {
            return refuse("invalid_request", "Missing required parameter: assertion");
        };
        let audience = format!("{}/token", request.base_url);
        let verified = self.accounts.iter().find_map(|(email, (pem, admins))| {
            let key = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).ok()?;
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.set_audience(&[&audience]);
            validation.set_issuer(&[email]);
            let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
                .ok()?
                .claims;
            Some((claims, admins.clone()))
        });
        let Some((claims, admins)) = verified else {
            return refuse("invalid_grant", "Invalid JWT Signature.");
        };
        let subject_ok = claims["sub"]
            .as_str()
            .is_some_and(|s| admins.iter().any(|a| a == s));
        let scopes = claims["scope"].as_str().unwrap_or_default();
        let scopes_ok =
            scopes.contains("admin.directory.user") && scopes.contains("admin.directory.group");
        if !subject_ok || !scopes_ok {
            return FakeResponse::json(
                401,
                json!({"error": "unauthorized_client", "error_description": "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."}),
            );
        }
        let token = format!("ya29.{}", uuid::Uuid::new_v4().simple());
        self.issued
            .push((token.clone(), now + chrono::TimeDelta::hours(1)));
        FakeResponse::json(
            200,
            json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
        )
    }

    /// A page after `pageToken`, with `nextPageToken` when more follow.
    fn page(
        request: &FakeRequest,
        items: Vec<Value>,
        field: &str,
        kind: &str,
        max: usize,
    ) -> FakeResponse {
        let size = match request.param("maxResults").map(str::parse::<usize>) {
            None => 100.min(max),
            Some(Ok(n)) if (1..=max).contains(&n) => n,
            Some(_) => return google_error(400, "invalid", "Invalid value for: maxResults"),
        };
        let offset = match request.param("pageToken") {
            None => 0,
            Some(token) => match B64
                .decode(token)
                .ok()
                .and_then(|t| String::from_utf8(t).ok())
                .and_then(|t| t.parse::<usize>().ok())
            {
                Some(offset) => offset,
                None => return google_error(400, "invalid", "Invalid page token."),
            },
        };
        let more = items.len() > offset + size;
        let chosen: Vec<Value> = items.into_iter().skip(offset).take(size).collect();
        let mut body = json!({"kind": kind, field: chosen});
        if more {
            body["nextPageToken"] = json!(B64.encode((offset + size).to_string()));
        }
        FakeResponse::json(200, body)
    }

    fn route(&mut self, request: &FakeRequest) -> FakeResponse {
        let Some(segments) = request.segments_after(PREFIX) else {
            return google_error(404, "notFound", "Not Found");
        };
        let customer_given =
            request.param("customer").is_some() || request.param("domain").is_some();
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["users"]) => {
                if !customer_given {
                    return google_error(400, "badRequest", "Bad Request");
                }
                let items = self.users.values().map(Self::user_json).collect();
                Self::page(request, items, "users", "admin#directory#users", 500)
            }
            ("GET", ["users", key]) => match self.user_by_key(key) {
                Some(user) => FakeResponse::json(200, Self::user_json(user)),
                None => google_error(404, "notFound", "Resource Not Found: userKey"),
            },
            ("GET", ["groups"]) => {
                if !customer_given {
                    return google_error(400, "badRequest", "Bad Request");
                }
                let name = match request.param("query") {
                    None => None,
                    Some(query) => match query
                        .strip_prefix("name='")
                        .and_then(|q| q.strip_suffix('\''))
                    {
                        Some(name) => Some(name.replace("\\'", "'")),
                        None => return google_error(400, "invalid", "Invalid Input: query"),
                    },
                };
                let items = self
                    .groups
                    .values()
                    .filter(|g| name.as_ref().is_none_or(|n| &g.name == n))
                    .map(|g| {
                        json!({"kind": "admin#directory#group", "id": g.id, "email": g.email,
                            "name": g.name, "directMembersCount": g.members.len().to_string()})
                    })
                    .collect();
                Self::page(request, items, "groups", "admin#directory#groups", 200)
            }
            ("GET", ["groups", key, "members"]) => {
                let Some(group) = self.group_key(key).and_then(|k| self.groups.get(&k)) else {
                    return google_error(404, "notFound", "Resource Not Found: groupKey");
                };
                let items = group
                    .members
                    .iter()
                    .filter_map(|(id, role)| {
                        let user = self.users.get(id)?;
                        Some(json!({"kind": "admin#directory#member", "id": id,
                            "email": user.primary_email, "role": role, "type": "USER",
                            "status": "ACTIVE"}))
                    })
                    .collect();
                Self::page(request, items, "members", "admin#directory#members", 200)
            }
            ("POST", ["groups", key, "members"]) => {
                let wanted = request
                    .body
                    .as_ref()
                    .and_then(|b| b["id"].as_str().or_else(|| b["email"].as_str()))
                    .unwrap_or_default()
                    .to_string();
                let Some(user) = self.user_by_key(&wanted).map(|u| u.id.clone()) else {
                    return google_error(404, "notFound", "Resource Not Found: memberKey");
                };
                let role = request
                    .body
                    .as_ref()
                    .and_then(|b| b["role"].as_str())
                    .unwrap_or("MEMBER")
                    .to_string();
                let Some(group) = self.group_key(key).and_then(|k| self.groups.get_mut(&k)) else {
                    return google_error(404, "notFound", "Resource Not Found: groupKey");
                };
                if group.dynamic {
                    // [U] the wording of Google's refusal for dynamic groups.
                    return google_error(
                        400,
                        "invalid",
                        "Membership of a dynamic group is defined by its query and cannot be changed.",
                    );
                }
                if group.members.contains_key(&user) {
                    return google_error(409, "duplicate", "Member already exists.");
                }
                group.members.insert(user.clone(), role.clone());
                FakeResponse::json(
                    200,
                    json!({"kind": "admin#directory#member", "id": user, "role": role, "type": "USER", "status": "ACTIVE"}),
                )
            }
            ("DELETE", ["groups", key, "members", member]) => {
                let user = self.user_by_key(member).map(|u| u.id.clone());
                let Some(group) = self.group_key(key).and_then(|k| self.groups.get_mut(&k)) else {
                    return google_error(404, "notFound", "Resource Not Found: groupKey");
                };
                if group.dynamic {
                    return google_error(
                        400,
                        "invalid",
                        "Membership of a dynamic group is defined by its query and cannot be changed.",
                    );
                }
                match user.and_then(|u| group.members.remove(&u)) {
                    Some(_) => FakeResponse::empty(204),
                    None => google_error(404, "notFound", "Resource Not Found: memberKey"),
                }
            }
            _ => google_error(404, "notFound", "Not Found"),
        }
    }
}

impl Vendor for FakeGoogle {
    fn contract(&self) -> Option<&'static Contract> {
        Some(Contract::google())
    }

    fn checked(&self, path: &str) -> bool {
        path.starts_with(PREFIX)
    }

    fn handle(&mut self, request: &FakeRequest, now: DateTime<Utc>) -> FakeResponse {
        if request.method == "POST" && request.path == "/token" {
            return self.token(request, now);
        }
        let authorized = request
            .authorization
            .as_deref()
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|t| {
                self.issued
                    .iter()
                    .any(|(issued, until)| issued == t && now < *until)
            });
        if !authorized {
            return google_error(401, "authError", "Invalid Credentials");
        }
        self.route(request)
    }
}

/// Google's per-user rate limit answer (403 `userRateLimitExceeded`) for the next `times`
/// calls under `path_prefix`; it says nothing of when to come back.
pub fn rate_limited(path_prefix: &str, times: usize) -> Fault {
    let mut response = google_error(
        403,
        "userRateLimitExceeded",
        "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'.",
    );
    if let Some(errors) = response.body.as_mut() {
        errors["error"]["errors"][0]["domain"] = json!("usageLimits");
    }
    Fault::new(path_prefix, times, response)
}
