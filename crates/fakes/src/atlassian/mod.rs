//! A fake Atlassian cloud on one loopback port: a Jira site with JSM (`/rest/…`), its
//! Confluence (`/wiki/…`), and `api.atlassian.com` (`/admin/…`, `/scim/…`).
//!
//! The shared framework here does what every API module needs: it records each call,
//! authenticates it the way Atlassian does (a Connect JWT checked for signature, expiry and
//! `qsh`; an Admin API or SCIM key; a site-admin basic token), enforces each operation's Connect
//! scope against the scopes the descriptor declared (and refuses `INACCESSIBLE` ones), injects
//! 429/5xx with Atlassian's headers, and checks every call against the published specs
//! ([`crate::contract`]). A call that breaks the contract is still answered as Atlassian
//! would, and remembered: dropping the fake with violations fails the test.

pub mod admin;
pub mod confluence;
pub mod connect;
pub mod jira;
pub mod jsm;
mod world;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub use world::*;

use super::contract::{Call as ContractCall, CallerKind, Contract};
use tollgate::atlassian::jwt;
use tollgate::atlassian::qsh;

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A Connect JWT of an installed tenant, with the scopes its descriptor declared.
    Connect {
        client_key: String,
    },
    SiteAdmin,
    AdminApiKey,
    ScimKey,
    /// A Forge system token, through the API gateway, with the scopes the manifest asked for.
    Forge {
        cloud_id: String,
        scopes: Vec<Scope>,
    },
}

/// A system token the fake Forge handed out.
#[derive(Debug, Clone)]
struct ForgeToken {
    token: String,
    cloud_id: String,
    scopes: Vec<Scope>,
    expires: DateTime<Utc>,
}

/// The header the gateway rewrite leaves for `front`: the cloud id of `/ex/jira/{cloudId}`.
const GATEWAY_CLOUD: &str = "x-fake-gateway-cloud";

/// What an operation accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Connect with this scope, or the site admin (who may do anything on the site).
    Connect(Scope),
    /// `INACCESSIBLE` to Connect: only the site-admin token.
    SiteAdminOnly,
    AdminApiKey,
    ScimKey,
}

/// Connect scopes, ordered so that a greater scope implies the lesser ones it contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
    Delete,
    ProjectAdmin,
    SpaceAdmin,
    Admin,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_uppercase().as_str() {
            "READ" => Self::Read,
            "WRITE" => Self::Write,
            "DELETE" => Self::Delete,
            "PROJECT_ADMIN" => Self::ProjectAdmin,
            "SPACE_ADMIN" => Self::SpaceAdmin,
            "ADMIN" => Self::Admin,
            _ => return None,
        })
    }

    /// Whether holding `self` grants `needed` (Connect's scope hierarchy: ADMIN ⊃ PROJECT_ADMIN
    /// / SPACE_ADMIN ⊃ DELETE ⊃ WRITE ⊃ READ).
    pub fn grants(self, needed: Scope) -> bool {
        use Scope::*;
        match self {
            Admin => true,
            ProjectAdmin => matches!(needed, ProjectAdmin | Delete | Write | Read),
            SpaceAdmin => matches!(needed, SpaceAdmin | Delete | Write | Read),
            Delete => matches!(needed, Delete | Write | Read),
            Write => matches!(needed, Write | Read),
            Read => needed == Read,
        }
    }
}

/// A tenant the fake knows: what it was installed with.
#[derive(Debug, Clone)]
pub struct FakeTenant {
    pub app_key: String,
    pub client_key: String,
    pub shared_secret: String,
    /// `""` for Jira, `"/wiki"` for Confluence: the part of the base URL qsh leaves out.
    pub base_path: String,
    pub scopes: Vec<Scope>,
}

