//! Checkpoints: a chain's hash at a position, signed with an HMAC keyed from
//! `TOLLGATE_SECRET_KEY`. The key is not in the database, so whoever can write the database
//! can still re-hash a chain consistently or cut off its newest events, but cannot make the
//! checkpoints agree: [`super::verify`] compares the chain with them.
//!
//! One is written every [`CHECKPOINT_EVERY`] events of a chain (a job queued by the append
//! that reaches the multiple) and for every chain that moved since its last one by a
//! periodic job (at least hourly), so at most that much of a chain's tail is unprotected.

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::on_db;
use crate::secrets::SecretKey;
use crate::store::{Store, StoreError};

/// A checkpoint every this many events of a chain.
pub const CHECKPOINT_EVERY: i64 = 1_000;

type HmacSha256 = Hmac<Sha256>;

/// The checkpoint keys, derived from the secret keys so the same secret never signs two kinds
/// of thing: the newest signs; each checkpoint names the key that signed it, and verifies
/// under that key while it is configured (a retired key kept at the end of the list).
#[derive(Clone)]
pub struct CheckpointKey(Vec<(String, [u8; 32])>);

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointKey(…)")
    }
}

/// One signed position of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub chain: String,
    pub seq: i64,
    pub hash: String,
    pub at: DateTime<Utc>,
    pub mac: String,
    /// The id of the secret key it was signed under; `None` for checkpoints from before keys
    /// had ids (any configured key may verify those).
    pub key_id: Option<String>,
}

impl CheckpointKey {
    pub fn derive(secret: &SecretKey) -> Self {
        Self(
            secret
                .each()
                .map(|(id, bytes)| {
                    let mut mac = HmacSha256::new_from_slice(bytes)
                        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                    mac.update(b"tollgate audit checkpoint v1");
                    (id.to_string(), mac.finalize().into_bytes().into())
                })
                .collect(),
        )
    }

    fn hmac(key: &[u8; 32], chain: &str, seq: i64, hash: &str, at: DateTime<Utc>) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(message(chain, seq, hash, at).as_bytes());
        mac
    }

    /// Signs the position with the newest key.
    pub fn sign(&self, chain: &str, seq: i64, hash: &str, at: DateTime<Utc>) -> Checkpoint {
        let (id, key) = self
            .0
            .first()
            .map_or(("", &[0u8; 32]), |(id, k)| (id.as_str(), k));
        Checkpoint {
            chain: chain.to_string(),
            seq,
            hash: hash.to_string(),
            at,
            mac: hex::encode(
                Self::hmac(key, chain, seq, hash, at)
                    .finalize()
                    .into_bytes(),
            ),
            key_id: Some(id.to_string()),
        }
    }

    /// Whether the checkpoint was signed with the key it names (constant-time).
    pub fn verifies(&self, checkpoint: &Checkpoint) -> bool {
        let Some(mac) = hex::decode(&checkpoint.mac).ok() else {
            return false;
        };
        self.0
            .iter()
            .filter(|(id, _)| checkpoint.key_id.as_ref().is_none_or(|named| named == id))
            .any(|(_, key)| {
                Self::hmac(
                    key,
                    &checkpoint.chain,
                    checkpoint.seq,
                    &checkpoint.hash,
                    checkpoint.at,
                )
                .verify_slice(&mac)
                .is_ok()
            })
    }

    /// Whether the key the checkpoint names is configured (else it cannot be verified).
    pub fn knows(&self, checkpoint: &Checkpoint) -> bool {
        checkpoint
            .key_id
            .as_ref()
            .is_none_or(|named| self.0.iter().any(|(id, _)| id == named))
    }
}

/// What the MAC covers, one field per line (documented in docs/audit.md, so an auditor with
/// the key can check a checkpoint with `openssl dgst -sha256 -mac HMAC`).
pub fn message(chain: &str, seq: i64, hash: &str, at: DateTime<Utc>) -> String {
    format!(
        "tollgate-audit-checkpoint\n{chain}\n{seq}\n{hash}\n{}",
        at.to_rfc3339_opts(SecondsFormat::Micros, true)
    )
}

