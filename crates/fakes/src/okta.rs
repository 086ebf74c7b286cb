//! A stateful fake of Okta's Management API, as documented (API-NOTES §4.1, §3):
//! - users, groups (`OKTA_GROUP`, `APP_GROUP`, `BUILT_IN`), members, owners, linked-object
//!   managers;
//! - `Link: <…?after=…>; rel="next"` paging with an opaque cursor, and a `rel="self"` link;
//! - `search` and `filter` on users and groups; a plain list omits DEPROVISIONED people, a
//!   search or filter does not;
//! - `X-Rate-Limit-Limit|Remaining|Reset` (epoch seconds) on **every** answer, per endpoint
//!   family and minute; over the limit, 429 with `E0000047` and no `Retry-After`;
//! - membership PUT/DELETE → 204, repeatable, only on `OKTA_GROUP`s;
//! - error bodies `{errorCode, errorSummary, errorLink, errorId, errorCauses}`;
//! - `SSWS` API tokens, and bearer tokens from `/oauth2/v1/token` for a service app that
//!   signs its client assertion (`private_key_jwt`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::contract::Contract;
use super::harness::{FakeRequest, FakeResponse, Fault, Vendor};
use tollgate::idp::rest::okta_family;

/// The operations this fake serves (besides its token endpoint), as Okta's spec names them:
/// the contract data keeps what the spec says of each (`tests/contract/okta.json`).
pub const OPERATIONS: &[(&str, &str)] = &[
    ("GET", "/api/v1/users"),
    ("GET", "/api/v1/users/{id}"),
    ("GET", "/api/v1/users/{id}/groups"),
    ("GET", "/api/v1/users/{id}/linkedObjects/{relationshipName}"),
    ("GET", "/api/v1/groups"),
    ("GET", "/api/v1/groups/{groupId}"),
    ("GET", "/api/v1/groups/{groupId}/users"),
    ("GET", "/api/v1/groups/{groupId}/owners"),
    ("PUT", "/api/v1/groups/{groupId}/users/{userId}"),
    ("DELETE", "/api/v1/groups/{groupId}/users/{userId}"),
];

#[derive(Debug, Clone)]
pub struct OktaUser {
    pub id: String,
    pub status: String,
    pub login: String,
    pub first_name: String,
    pub last_name: String,
    pub title: Option<String>,
    pub department: Option<String>,
    pub manager_id: Option<String>,
    pub user_type: Option<String>,
    pub last_updated: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct OktaGroup {
    pub id: String,
    pub name: String,
    /// `OKTA_GROUP`, `APP_GROUP` or `BUILT_IN`.
    pub kind: String,
    pub members: BTreeSet<String>,
    pub owners: Vec<String>,
    pub last_updated: DateTime<Utc>,
    pub last_membership_updated: DateTime<Utc>,
}

/// A request budget per endpoint family and minute.
#[derive(Debug, Clone, Default)]
struct Window {
    minute: i64,
    used: u32,
    /// The reset a 429 announced; a call before it ignored the back-off.
    backoff_until: Option<i64>,
}

/// What the rate limits saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitCounters {
    pub throttled: usize,
    /// Calls in a family after a 429 and before the reset it announced.
    pub early: usize,
}

pub struct FakeOkta {
    pub users: BTreeMap<String, OktaUser>,
    pub groups: BTreeMap<String, OktaGroup>,
    /// `(user, relationship)` → the manager's id (linked objects).
    pub linked: HashMap<(String, String), String>,
    api_tokens: Vec<String>,
    /// Service apps: client id → public key PEM.
    service_apps: HashMap<String, String>,
    issued: Vec<(String, DateTime<Utc>)>,
    /// Seconds a rate-limit window lasts (Okta's are a minute; tests shorten them).
    window_seconds: i64,
    /// Per family, requests a window; families not named get `default_limit`.
    limits: HashMap<String, u32>,
    default_limit: u32,
    windows: HashMap<String, Window>,
    pub counters: LimitCounters,
    next_id: u64,
}

