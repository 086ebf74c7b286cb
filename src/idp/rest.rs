//! What the REST identity providers (Okta, Microsoft Graph, Google) share: credentials, one
//! call with the vendor's own throttling rules, paging links that may not leave the vendor, and
//! the vendor's error bodies turned into one message.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::IdpError;
use super::pacing::{Budget, Pacer, Window};
use crate::config::Secret;
use crate::outbound::retry::{self, Outcome, RetryPolicy};
use crate::outbound::rfc3986;

/// Whose rules a client follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Okta,
    Graph,
    Google,
    /// Any SCIM 2.0 service provider (429 with `Retry-After`, as Graph).
    Scim,
}

impl Vendor {
    pub fn name(self) -> &'static str {
        match self {
            Self::Okta => "Okta",
            Self::Graph => "Microsoft Graph",
            Self::Google => "Google",
            Self::Scim => "SCIM",
        }
    }

    /// The rate-limit bucket a path belongs to. Okta limits families of endpoints separately
    /// (`/api/v1/users`, `/api/v1/groups`, `/api/v1/groups/{id}/…`); Graph and Google
    /// throttle the app as a whole.
    pub fn family(self, path: &str) -> String {
        match self {
            Self::Okta => okta_family(path),
            Self::Graph => "graph".into(),
            Self::Google => "google".into(),
            Self::Scim => "scim".into(),
        }
    }
}

/// Okta's bucket for a path: the collection, or "one item of it and below".
pub fn okta_family(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", "v1", collection] => format!("/api/v1/{collection}"),
        ["api", "v1", collection, ..] => format!("/api/v1/{collection}/{{id}}"),
        _ => path.to_string(),
    }
}

/// How the connector proves who it is.
#[derive(Debug)]
pub enum Credential {
    /// A fixed `Authorization` value: Okta's `SSWS {token}`, or a bearer token.
    Header(Secret),
    /// An OAuth 2.0 access token from a token endpoint, cached until shortly before expiry.
    OAuth(OAuth),
}

#[derive(Debug)]
pub struct OAuth {
    pub token_url: String,
    pub grant: Grant,
    cached: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

/// The three token grants the vendors use.
#[derive(Debug, Clone)]
pub enum Grant {
    /// Client credentials with a client secret (Entra ID app registration).
    ClientSecret {
        client_id: String,
        client_secret: Secret,
        scope: String,
    },
    /// Client credentials with a signed client assertion (Okta service app, `private_key_jwt`).
    PrivateKeyJwt {
        client_id: String,
        key_pem: Secret,
        key_id: Option<String>,
        scope: String,
    },
    /// The JWT bearer grant of a service account acting as `subject` (Google domain-wide
    /// delegation).
    JwtBearer {
        issuer: String,
        subject: String,
        key_pem: Secret,
        key_id: Option<String>,
        scope: String,
    },
}

impl OAuth {
    pub fn new(token_url: String, grant: Grant) -> Self {
        Self {
            token_url,
            grant,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    fn assertion(
        &self,
        key_pem: &Secret,
        key_id: Option<&String>,
        claims: Value,
    ) -> Result<String, IdpError> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.expose().as_bytes())
            .map_err(|e| IdpError::Config(format!("the private key is not an RSA PEM key: {e}")))?;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = key_id.cloned();
        jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| IdpError::Config(format!("signing the token request: {e}")))
    }

