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

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// The first scheme: no key id; any configured key is tried.
const SEALED_V1: &str = "v1:";
/// `v2:<key id>:<base64 nonce and ciphertext>`: sealed under the key it names.
const SEALED_V2: &str = "v2:";

/// Whether a secret someone offered (a bearer token, a hook's header, a `clientState`) is the
/// expected one, in constant time: both are hashed first, so their lengths do not show either.
pub fn same_secret(offered: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    Sha256::digest(offered.as_bytes())
        .as_slice()
        .ct_eq(Sha256::digest(expected.as_bytes()).as_slice())
        .into()
}

/// The keys that encrypt secrets at rest, newest first: the newest seals, every one unseals
/// (and verifies the audit checkpoints it signed), so a key is rotated by putting a new one in
/// front (`TOLLGATE_SECRET_KEY=new,old`), running `tollgate secrets rotate`, and keeping the old
/// one at the end of the list for as long as its checkpoints must verify.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Vec<Key>);

#[derive(Clone, PartialEq, Eq)]
struct Key {
    bytes: [u8; KEY_LEN],
    id: String,
}

impl Key {
    fn new(bytes: [u8; KEY_LEN]) -> Self {
        Self {
            id: key_id(&bytes),
            bytes,
        }
    }
}

/// A key's public name: 8 bytes of SHA-256 over a label and the key, in hex. Names the key a
/// value was sealed with without revealing anything of it.
fn key_id(bytes: &[u8; KEY_LEN]) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    digest.update(b"tollgate secret key id\n");
    digest.update(bytes);
    hex::encode(&digest.finalize()[..8])
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.0.iter().map(|k| k.id.as_str()).collect();
        write!(f, "SecretKey({})", ids.join(","))
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
    #[error(
        "a stored secret was sealed under key {0}, which is not in TOLLGATE_SECRET_KEY (keep retired keys at the end of the list until `tollgate secrets rotate` has run)"
    )]
    RetiredKey(String),
}

impl SecretKey {
    /// One key, or several separated by commas (newest first), each 32 bytes of base64.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let mut keys: Vec<Key> = Vec::new();
        for (n, part) in text.split(',').map(str::trim).enumerate() {
            let which = |why: String| {
                if text.contains(',') {
                    format!("key {}: {why}", n + 1)
                } else {
                    why
                }
            };
            let bytes = B64
                .decode(part)
                .map_err(|_| which("not valid base64".to_string()))?;
            let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|b: Vec<u8>| {
                which(format!("decodes to {} bytes, expected {KEY_LEN}", b.len()))
            })?;
            let key = Key::new(bytes);
            if keys.iter().any(|k| k.id == key.id) {
                return Err(which("the same key is listed twice".into()));
            }
            keys.push(key);
        }
        Ok(Self(keys))
    }

    pub fn generate() -> Result<Self, SecretError> {
        Ok(Self(vec![Key::new(random_key()?)]))
    }

    /// The keys as configured: newest first, comma-separated.
    pub fn to_base64(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|k| B64.encode(k.bytes)).collect();
        parts.join(",")
    }

    /// A new key in front of these (the rotation's first step).
    pub fn with_new_key(&self) -> Result<Self, SecretError> {
        let mut keys = vec![Key::new(random_key()?)];
        keys.extend(self.0.iter().cloned());
        Ok(Self(keys))
    }

    /// The id of the key that seals.
    pub fn newest_id(&self) -> &str {
        self.0.first().map_or("", |k| k.id.as_str())
    }

    /// Every key with its id, newest first, for deriving other keys (the audit checkpoints').
    pub fn each(&self) -> impl Iterator<Item = (&str, &[u8; KEY_LEN])> {
        self.0.iter().map(|k| (k.id.as_str(), &k.bytes))
    }

    /// Whether `sealed` is sealed under the newest key already.
    pub fn is_current(&self, sealed: &str) -> bool {
        sealed
            .strip_prefix(SEALED_V2)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.newest_id())
    }

    /// Encrypts `plaintext` under the newest key, bound to `context` (e.g.
    /// `tenant:<clientKey>:shared_secret`) so a sealed value copied to another row does not
    /// decrypt there.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<String, SecretError> {
        let key = self.0.first().ok_or(SecretError::Unseal)?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SecretError::Random(e.to_string()))?;
        let cipher = XChaCha20Poly1305::new((&key.bytes).into());
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
        Ok(format!("{SEALED_V2}{}:{}", key.id, B64.encode(out)))
    }

    pub fn unseal(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SecretError> {
        if let Some(rest) = sealed.strip_prefix(SEALED_V2) {
            let (id, body) = rest.split_once(':').ok_or(SecretError::Unseal)?;
            let key = self
                .0
                .iter()
                .find(|k| k.id == id)
                .ok_or_else(|| SecretError::RetiredKey(id.chars().take(16).collect()))?;
            return open(&key.bytes, body, context);
        }
        // Sealed before keys had ids: by one of them.
        let body = sealed.strip_prefix(SEALED_V1).ok_or(SecretError::Unseal)?;
        self.0
            .iter()
            .find_map(|k| open(&k.bytes, body, context).ok())
            .ok_or(SecretError::Unseal)
    }
}

fn random_key() -> Result<[u8; KEY_LEN], SecretError> {
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(key)
}

