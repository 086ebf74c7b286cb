//! A stateful fake of Microsoft Graph (users, groups) and its token endpoint, as documented
//! (API-NOTES §4.2, §3; no Graph spec is kept here, so calls are not contract-checked):
//! - `@odata.nextLink` paging with `$skiptoken`, `$top` ≤ 999, silently at most 100 with
//!   `$expand` (a documented known issue);
//! - `$expand=manager($select=id)`; `$filter=displayName eq '…'` on groups; `$search` and
//!   `$count` refused without `ConsistencyLevel: eventual`;
//! - `users/delta` and `groups/delta`: `$deltatoken=latest`, changes since a token (paged by
//!   `nextLink`, ending in `@odata.deltaLink`), `@removed` for deleted objects,
//!   `members@delta` for membership; tokens can be expired (400 `syncStateNotFound`);
//! - `POST members/$ref` → 204, twice → 400 "already exist"; `DELETE …/$ref` → 204, not a
//!   member → 404; on-premises-synced groups refused;
//! - client-credentials tokens; `{"error": {"code", "message"}}` bodies.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::contract::Contract;
use super::harness::{Callback, FakeRequest, FakeResponse, Fault, Vendor};

#[derive(Debug, Clone)]
pub struct GraphUser {
    pub id: String,
    pub display_name: String,
    pub user_principal_name: String,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub manager: Option<String>,
    pub account_enabled: bool,
}

#[derive(Debug, Clone)]
pub struct GraphGroup {
    pub id: String,
    pub display_name: String,
    pub group_types: Vec<String>,
    pub on_premises_sync: bool,
    pub members: BTreeSet<String>,
    pub owners: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Changed {
    User(String),
    UserGone(String),
    Group(String),
    GroupGone(String),
}

pub struct FakeGraph {
    pub tenant: String,
    pub users: BTreeMap<String, GraphUser>,
    pub groups: BTreeMap<String, GraphGroup>,
    /// Client id → secret.
    clients: HashMap<String, String>,
    issued: Vec<(String, DateTime<Utc>)>,
    changes: Vec<Changed>,
    /// Delta tokens carry this; bumping it expires every token handed out.
    epoch: usize,
    /// Items per delta page, small so tests see `nextLink` in a delta.
    pub delta_page: usize,
    next_id: u64,
    /// Change-notification subscriptions, by id.
    pub subscriptions: BTreeMap<String, Subscription>,
}

/// A change-notification subscription (API-NOTES §4; Graph validates the notification URL
/// before it answers, and keeps a user or group subscription at most 41,760 minutes).
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub resource: String,
    pub change_type: String,
    pub notification_url: String,
    pub client_state: Option<String>,
    pub expires: DateTime<Utc>,
}

/// The longest a `users` or `groups` subscription may live.
pub const MAX_SUBSCRIPTION_MINUTES: i64 = 41_760;

impl Subscription {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "resource": self.resource,
            "changeType": self.change_type,
            "notificationUrl": self.notification_url,
            "clientState": self.client_state,
            "expirationDateTime": self.expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })
    }
}

pub fn graph_error(status: u16, code: &str, message: &str) -> FakeResponse {
    FakeResponse::json(
        status,
        json!({"error": {"code": code, "message": message,
            "innerError": {"date": Utc::now().to_rfc3339(), "request-id": uuid::Uuid::new_v4().to_string()}}}),
    )
}

