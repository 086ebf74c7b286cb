//! The operations layer's common ground: a tenant's site, the [`Atlassian`] handle that every
//! operation module (`jira`, `jsm`, `confluence`, `admin`) extends, the result of an idempotent
//! change, and collecting every page of a listing.

use std::sync::Arc;

use reqwest::Method;
use serde_json::Value;

use super::client::{AtlassianClient, Call, Credential, Reply};
use super::credentials::{Credentials, MissingCredential, Operation};
use super::errors::CallError;
use super::pages::{self, Next};
use crate::ids::TenantKey;
use crate::outbound::rfc3986;
use crate::secrets::{SecretError, SecretKey};
use crate::tenant::Tenant;

/// Listings stop here even if the vendor keeps offering pages (a loop in its cursors).
const MAX_PAGES: usize = 10_000;

/// How calls to a site are authenticated: one kind per front door the tenant came through.
#[derive(Clone)]
enum SiteAuth {
    /// A Connect JWT per call, signed with the install's shared secret.
    Connect {
        app_key: String,
        shared_secret: Arc<Vec<u8>>,
    },
    /// The system token of the newest Forge invocation (calls go to its `apiBaseUrl`).
    ForgeSystem(String),
    /// A site-admin account's API token (plain-webhook sources).
    ApiToken { email: String, token: String },
}

/// One installed product of a site, as far as calling it goes.
#[derive(Clone)]
pub struct Site {
    pub client_key: TenantKey,
    /// Where calls made with the site's own credential go: the site itself for Connect and API
    /// tokens (`https://acme.atlassian.net`, `…/wiki` for Confluence), Forge's `apiBaseUrl`
    /// (`https://api.atlassian.com/ex/jira/{cloudId}`) for Forge.
    pub base_url: String,
    /// The site as people and other credentials (the site-admin token) reach it.
    pub site_url: String,
    auth: SiteAuth,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.auth {
            SiteAuth::Connect { .. } => "connect",
            SiteAuth::ForgeSystem(_) => "forge",
            SiteAuth::ApiToken { .. } => "api token",
        };
        write!(f, "Site({}, {}, {kind})", self.client_key, self.base_url)
    }
}

impl Site {
    /// A Connect install, called with JWTs signed with its (unsealed) shared secret.
    pub fn from_tenant(tenant: &Tenant, key: &SecretKey) -> Result<Self, SecretError> {
        let secret = key.unseal(
            &tenant.shared_secret_sealed,
            &Tenant::secret_context(&tenant.client_key),
        )?;
        Ok(Self::connect(
            &tenant.client_key,
            &tenant.app_key,
            secret,
            &tenant.base_url,
        ))
    }

    /// A Connect install from its parts.
    pub fn connect(
        client_key: &TenantKey,
        app_key: &str,
        shared_secret: Vec<u8>,
        base_url: &str,
    ) -> Self {
        let base_url = base_url.trim_end_matches('/').to_string();
        Self {
            client_key: client_key.clone(),
            site_url: base_url.clone(),
            base_url,
            auth: SiteAuth::Connect {
                app_key: app_key.to_string(),
                shared_secret: Arc::new(shared_secret),
            },
        }
    }

    /// A Forge installation, called at `api_base_url` with a system token.
    pub fn forge(tenant: &Tenant, api_base_url: &str, system_token: String) -> Self {
        Self {
            client_key: tenant.client_key.clone(),
            base_url: api_base_url.trim_end_matches('/').to_string(),
            site_url: tenant.base_url.trim_end_matches('/').to_string(),
            auth: SiteAuth::ForgeSystem(system_token),
        }
    }

    /// A site called with a site-admin account's API token.
    pub fn api_token(tenant: &Tenant, email: String, token: String) -> Self {
        let base_url = tenant.base_url.trim_end_matches('/').to_string();
        Self {
            client_key: tenant.client_key.clone(),
            site_url: base_url.clone(),
            base_url,
            auth: SiteAuth::ApiToken { email, token },
        }
    }

    /// The credential of a call made as the app.
    fn credential(&self) -> Credential {
        match &self.auth {
            SiteAuth::Connect {
                app_key,
                shared_secret,
            } => Credential::Connect {
                app_key: app_key.clone(),
                client_key: self.client_key.to_string(),
                shared_secret: shared_secret.clone(),
                base_url: self.base_url.clone(),
            },
            SiteAuth::ForgeSystem(token) => Credential::Bearer(token.clone()),
            SiteAuth::ApiToken { email, token } => Credential::Basic {
                email: email.clone(),
                token: token.clone(),
            },
        }
    }

    /// Whether calls go through Connect (some operations exist only for Connect apps).
    pub fn is_connect(&self) -> bool {
        matches!(self.auth, SiteAuth::Connect { .. })
    }