fn open(key: &[u8; KEY_LEN], body: &str, context: &str) -> Result<Vec<u8>, SecretError> {
    let bytes = B64.decode(body).map_err(|_| SecretError::Unseal)?;
    if bytes.len() < NONCE_LEN {
        return Err(SecretError::Unseal);
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretError::Unseal)?;
    XChaCha20Poly1305::new(key.into())
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad: context.as_bytes(),
            },
        )
        .map_err(|_| SecretError::Unseal)
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

/// Where a key that is not configured may come from, by the database the deployment uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHome {
    /// A database server (PostgreSQL): it must not keep the key that seals its own secrets, so
    /// the key must be configured.
    Server,
    /// A SQLite file: the key file beside it.
    BesideFile(PathBuf),
    /// An in-memory SQLite database: a key for this process, as short-lived as the data.
    Process,
}

/// The configured key; else, on SQLite, the key file beside the database (created `0600` if it
/// does not exist yet); with PostgreSQL an unset key is an error.
pub fn resolve_key(
    configured: Option<&SecretKey>,
    home: KeyHome,
) -> Result<(SecretKey, KeySource), SecretError> {
    if let Some(key) = configured {
        return Ok((key.clone(), KeySource::Configured));
    }
    match home {
        KeyHome::Server => Err(SecretError::RequiredForPostgres),
        KeyHome::Process => Ok((SecretKey::generate()?, KeySource::Ephemeral)),
        KeyHome::BesideFile(db_file) => {
            let path = key_file_for(&db_file);
            match std::fs::read_to_string(&path) {
                Ok(text) => SecretKey::from_base64(&text)
                    .map(|key| (key, KeySource::ExistingFile(path.clone())))
                    .map_err(|reason| SecretError::BadKeyFile { path, reason }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let key = SecretKey::generate()?;
                    write_private_file(&path, key.to_base64().as_bytes()).map_err(|source| {
                        SecretError::KeyFile {
                            path: path.clone(),
                            source,
                        }
                    })?;
                    Ok((key, KeySource::GeneratedFile(path)))
                }
                Err(source) => Err(SecretError::KeyFile { path, source }),
            }
        }
    }
}

/// Writes `keys` to SQLite's key file in place of what it held: a new file beside it, then a
/// rename, so a crash leaves the old file or the new one, never half of one.
pub fn replace_key_file(path: &Path, keys: &SecretKey) -> Result<(), SecretError> {
    let fresh = path.with_extension("secret-key.new");
    let _ = std::fs::remove_file(&fresh);
    let written = write_private_file(&fresh, keys.to_base64().as_bytes())
        .and_then(|()| std::fs::rename(&fresh, path));
    written.map_err(|source| SecretError::KeyFile {
        path: path.to_path_buf(),
        source,
    })
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
    fn with_several_keys_the_newest_seals_and_each_opens_its_own() {
        let old = SecretKey::generate().expect("random");
        let sealed_old = old.seal(b"s", "c").expect("seal");
        let both = old.with_new_key().expect("random");
        assert_ne!(both.newest_id(), old.newest_id());
        assert_eq!(both.unseal(&sealed_old, "c").expect("old opens"), b"s");
        let sealed_new = both.seal(b"s", "c").expect("seal");
        assert!(sealed_new.starts_with(&format!("v2:{}:", both.newest_id())));
        assert!(both.is_current(&sealed_new) && !both.is_current(&sealed_old));
        // The old key alone cannot open it, and says which key it needs.
        match old.unseal(&sealed_new, "c") {
            Err(SecretError::RetiredKey(id)) => assert_eq!(id, both.newest_id()),
            other => panic!("{other:?}"),
        }
        // As configured: newest first, comma-separated.
        assert_eq!(SecretKey::from_base64(&both.to_base64()), Ok(both.clone()));
        // Sealed before keys had ids (`v1:`, the nonce and ciphertext alike): any key tries.
        let v1 = sealed_old.replacen(&format!("v2:{}:", old.newest_id()), "v1:", 1);
        assert_eq!(both.unseal(&v1, "c").expect("v1 opens"), b"s");
        assert!(both.unseal(&v1, "other context").is_err());
        let twice = format!("{},{}", old.to_base64(), old.to_base64());
        assert!(
            SecretKey::from_base64(&twice)
                .unwrap_err()
                .contains("twice")
        );
        assert!(!format!("{both:?}").contains(&old.to_base64()));
    }

    #[test]
    fn generates_a_private_key_file_beside_sqlite_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("tollgate.db");
        let home = KeyHome::BesideFile(db.clone());
        let (first, source) = resolve_key(None, home.clone()).expect("generated");
        let path = dir.path().join("tollgate.db.secret-key");
        assert_eq!(source, KeySource::GeneratedFile(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (second, source) = resolve_key(None, home).expect("reused");
        assert_eq!(source, KeySource::ExistingFile(path));
        assert_eq!(first, second);
    }

    #[test]
    fn postgres_requires_a_configured_key() {
        assert!(matches!(
            resolve_key(None, KeyHome::Server),
            Err(SecretError::RequiredForPostgres)
        ));
        let key = SecretKey::generate().expect("random");
        assert_eq!(
            resolve_key(Some(&key), KeyHome::Server)
                .expect("configured")
                .1,
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