fn not_found(id: &str) -> FakeResponse {
    graph_error(
        404,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

impl FakeGraph {
    pub fn new(tenant: &str) -> Self {
        Self {
            tenant: tenant.to_string(),
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            clients: HashMap::new(),
            issued: Vec::new(),
            changes: Vec::new(),
            epoch: 0,
            delta_page: 2,
            next_id: 0,
            subscriptions: BTreeMap::new(),
        }
    }

    pub fn client(mut self, client_id: &str, secret: &str) -> Self {
        self.clients
            .insert(client_id.to_string(), secret.to_string());
        self
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        // Graph's object ids are GUIDs; these sort in creation order.
        format!("00000000-0000-4000-8000-{:012}", self.next_id)
    }

    pub fn add_user(
        &mut self,
        upn: &str,
        name: &str,
        manager: Option<&str>,
        title: &str,
    ) -> String {
        let id = self.new_id();
        self.users.insert(
            id.clone(),
            GraphUser {
                id: id.clone(),
                display_name: name.to_string(),
                user_principal_name: upn.to_string(),
                job_title: Some(title.to_string()),
                department: None,
                manager: manager.map(str::to_string),
                account_enabled: true,
            },
        );
        self.changes.push(Changed::User(id.clone()));
        id
    }

    pub fn add_group(&mut self, name: &str, members: &[&str]) -> String {
        let id = self.new_id();
        self.groups.insert(
            id.clone(),
            GraphGroup {
                id: id.clone(),
                display_name: name.to_string(),
                group_types: Vec::new(),
                on_premises_sync: false,
                members: members.iter().map(|m| m.to_string()).collect(),
                owners: Vec::new(),
            },
        );
        self.changes.push(Changed::Group(id.clone()));
        id
    }

    pub fn update_user(&mut self, id: &str, change: impl FnOnce(&mut GraphUser)) {
        if let Some(user) = self.users.get_mut(id) {
            change(user);
            self.changes.push(Changed::User(id.to_string()));
        }
    }

    pub fn delete_user(&mut self, id: &str) {
        if self.users.remove(id).is_some() {
            for group in self.groups.values_mut() {
                group.members.remove(id);
            }
            self.changes.push(Changed::UserGone(id.to_string()));
        }
    }

    pub fn delete_group(&mut self, id: &str) {
        if self.groups.remove(id).is_some() {
            self.changes.push(Changed::GroupGone(id.to_string()));
        }
    }

    /// Every delta link handed out so far stops working (Graph keeps them about 7 days).
    pub fn expire_delta_links(&mut self) {
        self.epoch += 1;
    }

    fn user_json(&self, user: &GraphUser, expand_manager: bool) -> Value {
        let mut value = json!({
            "id": user.id, "displayName": user.display_name,
            "userPrincipalName": user.user_principal_name, "mail": user.user_principal_name,
            "jobTitle": user.job_title, "department": user.department,
            "accountEnabled": user.account_enabled, "employeeId": null, "employeeType": null,
            "companyName": null, "employeeOrgData": null,
        });
        if expand_manager && let Some(manager) = &user.manager {
            value["manager"] = json!({"@odata.type": "#microsoft.graph.user", "id": manager});
        }
        value
    }

    fn group_json(group: &GraphGroup) -> Value {
        json!({
            "id": group.id, "displayName": group.display_name, "groupTypes": group.group_types,
            "onPremisesSyncEnabled": if group.on_premises_sync { json!(true) } else { Value::Null },
            "mailEnabled": false, "securityEnabled": true,
        })
    }

    fn token(&mut self, request: &FakeRequest, now: DateTime<Utc>) -> FakeResponse {
        let form: HashMap<String, String> = request.form().into_iter().collect();
        let refuse = |status: u16, error: &str, description: &str| {
            FakeResponse::json(
                status,
                json!({"error": error, "error_description": description}),
            )
        };
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return refuse(
                400,
                "unsupported_grant_type",
                "AADSTS70003: grant type not supported.",
            );
        }
        if form.get("scope").map(String::as_str) != Some("https://graph.microsoft.com/.default") {
            return refuse(
                400,
                "invalid_scope",
                "AADSTS1002012: The provided value for scope is not valid.",
            );
        }
        let secret_ok = form
            .get("client_id")
            .and_then(|id| self.clients.get(id))
            .is_some_and(|secret| form.get("client_secret") == Some(secret));
        if !secret_ok {
            return refuse(
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided.",
            );
        }
        let token = format!("graph-{}", uuid::Uuid::new_v4().simple());
        self.issued
            .push((token.clone(), now + chrono::TimeDelta::hours(1)));
        FakeResponse::json(
            200,
            json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
        )
    }

    /// A page of a collection after `$skiptoken`, with `@odata.nextLink` when more follow.
    fn page(request: &FakeRequest, items: Vec<Value>, max: usize) -> FakeResponse {
        let top = match request.param("$top").map(str::parse::<usize>) {
            None => 100,
            Some(Ok(n)) if (1..=max).contains(&n) => n,
            Some(_) => {
                return graph_error(
                    400,
                    "Request_UnsupportedQuery",
                    "Invalid page size specified.",
                );
            }
        };
        // A known Graph limit: with `$expand` on directory objects a page holds at most 100,
        // whatever `$top` asked (the rest follows by nextLink).
        let top = if request.param("$expand").is_some() {
            top.min(100)
        } else {
            top
        };
        let skip = request
            .param("$skiptoken")
            .and_then(|t| B64.decode(t).ok())
            .and_then(|t| String::from_utf8(t).ok())
            .and_then(|t| t.parse::<usize>().ok())
            .unwrap_or(0);
        let more = items.len() > skip + top;
        let value: Vec<Value> = items.into_iter().skip(skip).take(top).collect();
        let mut body = json!({"@odata.context": format!("{}/v1.0/$metadata", request.base_url), "value": value});
        if more {
            let kept: Vec<String> = request
                .query
                .iter()
                .filter(|(k, _)| k != "$skiptoken")
                .map(|(k, v)| format!("{k}={}", tollgate::outbound::rfc3986(v)))
                .chain([format!(
                    "$skiptoken={}",
                    B64.encode((skip + top).to_string())
                )])
                .collect();
            body["@odata.nextLink"] = json!(format!(
                "{}{}?{}",
                request.base_url,
                request.path,
                kept.join("&")
            ));
        }
        FakeResponse::json(200, body)
    }

    /// `users/delta` or `groups/delta`.
    fn delta(&self, request: &FakeRequest, users: bool) -> FakeResponse {
        let resource = if users { "users" } else { "groups" };
        let link = |token: String| {
            format!(
                "{}/v1.0/{resource}/delta?$deltatoken={token}",
                request.base_url
            )
        };
        let epoch = self.epoch;
        let token_for = |at: usize, offset: usize| B64.encode(format!("{epoch}:{at}:{offset}"));
        let (since, offset) = match request
            .param("$deltatoken")
            .or_else(|| request.param("$skiptoken"))
        {
            Some("latest") => {
                return FakeResponse::json(
                    200,
                    json!({"value": [], "@odata.deltaLink": link(token_for(self.changes.len(), 0))}),
                );
            }
            Some(token) => {
                let parsed = B64
                    .decode(token)
                    .ok()
                    .and_then(|t| String::from_utf8(t).ok())
                    .and_then(|t| {
                        let mut parts = t.split(':').map(str::parse::<usize>);
                        Some((
                            parts.next()?.ok()?,
                            parts.next()?.ok()?,
                            parts.next()?.ok()?,
                        ))
                    });
                match parsed {
                    Some((e, at, offset)) if e == epoch && at <= self.changes.len() => (at, offset),
                    Some(_) => {
                        return graph_error(
                            400,
                            "syncStateNotFound",
                            "The sync state generated for this request is not found. Restart the sync from the beginning.",
                        );
                    }
                    None => return graph_error(400, "badRequest", "Invalid delta token."),
                }
            }
            // A first round from nothing: everything, as changes.
            None => (0, 0),
        };
        let mut ids: Vec<(String, bool)> = Vec::new();
        for change in &self.changes[since..] {
            let (id, removed) = match (change, users) {
                (Changed::User(id), true) | (Changed::Group(id), false) => (id, false),
                (Changed::UserGone(id), true) | (Changed::GroupGone(id), false) => (id, true),
                _ => continue,
            };
            ids.retain(|(seen, _)| seen != id);
            ids.push((id.clone(), removed));
        }
        let value: Vec<Value> = ids
            .iter()
            .skip(offset)
            .take(self.delta_page)
            .map(|(id, removed)| {
                if *removed {
                    json!({"id": id, "@removed": {"reason": "deleted"}})
                } else if users {
                    self.users.get(id).map_or(json!({"id": id}), |u| {
                        let mut v = json!({"id": id, "displayName": u.display_name});
                        if let Some(m) = &u.manager {
                            v["manager@delta"] = json!([{"@odata.type": "#microsoft.graph.user", "id": m}]);
                        }
                        v
                    })
                } else {
                    self.groups.get(id).map_or(json!({"id": id}), |g| {
                        json!({"id": id, "displayName": g.display_name,
                            "members@delta": g.members.iter().map(|m| json!({"@odata.type": "#microsoft.graph.user", "id": m})).collect::<Vec<_>>()})
                    })
                }
            })
            .collect();
        let next = offset + self.delta_page;
        let body = if next < ids.len() {
            json!({"value": value, "@odata.nextLink": format!("{}/v1.0/{resource}/delta?$skiptoken={}", request.base_url, token_for(since, next))})
        } else {
            json!({"value": value, "@odata.deltaLink": link(token_for(self.changes.len(), 0))})
        };
        FakeResponse::json(200, body)
    }

    fn route(&mut self, request: &FakeRequest) -> FakeResponse {
        let Some(segments) = request.segments_after("/v1.0/") else {
            return graph_error(404, "BadRequest", "Resource not found for the segment.");
        };
        let eventual = request
            .headers
            .get("consistencylevel")
            .and_then(|v| v.to_str().ok())
            == Some("eventual");
        if (request.param("$search").is_some() || request.param("$count").is_some()) && !eventual {
            return graph_error(
                400,
                "Request_UnsupportedQuery",
                "Request with $search or $count requires a 'ConsistencyLevel:eventual' header.",
            );
        }
        let expand_manager = request
            .param("$expand")
            .is_some_and(|e| e.starts_with("manager"));
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["users"]) => {
                let items = self
                    .users
                    .values()
                    .map(|u| self.user_json(u, expand_manager))
                    .collect();
                Self::page(request, items, 999)
            }
            ("GET", ["users", "delta"]) => self.delta(request, true),
            ("GET", ["users", id]) => match self.users.get(*id) {
                Some(u) => FakeResponse::json(200, self.user_json(u, expand_manager)),
                None => not_found(id),
            },
            ("GET", ["groups"]) => {
                let name = match request.param("$filter") {
                    None => None,
                    Some(filter) => match filter
                        .strip_prefix("displayName eq '")
                        .and_then(|f| f.strip_suffix('\''))
                    {
                        Some(name) => Some(name.replace("''", "'")),
                        None => {
                            return graph_error(
                                400,
                                "Request_UnsupportedQuery",
                                "Unsupported or invalid query filter clause specified.",
                            );
                        }
                    },
                };
                let items = self
                    .groups
                    .values()
                    .filter(|g| name.as_ref().is_none_or(|n| &g.display_name == n))
                    .map(Self::group_json)
                    .collect();
                Self::page(request, items, 999)
            }
            ("GET", ["groups", "delta"]) => self.delta(request, false),
            ("GET", ["groups", id]) => match self.groups.get(*id) {
                Some(g) => FakeResponse::json(200, Self::group_json(g)),
                None => not_found(id),
            },
            ("GET", ["groups", id, relation @ ("members" | "owners")]) => {
                match self.groups.get(*id) {
                    Some(g) => {
                        let ids: Vec<&String> = if *relation == "members" {
                            g.members.iter().collect()
                        } else {
                            g.owners.iter().collect()
                        };
                        let items = ids
                            .into_iter()
                            .map(|m| json!({"@odata.type": "#microsoft.graph.user", "id": m}))
                            .collect();
                        Self::page(request, items, 999)
                    }
                    None => not_found(id),
                }
            }
            ("POST", ["groups", id, "members", "$ref"]) => {
                let Some(reference) = request.body.as_ref().and_then(|b| b["@odata.id"].as_str())
                else {
                    return graph_error(400, "Request_BadRequest", "Invalid object identifier ''.");
                };
                let user = reference.rsplit('/').next().unwrap_or_default().to_string();
                if !self.users.contains_key(&user) {
                    return not_found(&user);
                }
                let Some(group) = self.groups.get_mut(*id) else {
                    return not_found(id);
                };
                if group.on_premises_sync {
                    return graph_error(
                        400,
                        "Request_BadRequest",
                        "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.",
                    );
                }
                if !group.members.insert(user) {
                    return graph_error(
                        400,
                        "Request_BadRequest",
                        "One or more added object references already exist for the following modified properties: 'members'.",
                    );
                }
                self.changes.push(Changed::Group(id.to_string()));
                FakeResponse::empty(204)
            }
            ("DELETE", ["groups", id, "members", user, "$ref"]) => {
                let Some(group) = self.groups.get_mut(*id) else {
                    return not_found(id);
                };
                if group.on_premises_sync {
                    return graph_error(
                        400,
                        "Request_BadRequest",
                        "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.",
                    );
                }
                if !group.members.remove(*user) {
                    return not_found(user);
                }
                self.changes.push(Changed::Group(id.to_string()));
                FakeResponse::empty(204)
            }
            ("POST", ["subscriptions"]) => self.subscribe(request),
            ("PATCH", ["subscriptions", id]) => {
                let expires = request
                    .body
                    .as_ref()
                    .and_then(|b| b["expirationDateTime"].as_str())
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc));
                let Some(expires) = expires else {
                    return graph_error(400, "InvalidRequest", "expirationDateTime is required.");
                };
                if let Some(refused) = too_far(expires) {
                    return refused;
                }
                match self.subscriptions.get_mut(*id) {
                    Some(subscription) => {
                        subscription.expires = expires;
                        FakeResponse::json(200, subscription.json())
                    }
                    None => graph_error(
                        404,
                        "ResourceNotFound",
                        &format!("The object was not found: subscription '{id}'."),
                    ),
                }
            }
            _ => graph_error(
                400,
                "BadRequest",
                &format!("Resource not found for the segment '{}'.", request.path),
            ),
        }
    }

    fn subscribe(&mut self, request: &FakeRequest) -> FakeResponse {
        let body = request.body.clone().unwrap_or_default();
        let text = |key: &str| body[key].as_str().unwrap_or_default().to_string();
        let (resource, change_type, url) = (
            text("resource"),
            text("changeType"),
            text("notificationUrl"),
        );
        if !matches!(resource.as_str(), "users" | "groups") {
            return graph_error(
                400,
                "InvalidRequest",
                "Resource not supported by this fake.",
            );
        }
        if change_type.is_empty()
            || change_type
                .split(',')
                .any(|c| !matches!(c, "created" | "updated" | "deleted"))
        {
            return graph_error(400, "InvalidRequest", "changeType is not valid.");
        }
        let expires = DateTime::parse_from_rfc3339(&text("expirationDateTime"))
            .map(|t| t.with_timezone(&Utc));
        let Ok(expires) = expires else {
            return graph_error(400, "InvalidRequest", "expirationDateTime is required.");
        };
        if let Some(refused) = too_far(expires) {
            return refused;
        }
        if request.callback_answered != Some(true) {
            return graph_error(
                400,
                "ValidationError",
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
            );
        }
        let subscription = Subscription {
            id: uuid::Uuid::new_v4().to_string(),
            resource,
            change_type,
            notification_url: url,
            client_state: body["clientState"].as_str().map(str::to_string),
            expires,
        };
        let answer = subscription.json();
        self.subscriptions
            .insert(subscription.id.clone(), subscription);
        FakeResponse::json(201, answer)
    }
}