    fn form(&self) -> Result<Vec<(&'static str, String)>, IdpError> {
        let now = crate::clock::wall().timestamp();
        let jti = uuid::Uuid::new_v4().to_string();
        Ok(match &self.grant {
            Grant::ClientSecret {
                client_id,
                client_secret,
                scope,
            } => vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.expose().to_string()),
                ("scope", scope.clone()),
            ],
            Grant::PrivateKeyJwt {
                client_id,
                key_pem,
                key_id,
                scope,
            } => {
                let claims = json!({"iss": client_id, "sub": client_id, "aud": self.token_url,
                    "iat": now, "exp": now + 300, "jti": jti});
                vec![
                    ("grant_type", "client_credentials".into()),
                    ("scope", scope.clone()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                    ),
                    (
                        "client_assertion",
                        self.assertion(key_pem, key_id.as_ref(), claims)?,
                    ),
                ]
            }
            Grant::JwtBearer {
                issuer,
                subject,
                key_pem,
                key_id,
                scope,
            } => {
                let claims = json!({"iss": issuer, "sub": subject, "scope": scope,
                    "aud": self.token_url, "iat": now, "exp": now + 3600});
                vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                    ),
                    (
                        "assertion",
                        self.assertion(key_pem, key_id.as_ref(), claims)?,
                    ),
                ]
            }
        })
    }

    async fn token(&self, http: &reqwest::Client) -> Result<Secret, IdpError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let body = self
            .form()?
            .iter()
            .map(|(k, v)| format!("{k}={}", rfc3986(v)))
            .collect::<Vec<_>>()
            .join("&");
        let response = http
            .post(&self.token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| IdpError::Unavailable(format!("token endpoint: {e}")))?;
        let status = response.status();
        let reply: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(IdpError::Unavailable(format!(
                "token endpoint answered {status}"
            )));
        }
        let token = reply["access_token"]
            .as_str()
            .filter(|_| status.is_success());
        let Some(token) = token else {
            return Err(IdpError::Config(format!(
                "the token endpoint refused the credentials ({status}): {}",
                error_message(&reply)
            )));
        };
        // Renewed a minute early, so a call never carries a token that expires on the way.
        let lifetime = reply["expires_in"].as_u64().unwrap_or(3600).max(120) - 60;
        let token = Secret::new(token);
        *cached = Some((
            token.clone(),
            Instant::now() + Duration::from_secs(lifetime),
        ));
        Ok(token)
    }

    async fn forget(&self) {
        *self.cached.lock().await = None;
    }
}

/// One answer: its status, its JSON body (`Null` when there is none) and the `Link rel=next`
/// header, if any.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub link_next: Option<String>,
    pub etag: Option<String>,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The list a page carries at `pointer` (`""`: the body itself), or why the page is not a
    /// page. `absent_is_empty` for vendors that leave the key out of an empty page that names
    /// its `kind` (Google).
    pub fn items(
        &self,
        vendor: &str,
        page: &str,
        pointer: &str,
        absent_is_empty: bool,
    ) -> Result<Vec<Value>, IdpError> {
        let found = if pointer.is_empty() {
            Some(&self.body)
        } else {
            self.body.pointer(pointer)
        };
        match found {
            Some(Value::Array(items)) => Ok(items.clone()),
            // Only a page that says what it is: an object with a `kind`.
            None if absent_is_empty && self.body.get("kind").is_some_and(Value::is_string) => {
                Ok(Vec::new())
            }
            other => Err(IdpError::Unreadable(format!(
                "{vendor} {page}: expected a list at `{}`, found {}",
                if pointer.is_empty() { "/" } else { pointer },
                kind_of(other)
            ))),
        }
    }
}

fn kind_of(value: Option<&Value>) -> &'static str {
    match value {
        None => "nothing",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "a string",
        Some(Value::Array(_)) => "a list",
        Some(Value::Object(_)) => "an object",
    }
}

/// What a non-JSON answer looks like, for the error: its type and first characters.
fn describe_text(text: &str, content_type: Option<&str>) -> String {
    let start: String = text.trim().chars().take(40).collect();
    format!(
        "the answer ({}, {} bytes, starting `{start}`)",
        content_type.unwrap_or("no content type"),
        text.len()
    )
}

#[derive(Debug)]
pub struct RestClient {
    vendor: Vendor,
    /// Every URL called starts with this; a paging link elsewhere is refused, so the
    /// credential never goes to another host.
    base: String,
    http: reqwest::Client,
    credential: Credential,
    pacer: std::sync::Mutex<Pacer>,
    policy: RetryPolicy,
}

impl RestClient {
    /// A client for a vendor that announces no budget, kept within `budget` when one is
    /// configured.
    pub fn with_budget(self, budget: Option<Budget>) -> Self {
        match budget {
            Some(budget) => Self {
                pacer: std::sync::Mutex::new(Pacer::budgeted(budget)),
                ..self
            },
            None => self,
        }
    }

