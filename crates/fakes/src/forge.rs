//! A test-side Forge platform for one installation of the app: it publishes its signing keys as
//! a JWKS (as `forge.cdn.prod.atlassian-dev.net` does), signs invocation tokens with them, and
//! invokes the app's remote endpoints the way Forge does, with a system token the fake cloud
//! accepts at its gateway (`/ex/jira/{cloudId}`) for the scopes `forge/manifest.yml` asks for.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{TimeDelta, Utc};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::atlassian::connect::TEST_KEY_1;
use super::atlassian::{FakeAtlassian, Scope};
use tollgate::forge::token::{APP_ARI_PREFIX, ISSUER};

/// How long Forge's system tokens last in this fake.
const SYSTEM_TOKEN_LIFETIME: TimeDelta = TimeDelta::hours(1);

#[derive(Default)]
struct Published {
    keys: RwLock<Vec<Jwk>>,
    fetches: AtomicUsize,
}

pub struct FakeForge {
    addr: SocketAddr,
    published: Arc<Published>,
    _task: tokio::task::JoinHandle<()>,
    pub app_id: String,
    pub app_ari: String,
    pub installation_id: String,
    pub cloud_id: String,
    /// The installation's `apiBaseUrl`: the fake cloud's gateway.
    pub api_base_url: String,
    /// `context.siteUrl`, when the tokens name the site.
    pub site_url: Option<String>,
    pub kid: String,
    private_key_pem: String,
    scopes: Vec<Scope>,
    /// How far Forge's clock is ahead of the wall clock (moved with the app's in tests).
    skew: Arc<AtomicI64>,
    http: reqwest::Client,
}

impl FakeForge {
    /// An installation on the site `cloud_id` of `cloud`, signing with [`TEST_KEY_1`].
    pub async fn start(cloud: &FakeAtlassian, cloud_id: &str) -> std::io::Result<Self> {
        let published = Arc::new(Published::default());
        let app = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(published.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let app_id = uuid::Uuid::new_v4().to_string();
        let forge = Self {
            addr,
            published,
            _task: task,
            app_ari: format!("{APP_ARI_PREFIX}{app_id}"),
            app_id,
            installation_id: format!("ari:cloud:ecosystem::installation/{}", uuid::Uuid::new_v4()),
            cloud_id: cloud_id.to_string(),
            api_base_url: cloud.gateway_url(cloud_id),
            site_url: None,
            kid: "forge-fake-1".into(),
            private_key_pem: TEST_KEY_1.0.to_string(),
            scopes: manifest_scopes(),
            skew: Arc::default(),
            http: reqwest::Client::new(),
        };
        forge.publish(&forge.kid.clone(), TEST_KEY_1.0);
        Ok(forge)
    }

    pub fn jwks_url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    /// How many times the key set was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.published.fetches.load(Ordering::SeqCst)
    }

    /// Publishes the public half of `private_pem` under `kid`.
    pub fn publish(&self, kid: &str, private_pem: &str) {
        let Ok(key) = EncodingKey::from_rsa_pem(private_pem.as_bytes()) else {
            return;
        };
        let Ok(mut jwk) = Jwk::from_encoding_key(&key, Algorithm::RS256) else {
            return;
        };
        jwk.common.key_id = Some(kid.to_string());
        if let Ok(mut keys) = self.published.keys.write() {
            keys.retain(|k| k.common.key_id.as_deref() != Some(kid));
            keys.push(jwk);
        }
    }

    fn now(&self) -> i64 {
        Utc::now().timestamp() + self.skew.load(Ordering::SeqCst)
    }

    /// Moves Forge's clock forward.
    pub fn advance(&self, by: TimeDelta) {
        self.skew.fetch_add(by.num_seconds(), Ordering::SeqCst);
    }

    /// The claims of a genuine invocation token of this installation.
    pub fn claims(&self) -> Value {
        let now = self.now();
        let mut claims = json!({
            "iss": ISSUER,
            "aud": self.app_ari,
            "iat": now,
            "nbf": now,
            "exp": now + 60,
            "jti": uuid::Uuid::new_v4().to_string(),
            "app": {
                "id": self.app_ari,
                "installationId": self.installation_id,
                "apiBaseUrl": self.api_base_url,
                "environment": {"type": "PRODUCTION", "id": "env-1"},
                "module": {"type": "core:endpoint", "key": "tollgate-events"},
            },
        });
        if let Some(site) = &self.site_url {
            claims["context"] = json!({"cloudId": self.cloud_id, "siteUrl": site});
        }
        claims
    }

