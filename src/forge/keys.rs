//! Forge's signing keys, from its JWKS, kept by `kid`. An unknown kid refetches the set (Forge
//! rotates keys), but at most once a minute, so tokens with made-up kids cannot make Tollgate
//! hammer the key server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use tokio::sync::Mutex;

/// The shortest time between two fetches of the key set.
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("Forge's key set has no key `{0}`")]
    Unknown(String),
    #[error("Forge's key set is unavailable: {0}")]
    Unavailable(String),
}

#[derive(Default)]
struct Cached {
    keys: HashMap<String, Arc<DecodingKey>>,
    fetched: Option<Instant>,
}

pub struct ForgeKeys {
    url: String,
    http: reqwest::Client,
    cached: Mutex<Cached>,
    min_refresh: Duration,
}

impl std::fmt::Debug for ForgeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ForgeKeys({})", self.url)
    }
}

impl ForgeKeys {
    pub fn new(url: &str) -> Self {
        Self::with_min_refresh(url, REFRESH_AT_MOST_EVERY)
    }

    /// With another shortest time between fetches (tests).
    pub fn with_min_refresh(url: &str, min_refresh: Duration) -> Self {
        Self {
            url: url.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            cached: Mutex::new(Cached::default()),
            min_refresh,
        }
    }

    /// The RSA key published under `kid`.
    pub async fn get(&self, kid: &str) -> Result<Arc<DecodingKey>, KeyError> {
        // One lock: concurrent requests with a new kid wait for one fetch, not one each.
        let mut cached = self.cached.lock().await;
        if let Some(key) = cached.keys.get(kid) {
            return Ok(key.clone());
        }
        let may_fetch = cached
            .fetched
            .is_none_or(|at| at.elapsed() >= self.min_refresh);
        if !may_fetch {
            return Err(KeyError::Unknown(printable(kid)));
        }
        let fetched = self.fetch().await;
        // A failed fetch counts too: an outage of the key server is not retried per request.
        cached.fetched = Some(Instant::now());
        cached.keys = fetched?;
        tracing::info!(keys = cached.keys.len(), "Forge key set fetched");
        cached
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| KeyError::Unknown(printable(kid)))
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<DecodingKey>>, KeyError> {
        let unavailable = |e: String| KeyError::Unavailable(e);
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("HTTP {}", response.status())));
        }
        let set: JwkSet = response
            .json()
            .await
            .map_err(|e| unavailable(format!("not a JWKS: {e}")))?;
        Ok(set
            .keys
            .iter()
            .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::RSA(_)))
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((kid, Arc::new(key)))
            })
            .collect())
    }
}

/// A kid from a token, safe to log and show.
fn printable(kid: &str) -> String {
    kid.chars()
        .take(64)
        .filter(|c| c.is_ascii_graphic())
        .collect()
}