/// Okta's documented error body.
pub fn okta_error(status: u16, code: &str, summary: &str) -> FakeResponse {
    FakeResponse::json(
        status,
        json!({"errorCode": code, "errorSummary": summary, "errorLink": code,
            "errorId": format!("oae{}", uuid::Uuid::new_v4().simple()), "errorCauses": []}),
    )
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Default for FakeOkta {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeOkta {
    pub fn new() -> Self {
        Self {
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            linked: HashMap::new(),
            api_tokens: Vec::new(),
            service_apps: HashMap::new(),
            issued: Vec::new(),
            limits: HashMap::new(),
            default_limit: 1_000_000,
            window_seconds: 60,
            windows: HashMap::new(),
            counters: LimitCounters::default(),
            next_id: 0,
        }
    }

    pub fn api_token(mut self, token: &str) -> Self {
        self.api_tokens.push(token.to_string());
        self
    }

    pub fn service_app(mut self, client_id: &str, public_key_pem: &str) -> Self {
        self.service_apps
            .insert(client_id.to_string(), public_key_pem.to_string());
        self
    }

    /// Limits like a default Okta org's, per minute: users 600, one user and below 600,
    /// groups 500, one group and below (members, owners, membership) 1000.
    pub fn default_like_limits(mut self) -> Self {
        self.limits = HashMap::from([
            ("/api/v1/users".to_string(), 600),
            ("/api/v1/users/{id}".to_string(), 600),
            ("/api/v1/groups".to_string(), 500),
            ("/api/v1/groups/{id}".to_string(), 1000),
        ]);
        self.default_limit = 600;
        self
    }

    /// Every family gets `per_window` requests in windows of `seconds`.
    pub fn set_budget(&mut self, per_window: u32, seconds: i64) {
        self.limits.clear();
        self.default_limit = per_window;
        self.window_seconds = seconds.max(1);
    }

    pub fn limit(mut self, family: &str, per_minute: u32) -> Self {
        self.limits.insert(family.to_string(), per_minute);
        self
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        // Sorted like creation order, as Okta's ids page.
        format!("{prefix}{:017}", self.next_id)
    }

    /// Adds an active user; returns its id.
    pub fn add_user(
        &mut self,
        login: &str,
        name: &str,
        manager: Option<&str>,
        title: &str,
    ) -> String {
        let id = self.new_id("00u");
        let (first, last) = name.split_once(' ').unwrap_or((name, ""));
        self.users.insert(
            id.clone(),
            OktaUser {
                id: id.clone(),
                status: "ACTIVE".into(),
                login: login.to_string(),
                first_name: first.to_string(),
                last_name: last.to_string(),
                title: Some(title.to_string()),
                department: None,
                manager_id: manager.map(str::to_string),
                user_type: None,
                last_updated: Utc::now(),
            },
        );
        id
    }

    pub fn add_group(&mut self, name: &str, kind: &str, members: &[&str]) -> String {
        let id = self.new_id("00g");
        let now = Utc::now();
        self.groups.insert(
            id.clone(),
            OktaGroup {
                id: id.clone(),
                name: name.to_string(),
                kind: kind.to_string(),
                members: members.iter().map(|m| m.to_string()).collect(),
                owners: Vec::new(),
                last_updated: now,
                last_membership_updated: now,
            },
        );
        id
    }

    /// Changes a user's profile as an admin would (their `lastUpdated` moves).
    pub fn update_user(&mut self, id: &str, change: impl FnOnce(&mut OktaUser)) {
        if let Some(user) = self.users.get_mut(id) {
            change(user);
            user.last_updated = Utc::now();
        }
    }

    fn user_json(&self, user: &OktaUser, base: &str) -> Value {
        let mut profile = json!({
            "login": user.login, "email": user.login,
            "firstName": user.first_name, "lastName": user.last_name,
        });
        for (key, value) in [
            ("title", &user.title),
            ("department", &user.department),
            ("managerId", &user.manager_id),
            ("userType", &user.user_type),
        ] {
            if let Some(value) = value {
                profile[key] = json!(value);
            }
        }
        json!({
            "id": user.id, "status": user.status,
            "created": "2020-01-01T00:00:00.000Z", "activated": "2020-01-01T00:00:00.000Z",
            "statusChanged": null, "lastLogin": null,
            "lastUpdated": time(user.last_updated), "passwordChanged": null,
            "type": {"id": "oty00000000000000000"},
            "profile": profile,
            "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
            "_links": {"self": {"href": format!("{base}/api/v1/users/{}", user.id)}},
        })
    }

    fn group_json(group: &OktaGroup, base: &str) -> Value {
        json!({
            "id": group.id, "created": "2020-01-01T00:00:00.000Z",
            "lastUpdated": time(group.last_updated),
            "lastMembershipUpdated": time(group.last_membership_updated),
            "objectClass": ["okta:user_group"], "type": group.kind,
            "profile": {"name": group.name, "description": null},
            "_links": {"self": {"href": format!("{base}/api/v1/groups/{}", group.id)}},
        })
    }

    /// The rate limit: `Err` is the 429; `Ok` carries the headers every answer has.
    fn admit(
        &mut self,
        path: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, FakeResponse> {
        let family = okta_family(path);
        let limit = self
            .limits
            .get(&family)
            .copied()
            .unwrap_or(self.default_limit);
        let minute = now.timestamp().div_euclid(self.window_seconds);
        let window = self.windows.entry(family).or_default();
        if window
            .backoff_until
            .is_some_and(|until| now.timestamp() < until)
        {
            self.counters.early += 1;
        }
        if window.minute != minute {
            window.minute = minute;
            window.used = 0;
        }
        let reset = (minute + 1) * self.window_seconds;
        let headers = |remaining: u32| {
            vec![
                ("X-Rate-Limit-Limit".to_string(), limit.to_string()),
                ("X-Rate-Limit-Remaining".to_string(), remaining.to_string()),
                ("X-Rate-Limit-Reset".to_string(), reset.to_string()),
            ]
        };
        if window.used >= limit {
            window.backoff_until = Some(reset);
            self.counters.throttled += 1;
            let mut response = okta_error(
                429,
                "E0000047",
                "API call exceeded rate limit due to too many requests.",
            );
            response.headers = headers(0);
            return Err(response);
        }
        window.used += 1;
        Ok(headers(limit - window.used))
    }

    fn authorized(&mut self, request: &FakeRequest, now: DateTime<Utc>) -> bool {
        let Some(header) = request.authorization.as_deref() else {
            return false;
        };
        if let Some(token) = header.strip_prefix("SSWS ") {
            return self.api_tokens.iter().any(|t| t == token);
        }
        if let Some(token) = header.strip_prefix("Bearer ") {
            return self
                .issued
                .iter()
                .any(|(t, until)| t == token && now < *until);
        }
        false
    }

    /// `/oauth2/v1/token`: client credentials with a `private_key_jwt` assertion.
    fn token(&mut self, request: &FakeRequest, now: DateTime<Utc>) -> FakeResponse {
        let form: HashMap<String, String> = request.form().into_iter().collect();
        let refuse = |error: &str, description: &str| {
            FakeResponse::json(
                401,
                json!({"error": error, "error_description": description}),
            )
        };
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return FakeResponse::json(
                400,
                json!({"error": "unsupported_grant_type",
                "error_description": "The authorization grant type is not supported."}),
            );
        }
        let Some(assertion) = form.get("client_assertion") else {
            return refuse("invalid_client", "No client assertion.");
        };
        let audience = format!("{}/oauth2/v1/token", request.base_url);
        let claims = self.service_apps.iter().find_map(|(client_id, pem)| {
            let key = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).ok()?;
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.set_audience(&[&audience]);
            validation.set_issuer(&[client_id]);
            let data = jsonwebtoken::decode::<Value>(assertion, &key, &validation).ok()?;
            (data.claims["sub"] == client_id.as_str()).then_some(data.claims)
        });
        if claims.is_none() {
            return refuse(
                "invalid_client",
                "The client_assertion signature is invalid.",
            );
        }
        let token = format!("okta-{}", uuid::Uuid::new_v4().simple());
        self.issued
            .push((token.clone(), now + chrono::TimeDelta::hours(1)));
        FakeResponse::json(
            200,
            json!({"token_type": "Bearer", "expires_in": 3600, "access_token": token,
                "scope": form.get("scope").cloned().unwrap_or_default()}),
        )
    }

    /// One page of a list sorted by id: the items after the opaque cursor, up to `limit`,
    /// rendered only once chosen; `Link` headers for `self` and, when more follow, `next`.
    fn page<'a, T: 'a>(
        request: &FakeRequest,
        items: impl Iterator<Item = (&'a String, &'a T)>,
        keep: impl Fn(&T) -> bool,
        render: impl Fn(&T) -> Value,
        (default_limit, max_limit): (usize, usize),
    ) -> FakeResponse {
        let limit = match request.param("limit").map(str::parse::<usize>) {
            None => default_limit,
            Some(Ok(n)) if n > 0 => n.min(max_limit),
            Some(_) => {
                return okta_error(400, "E0000001", "Api validation failed: limit");
            }
        };
        let after = request
            .param("after")
            .and_then(|a| B64.decode(a).ok())
            .and_then(|a| String::from_utf8(a).ok());
        let chosen: Vec<(&String, &T)> = items
            .filter(|(id, _)| after.as_ref().is_none_or(|a| *id > a))
            .filter(|(_, item)| keep(item))
            .take(limit + 1)
            .collect();
        let more = chosen.len() > limit;
        let page = &chosen[..chosen.len().min(limit)];
        let own = format!("{}{}", request.base_url, request.path);
        let kept: Vec<String> = request
            .query
            .iter()
            .filter(|(k, _)| k != "after" && k != "limit")
            .map(|(k, v)| format!("{k}={}", tollgate::outbound::rfc3986(v)))
            .collect();
        let query = |extra: &str| {
            let mut parts = kept.clone();
            parts.push(format!("limit={limit}"));
            if !extra.is_empty() {
                parts.push(extra.to_string());
            }
            parts.join("&")
        };
        let mut response = FakeResponse::json(
            200,
            Value::Array(page.iter().map(|(_, item)| render(item)).collect()),
        )
        .header("Link", format!("<{own}?{}>; rel=\"self\"", query("")));
        if more && let Some((last, _)) = page.last() {
            let cursor = B64.encode(last);
            response = response.header(
                "Link",
                format!(
                    "<{own}?{}>; rel=\"next\"",
                    query(&format!("after={cursor}"))
                ),
            );
        }
        response
    }

    fn expression(request: &FakeRequest) -> Result<Option<Expression>, FakeResponse> {
        let text = request.param("search").or_else(|| request.param("filter"));
        text.map(Expression::parse)
            .transpose()
            .map_err(|e| okta_error(400, "E0000031", &format!("Invalid search criteria: {e}")))
    }

    fn list_users(&self, request: &FakeRequest) -> FakeResponse {
        let matcher = match Self::expression(request) {
            Ok(m) => m,
            Err(refused) => return refused,
        };
        Self::page(
            request,
            self.users.iter(),
            |u| match &matcher {
                Some(m) => m.matches(&|attr| user_attribute(u, attr)),
                // A plain list leaves deprovisioned people out.
                None => u.status != "DEPROVISIONED",
            },
            |u| self.user_json(u, &request.base_url),
            (200, 200),
        )
    }

    fn list_groups(&self, request: &FakeRequest) -> FakeResponse {
        let matcher = match Self::expression(request) {
            Ok(m) => m,
            Err(refused) => return refused,
        };
        Self::page(
            request,
            self.groups.iter(),
            |g| {
                matcher
                    .as_ref()
                    .is_none_or(|m| m.matches(&|attr| group_attribute(g, attr)))
            },
            |g| Self::group_json(g, &request.base_url),
            (10_000, 10_000),
        )
    }

    fn route(&mut self, request: &FakeRequest, now: DateTime<Utc>) -> FakeResponse {
        let not_found = |what: &str| {
            okta_error(
                404,
                "E0000007",
                &format!("Not found: Resource not found: {what}"),
            )
        };
        let Some(segments) = request.segments_after("/api/v1/") else {
            return not_found(&request.path);
        };
        let base = &request.base_url;
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["users"]) => self.list_users(request),
            ("GET", ["users", id]) => match self.users.get(*id) {
                Some(u) => FakeResponse::json(200, self.user_json(u, base)),
                None => not_found(&format!("{id} (User)")),
            },
            ("GET", ["users", id, "groups"]) => {
                if !self.users.contains_key(*id) {
                    return not_found(&format!("{id} (User)"));
                }
                let groups: Vec<Value> = self
                    .groups
                    .values()
                    .filter(|g| g.members.contains(*id))
                    .map(|g| Self::group_json(g, base))
                    .collect();
                FakeResponse::json(200, Value::Array(groups))
            }
            ("GET", ["users", id, "linkedObjects", relationship]) => {
                if !self.users.contains_key(*id) {
                    return not_found(&format!("{id} (User)"));
                }
                let links: Vec<Value> = self
                    .linked
                    .get(&(id.to_string(), relationship.to_string()))
                    .map(|manager| {
                        json!({"_links": {"self": {"href": format!("{base}/api/v1/users/{manager}")}}})
                    })
                    .into_iter()
                    .collect();
                FakeResponse::json(200, Value::Array(links))
            }
            ("GET", ["groups"]) => self.list_groups(request),
            ("GET", ["groups", id]) => match self.groups.get(*id) {
                Some(g) => FakeResponse::json(200, Self::group_json(g, base)),
                None => not_found(&format!("{id} (UserGroup)")),
            },
            ("GET", ["groups", id, "users"]) => match self.groups.get(*id) {
                Some(g) => Self::page(
                    request,
                    g.members.iter().filter_map(|m| self.users.get_key_value(m)),
                    |_| true,
                    |u| self.user_json(u, base),
                    (1000, 10_000),
                ),
                None => not_found(&format!("{id} (UserGroup)")),
            },
            ("GET", ["groups", id, "owners"]) => match self.groups.get(*id) {
                Some(g) => {
                    let mut owners: Vec<&String> = g.owners.iter().collect();
                    owners.sort();
                    Self::page(
                        request,
                        owners
                            .into_iter()
                            .filter_map(|o| self.users.get_key_value(o)),
                        |_| true,
                        |u| {
                            json!({"id": u.id, "type": "USER", "resolved": true,
                                "originType": "OKTA_DIRECTORY",
                                "displayName": format!("{} {}", u.first_name, u.last_name),
                                "lastUpdated": time(u.last_updated)})
                        },
                        (1000, 1000),
                    )
                }
                None => not_found(&format!("{id} (UserGroup)")),
            },
            (method @ ("PUT" | "DELETE"), ["groups", group_id, "users", user_id]) => {
                if !self.users.contains_key(*user_id) {
                    return not_found(&format!("{user_id} (User)"));
                }
                let Some(group) = self.groups.get_mut(*group_id) else {
                    return not_found(&format!("{group_id} (UserGroup)"));
                };
                if group.kind != "OKTA_GROUP" {
                    // [U] Okta's exact answer here is not documented; it refuses the change.
                    return okta_error(
                        403,
                        "E0000006",
                        "You do not have permission to perform the requested action",
                    );
                }
                let changed = if method == "PUT" {
                    group.members.insert(user_id.to_string())
                } else {
                    group.members.remove(*user_id)
                };
                if changed {
                    group.last_membership_updated = now;
                }
                // Repeating either is not an error.
                FakeResponse::empty(204)
            }
            _ => not_found(&request.path),
        }
    }
}