impl FakeTenant {
    /// An install of the app `descriptor` describes, holding the scopes it declares.
    pub fn from_descriptor(
        descriptor: &Value,
        client_key: &str,
        shared_secret: &str,
        base_path: &str,
    ) -> Self {
        Self {
            app_key: descriptor["key"].as_str().unwrap_or_default().to_string(),
            client_key: client_key.to_string(),
            shared_secret: shared_secret.to_string(),
            base_path: base_path.to_string(),
            scopes: descriptor["scopes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| Scope::parse(s.as_str()?))
                .collect(),
        }
    }
}

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub caller: Option<Caller>,
    pub authorization: Option<String>,
    pub body: Option<Value>,
    pub status: u16,
    /// When the call arrived.
    pub at: DateTime<Utc>,
}

/// An injected failure for the next calls whose path starts with `path_prefix`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub path_prefix: String,
    pub remaining: usize,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Fault {
    /// Jira's 429: `Retry-After` seconds plus the `X-RateLimit-*` family.
    pub fn rate_limited(path_prefix: &str, times: usize, retry_after_seconds: u64) -> Self {
        let reset = Utc::now() + chrono::Duration::seconds(retry_after_seconds as i64);
        Self {
            path_prefix: path_prefix.into(),
            remaining: times,
            status: 429,
            headers: vec![
                ("Retry-After".into(), retry_after_seconds.to_string()),
                ("X-RateLimit-Limit".into(), "100".into()),
                ("X-RateLimit-Remaining".into(), "0".into()),
                (
                    "X-RateLimit-Reset".into(),
                    reset.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                ),
                ("RateLimit-Reason".into(), "jira-quota-based".into()),
            ],
            body: json!({"errorMessages": ["Rate limit exceeded."], "errors": {}}),
        }
    }

    /// A 503 without `Retry-After`: the client backs off on its own.
    pub fn unavailable(path_prefix: &str, times: usize) -> Self {
        Self {
            path_prefix: path_prefix.into(),
            remaining: times,
            status: 503,
            headers: Vec::new(),
            body: json!({"errorMessages": ["Service Unavailable"], "errors": {}}),
        }
    }
}

struct Shared {
    world: Mutex<World>,
    tenants: Mutex<Vec<FakeTenant>>,
    admin_api_key: Option<String>,
    scim_key: Option<String>,
    site_admin: Option<(String, String)>,
    faults: Mutex<VecDeque<Fault>>,
    recorded: Mutex<Vec<Recorded>>,
    contract: &'static Contract,
    /// Calls checked against the contract so far.
    checked: Mutex<usize>,
    violations: Mutex<Vec<String>>,
    limit: Mutex<Option<RateLimit>>,
    forge_tokens: Mutex<Vec<ForgeToken>>,
}

/// A request budget per one-second window, as Jira's cost-based limits behave at their
/// simplest: past it, 429 with `Retry-After` and the `X-RateLimit-*` headers; within it, every
/// answer says how much is left and when the window resets.
#[derive(Debug, Clone, Default)]
pub struct RateLimit {
    pub per_second: u32,
    window: i64,
    used: u32,
    /// The reset announced by the last 429: a request before it ignored the back-off.
    backoff_until: Option<DateTime<Utc>>,
    /// Requests answered 429.
    pub throttled: usize,
    /// Requests that arrived during an announced back-off window.
    pub early: usize,
}

/// Response headers to add.
type Headers = Vec<(String, String)>;

