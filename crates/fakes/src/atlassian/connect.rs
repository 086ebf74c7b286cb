//! A test-side Atlassian site: it installs the app the way Jira (or Confluence) does — reads the
//! descriptor, signs the install with an RSA key published on a local key server — and sends
//! webhooks signed with the shared secret it handed over, with the `x-atlassian-webhook-*`
//! headers, including duplicate deliveries.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use tollgate::atlassian::jwt::{Audience, Claims, sign_hs256};
use tollgate::atlassian::qsh;

/// Test-only RSA key pairs (see `crates/fakes/src/keys/README.md`).
/// `connect.allowed_sites` for tests: the default (Atlassian's sites) and the fakes' (any
/// port on the loopback address).
pub const TEST_SITES: &str = "https://*.atlassian.net,https://*.jira.com,http://127.0.0.1:*";

pub const TEST_KEY_1: (&str, &str) = (
    include_str!("../keys/test-install-1.key.pem"),
    include_str!("../keys/test-install-1.pub.pem"),
);
pub const TEST_KEY_2: (&str, &str) = (
    include_str!("../keys/test-install-2.key.pem"),
    include_str!("../keys/test-install-2.pub.pem"),
);

/// Serves public keys at `/{kid}` like `connect-install-keys.atlassian.com`.
pub struct InstallKeyServer {
    addr: SocketAddr,
    keys: Arc<RwLock<HashMap<String, String>>>,
    requests: Arc<RwLock<usize>>,
    _task: tokio::task::JoinHandle<()>,
}