/// Checkpoints the event at `seq` of `chain`, if it exists and is not checkpointed yet.
pub async fn write_at(
    store: &Store,
    key: &CheckpointKey,
    chain: &str,
    seq: i64,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let hash: Option<(String,)> = on_db!(store.db(), |pool| {
        sqlx::query_as("SELECT hash FROM audit_events WHERE chain = $1 AND seq = $2")
            .bind(chain)
            .bind(seq)
            .fetch_optional(pool)
            .await
    })?;
    let Some((hash,)) = hash else {
        return Ok(false);
    };
    let checkpoint = key.sign(chain, seq, &hash, now);
    let inserted = on_db!(store.db(), |pool| {
        sqlx::query(
            "INSERT INTO audit_checkpoints (chain, seq, hash, at, mac, key_id) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (chain, seq) DO NOTHING",
        )
        .bind(&checkpoint.chain)
        .bind(checkpoint.seq)
        .bind(&checkpoint.hash)
        .bind(checkpoint.at)
        .bind(&checkpoint.mac)
        .bind(&checkpoint.key_id)
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
    })?;
    Ok(inserted == 1)
}

/// Checkpoints the head of every chain that moved since its last checkpoint. Returns how many
/// it wrote.
pub async fn write_heads(
    store: &Store,
    key: &CheckpointKey,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let moved: Vec<(String, i64)> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT c.chain, c.seq FROM audit_chains c WHERE c.seq > 0 AND c.seq > \
             COALESCE((SELECT MAX(k.seq) FROM audit_checkpoints k WHERE k.chain = c.chain), 0) \
             ORDER BY c.chain",
        )
        .fetch_all(pool)
        .await
    })?;
    let mut written = 0;
    for (chain, seq) in moved {
        if write_at(store, key, &chain, seq, now).await? {
            written += 1;
        }
    }
    Ok(written)
}

/// A chain's checkpoints, oldest first.
pub async fn of_chain(store: &Store, chain: &str) -> Result<Vec<Checkpoint>, StoreError> {
    type Row = (String, i64, String, DateTime<Utc>, String, Option<String>);
    let rows: Vec<Row> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT chain, seq, hash, at, mac, key_id FROM audit_checkpoints WHERE chain = $1 \
             ORDER BY seq",
        )
        .bind(chain)
        .fetch_all(pool)
        .await
    })?;
    Ok(rows
        .into_iter()
        .map(|(chain, seq, hash, at, mac, key_id)| Checkpoint {
            chain,
            seq,
            hash,
            at,
            mac,
            key_id,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_only_as_signed_and_only_with_its_key() {
        let key = CheckpointKey::derive(&SecretKey::generate().expect("key"));
        let other = CheckpointKey::derive(&SecretKey::generate().expect("key"));
        let signed = key.sign(
            "jira:acme",
            1000,
            "ab".repeat(32).as_str(),
            crate::clock::wall(),
        );
        assert!(key.verifies(&signed));
        assert!(!other.verifies(&signed));
        let mut moved = signed.clone();
        moved.seq = 999;
        assert!(!key.verifies(&moved));
        let mut rehashed = signed.clone();
        rehashed.hash = "cd".repeat(32);
        assert!(!key.verifies(&rehashed));
        let mut garbled = signed.clone();
        garbled.mac = "zz".into();
        assert!(!key.verifies(&garbled));
    }

    /// The recipe in docs/audit.md (openssl, given the secret key) gives this same MAC.
    #[test]
    fn the_mac_is_what_the_documented_openssl_recipe_computes() {
        use base64::Engine;
        let secret = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        let key = CheckpointKey::derive(&SecretKey::from_base64(&secret).expect("key"));
        let at = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let signed = key.sign("jira:acme", 1000, &"ab".repeat(32), at);
        assert_eq!(
            signed.mac,
            "118811205705d2269519e058f1517889419585818a40af917098502d6cef5b29"
        );
    }
}