fn user_attribute(user: &OktaUser, attribute: &str) -> Option<String> {
    Some(match attribute {
        "id" => user.id.clone(),
        "status" => user.status.clone(),
        "lastUpdated" => time(user.last_updated),
        "profile.login" | "profile.email" => user.login.clone(),
        "profile.firstName" => user.first_name.clone(),
        "profile.lastName" => user.last_name.clone(),
        "profile.title" => user.title.clone()?,
        "profile.department" => user.department.clone()?,
        "profile.managerId" => user.manager_id.clone()?,
        _ => return None,
    })
}

fn group_attribute(group: &OktaGroup, attribute: &str) -> Option<String> {
    Some(match attribute {
        "id" => group.id.clone(),
        "type" => group.kind.clone(),
        "profile.name" => group.name.clone(),
        "lastUpdated" => time(group.last_updated),
        "lastMembershipUpdated" => time(group.last_membership_updated),
        _ => return None,
    })
}

/// Okta's search and filter expressions: `attr op "value"` terms joined by `and`/`or`
/// (`and` binding tighter; parentheses are dropped, which is right for the expressions sent
/// here); `eq`, `sw`, `gt`, `ge`, `lt`, `le`.
/// Times compare as text, which works for Okta's fixed-width UTC format.
#[derive(Debug)]
struct Expression {
    any_of: Vec<Vec<(String, String, String)>>,
}