impl RateLimit {
    /// Counts a request; `Err(headers)` when it is over the budget, else the headers to add.
    fn admit(&mut self, now: DateTime<Utc>) -> Result<Headers, Headers> {
        if self.backoff_until.is_some_and(|until| now < until) {
            self.early += 1;
        }
        let second = now.timestamp();
        if second != self.window {
            self.window = second;
            self.used = 0;
        }
        let reset = DateTime::from_timestamp(second + 1, 0).unwrap_or(now);
        let reset_text = reset.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        if self.used >= self.per_second {
            self.throttled += 1;
            self.backoff_until = Some(reset);
            return Err(vec![
                ("Retry-After".into(), "1".into()),
                ("X-RateLimit-Limit".into(), self.per_second.to_string()),
                ("X-RateLimit-Remaining".into(), "0".into()),
                ("X-RateLimit-Reset".into(), reset_text),
                ("RateLimit-Reason".into(), "jira-quota-global-based".into()),
            ]);
        }
        self.used += 1;
        let remaining = self.per_second - self.used;
        let mut headers = vec![
            ("X-RateLimit-Limit".into(), self.per_second.to_string()),
            ("X-RateLimit-Remaining".into(), remaining.to_string()),
            ("X-RateLimit-Reset".into(), reset_text),
        ];
        if remaining * 5 < self.per_second {
            headers.push(("X-RateLimit-NearLimit".into(), "true".into()));
        }
        Ok(headers)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The keys the fake accepts besides Connect tokens.
#[derive(Debug, Clone, Default)]
pub struct FakeKeys {
    pub admin_api_key: Option<String>,
    pub scim_key: Option<String>,
    pub site_admin: Option<(String, String)>,
}

pub struct FakeAtlassian {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeAtlassian {
    /// Starts the fake with `world` as its data. Every authenticated call is checked against
    /// the contract data (`tests/contract/atlassian.json`).
    pub async fn start(world: World, keys: FakeKeys) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            tenants: Mutex::new(Vec::new()),
            admin_api_key: keys.admin_api_key,
            scim_key: keys.scim_key,
            site_admin: keys.site_admin,
            faults: Mutex::new(VecDeque::new()),
            recorded: Mutex::new(Vec::new()),
            contract: Contract::atlassian(),
            checked: Mutex::new(0),
            limit: Mutex::new(None),
            violations: Mutex::new(Vec::new()),
            forge_tokens: Mutex::new(Vec::new()),
        });
        // `api.atlassian.com/ex/jira/{cloudId}/…` is the site's API behind Atlassian's gateway:
        // the prefix goes before routing, and `front` learns the cloud id from a header.
        let app = tower::Layer::layer(
            &middleware::map_request(gateway),
            all_ops().into_router(shared.clone()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        lock(&shared.world).base_url = format!("http://{addr}");
        let task = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                axum::ServiceExt::<Request>::into_make_service(app),
            )
            .await;
        });
        Ok(Self { addr, shared, task })
    }

    /// The Jira site's base URL.
    pub fn site_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn confluence_url(&self) -> String {
        format!("http://{}/wiki", self.addr)
    }

    /// Stands in for `https://api.atlassian.com`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The site behind Atlassian's API gateway, as Forge's `apiBaseUrl` names it.
    pub fn gateway_url(&self, cloud_id: &str) -> String {
        format!("http://{}/ex/jira/{cloud_id}", self.addr)
    }

    /// A system token for the site `cloud_id`, as Forge hands one to a remote: a JWT with an
    /// `exp`, good at the gateway only, for the scopes the app's manifest asked for.
    pub fn issue_forge_token(
        &self,
        cloud_id: &str,
        scopes: Vec<Scope>,
        expires: DateTime<Utc>,
    ) -> String {
        let claims = jwt::Claims {
            iss: Some("fake-forge".into()),
            sub: Some("app-system-user".into()),
            exp: Some(expires.timestamp()),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            ..Default::default()
        };
        let token = jwt::sign_hs256(&claims, uuid::Uuid::new_v4().as_bytes()).unwrap_or_default();
        lock(&self.shared.forge_tokens).push(ForgeToken {
            token: token.clone(),
            cloud_id: cloud_id.to_string(),
            scopes,
            expires,
        });
        token
    }

    /// How many calls were checked against the contract so far.
    pub fn checked_calls(&self) -> usize {
        *lock(&self.shared.checked)
    }

    /// Registers an install: `descriptor_scopes` as the descriptor declared them.
    pub fn install(&self, tenant: FakeTenant) {
        let mut tenants = lock(&self.shared.tenants);
        tenants.retain(|t| t.base_path != tenant.base_path);
        tenants.push(tenant);
    }

    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).push_back(fault);
    }

    /// Ends every injected fault (the outage is over).
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.shared.world)
    }

    /// `author` writes `text` on issue `key`; the `comment_created` webhook Jira then sends
    /// (see [`World::comment_by`]).
    pub fn comment_by(&self, key: &str, author: (&str, &str), text: &str) -> Value {
        self.world().comment_by(key, author, text)
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        lock(&self.shared.recorded).clone()
    }

    pub fn violations(&self) -> Vec<String> {
        lock(&self.shared.violations).clone()
    }

    /// Forgets the violations seen so far (for a test that provokes one on purpose).
    /// Limits every API of this fake together to `per_second` requests per second.
    pub fn limit_rate(&self, per_second: u32) {
        *lock(&self.shared.limit) = Some(RateLimit {
            per_second,
            ..RateLimit::default()
        });
    }

    /// The rate limit's counters (429s answered, requests sent during a back-off).
    pub fn rate_limit(&self) -> Option<RateLimit> {
        lock(&self.shared.limit).clone()
    }

    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.shared.violations))
    }
}