    /// `claims` signed RS256 under this installation's kid.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(claims, &self.kid, &self.private_key_pem)
    }

    pub fn sign_as(&self, claims: &Value, kid: &str, private_pem: &str) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_string());
        EncodingKey::from_rsa_pem(private_pem.as_bytes())
            .and_then(|key| jsonwebtoken::encode(&header, claims, &key))
            .unwrap_or_default()
    }

    /// A system token for this installation, good at the cloud's gateway for an hour.
    pub fn system_token(&self, cloud: &FakeAtlassian) -> String {
        let expires = chrono::DateTime::from_timestamp(self.now(), 0).unwrap_or_else(Utc::now)
            + SYSTEM_TOKEN_LIFETIME;
        cloud.issue_forge_token(&self.cloud_id, self.scopes.clone(), expires)
    }

    /// Calls the remote at `app_url` + `path` as Forge does: a fresh invocation token, and a
    /// fresh system token in `x-forge-oauth-system`.
    pub async fn invoke(
        &self,
        cloud: &FakeAtlassian,
        app_url: &str,
        path: &str,
        body: &Value,
    ) -> reqwest::Result<reqwest::Response> {
        self.invoke_with(&self.sign(&self.claims()), cloud, app_url, path, body)
            .await
    }

    /// Like [`Self::invoke`] with a given invocation token.
    pub async fn invoke_with(
        &self,
        token: &str,
        cloud: &FakeAtlassian,
        app_url: &str,
        path: &str,
        body: &Value,
    ) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(format!("{}{path}", app_url.trim_end_matches('/')))
            .bearer_auth(token)
            .header("x-forge-oauth-system", self.system_token(cloud))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
    }
}

async fn jwks(State(published): State<Arc<Published>>) -> Json<JwkSet> {
    published.fetches.fetch_add(1, Ordering::SeqCst);
    let keys = published.keys.read().map(|k| k.clone()).unwrap_or_default();
    Json(JwkSet { keys })
}

/// The scopes `forge/manifest.yml` asks for, as the Connect scopes the fake cloud enforces.
fn manifest_scopes() -> Vec<Scope> {
    let manifest = include_str!("../../../forge/manifest.yml");
    let mut scopes: Vec<Scope> = manifest
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("- "))
        .filter_map(|scope| match scope.trim() {
            "read:jira-work" | "read:jira-user" | "read:servicedesk-request" => Some(Scope::Read),
            "write:jira-work" | "write:servicedesk-request" => Some(Scope::Write),
            "manage:jira-project" => Some(Scope::ProjectAdmin),
            "manage:jira-configuration" | "manage:servicedesk-customer" => Some(Scope::Admin),
            _ => None,
        })
        .collect();
    scopes.dedup();
    scopes
}

/// Forge's lifecycle and product event bodies, as a trigger delivers them to a remote.
pub mod bodies {
    use serde_json::{Value, json};

    fn issue(key: &str) -> Value {
        let id = key
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .map_or(10_000, |n| 10_000 + n);
        json!({"id": id.to_string(), "key": key, "fields": {"summary": "Access request"}})
    }

    pub fn issue_created(key: &str, reporter: &str) -> Value {
        json!({
            "eventType": "avi:jira:created:issue",
            "atlassianId": reporter,
            "issue": issue(key),
        })
    }

    pub fn issue_updated(key: &str, user: &str, changelog_id: &str) -> Value {
        json!({
            "eventType": "avi:jira:updated:issue",
            "atlassianId": user,
            "issue": issue(key),
            "changelog": {"id": changelog_id, "items": []},
        })
    }

    /// A comment event; the body is ADF, as Jira's v3 API and Forge give it, and the comment's
    /// id a number, as Forge sends it.
    pub fn commented(key: &str, comment_id: u64, author: (&str, &str), text: &str) -> Value {
        json!({
            "eventType": "avi:jira:commented:issue",
            "atlassianId": author.0,
            "issue": issue(key),
            "comment": {
                "id": comment_id,
                "author": {"accountId": author.0, "displayName": author.1, "accountType": "atlassian"},
                "body": {"type": "doc", "version": 1, "content": [
                    {"type": "paragraph", "content": [{"type": "text", "text": text}]}
                ]},
            },
        })
    }

    pub fn installed(cloud_id: &str) -> Value {
        json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "installerAccountId": "acc-admin",
            "context": format!("ari:cloud:jira::site/{cloud_id}"),
        })
    }
}