    pub fn new(vendor: Vendor, base: &str, credential: Credential) -> Self {
        Self {
            vendor,
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .user_agent(crate::outbound::USER_AGENT)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            credential,
            pacer: std::sync::Mutex::new(match vendor {
                Vendor::Okta => Pacer::announced(),
                _ => Pacer::default(),
            }),
            policy: RetryPolicy {
                // Long enough for an Okta window (a minute) to reset.
                max_attempts: 6,
                max_delay: Duration::from_secs(65),
                ..RetryPolicy::default()
            },
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `target` is a path below the base, or an absolute link the vendor gave (which must be
    /// below the base too).
    fn url(&self, target: &str) -> Result<String, IdpError> {
        if target.starts_with("http://") || target.starts_with("https://") {
            if target.starts_with(&format!("{}/", self.base)) {
                Ok(target.to_string())
            } else {
                Err(IdpError::Refused(format!(
                    "{} sent a paging link to another address ({target}); not followed",
                    self.vendor.name()
                )))
            }
        } else {
            Ok(format!("{}{target}", self.base))
        }
    }

    async fn authorization(&self) -> Result<String, IdpError> {
        match &self.credential {
            Credential::Header(value) => Ok(value.expose().to_string()),
            Credential::OAuth(oauth) => Ok(format!(
                "Bearer {}",
                oauth.token(&self.http).await?.expose()
            )),
        }
    }

    async fn pace(&self, family: &str) {
        loop {
            let wait = {
                let mut pacer = self.pacer.lock().unwrap_or_else(|e| e.into_inner());
                pacer.reserve(family, crate::clock::wall())
            };
            match wait {
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    fn answered(&self, family: &str, headers: Option<&HeaderMap>) {
        let window = headers.and_then(okta_window);
        let mut pacer = self.pacer.lock().unwrap_or_else(|e| e.into_inner());
        pacer.answered(family, window);
    }

    fn hold(&self, family: &str, until: DateTime<Utc>) {
        let mut pacer = self.pacer.lock().unwrap_or_else(|e| e.into_inner());
        pacer.throttled(family, until);
    }

    /// One call, retried on throttling, 5xx and network failures by the vendor's rules; any
    /// other answer is the caller's to read. `headers` may replace the JSON `accept` and
    /// `content-type`.
    pub async fn send(
        &self,
        method: Method,
        target: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, IdpError> {
        let url = self.url(target)?;
        let family = self
            .vendor
            .family(url.strip_prefix(&self.base).unwrap_or(&url));
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            attempt += 1;
            let authorization = self.authorization().await?;
            self.pace(&family).await;
            let given = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header("authorization", authorization);
            if !given("accept") {
                request = request.header("accept", "application/json");
            }
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(body) = body {
                if !given("content-type") {
                    request = request.header("content-type", "application/json");
                }
                request = request.body(body.to_string());
            }
            let (status, response_headers, text) = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    (
                        Some(status),
                        Some(headers),
                        response.text().await.unwrap_or_default(),
                    )
                }
                Err(e) => (None, None, e.to_string()),
            };
            self.answered(&family, response_headers.as_ref());
            let header = |n: &str| {
                response_headers
                    .as_ref()
                    .and_then(|h| h.get(n))
                    .and_then(|v| v.to_str().ok())
            };
            let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if let Some(status) = status
                && (200..300).contains(&status)
                && !text.trim().is_empty()
                && parsed.is_null()
            {
                // A cut-off or non-JSON success (a proxy's HTML page) is never an empty list.
                return Err(IdpError::Unreadable(format!(
                    "{} {}: {} is not JSON ({})",
                    self.vendor.name(),
                    target,
                    describe_text(&text, header("content-type")),
                    serde_json::from_str::<Value>(&text)
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default()
                )));
            }
            if status == Some(401)
                && !renewed
                && let Credential::OAuth(oauth) = &self.credential
            {
                // A token revoked or expired early: one fresh token, then believe the 401.
                renewed = true;
                oauth.forget().await;
                attempt -= 1;
                continue;
            }
            let throttled = status == Some(429)
                || (self.vendor == Vendor::Google
                    && status == Some(403)
                    && google_rate_limited(&parsed));
            let now = crate::clock::wall();
            if throttled {
                let told = match self.vendor {
                    // Okta: the window's reset, in epoch seconds; never `Retry-After`.
                    Vendor::Okta => header("x-rate-limit-reset")
                        .and_then(|v| v.parse::<i64>().ok())
                        .and_then(|s| DateTime::from_timestamp(s, 0)),
                    Vendor::Graph | Vendor::Scim => header("retry-after")
                        .and_then(|v| retry::parse_wait(v, now))
                        .and_then(|d| chrono::TimeDelta::from_std(d).ok())
                        .map(|d| now + d),
                    // Google says nothing: back off exponentially.
                    Vendor::Google => None,
                };
                let until = told.unwrap_or_else(|| {
                    let backoff = self
                        .policy
                        .base_delay
                        .saturating_mul(4u32.saturating_pow(attempt.min(6)))
                        .min(self.policy.max_delay)
                        .mul_f64(0.5 + retry::jitter() / 2.0);
                    now + chrono::TimeDelta::from_std(backoff).unwrap_or_default()
                });
                let wait = (until - now).to_std().unwrap_or_default();
                if attempt >= self.policy.max_attempts || wait > self.policy.max_delay {
                    return Err(IdpError::Throttled {
                        retry_after: Some(wait),
                    });
                }
                self.hold(&family, until);
                continue;
            }
            if let Some(status) = status
                && status < 500
            {
                // Okta sends `self` and `next` as separate `Link` headers.
                let links = response_headers
                    .iter()
                    .flat_map(|h| h.get_all("link"))
                    .filter_map(|v| v.to_str().ok())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Ok(Reply {
                    status,
                    body: parsed,
                    link_next: link_next(&links),
                    etag: header("etag").map(str::to_string),
                });
            }
            let outcome = Outcome {
                status,
                retry_after: header("retry-after"),
                rate_limit_reset: None,
            };
            match retry::next_delay(&self.policy, &outcome, attempt, now, retry::jitter()) {
                Some(delay) => tokio::time::sleep(delay).await,
                None => {
                    let detail = if parsed.is_null() {
                        text
                    } else {
                        error_message(&parsed)
                    };
                    return Err(IdpError::Unavailable(format!(
                        "{} {}: {detail}",
                        self.vendor.name(),
                        status.map_or("unreachable".to_string(), |s| s.to_string())
                    )));
                }
            }
        }
    }

    pub async fn get(&self, target: &str) -> Result<Reply, IdpError> {
        self.send(Method::GET, target, None, &[]).await
    }

    /// A read whose answer must be 200: a refused credential is a configuration error
    /// (`needs` says what the credential needs), 404 is not found, anything else refused.
    pub async fn read(&self, target: &str, needs: &str) -> Result<Reply, IdpError> {
        let reply = self.get(target).await?;
        let vendor = self.vendor.name();
        let path = target.split('?').next().unwrap_or(target);
        let path = path.strip_prefix(&self.base).unwrap_or(path);
        let message = error_message(&reply.body);
        match reply.status {
            200 => Ok(reply),
            401 | 403 => Err(IdpError::Config(format!(
                "{vendor} refused the credential ({}): {message}; {needs}",
                reply.status
            ))),
            404 => Err(IdpError::NotFound(format!("{vendor} {path}: {message}"))),
            status => Err(IdpError::Refused(format!(
                "{vendor} {path} ({status}): {message}"
            ))),
        }
    }
}

/// The two parts of a full read, people first; a resume point is `users <where>` or
/// `groups <where>`, where is the vendor's next link or page token (empty: the first page).
pub const USERS: &str = "users";
pub const GROUPS: &str = "groups";

pub fn resume_at(resume: Option<&str>) -> (&str, Option<&str>) {
    match resume.map(|r| r.split_once(' ').unwrap_or((r, ""))) {
        Some((GROUPS, at)) => (GROUPS, Some(at).filter(|a| !a.is_empty())),
        Some((_, at)) => (USERS, Some(at).filter(|a| !a.is_empty())),
        None => (USERS, None),
    }
}

/// Okta's `X-Rate-Limit-*` headers, sent on every answer.
fn okta_window(headers: &HeaderMap) -> Option<Window> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    Some(Window {
        limit: u32::try_from(number("x-rate-limit-limit")?).ok()?,
        remaining: u32::try_from(number("x-rate-limit-remaining")?).ok()?,
        reset: DateTime::from_timestamp(number("x-rate-limit-reset")?, 0)?,
    })
}

fn google_rate_limited(body: &Value) -> bool {
    body["error"]["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| {
            matches!(
                e["reason"].as_str(),
                Some("rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded")
            )
        })
}

/// The `rel="next"` target of a `Link` header.
pub fn link_next(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        is_next.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// The message of an Okta (`errorSummary`, `errorCauses`), Graph or Google (`error.message`)
/// or OAuth (`error_description`) error body.
pub fn error_message(body: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(code) = body["errorCode"].as_str() {
        parts.push(code.to_string());
    }
    if let Some(summary) = body["errorSummary"].as_str() {
        parts.push(summary.to_string());
    }
    for cause in body["errorCauses"].as_array().into_iter().flatten() {
        if let Some(summary) = cause["errorSummary"].as_str() {
            parts.push(summary.to_string());
        }
    }
    let error = &body["error"];
    if let Some(code) = error["code"].as_str().or_else(|| error.as_str()) {
        parts.push(code.to_string());
    }
    if let Some(message) = error["message"]
        .as_str()
        .or_else(|| body["error_description"].as_str())
    {
        parts.push(message.to_string());
    }
    if parts.is_empty() {
        "no detail".into()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_found_among_others() {
        let header = r#"<https://x.okta.com/api/v1/users?limit=2>; rel="self", <https://x.okta.com/api/v1/users?after=00ub&limit=2>; rel="next""#;
        assert_eq!(
            link_next(header).as_deref(),
            Some("https://x.okta.com/api/v1/users?after=00ub&limit=2")
        );
        assert_eq!(
            link_next(r#"<https://x.okta.com/api/v1/users>; rel="self""#),
            None
        );
    }

    #[test]
    fn a_resume_point_names_its_phase() {
        assert_eq!(resume_at(None), (USERS, None));
        assert_eq!(resume_at(Some("groups ")), (GROUPS, None));
        assert_eq!(
            resume_at(Some("groups http://o/api/v1/groups?after=x")),
            (GROUPS, Some("http://o/api/v1/groups?after=x"))
        );
        assert_eq!(resume_at(Some("users abc")), (USERS, Some("abc")));
    }

    #[test]
    fn okta_families_are_collections_or_their_items() {
        assert_eq!(okta_family("/api/v1/users?limit=200"), "/api/v1/users");
        assert_eq!(
            okta_family("/api/v1/users/00u1/groups"),
            "/api/v1/users/{id}"
        );
        assert_eq!(
            okta_family("/api/v1/groups/00g1/users"),
            "/api/v1/groups/{id}"
        );
        assert_eq!(okta_family("/api/v1/groups"), "/api/v1/groups");
    }

    #[test]
    fn each_vendors_error_body_reads_as_one_message() {
        let okta = json!({"errorCode": "E0000007", "errorSummary": "Not found: Resource not found: x (UserGroup)", "errorCauses": []});
        assert_eq!(
            error_message(&okta),
            "E0000007: Not found: Resource not found: x (UserGroup)"
        );
        let graph = json!({"error": {"code": "Request_ResourceNotFound", "message": "Resource 'x' does not exist."}});
        assert_eq!(
            error_message(&graph),
            "Request_ResourceNotFound: Resource 'x' does not exist."
        );
        let google = json!({"error": {"code": 404, "message": "Resource Not Found: groupKey", "errors": [{"reason": "notFound"}]}});
        assert_eq!(error_message(&google), "Resource Not Found: groupKey");
        let oauth = json!({"error": "invalid_client", "error_description": "bad secret"});
        assert_eq!(error_message(&oauth), "invalid_client: bad secret");
    }

    #[test]
    fn a_paging_link_to_another_host_is_not_followed() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = RestClient::new(
            Vendor::Okta,
            "https://acme.okta.com/",
            Credential::Header(Secret::new("SSWS x")),
        );
        assert!(client.url("https://evil.example/api/v1/users").is_err());
        assert!(client.url("https://acme.okta.com.evil/api").is_err());
        assert_eq!(
            client
                .url("https://acme.okta.com/api/v1/users?after=1")
                .ok(),
            Some("https://acme.okta.com/api/v1/users?after=1".to_string())
        );
        assert_eq!(
            client.url("/api/v1/users").ok(),
            Some("https://acme.okta.com/api/v1/users".to_string())
        );
    }
}
