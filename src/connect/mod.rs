//! Atlassian Connect, inbound: the descriptors, signed installs, JWT/qsh verification, and the
//! tenants they create. Connect is one authenticator in front of the ingress, not the ingress.

pub mod auth;
pub mod descriptor;
pub mod keys;
pub mod lifecycle;
pub mod tenant_cache;

use crate::config::Config;

/// What the Connect routes share, built once at start.
#[derive(Debug)]
pub struct Connect {
    pub descriptors: descriptor::Descriptors,
    pub keys: keys::InstallKeys,
    pub allowed_sites: crate::tenant::sites::AllowedSites,
    pub base_url: String,
    /// The path of our base URL, stripped before computing qsh.
    pub base_path: String,
    pub leeway_seconds: i64,
    pub tenants: tenant_cache::TenantCache,
}

impl Connect {
    pub fn new(config: &Config) -> Self {
        let base_url = config.server.base_url.clone();
        Self {
            descriptors: descriptor::Descriptors::render(
                &base_url,
                &config.connect.key,
                config.connect.webhook_jql.as_deref(),
            ),
            keys: keys::InstallKeys::new(&config.connect.keys_url),
            allowed_sites: config.connect.allowed_sites.clone(),
            base_path: crate::tenant::base_path(&base_url).to_string(),
            base_url,
            leeway_seconds: i64::try_from(config.connect.jwt_leeway.as_secs()).unwrap_or(60),
            tenants: tenant_cache::TenantCache::default(),
        }
    }
}
