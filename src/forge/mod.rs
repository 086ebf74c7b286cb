//! The Forge remote front door: invocation tokens verified against Forge's keys, product
//! events turned into the ingress's deliveries, installations mapped to tenants, and the system
//! token each invocation brings kept for outbound calls.

pub mod events;
pub mod installations;
pub mod keys;
pub mod token;

use crate::config::ForgeConfig;

/// What the Forge door needs at run time; `None` in the state when no app id is configured.
#[derive(Debug)]
pub struct Forge {
    pub app_ari: String,
    pub keys: keys::ForgeKeys,
}

impl Forge {
    pub fn new(config: &ForgeConfig) -> Option<Self> {
        let app_id = config.app_id.as_deref()?;
        Some(Self {
            app_ari: token::app_ari(app_id),
            keys: keys::ForgeKeys::new(&config.jwks_url),
        })
    }
}