impl Expression {
    fn parse(text: &str) -> Result<Self, String> {
        let mut any_of = Vec::new();
        for alternative in text.split(" or ") {
            let mut all_of = Vec::new();
            for term in alternative.split(" and ") {
                let term = term
                    .trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .trim();
                let mut parts = term.splitn(3, ' ');
                let (Some(attr), Some(op), Some(value)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(format!("`{term}`"));
                };
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .ok_or_else(|| format!("`{value}` is not quoted"))?;
                if !["eq", "sw", "gt", "ge", "lt", "le"].contains(&op) {
                    return Err(format!("operator `{op}`"));
                }
                all_of.push((
                    attr.to_string(),
                    op.to_string(),
                    value.replace("\\\"", "\""),
                ));
            }
            any_of.push(all_of);
        }
        Ok(Self { any_of })
    }

    fn matches(&self, attribute: &dyn Fn(&str) -> Option<String>) -> bool {
        self.any_of.iter().any(|all_of| {
            all_of.iter().all(|(attr, op, value)| {
                attribute(attr).is_some_and(|actual| match op.as_str() {
                    "eq" => &actual == value,
                    "sw" => actual.starts_with(value.as_str()),
                    "gt" => actual.as_str() > value.as_str(),
                    "ge" => actual.as_str() >= value.as_str(),
                    "lt" => actual.as_str() < value.as_str(),
                    _ => actual.as_str() <= value.as_str(),
                })
            })
        })
    }
}

