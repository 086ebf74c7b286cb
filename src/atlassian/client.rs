//! Sending one call to an Atlassian API: the credential, a `User-Agent` naming Tollgate,
//! retries on throttling and transient failures, and a limit on concurrent calls per tenant.

use crate::outbound::USER_AGENT;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use tokio::sync::Semaphore;

use super::errors::CallError;
use crate::atlassian::jwt::{Audience, Claims, sign_hs256};
use crate::atlassian::qsh;
use crate::outbound::retry::{self, Outcome, RetryPolicy};
use crate::tenant::base_path;

/// How long a Connect token we sign is valid (as atlassian-connect-express does).
const CONNECT_TOKEN_LIFETIME_SECONDS: i64 = 180;

/// The credential a call is made with.
#[derive(Clone)]
pub enum Credential {
    /// A Connect JWT signed with the tenant's shared secret; `base_url` is the tenant's (its path,
    /// `/wiki` for Confluence, is left out of the qsh).
    Connect {
        app_key: String,
        client_key: String,
        shared_secret: Arc<Vec<u8>>,
        base_url: String,
    },
    /// An API key or OAuth token (`Authorization: Bearer`).
    Bearer(String),
    /// A site-admin account's email and API token (`Authorization: Basic`).
    Basic { email: String, token: String },
}

impl std::fmt::Debug for Credential {
    /// Never prints a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect { client_key, .. } => write!(f, "Connect({client_key})"),
            Self::Bearer(_) => f.write_str("Bearer(…)"),
            Self::Basic { email, .. } => write!(f, "Basic({email}, …)"),
        }
    }
}

/// One call: `url` is absolute.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub url: String,
    pub credential: Credential,
    pub body: Option<serde_json::Value>,
    /// Calls sharing a key (a tenant) share the concurrency limit.
    pub limit_key: String,
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, CallError> {
        serde_json::from_str(&self.body).map_err(|e| CallError::Permanent {
            status: self.status,
            message: format!("unexpected response body: {e}"),
        })
    }
}

#[derive(Debug)]
pub struct AtlassianClient {
    http: reqwest::Client,
    policy: RetryPolicy,
    per_key: usize,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Per limit key: no call before this instant. A 429's `Retry-After` holds back every
    /// caller of that tenant (or of the organization APIs), not just the one it answered.
    not_before: Mutex<HashMap<String, tokio::time::Instant>>,
}

impl AtlassianClient {
    pub fn new(policy: RetryPolicy, per_key_concurrency: usize) -> Self {
        Self {
            http: reqwest::Client::builder()
                .user_agent(USER_AGENT)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            policy,
            per_key: per_key_concurrency.max(1),
            limits: Mutex::new(HashMap::new()),
            not_before: Mutex::new(HashMap::new()),
        }
    }

    /// Waits out a back-off another call to `key` was told to keep.
    async fn wait_turn(&self, key: &str) {
        loop {
            let until = self
                .not_before
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(key)
                .copied();
            match until {
                Some(until) if until > tokio::time::Instant::now() => {
                    tokio::time::sleep_until(until).await;
                }
                _ => return,
            }
        }
    }

