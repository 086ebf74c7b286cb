//! The HTTP side the identity-provider fakes share: a server on a free port, every call
//! recorded, injected faults, a contract check of each call against the vendor's published
//! spec, and the time the fake spent answering. A fake is a [`Vendor`]: plain, synchronous
//! code from a request to a response over its own state.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::contract::{Call, CallerKind, Contract};

/// A request as a fake sees it.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    pub method: String,
    pub path: String,
    pub raw_query: Option<String>,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub headers: axum::http::HeaderMap,
    pub body: Option<Value>,
    /// The body as sent (forms are not JSON).
    pub text: String,
    /// `http://127.0.0.1:PORT`, for links and token audiences.
    pub base_url: String,
    /// Whether the vendor's call back (`Vendor::callback`) was answered well, when it made one.
    pub callback_answered: Option<bool>,
}

impl FakeRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Path segments after `prefix`, or `None` when the path is elsewhere.
    pub fn segments_after<'a>(&'a self, prefix: &str) -> Option<Vec<&'a str>> {
        let rest = self.path.strip_prefix(prefix)?;
        Some(rest.split('/').filter(|s| !s.is_empty()).collect())
    }

    /// Form fields of an `application/x-www-form-urlencoded` body.
    pub fn form(&self) -> Vec<(String, String)> {
        parse_pairs(&self.text)
    }
}

#[derive(Debug, Clone)]
pub struct FakeResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    pub text: Option<String>,
}

impl FakeResponse {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Some(body),
            text: None,
        }
    }

    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: None,
            text: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// One vendor's behaviour over its own state.
pub trait Vendor: Send + 'static {
    /// The spec calls are checked against, if any; `None` when it is not found.
    fn contract(&self) -> Option<&'static Contract>;
    /// Whether a path is one the spec covers (token endpoints, say, are not).
    fn checked(&self, path: &str) -> bool;
    fn handle(&mut self, request: &FakeRequest, now: DateTime<Utc>) -> FakeResponse;
    /// A call the vendor makes back before it answers this request (Graph validating a
    /// subscription's notification URL); its outcome is in `FakeRequest::callback_answered`.
    fn callback(&mut self, _request: &FakeRequest) -> Option<Callback> {
        None
    }
}

/// A validation call back: `POST {url}?validationToken={token}`, answered well when it comes
/// back `200` with the token as plain text within 10 seconds.
#[derive(Debug, Clone)]
pub struct Callback {
    pub url: String,
    pub token: String,
}

async fn call_back(callback: &Callback) -> bool {
    let mut url = match reqwest::Url::parse(&callback.url) {
        Ok(url) => url,
        Err(_) => return false,
    };
    url.query_pairs_mut()
        .append_pair("validationToken", &callback.token);
    let answer = reqwest::Client::new()
        .post(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match answer {
        Ok(response) if response.status().as_u16() == 200 => response
            .text()
            .await
            .is_ok_and(|text| text == callback.token),
        _ => false,
    }
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: Option<Value>,
    pub status: u16,
    pub at: DateTime<Utc>,
}

/// A failure for the next `times` calls whose path starts with `path_prefix` (and whose
/// query contains `query_contains`, when set: a later page of a list).
#[derive(Debug, Clone)]
pub struct Fault {
    pub path_prefix: String,
    pub query_contains: Option<String>,
    pub times: usize,
    pub response: FakeResponse,
}

/// How a page of a list can be broken on its way.
#[derive(Debug, Clone)]
pub enum Broken {
    /// Cut off mid-JSON.
    Truncated,
    /// A proxy's or login page's HTML.
    Html,
    /// Valid JSON of the wrong shape.
    Shape(Value),
}

impl Fault {
    pub fn new(path_prefix: &str, times: usize, response: FakeResponse) -> Self {
        Self {
            path_prefix: path_prefix.to_string(),
            query_contains: None,
            times,
            response,
        }
    }

    /// Only calls whose query contains `part`.
    pub fn when_query_has(mut self, part: &str) -> Self {
        self.query_contains = Some(part.to_string());
        self
    }

    /// A 200 whose body is `broken`, once.
    pub fn broken(path_prefix: &str, broken: Broken) -> Self {
        let response = match broken {
            Broken::Truncated => FakeResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: None,
                text: Some(r#"{"value":[{"id":"00u1","profile":{"login":"cut@acme.test","#.into()),
            },
            Broken::Html => FakeResponse {
                status: 200,
                headers: vec![("content-type".into(), "text/html".into())],
                body: None,
                text: Some("<html><body><h1>Sign in to continue</h1></body></html>".into()),
            },
            Broken::Shape(value) => FakeResponse::json(200, value),
        };
        Self::new(path_prefix, 1, response)
    }
}

struct Shared<V> {
    vendor: Mutex<V>,
    recorded: Mutex<Vec<Recorded>>,
    faults: Mutex<VecDeque<Fault>>,
    violations: Mutex<Vec<String>>,
    /// Calls checked against the vendor's contract so far.
    checked: Mutex<usize>,
    serving: Mutex<Duration>,
    base_url: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct FakeServer<V: Vendor> {
    addr: SocketAddr,
    shared: Arc<Shared<V>>,
    task: tokio::task::JoinHandle<()>,
}

impl<V: Vendor> FakeServer<V> {
    pub async fn start(vendor: V) -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0", vendor).await
    }

    pub async fn start_on(bind: &str, vendor: V) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            vendor: Mutex::new(vendor),
            recorded: Mutex::new(Vec::new()),
            faults: Mutex::new(VecDeque::new()),
            violations: Mutex::new(Vec::new()),
            checked: Mutex::new(0),
            serving: Mutex::new(Duration::ZERO),
            base_url: format!("http://{addr}"),
        });
        let app = axum::Router::new()
            .fallback(serve::<V>)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn vendor(&self) -> MutexGuard<'_, V> {
        lock(&self.shared.vendor)
    }

    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).push_back(fault);
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        lock(&self.shared.recorded).clone()
    }

    pub fn clear_recorded(&self) {
        lock(&self.shared.recorded).clear();
    }

    pub fn violations(&self) -> Vec<String> {
        lock(&self.shared.violations).clone()
    }

    /// How many calls were checked against the vendor's contract so far.
    pub fn checked_calls(&self) -> usize {
        *lock(&self.shared.checked)
    }

    /// Time spent inside the fake's own code (routing, state, JSON), not on the wire.
    pub fn serving_time(&self) -> Duration {
        *lock(&self.shared.serving)
    }
}