fn too_far(expires: DateTime<Utc>) -> Option<FakeResponse> {
    (expires > Utc::now() + chrono::TimeDelta::minutes(MAX_SUBSCRIPTION_MINUTES)).then(|| {
        graph_error(
            400,
            "InvalidRequest",
            &format!(
                "Subscription expiration can only be {MAX_SUBSCRIPTION_MINUTES} minutes in the future."
            ),
        )
    })
}

impl Vendor for FakeGraph {
    fn contract(&self) -> Option<&'static Contract> {
        None
    }

    fn checked(&self, _: &str) -> bool {
        false
    }

    fn callback(&mut self, request: &FakeRequest) -> Option<Callback> {
        if request.method != "POST" || request.path != "/v1.0/subscriptions" {
            return None;
        }
        let url = request.body.as_ref()?["notificationUrl"]
            .as_str()?
            .to_string();
        Some(Callback {
            url,
            token: format!("Validation: {}", uuid::Uuid::new_v4()),
        })
    }

    fn handle(&mut self, request: &FakeRequest, now: DateTime<Utc>) -> FakeResponse {
        if request.method == "POST" && request.path == format!("/{}/oauth2/v2.0/token", self.tenant)
        {
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
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
            );
        }
        self.route(request)
    }
}

/// Graph's 429 for the next `times` calls under `path_prefix`, with `Retry-After`.
pub fn throttled(path_prefix: &str, times: usize, retry_after_seconds: u64) -> Fault {
    Fault::new(
        path_prefix,
        times,
        graph_error(
            429,
            "TooManyRequests",
            "Too many requests, please retry later.",
        )
        .header("Retry-After", retry_after_seconds.to_string()),
    )
}