impl Drop for FakeAtlassian {
    fn drop(&mut self) {
        self.task.abort();
        let violations = self.violations();
        eprintln!(
            "contract: {} calls to the Atlassian fake checked against {}, {} broke it",
            self.checked_calls(),
            self.shared.contract.describe(),
            violations.len()
        );
        if !violations.is_empty() && !std::thread::panicking() {
            panic!(
                "calls to the Atlassian fake broke the published API contract:\n  {}",
                violations.join("\n  ")
            );
        }
    }
}

fn all_ops() -> Ops {
    Ops::default()
        .merge(jira::ops())
        .merge(jsm::ops())
        .merge(confluence::ops())
        .merge(admin::ops())
}

/// Every operation the fake serves, with the access it demands (to check against the specs).
pub fn operations() -> Vec<(Method, &'static str, Access)> {
    all_ops()
        .routes
        .into_iter()
        .map(|(method, path, access, _)| (method, path, access))
        .collect()
}

/// An error answer in Jira's shape.
pub fn jira_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"errorMessages": [message], "errors": {}})),
    )
        .into_response()
}

/// The operations an API module offers: method, OpenAPI-style path, access, handler.
#[derive(Default)]
pub struct Ops {
    routes: Vec<(Method, &'static str, Access, MethodRouter<SharedWorld>)>,
}

/// What handlers get: the world behind its lock.
#[derive(Clone)]
pub struct SharedWorld(Arc<Shared>);

impl SharedWorld {
    pub fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.0.world)
    }

    /// Remembers a comment that names someone by a raw account id (people read tickets: they
    /// are named by display name or a mention); the test fails when the fake is dropped.
    pub fn check_names(&self, world: &World, key: &str, text: &str) {
        if let Some(id) = raw_account_id(world, text) {
            lock(&self.0.violations).push(format!(
                "a comment on {key} names an account by its id `{id}`: {text}"
            ));
        }
    }
}

/// An account id written out in `text`: one of the site's accounts, or anything shaped like
/// an Atlassian account id (`557058:<uuid>`, `712020:<uuid>`, or 24 hex digits).
pub fn raw_account_id(world: &World, text: &str) -> Option<String> {
    let known = world
        .users
        .iter()
        .map(|u| u.account_id.as_str())
        .find(|id| text.contains(id));
    if let Some(id) = known {
        return Some(id.to_string());
    }
    let shaped = |token: &str| {
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        let prefixed = token.split_once(':').is_some_and(|(site, rest)| {
            site.len() == 6
                && site.bytes().all(|b| b.is_ascii_digit())
                && rest.len() == 36
                && rest.split('-').map(str::len).eq([8, 4, 4, 4, 12])
        });
        prefixed || hex(token, 24)
    };
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == ':' || c == '-'))
        .find(|token| shaped(token))
        .map(str::to_string)
}