impl<V: Vendor> Drop for FakeServer<V> {
    fn drop(&mut self) {
        self.task.abort();
        let violations = self.violations();
        if let Some(contract) = self.vendor().contract() {
            eprintln!(
                "contract: {} calls checked against {}, {} broke it",
                self.checked_calls(),
                contract.describe(),
                violations.len()
            );
        }
        if !violations.is_empty() && !std::thread::panicking() {
            panic!(
                "calls to a vendor fake broke the published API contract:\n  {}",
                violations.join("\n  ")
            );
        }
    }
}

pub fn parse_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k, true), decode(v, true))
        })
        .collect()
}

/// Percent-decoding; `plus_is_space` for query strings and forms, not paths.
fn decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn serve<V: Vendor>(State(shared): State<Arc<Shared<V>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 10 * 1024 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let raw_query = parts.uri.query().map(str::to_string);
    let request = FakeRequest {
        method: parts.method.to_string(),
        // Servers route on the decoded path (a group key `a%40b` is `a@b`).
        path: decode(parts.uri.path(), false),
        query: raw_query.as_deref().map(parse_pairs).unwrap_or_default(),
        raw_query,
        authorization: parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: serde_json::from_slice(&bytes).ok(),
        text,
        headers: parts.headers,
        base_url: shared.base_url.clone(),
        callback_answered: None,
    };
    let callback = lock(&shared.vendor).callback(&request);
    let mut request = request;
    if let Some(callback) = callback {
        request.callback_answered = Some(call_back(&callback).await);
    }
    let request = request;
    let now = Utc::now();
    let started = Instant::now();
    let fault = {
        let mut faults = lock(&shared.faults);
        let query = request.raw_query.as_deref().unwrap_or_default();
        let found = faults.iter().position(|f| {
            f.times > 0
                && request.path.starts_with(&f.path_prefix)
                && f.query_contains
                    .as_deref()
                    .is_none_or(|q| query.contains(q))
        });
        found.and_then(|i| {
            let fault = faults.get_mut(i)?;
            fault.times -= 1;
            let response = fault.response.clone();
            if fault.times == 0 {
                faults.remove(i);
            }
            Some(response)
        })
    };
    let answer = match fault {
        Some(response) => response,
        None => {
            let mut vendor = lock(&shared.vendor);
            if vendor.checked(&request.path)
                && let Some(contract) = vendor.contract()
            {
                *lock(&shared.checked) += 1;
                if let Err(violation) = contract.check(&Call {
                    method: &request.method,
                    path: &request.path,
                    query: request.raw_query.as_deref(),
                    body: request.body.as_ref(),
                    caller: CallerKind::Unscoped,
                }) {
                    lock(&shared.violations)
                        .push(format!("{} {}: {violation}", request.method, request.path));
                }
            }
            vendor.handle(&request, now)
        }
    };
    let mut response = match (&answer.body, &answer.text) {
        (Some(body), _) => (
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(body),
        )
            .into_response(),
        (None, Some(text)) => (
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            text.clone(),
        )
            .into_response(),
        (None, None) => Response::builder()
            .status(answer.status)
            .body(Body::empty())
            .unwrap_or_default(),
    };
    for (name, value) in &answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    *lock(&shared.serving) += started.elapsed();
    lock(&shared.recorded).push(Recorded {
        method: request.method,
        path: request.path,
        query: request.raw_query,
        body: request.body,
        status: answer.status,
        at: now,
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_are_decoded() {
        assert_eq!(
            parse_pairs("search=profile.name+eq+%22a%20b%22&limit=2&x"),
            vec![
                ("search".to_string(), "profile.name eq \"a b\"".to_string()),
                ("limit".to_string(), "2".to_string()),
                ("x".to_string(), String::new()),
            ]
        );
        assert_eq!(parse_pairs("a=%2"), vec![("a".into(), "%2".into())]);
    }
}
