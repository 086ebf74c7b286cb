//! Atlassian's public keys for signed install tokens, fetched from the key server by `kid` and
//! cached: a key never changes under its kid. Anyone can post an install naming any kid, so an
//! unknown kid is remembered as unknown for a while, and fetches are budgeted: a flood of
//! forged installs costs a bounded number of outbound calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long a kid the key server did not know is taken as unknown without asking again.
const UNKNOWN_FOR: Duration = Duration::from_secs(600);
/// Unknown kids remembered at most; past it the expired are dropped, then all.
const UNKNOWN_MAX: usize = 10_000;
/// Key fetches per minute; more are refused (a real install then retries).
pub const FETCHES_PER_MINUTE: u32 = 30;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("kid `{0}` is not a key id")]
    BadKid(String),
    #[error("key server does not know kid `{0}`")]
    Unknown(String),
    #[error("key server unavailable: {0}")]
    Unavailable(String),
    #[error("too many key fetches in the last minute")]
    Throttled,
}

#[derive(Debug)]
pub struct InstallKeys {
    base_url: String,
    http: reqwest::Client,
    cache: RwLock<HashMap<String, Arc<Vec<u8>>>>,
    unknown: Mutex<HashMap<String, Instant>>,
    /// The current minute's start and the fetches made in it.
    budget: Mutex<(Instant, u32)>,
}

impl InstallKeys {
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            cache: RwLock::new(HashMap::new()),
            unknown: Mutex::new(HashMap::new()),
            budget: Mutex::new((Instant::now(), 0)),
        }
    }

    fn known_unknown(&self, kid: &str) -> bool {
        self.unknown
            .lock()
            .ok()
            .and_then(|u| u.get(kid).map(|at| at.elapsed() < UNKNOWN_FOR))
            .unwrap_or(false)
    }

    fn remember_unknown(&self, kid: &str) {
        if let Ok(mut unknown) = self.unknown.lock() {
            if unknown.len() >= UNKNOWN_MAX {
                unknown.retain(|_, at| at.elapsed() < UNKNOWN_FOR);
                if unknown.len() >= UNKNOWN_MAX {
                    unknown.clear();
                }
            }
            unknown.insert(kid.to_string(), Instant::now());
        }
    }

    /// Takes one fetch from this minute's budget; false when it is spent.
    fn spend(&self) -> bool {
        let Ok(mut budget) = self.budget.lock() else {
            return false;
        };
        if budget.0.elapsed() >= Duration::from_secs(60) {
            *budget = (Instant::now(), 0);
        }
        if budget.1 >= FETCHES_PER_MINUTE {
            return false;
        }
        budget.1 += 1;
        true
    }

    /// The PEM public key for `kid`.
    pub async fn get(&self, kid: &str) -> Result<Arc<Vec<u8>>, KeyError> {
        // The kid goes into a URL path: only plain key-id characters.
        if kid.is_empty()
            || kid.len() > 200
            || !kid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || kid.starts_with('.')
        {
            return Err(KeyError::BadKid(kid.chars().take(40).collect()));
        }
        if let Some(key) = self.cache.read().ok().and_then(|c| c.get(kid).cloned()) {
            return Ok(key);
        }
        if self.known_unknown(kid) {
            return Err(KeyError::Unknown(kid.to_string()));
        }
        if !self.spend() {
            return Err(KeyError::Throttled);
        }
        let url = format!("{}/{kid}", self.base_url);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| KeyError::Unavailable(e.to_string()))?;
        match response.status() {
            s if s.is_success() => {}
            s if s.as_u16() == 404 || s.as_u16() == 403 => {
                self.remember_unknown(kid);
                return Err(KeyError::Unknown(kid.to_string()));
            }
            s => return Err(KeyError::Unavailable(format!("{url} answered {s}"))),
        }
        let pem = response
            .bytes()
            .await
            .map_err(|e| KeyError::Unavailable(e.to_string()))?
            .to_vec();
        let key = Arc::new(pem);
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(kid.to_string(), key.clone());
        }
        Ok(key)
    }
}