impl Ops {
    pub fn op<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Self
    where
        H: axum::handler::Handler<T, SharedWorld>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        self.routes
            .push((method, path, access, on(filter, handler)));
        self
    }

    fn merge(mut self, other: Ops) -> Self {
        self.routes.extend(other.routes);
        self
    }

    fn into_router(self, shared: Arc<Shared>) -> Router {
        let mut router: Router<SharedWorld> = Router::new();
        for (_, path, access, method_router) in self.routes {
            let guarded = method_router.layer(middleware::from_fn_with_state(
                (shared.clone(), access),
                authorize,
            ));
            router = router.route(path, guarded);
        }
        router
            .fallback(|| async { jira_error(StatusCode::NOT_FOUND, "No such resource.") })
            .with_state(SharedWorld(shared.clone()))
            .layer(middleware::from_fn_with_state(shared, front))
    }
}

/// Strips `/ex/jira/{cloudId}` and says so in [`GATEWAY_CLOUD`] (never trusting a caller's).
async fn gateway(mut request: Request) -> Request {
    request.headers_mut().remove(GATEWAY_CLOUD);
    let path = request.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/ex/jira/") else {
        return request;
    };
    let (cloud_id, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let mut target = format!("/{tail}");
    if let Some(query) = request.uri().query() {
        target = format!("{target}?{query}");
    }
    if let (Ok(uri), Ok(cloud)) = (
        target.parse::<axum::http::Uri>(),
        HeaderValue::from_str(cloud_id),
    ) {
        *request.uri_mut() = uri;
        request.headers_mut().insert(GATEWAY_CLOUD, cloud);
    }
    request
}