impl Vendor for FakeOkta {
    fn contract(&self) -> Option<&'static Contract> {
        Some(Contract::okta())
    }

    fn checked(&self, path: &str) -> bool {
        path.starts_with("/api/v1/")
    }

    fn handle(&mut self, request: &FakeRequest, now: DateTime<Utc>) -> FakeResponse {
        if request.path == "/oauth2/v1/token" && request.method == "POST" {
            return self.token(request, now);
        }
        let headers = match self.admit(&request.path, now) {
            Ok(headers) => headers,
            Err(throttled) => return throttled,
        };
        let mut response = if self.authorized(request, now) {
            self.route(request, now)
        } else {
            okta_error(401, "E0000011", "Invalid token provided")
        };
        response.headers.extend(headers);
        response
    }
}

/// Okta's 429 for the next `times` calls under `path_prefix`, resetting `seconds` from now.
pub fn rate_limited(path_prefix: &str, times: usize, seconds: i64) -> Fault {
    let reset = Utc::now().timestamp() + seconds;
    let mut response = okta_error(
        429,
        "E0000047",
        "API call exceeded rate limit due to too many requests.",
    );
    response.headers = vec![
        ("X-Rate-Limit-Limit".into(), "600".into()),
        ("X-Rate-Limit-Remaining".into(), "0".into()),
        ("X-Rate-Limit-Reset".into(), reset.to_string()),
    ];
    Fault::new(path_prefix, times, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_match_like_okta() {
        let e = Expression::parse(r#"lastUpdated gt "2026-01-01T00:00:00.000Z" or lastMembershipUpdated gt "2026-01-01T00:00:00.000Z""#)
            .expect("parses");
        let at = |updated: &'static str, members: &'static str| {
            move |attr: &str| match attr {
                "lastUpdated" => Some(updated.to_string()),
                "lastMembershipUpdated" => Some(members.to_string()),
                _ => None,
            }
        };
        assert!(e.matches(&at("2026-02-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z")));
        assert!(e.matches(&at("2025-02-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z")));
        assert!(!e.matches(&at("2025-02-01T00:00:00.000Z", "2025-01-02T00:00:00.000Z")));
        let staged = Expression::parse(
            r#"(status lt "STAGED" or status gt "STAGED") and profile.login sw "a""#,
        );
        assert!(staged.is_ok());
        assert!(Expression::parse("status ne \"ACTIVE\"").is_err());
        assert!(Expression::parse("status eq ACTIVE").is_err());
    }
}
