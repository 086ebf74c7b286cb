//! The key that encrypts secrets at rest (tenant shared secrets, IdP tokens), and the sealing
//! itself. The key never lives in the database: it comes from configuration, or, on the embedded
//! SQLite default, from a `0600` file generated beside the database file.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::config::DatabaseUrl;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Sealed values carry a version prefix so the scheme can change without guessing.
const SEALED_PREFIX: &str = "v1:";

#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; KEY_LEN]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "TOLLGATE_SECRET_KEY is required with PostgreSQL: several processes share the database, so they must share the key (generate one with `openssl rand -base64 32`)"
    )]
    RequiredForPostgres,
    #[error("secret key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret key file {path} does not hold a valid key: {reason}")]
    BadKeyFile { path: PathBuf, reason: String },
    #[error("cannot generate a key: the system random source failed: {0}")]
    Random(String),
    #[error(
        "a stored secret could not be decrypted: it is corrupt, or TOLLGATE_SECRET_KEY changed since it was stored"
    )]
    Unseal,
}

impl SecretKey {
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| "not valid base64".to_string())?;
        let key: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("decodes to {} bytes, expected {KEY_LEN}", b.len()))?;
        Ok(Self(key))
    }

    pub fn generate() -> Result<Self, SecretError> {
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(Self(key))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Raw bytes, for deriving other keys (e.g. the audit checkpoint HMAC key).
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. `tenant:<clientKey>:shared_secret`) so a
    /// sealed value copied to another row does not decrypt there.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<String, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SecretError::Random(e.to_string()))?;
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Unseal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", B64.encode(out)))
    }

    pub fn unseal(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SecretError> {
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SecretError::Unseal)?;
        let bytes = B64.decode(body).map_err(|_| SecretError::Unseal)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Unseal);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretError::Unseal)?;
        XChaCha20Poly1305::new((&self.0).into())
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Unseal)
    }
}

/// What [`resolve_key`] did, so the caller can warn once.
#[derive(Debug, PartialEq, Eq)]
pub enum KeySource {
    Configured,
    GeneratedFile(PathBuf),
    ExistingFile(PathBuf),
    /// In-memory SQLite: nothing survives the process anyway.
    Ephemeral,
}

/// The key file that sits beside a SQLite database file.
pub fn key_file_for(database_file: &Path) -> PathBuf {
    let mut name = database_file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".secret-key");
    database_file.with_file_name(name)
}

/// The configured key; else, on SQLite, the key file beside the database (created `0600` if it
/// does not exist yet); with PostgreSQL an unset key is an error.
pub fn resolve_key(
    configured: Option<&SecretKey>,
    database: &DatabaseUrl,
) -> Result<(SecretKey, KeySource), SecretError> {
    if let Some(key) = configured {
        return Ok((key.clone(), KeySource::Configured));
    }
    match database {
        DatabaseUrl::Postgres(_) => Err(SecretError::RequiredForPostgres),
        DatabaseUrl::Sqlite(_) => match database.sqlite_file() {
            None => Ok((SecretKey::generate()?, KeySource::Ephemeral)),
            Some(db_file) => {
                let path = key_file_for(&db_file);
                match std::fs::read_to_string(&path) {
                    Ok(text) => SecretKey::from_base64(&text)
                        .map(|key| (key, KeySource::ExistingFile(path.clone())))
                        .map_err(|reason| SecretError::BadKeyFile { path, reason }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let key = SecretKey::generate()?;
                        write_private_file(&path, key.to_base64().as_bytes()).map_err(
                            |source| SecretError::KeyFile {
                                path: path.clone(),
                                source,
                            },
                        )?;
                        Ok((key, KeySource::GeneratedFile(path)))
                    }
                    Err(source) => Err(SecretError::KeyFile { path, source }),
                }
            }
        },
    }
}

/// Creates a file readable by its owner only. `create_new` so two processes starting at once
/// cannot both write a different key.
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_unseal_round_trip_bound_to_context() {
        let key = SecretKey::generate().expect("random");
        let sealed = key.seal(b"shared-secret", "tenant:a").expect("seal");
        assert!(!sealed.contains("shared-secret"));
        assert_eq!(
            key.unseal(&sealed, "tenant:a").expect("unseal"),
            b"shared-secret"
        );
        assert!(key.unseal(&sealed, "tenant:b").is_err());
        let other = SecretKey::generate().expect("random");
        assert!(other.unseal(&sealed, "tenant:a").is_err());
        assert!(key.unseal("v1:AAAA", "tenant:a").is_err());
        assert!(key.unseal("garbage", "tenant:a").is_err());
    }

    #[test]
    fn generates_a_private_key_file_beside_sqlite_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("tollgate.db");
        let url = DatabaseUrl::parse(&format!("sqlite://{}", db.display())).expect("url");
        let (first, source) = resolve_key(None, &url).expect("generated");
        let path = dir.path().join("tollgate.db.secret-key");
        assert_eq!(source, KeySource::GeneratedFile(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (second, source) = resolve_key(None, &url).expect("reused");
        assert_eq!(source, KeySource::ExistingFile(path));
        assert_eq!(first, second);
    }

    #[test]
    fn postgres_requires_a_configured_key() {
        let url = DatabaseUrl::parse("postgres://localhost/db").expect("url");
        assert!(matches!(
            resolve_key(None, &url),
            Err(SecretError::RequiredForPostgres)
        ));
        let key = SecretKey::generate().expect("random");
        assert_eq!(
            resolve_key(Some(&key), &url).expect("configured").1,
            KeySource::Configured
        );
    }

    #[test]
    fn key_must_be_32_bytes_of_base64() {
        assert!(SecretKey::from_base64("not base64!").is_err());
        assert!(
            SecretKey::from_base64("c2hvcnQ=")
                .unwrap_err()
                .contains("5 bytes")
        );
        let key = SecretKey::generate().expect("random");
        assert_eq!(SecretKey::from_base64(&key.to_base64()), Ok(key));
    }
}
