//! Atlassian's public keys for signed install tokens, fetched from the key server by `kid` and
//! cached: a key never changes under its kid.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("kid `{0}` is not a key id")]
    BadKid(String),
    #[error("key server does not know kid `{0}`")]
    Unknown(String),
    #[error("key server unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug)]
pub struct InstallKeys {
    base_url: String,
    http: reqwest::Client,
    cache: RwLock<HashMap<String, Arc<Vec<u8>>>>,
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
        }
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
