//! Tenants with their unsealed secrets, kept for a few seconds: every Connect request needs
//! them, and reading and decrypting per request is what a webhook burst would otherwise pay.
//!
//! A lifecycle change on this replica forgets the entry at once; one on another replica is
//! seen within the TTL, and a signature that fails against a cached secret is retried against
//! the database before being refused (so a rotated secret never locks a tenant out).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::ids::TenantKey;
use crate::secrets::SecretKey;
use crate::store::{Store, StoreError, tenants};
use crate::tenant::Tenant;

const TTL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Cached {
    pub tenant: Tenant,
    pub secret: Arc<Vec<u8>>,
    /// Whether this came from the cache rather than the database just now.
    pub from_cache: bool,
}

#[derive(Debug, Default)]
pub struct TenantCache {
    entries: RwLock<HashMap<TenantKey, (Cached, Instant)>>,
}

impl TenantCache {
    /// The tenant and its secret; `fresh` skips the cache. `Ok(None)` for an unknown tenant;
    /// a secret that does not unseal counts as unknown (it cannot verify anything).
    pub async fn get(
        &self,
        store: &Store,
        secret_key: &SecretKey,
        client_key: &TenantKey,
        fresh: bool,
    ) -> Result<Option<Cached>, StoreError> {
        if !fresh {
            let hit = self
                .entries
                .read()
                .ok()
                .and_then(|e| e.get(client_key).cloned())
                .filter(|(_, at)| at.elapsed() < TTL);
            if let Some((cached, _)) = hit {
                return Ok(Some(Cached {
                    from_cache: true,
                    ..cached
                }));
            }
        }
        // Only Connect installs sign Connect tokens: a webhook source's secret is not one.
        let Some(tenant) = tenants::get(store, client_key)
            .await?
            .filter(|t| t.kind == crate::tenant::TenantKind::Connect)
        else {
            self.forget(client_key);
            return Ok(None);
        };
        let Ok(secret) = secret_key.unseal(
            &tenant.shared_secret_sealed,
            &Tenant::secret_context(client_key),
        ) else {
            tracing::error!(
                client_key = %client_key,
                "a tenant's shared secret does not decrypt: was TOLLGATE_SECRET_KEY changed?"
            );
            return Ok(None);
        };
        let cached = Cached {
            tenant,
            secret: Arc::new(secret),
            from_cache: false,
        };
        if let Ok(mut entries) = self.entries.write() {
            // Bounded: a flood of unknown client keys never reaches here (they are not stored).
            entries.insert(client_key.clone(), (cached.clone(), Instant::now()));
        }
        Ok(Some(cached))
    }

    pub fn forget(&self, client_key: &TenantKey) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(client_key);
        }
    }
}