    /// A vendor that says its budget is (nearly) spent and when it resets is not called again
    /// before then: a 429 would cost a whole `Retry-After` second. "Nearly": calls already in
    /// flight for this key (up to its concurrency) would spend the rest.
    fn pace(&self, key: &str, headers: &HeaderMap) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let spent = header("x-ratelimit-remaining")
            .or(header("x-rate-limit-remaining"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .is_some_and(|left| left < self.per_key);
        if !spent {
            return;
        }
        if let Some(wait) = header("x-ratelimit-reset")
            .or(header("x-rate-limit-reset"))
            .and_then(|v| retry::parse_wait(v, crate::clock::wall()))
        {
            self.hold_back(key, wait);
        }
    }

    fn hold_back(&self, key: &str, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut map = self
            .not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry(key.to_string()).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }

    fn limit(&self, key: &str) -> Arc<Semaphore> {
        let mut limits = self.limits.lock().unwrap_or_else(PoisonError::into_inner);
        limits
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_key)))
            .clone()
    }

    /// Sends the call, retrying throttled and transient failures within the policy; any
    /// non-2xx answer that remains is a typed [`CallError`] with the vendor's message.
    pub async fn send(&self, call: &Call) -> Result<Reply, CallError> {
        let limit = self.limit(&call.limit_key);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = {
                let _permit = limit
                    .acquire()
                    .await
                    .map_err(|_| CallError::Transient("client shut down".into()))?;
                self.wait_turn(&call.limit_key).await;
                self.attempt(call).await
            };
            if let Ok(reply) = &result {
                self.pace(&call.limit_key, &reply.headers);
            }
            let (status, headers, body) = match result {
                Ok(reply) if (200..300).contains(&reply.status) => return Ok(reply),
                Ok(reply) => (Some(reply.status), reply.headers, reply.body),
                Err(e) => (None, HeaderMap::new(), e.to_string()),
            };
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let outcome = Outcome {
                status,
                retry_after: header("retry-after"),
                rate_limit_reset: header("x-ratelimit-reset").or(header("x-rate-limit-reset")),
            };
            let now = crate::clock::wall();
            if status == Some(429)
                && let Some(wait) = outcome
                    .retry_after
                    .or(outcome.rate_limit_reset)
                    .and_then(|v| retry::parse_wait(v, now))
            {
                self.hold_back(&call.limit_key, wait);
            }
            match retry::next_delay(&self.policy, &outcome, attempt, now, retry::jitter()) {
                Some(delay) => {
                    tracing::debug!(
                        url = call.url,
                        ?status,
                        attempt,
                        ?delay,
                        "retrying Atlassian call"
                    );
                    tokio::time::sleep(delay).await;
                }
                None => {
                    return Err(match status {
                        None => CallError::Transient(body),
                        Some(status) => {
                            let wait = outcome
                                .retry_after
                                .or(outcome.rate_limit_reset)
                                .and_then(|v| retry::parse_wait(v, now));
                            CallError::from_status(status, &body, wait)
                        }
                    });
                }
            }
        }
    }

    async fn attempt(&self, call: &Call) -> Result<Reply, reqwest::Error> {
        let mut request = self.http.request(call.method.clone(), &call.url);
        request = match &call.credential {
            // A fresh token per attempt: a retry may come after the last one expired.
            Credential::Connect { .. } => request.header(
                "authorization",
                format!("JWT {}", connect_token(call).unwrap_or_default()),
            ),
            Credential::Bearer(token) => request.bearer_auth(token),
            Credential::Basic { email, token } => request.basic_auth(email, Some(token)),
        };
        for (name, value) in &call.headers {
            if let Ok(value) = HeaderValue::from_str(value) {
                request = request.header(*name, value);
            }
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// The outbound Connect token for `call`: `iss` = app key, `qsh` over the call relative to the
/// tenant's base URL, three minutes' validity, `aud` = the tenant's client key.
pub fn connect_token(call: &Call) -> Option<String> {
    let Credential::Connect {
        app_key,
        client_key,
        shared_secret,
        base_url,
    } = &call.credential
    else {
        return None;
    };
    let target = call
        .url
        .split_once("://")
        .map_or(call.url.as_str(), |(_, rest)| {
            rest.find('/').map_or("/", |i| &rest[i..])
        });
    let now = crate::clock::wall().timestamp();
    let claims = Claims {
        iss: Some(app_key.clone()),
        aud: Some(Audience::Many(vec![client_key.clone()])),
        qsh: Some(qsh::qsh(call.method.as_str(), target, base_path(base_url))),
        iat: Some(now),
        exp: Some(now + CONNECT_TOKEN_LIFETIME_SECONDS),
        ..Default::default()
    };
    sign_hs256(&claims, shared_secret).ok()
}