impl InstallKeyServer {
    pub async fn start() -> std::io::Result<Self> {
        let keys = Arc::new(RwLock::new(HashMap::new()));
        let requests = Arc::new(RwLock::new(0usize));
        let app = Router::new()
            .route("/{kid}", get(serve_key))
            .with_state((keys.clone(), requests.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            keys,
            requests,
            _task: task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn publish(&self, kid: &str, public_pem: &str) {
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(kid.to_string(), public_pem.to_string());
        }
    }

    /// How many key fetches the server answered (to observe caching).
    pub fn requests(&self) -> usize {
        self.requests.read().map(|r| *r).unwrap_or(0)
    }
}

type KeyState = (Arc<RwLock<HashMap<String, String>>>, Arc<RwLock<usize>>);

async fn serve_key(
    State((keys, requests)): State<KeyState>,
    Path(kid): Path<String>,
) -> Result<String, StatusCode> {
    if let Ok(mut n) = requests.write() {
        *n += 1;
    }
    keys.read()
        .ok()
        .and_then(|k| k.get(&kid).cloned())
        .ok_or(StatusCode::NOT_FOUND)
}

/// One product install of one fake site.
#[derive(Debug, Clone)]
pub struct FakeSite {
    /// Where the app listens (`http://127.0.0.1:PORT`).
    pub app_url: String,
    pub client_key: String,
    pub shared_secret: String,
    /// The site's base URL (`https://acme.atlassian.net`, `…/wiki` for Confluence).
    pub base_url: String,
    pub product: &'static str,
    pub kid: String,
    pub private_key_pem: String,
    /// How far the site's clock is ahead of the wall clock (tests that move the app's clock
    /// move the site's with it, or its tokens would look expired).
    pub skew: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// Sent as `cloudId` in lifecycle bodies when set.
    pub cloud_id: Option<String>,
    http: reqwest::Client,
}

impl FakeSite {
    /// The site's clock, in seconds since the epoch.
    fn now(&self) -> i64 {
        Utc::now().timestamp() + self.skew.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Moves the site's clock forward.
    pub fn advance(&self, by: chrono::TimeDelta) {
        self.skew
            .fetch_add(by.num_seconds(), std::sync::atomic::Ordering::SeqCst);
    }

    pub fn jira(app_url: &str, site: &str, kid: &str) -> Self {
        Self::new(app_url, site, kid, "jira", "")
    }

    pub fn confluence(app_url: &str, site: &str, kid: &str) -> Self {
        Self::new(app_url, site, kid, "confluence", "/wiki")
    }

    fn new(app_url: &str, site: &str, kid: &str, product: &'static str, path: &str) -> Self {
        Self {
            app_url: app_url.trim_end_matches('/').to_string(),
            client_key: format!("{product}:{}", uuid::Uuid::new_v4()),
            shared_secret: format!("secret-{}", uuid::Uuid::new_v4().simple()),
            base_url: format!("https://{site}{path}"),
            product,
            kid: kid.to_string(),
            private_key_pem: TEST_KEY_1.0.to_string(),
            skew: Default::default(),
            cloud_id: None,
            http: reqwest::Client::new(),
        }
    }

    /// The same site served from `base_url` (a [`super::FakeAtlassian`]'s), so the app's
    /// calls back reach the fake.
    pub fn at(mut self, base_url: &str) -> Self {
        self.base_url = base_url.trim_end_matches('/').to_string();
        self
    }

    /// The same site, naming its cloud id in lifecycle bodies.
    pub fn with_cloud_id(mut self, cloud_id: &str) -> Self {
        self.cloud_id = Some(cloud_id.to_string());
        self
    }

    /// This install as the fake cloud must know it to check the app's calls.
    pub fn fake_tenant(&self, descriptor: &Value) -> super::FakeTenant {
        let base_path = if self.product == "confluence" {
            "/wiki"
        } else {
            ""
        };
        super::FakeTenant::from_descriptor(
            descriptor,
            &self.client_key,
            &self.shared_secret,
            base_path,
        )
    }

    /// The descriptor the app serves for this product.
    pub async fn descriptor(&self) -> reqwest::Result<Value> {
        let path = if self.product == "confluence" {
            "/confluence/atlassian-connect.json"
        } else {
            "/atlassian-connect.json"
        };
        self.http
            .get(format!("{}{path}", self.app_url))
            .send()
            .await?
            .json()
            .await
    }

    /// The lifecycle body Atlassian sends.
    pub fn lifecycle_body(&self, app_key: &str, event: &str) -> Value {
        let mut body = json!({
            "key": app_key,
            "clientKey": self.client_key,
            "sharedSecret": self.shared_secret,
            "serverVersion": "100000",
            "pluginsVersion": "1001.0.0",
            "baseUrl": self.base_url,
            "displayUrl": self.base_url,
            "productType": self.product,
            "description": "Atlassian JIRA at https://fake",
            "eventType": event,
        });
        if let Some(cloud_id) = &self.cloud_id {
            body["cloudId"] = json!(cloud_id);
        }
        body
    }

    /// Claims as Atlassian puts them in a signed install token for `path`.
    pub fn install_claims(&self, app_base_url: &str, path: &str) -> Claims {
        let now = self.now();
        Claims {
            iss: Some(self.client_key.clone()),
            sub: None,
            aud: Some(Audience::Many(vec![app_base_url.to_string()])),
            qsh: Some(qsh::qsh("POST", path, "")),
            exp: Some(now + 180),
            iat: Some(now),
            // Atlassian's tokens differ per install even within a second.
            jti: Some(uuid::Uuid::new_v4().to_string()),
            context: None,
        }
    }

    /// Signs install claims with this site's RSA key under its kid.
    pub fn sign_install(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        EncodingKey::from_rsa_pem(self.private_key_pem.as_bytes())
            .and_then(|key| jsonwebtoken::encode(&header, claims, &key))
            .unwrap_or_default()
    }

    /// Posts a lifecycle event signed as Atlassian would.
    pub async fn lifecycle(&self, event: &str) -> reqwest::Result<reqwest::Response> {
        let descriptor = self.descriptor().await?;
        let app_key = descriptor["key"].as_str().unwrap_or_default().to_string();
        let app_base_url = descriptor["baseUrl"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let path = descriptor["lifecycle"][event]
            .as_str()
            .unwrap_or("/connect/installed")
            .to_string();
        let body = self.lifecycle_body(&app_key, event).to_string();
        let token = match event {
            "installed" | "uninstalled" => {
                self.sign_install(&self.install_claims(&app_base_url, &path))
            }
            _ => self.hs256_token("POST", &path),
        };
        self.http
            .post(format!("{}{path}", self.app_url))
            .header("authorization", format!("JWT {token}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
    }

    pub async fn install(&self) -> reqwest::Result<reqwest::Response> {
        self.lifecycle("installed").await
    }

    /// A request-bound HS256 token for `method path_and_query`, as the product signs calls.
    pub fn hs256_token(&self, method: &str, path_and_query: &str) -> String {
        let now = self.now();
        let claims = Claims {
            iss: Some(self.client_key.clone()),
            sub: Some("557058:f1c0ffee-0000-4000-8000-000000000001".into()),
            aud: None,
            qsh: Some(qsh::qsh(method, path_and_query, "")),
            exp: Some(now + 180),
            iat: Some(now),
            jti: None,
            context: None,
        };
        sign_hs256(&claims, self.shared_secret.as_bytes()).unwrap_or_default()
    }

    /// `n` distinct request-bound tokens for `method path_and_query`, valid for an hour (each
    /// with its own `jti`), for a load test: one token carries one body.
    pub fn hs256_tokens(&self, method: &str, path_and_query: &str, n: usize) -> Vec<String> {
        let now = self.now();
        let qsh = qsh::qsh(method, path_and_query, "");
        (0..n)
            .map(|i| {
                let claims = Claims {
                    iss: Some(self.client_key.clone()),
                    qsh: Some(qsh.clone()),
                    exp: Some(now + 3600),
                    iat: Some(now),
                    jti: Some(format!("load-{i}")),
                    ..Claims::default()
                };
                sign_hs256(&claims, self.shared_secret.as_bytes()).unwrap_or_default()
            })
            .collect()
    }

    /// A context token, as `AP.context.getToken()` hands our pages' scripts: bound to no
    /// request (`qsh` is `context-qsh`), naming the viewer.
    pub fn context_token(&self, account_id: &str) -> String {
        let now = self.now();
        let claims = Claims {
            iss: Some(self.client_key.clone()),
            sub: Some(account_id.to_string()),
            aud: None,
            qsh: Some(qsh::CONTEXT_QSH.into()),
            exp: Some(now + 60),
            iat: Some(now),
            jti: None,
            context: None,
        };
        sign_hs256(&claims, self.shared_secret.as_bytes()).unwrap_or_default()
    }

    /// Sends a webhook as Jira does; the same `delivery_id` again is a retried delivery.
    pub async fn send_webhook(
        &self,
        path: &str,
        delivery_id: &str,
        body: &Value,
    ) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(format!("{}{path}", self.app_url))
            .header(
                "authorization",
                format!("JWT {}", self.hs256_token("POST", path)),
            )
            .header("content-type", "application/json")
            .header("x-atlassian-webhook-identifier", delivery_id)
            .header("x-atlassian-webhook-flow", "Primary")
            .body(body.to_string())
            .send()
            .await
    }
}

/// A `jira:issue_created` body of about 2 KB, shaped like Jira's.
pub fn issue_created(issue_key: &str, reporter_account_id: &str) -> Value {
    json!({
        "timestamp": Utc::now().timestamp_millis(),
        "webhookEvent": "jira:issue_created",
        "issue_event_type_name": "issue_created",
        "user": {
            "self": "https://acme.atlassian.net/rest/api/2/user?accountId=".to_string() + reporter_account_id,
            "accountId": reporter_account_id,
            "displayName": "Erin Evans",
            "active": true,
            "timeZone": "Europe/Berlin",
            "accountType": "atlassian"
        },
        "issue": {
            "id": "10042",
            "self": "https://acme.atlassian.net/rest/api/2/issue/10042",
            "key": issue_key,
            "fields": {
                "summary": "Access to NetSuite for quarter close",
                "issuetype": { "id": "10010", "name": "Access request", "subtask": false },
                "project": { "id": "10000", "key": "IT", "name": "IT Service Desk", "projectTypeKey": "service_desk" },
                "reporter": { "accountId": reporter_account_id, "displayName": "Erin Evans" },
                "creator": { "accountId": reporter_account_id, "displayName": "Erin Evans" },
                "status": { "id": "1", "name": "Waiting for approval", "statusCategory": { "id": 2, "key": "new", "name": "To Do" } },
                "priority": { "id": "3", "name": "Medium" },
                "created": "2026-11-28T09:15:02.123+0000",
                "updated": "2026-11-28T09:15:02.123+0000",
                "description": "I need NetSuite to post the quarter-close journal entries for the EMEA entities. My manager Dan knows about it.",
                "labels": ["access"],
                "customfield_10050": { "id": "10100", "value": "netsuite" },
                "customfield_10051": null,
                "customfield_10052": "14d",
                "customfield_10053": null,
                "customfield_10010": {
                    "requestType": { "id": "12", "name": "Request access", "serviceDeskId": "1" },
                    "currentStatus": { "status": "Waiting for approval", "statusCategory": "NEW" }
                }
            }
        }
    })
}

/// The id of the comment a `comment_created` webhook names, as the number Forge would send.
/// Panics on a body the fake did not make (a test's mistake).
pub fn comment_id(webhook: &Value) -> u64 {
    webhook["comment"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("Jira's comment ids are numbers in a string")
}

/// A `comment_created` body: `author` is (account id, display name).
pub fn comment_created(issue_key: &str, author: (&str, &str), body: &str) -> Value {
    json!({
        "timestamp": Utc::now().timestamp_millis(),
        "webhookEvent": "comment_created",
        "issue": {"id": "10042", "key": issue_key, "fields": {"summary": "Access request"}},
        "comment": {
            "id": uuid::Uuid::new_v4().simple().to_string(),
            "body": body,
            "author": {"accountId": author.0, "displayName": author.1, "accountType": "atlassian", "active": true},
            "updateAuthor": {"accountId": author.0, "displayName": author.1},
            "created": "2026-11-28T09:20:00.000+0000",
            "updated": "2026-11-28T09:20:00.000+0000",
            "jsdPublic": true
        }
    })
}

/// A `jira:issue_updated` body, as an approval answered in JSM produces.
pub fn issue_updated(issue_key: &str, user: (&str, &str)) -> Value {
    json!({
        "timestamp": Utc::now().timestamp_millis(),
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "user": {"accountId": user.0, "displayName": user.1, "accountType": "atlassian"},
        "issue": {"id": "10042", "key": issue_key, "fields": {"summary": "Access request"}},
        "changelog": {"id": "1", "items": [{"field": "Approvals", "fieldtype": "custom", "from": null, "to": null}]}
    })
}