/// Records, injects faults, authenticates and contract-checks every call.
async fn front(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let bytes = to_bytes(body, 10 * 1024 * 1024).await.unwrap_or_default();
    let body_json: Option<Value> = serde_json::from_slice(&bytes).ok();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let authorization = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let via_gateway = parts
        .headers
        .get(GATEWAY_CLOUD)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let caller = authenticate(
        &shared,
        &method,
        &path,
        query.as_deref(),
        authorization.as_deref(),
        via_gateway.as_deref(),
    );
    let mut record = Recorded {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        caller: caller.as_ref().ok().cloned(),
        authorization,
        body: body_json.clone(),
        status: 0,
        at: Utc::now(),
    };

    let admitted = lock(&shared.limit)
        .as_mut()
        .map(|limit| limit.admit(Utc::now()));
    let mut limit_headers = Vec::new();
    let fault = match admitted {
        Some(Err(headers)) => Some(Fault {
            path_prefix: String::new(),
            remaining: 1,
            status: 429,
            headers,
            body: json!({"errorMessages": ["Rate limit exceeded."], "errors": {}}),
        }),
        Some(Ok(headers)) => {
            limit_headers = headers;
            take_fault(&shared, &path)
        }
        None => take_fault(&shared, &path),
    };
    let mut response = if let Some(fault) = fault {
        let mut response = (
            StatusCode::from_u16(fault.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            axum::Json(fault.body),
        )
            .into_response();
        for (name, value) in fault.headers {
            if let (Ok(name), Ok(value)) = (
                axum::http::HeaderName::try_from(name),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    } else {
        match caller {
            Err(message) => jira_error(StatusCode::UNAUTHORIZED, &message),
            Ok(caller) => {
                let checked = {
                    *lock(&shared.checked) += 1;
                    let tenants = lock(&shared.tenants);
                    let scopes = match &caller {
                        Caller::Connect { client_key } => tenants
                            .iter()
                            .find(|t| &t.client_key == client_key)
                            .map(|t| t.scopes.clone()),
                        Caller::Forge { scopes, .. } => Some(scopes.clone()),
                        _ => None,
                    };
                    shared.contract.check(&ContractCall {
                        method: &method,
                        path: &path,
                        query: query.as_deref(),
                        body: body_json.as_ref(),
                        // A Forge app's operations are the ones its scopes reach: the
                        // spec's Connect scope stands in for the matching OAuth scope.
                        caller: match caller {
                            Caller::Connect { .. } | Caller::Forge { .. } => {
                                CallerKind::Connect(scopes.unwrap_or_default())
                            }
                            _ => CallerKind::Unscoped,
                        },
                    })
                };
                // The fake still answers as Atlassian would; the violation fails the test
                // when the fake is dropped.
                if let Err(violation) = checked {
                    lock(&shared.violations).push(format!("{method} {path}: {violation}"));
                }
                parts.extensions.insert(caller);
                next.run(Request::from_parts(parts, Body::from(bytes)))
                    .await
            }
        }
    };
    for (name, value) in limit_headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(name),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    record.status = response.status().as_u16();
    lock(&shared.recorded).push(record);
    response
}

fn take_fault(shared: &Shared, path: &str) -> Option<Fault> {
    let mut faults = lock(&shared.faults);
    let index = faults
        .iter()
        .position(|f| f.remaining > 0 && path.starts_with(&f.path_prefix))?;
    let fault = faults.get_mut(index)?;
    fault.remaining -= 1;
    let taken = fault.clone();
    if fault.remaining == 0 {
        faults.remove(index);
    }
    Some(taken)
}

/// Atlassian's authentication, in the order it would refuse.
fn authenticate(
    shared: &Shared,
    method: &str,
    path: &str,
    query: Option<&str>,
    authorization: Option<&str>,
    via_gateway: Option<&str>,
) -> Result<Caller, String> {
    let header = authorization.ok_or("Client must be authenticated to access this resource.")?;
    let forge = header.strip_prefix("Bearer ").and_then(|token| {
        lock(&shared.forge_tokens)
            .iter()
            .find(|t| t.token == token)
            .cloned()
    });
    match (via_gateway, forge) {
        (Some(cloud_id), Some(token)) if token.cloud_id == cloud_id => {
            if token.expires <= Utc::now() {
                return Err("The access token has expired.".into());
            }
            return Ok(Caller::Forge {
                cloud_id: token.cloud_id,
                scopes: token.scopes,
            });
        }
        (Some(_), _) => return Err("The gateway accepts only app and user access tokens.".into()),
        (None, Some(_)) => {
            return Err("Access tokens are accepted at api.atlassian.com only.".into());
        }
        (None, None) => {}
    }
    if let Some(token) = header.strip_prefix("JWT ") {
        let (_, claims) = jwt::peek(token).map_err(|e| format!("Invalid JWT: {e}"))?;
        let tenants = lock(&shared.tenants);
        let on_wiki = path.starts_with("/wiki/") || path == "/wiki";
        let tenant = tenants
            .iter()
            .find(|t| {
                (t.base_path == "/wiki") == on_wiki && claims.iss.as_deref() == Some(&t.app_key)
            })
            .ok_or("JWT issuer is not an app installed on this site")?;
        let claims = jwt::verify_hs256(token, tenant.shared_secret.as_bytes())
            .map_err(|e| format!("Invalid JWT signature: {e}"))?;
        jwt::check_expiry(&claims, Utc::now(), 0).map_err(|e| format!("Expired JWT: {e}"))?;
        let target = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        let expected = qsh::qsh(method, &target, &tenant.base_path);
        if claims.qsh.as_deref() != Some(expected.as_str()) {
            return Err("JWT query string hash does not match the request".into());
        }
        return Ok(Caller::Connect {
            client_key: tenant.client_key.clone(),
        });
    }
    if let Some(token) = header.strip_prefix("Bearer ") {
        if shared.admin_api_key.as_deref() == Some(token) {
            return Ok(Caller::AdminApiKey);
        }
        if shared.scim_key.as_deref() == Some(token) {
            return Ok(Caller::ScimKey);
        }
        return Err("Unknown API key".into());
    }
    if let Some(encoded) = header.strip_prefix("Basic ") {
        let decoded = B64
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("Malformed basic credentials")?;
        if let (Some((email, token)), Some((e, t))) =
            (decoded.split_once(':'), shared.site_admin.as_ref())
            && email == e
            && token == t
        {
            return Ok(Caller::SiteAdmin);
        }
        return Err("Basic authentication failed".into());
    }
    Err("Unsupported authorization scheme".into())
}

/// Per-operation access: Connect scope from the descriptor, or the right key.
async fn authorize(
    State((shared, access)): State<(Arc<Shared>, Access)>,
    request: Request,
    next: Next,
) -> Response {
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return jira_error(StatusCode::UNAUTHORIZED, "Unauthenticated");
    };
    let allowed = match (access, &caller) {
        (Access::Connect(_) | Access::SiteAdminOnly, Caller::SiteAdmin) => Ok(()),
        (Access::Connect(needed), Caller::Connect { client_key }) => {
            let tenants = lock(&shared.tenants);
            let scopes = tenants
                .iter()
                .find(|t| &t.client_key == client_key)
                .map(|t| t.scopes.clone())
                .unwrap_or_default();
            if scopes.iter().any(|s| s.grants(needed)) {
                Ok(())
            } else {
                Err((
                    StatusCode::FORBIDDEN,
                    format!("The app does not hold the {needed:?} scope this resource needs."),
                ))
            }
        }
        (Access::Connect(needed), Caller::Forge { scopes, .. }) => {
            if scopes.iter().any(|s| s.grants(needed)) {
                Ok(())
            } else {
                Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "The app's token does not carry the scope ({needed:?}) this resource needs."
                    ),
                ))
            }
        }
        (Access::SiteAdminOnly, Caller::Connect { .. } | Caller::Forge { .. }) => Err((
            StatusCode::FORBIDDEN,
            "Apps cannot access this REST resource - including when utilizing user impersonation."
                .into(),
        )),
        (Access::AdminApiKey, Caller::AdminApiKey) | (Access::ScimKey, Caller::ScimKey) => Ok(()),
        _ => Err((StatusCode::UNAUTHORIZED, "Unauthorized".to_string())),
    };
    match allowed {
        Ok(()) => next.run(request).await,
        Err((status, message)) => jira_error(status, &message),
    }
}

/// A slice of `items` for offset paging.
pub fn page<T: Clone>(items: &[T], start: usize, limit: usize) -> (Vec<T>, bool) {
    let start = start.min(items.len());
    let end = (start + limit).min(items.len());
    (items[start..end].to_vec(), end >= items.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_account_ids_are_found_in_comment_text() {
        let world = World::sample();
        let erin = &world.users[0].account_id;
        assert_eq!(
            raw_account_id(&world, &format!("{erin}, your decision was not counted")),
            Some(erin.clone())
        );
        for text in [
            "712020:bbbe5b4c-1a2b-4c3d-8e9f-0123456789ab, your decision was not counted",
            "(557058:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0)",
            "by 5b10ac8d82e05b22cc7d4eff.",
        ] {
            assert!(raw_account_id(&world, text).is_some(), "{text}");
        }
        for text in [
            "Erin Evans, your decision was not counted: only Dan Diaz may decide stage 1.",
            "Expires 2026-12-03T18:00:00Z, ticket IT-7, hash 0123456789abcdef",
        ] {
            assert_eq!(raw_account_id(&world, text), None, "{text}");
        }
    }
}