    /// `scheme://host[:port]` of the base URL: Confluence's cursor links start at the host.
    fn origin(&self) -> &str {
        let after_scheme = self.base_url.find("://").map_or(0, |i| i + 3);
        match self.base_url[after_scheme..].find('/') {
            Some(i) => &self.base_url[..after_scheme + i],
            None => &self.base_url,
        }
    }
}

pub use crate::change::Change;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AtlassianError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Credential(#[from] MissingCredential),
    /// The vendor answered, but what was asked cannot be done (no such transition, …).
    #[error("{0}")]
    Refused(String),
}

impl AtlassianError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Call(e) if e.is_retryable())
    }
}

/// `path?k=v&…` with each key and value percent-encoded the way Atlassian canonicalizes them.
pub fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    let mut out = path.to_string();
    for (i, (k, v)) in params.iter().enumerate() {
        out.push(if i == 0 && !path.contains('?') {
            '?'
        } else {
            '&'
        });
        out.push_str(&rfc3986(k));
        out.push('=');
        out.push_str(&rfc3986(v));
    }
    out
}

/// A path segment from outside (an issue key, a group id): encoded so it stays one segment.
pub fn segment(text: &str) -> String {
    rfc3986(text)
}

/// The handle every operation hangs off: one HTTP client, the organization credentials.
#[derive(Debug, Clone)]
pub struct Atlassian {
    client: Arc<AtlassianClient>,
    credentials: Arc<Credentials>,
    /// Names looked up as ids (project roles, groups, spaces, organizations), briefly kept:
    /// a thousand grants of one resource are one lookup, not a thousand.
    lookups: Arc<std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, String)>>>,
}

/// How long a name → id lookup is trusted.
const LOOKUP_TTL: std::time::Duration = std::time::Duration::from_secs(600);

impl Atlassian {
    pub fn new(client: Arc<AtlassianClient>, credentials: Credentials) -> Self {
        Self {
            client,
            credentials: Arc::new(credentials),
            lookups: Arc::default(),
        }
    }

    /// `lookup`'s answer for `key`, from the cache while fresh; only found ids are kept (a name
    /// created a minute from now must be found then).
    pub(crate) async fn cached<F>(
        &self,
        key: String,
        lookup: F,
    ) -> Result<Option<String>, AtlassianError>
    where
        F: Future<Output = Result<Option<String>, AtlassianError>>,
    {
        let lock = || {
            self.lookups
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some((at, id)) = lock().get(&key)
            && at.elapsed() < LOOKUP_TTL
        {
            return Ok(Some(id.clone()));
        }
        let found = lookup.await?;
        if let Some(id) = &found {
            lock().insert(key, (std::time::Instant::now(), id.clone()));
        }
        Ok(found)
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// `Ok` when `operation` can run in this deployment (grant plans ask before any step runs).
    pub fn check(&self, operation: Operation) -> Result<(), MissingCredential> {
        self.credentials.check(operation)
    }

    /// A call to the site as the app, `path` relative to the base URL.
    pub(crate) async fn on_site(
        &self,
        site: &Site,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, CallError> {
        self.send(
            method,
            format!("{}{path}", site.base_url),
            site.credential(),
            &site.client_key,
            body,
        )
        .await
    }

    /// A call to the site itself with another credential (the site-admin token).
    pub(crate) async fn on_site_as(
        &self,
        site: &Site,
        credential: Credential,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, CallError> {
        self.send(
            method,
            format!("{}{path}", site.site_url),
            credential,
            &site.client_key,
            body,
        )
        .await
    }

    /// A call to `api.atlassian.com` (Admin API, SCIM directory).
    pub(crate) async fn on_api(
        &self,
        credential: Credential,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, CallError> {
        let url = format!("{}{path}", self.credentials.api_url);
        self.send(method, url, credential, "api.atlassian.com", body)
            .await
    }

    async fn send(
        &self,
        method: Method,
        url: String,
        credential: Credential,
        limit_key: &str,
        body: Option<Value>,
    ) -> Result<Reply, CallError> {
        let call = Call {
            method,
            url,
            credential,
            body,
            limit_key: limit_key.to_string(),
            headers: Vec::new(),
        };
        self.client.send(&call).await
    }

    /// Every item of a Jira `startAt`/`maxResults` listing.
    pub(crate) async fn jira_pages(
        &self,
        site: &Site,
        credential: Option<Credential>,
        path: &str,
        items_key: &str,
    ) -> Result<Vec<Value>, CallError> {
        const PAGE: u64 = 50;
        let mut items = Vec::new();
        let mut start = 0;
        for _ in 0..MAX_PAGES {
            let (start_at, max) = (start.to_string(), PAGE.to_string());
            let url = with_query(path, &[("startAt", &start_at), ("maxResults", &max)]);
            let reply = match &credential {
                Some(credential) => {
                    self.on_site_as(site, credential.clone(), Method::GET, &url, None)
                        .await?
                }
                None => self.on_site(site, Method::GET, &url, None).await?,
            };
            let (page, next) = pages::jira(&reply.json::<Value>()?, items_key, start, PAGE);
            items.extend(page);
            match next {
                Next::Offset(n) => start = n,
                _ => return Ok(items),
            }
        }
        Err(endless(path))
    }

    /// Every item of a JSM `start`/`limit`/`isLastPage` listing.
    pub(crate) async fn jsm_pages(&self, site: &Site, path: &str) -> Result<Vec<Value>, CallError> {
        let mut items = Vec::new();
        let mut start = 0;
        for _ in 0..MAX_PAGES {
            let url = with_query(path, &[("start", &start.to_string()), ("limit", "50")]);
            let reply = self.on_site(site, Method::GET, &url, None).await?;
            let (page, next) = pages::jsm(&reply.json::<Value>()?);
            items.extend(page);
            match next {
                Next::Offset(n) => start = n,
                _ => return Ok(items),
            }
        }
        Err(endless(path))
    }

    /// Every item of a Confluence v2 cursor listing; `path` is relative to the base URL.
    pub(crate) async fn confluence_pages(
        &self,
        site: &Site,
        path: &str,
    ) -> Result<Vec<Value>, CallError> {
        let mut items = Vec::new();
        let mut url = format!("{}{path}", site.base_url);
        for _ in 0..MAX_PAGES {
            let reply = self
                .send(
                    Method::GET,
                    url.clone(),
                    site.credential(),
                    &site.client_key,
                    None,
                )
                .await?;
            let link = reply.headers.get("link").and_then(|v| v.to_str().ok());
            let (page, next) = pages::confluence(&reply.json::<Value>()?, link);
            items.extend(page);
            match next {
                // Links are relative to the host (`/wiki/api/v2/…?cursor=…`) or absolute.
                Next::Link(link) if link.starts_with('/') => {
                    url = format!("{}{link}", site.origin());
                }
                Next::Link(link) => url = link,
                _ => return Ok(items),
            }
        }
        Err(endless(path))
    }
}

/// Brings a membership to `wanted` idempotently: read first (a re-run after a crash is a
/// no-op), change, and if the change fails look again, since vendors answer "already a member"
/// in different ways and a concurrent writer may have done it for us.
pub(crate) async fn converge<R, C>(
    wanted: bool,
    is_member: impl Fn() -> R,
    change: impl FnOnce() -> C,
) -> Result<Change, AtlassianError>
where
    R: Future<Output = Result<bool, AtlassianError>>,
    C: Future<Output = Result<(), AtlassianError>>,
{
    // Adding reads first: "already there" before Tollgate acted is worth knowing (access held
    // before a grant is not taken away at its expiry). Removing writes first: at expiry
    // thousands of removals meet a vendor's rate limit, and the read only matters on refusal.
    if wanted && is_member().await? {
        return Ok(Change::AlreadyInPlace);
    }
    match change().await {
        Ok(()) => Ok(Change::Applied),
        Err(e) if !e.is_retryable() && matches!(is_member().await, Ok(m) if m == wanted) => {
            tracing::debug!(error = %e, "membership already as wanted");
            Ok(Change::AlreadyInPlace)
        }
        Err(e) => Err(e),
    }
}

fn endless(path: &str) -> CallError {
    CallError::Transient(format!(
        "listing {path} did not end after {MAX_PAGES} pages"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_encoded_as_atlassian_canonicalizes_them() {
        assert_eq!(
            with_query(
                "/rest/api/3/user/search",
                &[("query", "erin evans+x@acme.io")]
            ),
            "/rest/api/3/user/search?query=erin%20evans%2Bx%40acme.io"
        );
        assert_eq!(with_query("/a?x=1", &[("y", "2")]), "/a?x=1&y=2");
        assert_eq!(segment("IT-1/../x"), "IT-1%2F..%2Fx");
    }

    #[test]
    fn the_origin_of_a_confluence_site_leaves_out_wiki() {
        let site = Site {
            client_key: TenantKey::parse("c").expect("a key"),
            base_url: "http://127.0.0.1:9/wiki".into(),
            site_url: "http://127.0.0.1:9/wiki".into(),
            auth: SiteAuth::ApiToken {
                email: "a@b.c".into(),
                token: "t".into(),
            },
        };
        assert_eq!(site.origin(), "http://127.0.0.1:9");
    }
}
