//! The layered loader: the TOML file, then the environment over it, then the defaults; every
//! value kept with where it came from, so an error names the setting and its source.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::settings::{SETTINGS, Setting};

/// Environment variable naming the TOML file when `--config` is not given.
pub const CONFIG_FILE_ENV: &str = "TOLLGATE_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("unknown setting `{key}` in {path}")]
    UnknownKey { key: String, path: PathBuf },
    #[error("cannot read {setting} from file {path}: {source}")]
    SecretFile {
        setting: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {setting}: {reason}")]
    Invalid { setting: String, reason: String },
}

/// Where a raw value came from, for error messages.
#[derive(Debug, Clone)]
pub(super) enum Origin {
    File(PathBuf),
    Env(&'static str),
    Default,
}

#[derive(Debug, Clone)]
struct RawValue {
    value: String,
    origin: Origin,
}

/// All raw values by TOML key, after overlaying the environment on the file.
#[derive(Debug, Default)]
pub struct RawSettings {
    values: BTreeMap<&'static str, RawValue>,
}

impl RawSettings {
    /// Reads the file (if any) and the environment through `env` (injectable for tests).
    pub fn gather(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut raw = RawSettings::default();
        if let Some(path) = file {
            raw.read_file(path)?;
        }
        for s in SETTINGS {
            if let Some(value) = env(s.env) {
                raw.put(s, value, Origin::Env(s.env));
            } else if s.secret {
                let file_var = format!("{}_FILE", s.env);
                if let Some(path) = env(&file_var) {
                    let value = read_secret_file(s, Path::new(&path))?;
                    raw.put(s, value, Origin::Env(s.env));
                }
            }
        }
        for s in SETTINGS {
            if let (None, Some(default)) = (raw.values.get(s.key), s.default) {
                raw.put(s, default.to_string(), Origin::Default);
            }
        }
        Ok(raw)
    }

    fn put(&mut self, s: &Setting, value: String, origin: Origin) {
        self.values.insert(s.key, RawValue { value, origin });
    }

    fn read_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Toml {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let mut leaves = Vec::new();
        flatten("", &toml::Value::Table(table), &mut leaves);
        for (key, value) in leaves {
            let unknown = || ConfigError::UnknownKey {
                key: key.clone(),
                path: path.to_owned(),
            };
            if let Some(s) = SETTINGS.iter().find(|s| s.key == key) {
                self.put(s, value, Origin::File(path.to_owned()));
            } else if let Some(base) = key.strip_suffix("_file") {
                let s = SETTINGS
                    .iter()
                    .find(|s| s.secret && s.key == base)
                    .ok_or_else(unknown)?;
                let secret = read_secret_file(s, Path::new(&value))?;
                self.put(s, secret, Origin::File(path.to_owned()));
            } else {
                return Err(unknown());
            }
        }
        Ok(())
    }

    /// The raw text of a setting, if set or defaulted.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|v| v.value.as_str())
    }

    /// Parses one setting; the error names the variable, the TOML key and where the value came from.
    pub fn parse<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(raw) = self.values.get(key) else {
            return Ok(None);
        };
        parse(&raw.value)
            .map(Some)
            .map_err(|reason| ConfigError::Invalid {
                setting: describe(key, &raw.origin),
                reason: if setting_for(key).is_some_and(|s| s.secret) {
                    // The reason may quote the value; a secret's value never reaches a log.
                    "the value is malformed (not shown: it is a secret)".into()
                } else {
                    reason
                },
            })
    }

    /// Like [`Self::parse`] for a setting that has a default, so it is always present.
    pub fn require<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        self.parse(key, parse)?.ok_or_else(|| ConfigError::Invalid {
            setting: describe(key, &Origin::Default),
            reason: "is required".into(),
        })
    }
}

pub(super) fn setting_for(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

pub(super) fn describe(key: &str, origin: &Origin) -> String {
    let env = setting_for(key).map(|s| s.env).unwrap_or("?");
    match origin {
        Origin::File(path) => format!("{env} (`{key}` in {})", path.display()),
        Origin::Env(var) => format!("{var} (`{key}`, from the environment)"),
        Origin::Default => format!("{env} (`{key}`, default)"),
    }
}

pub(super) fn read_secret_file(s: &Setting, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|source| ConfigError::SecretFile {
            setting: format!("{}_FILE", s.env),
            path: path.to_owned(),
            source,
        })
}

pub(super) fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        toml::Value::Integer(n) => out.push((prefix.to_string(), n.to_string())),
        toml::Value::Float(n) => out.push((prefix.to_string(), n.to_string())),
        toml::Value::Boolean(b) => out.push((prefix.to_string(), b.to_string())),
        toml::Value::Datetime(d) => out.push((prefix.to_string(), d.to_string())),
        // Lists are kept as their JSON text; a setting that takes a list parses that.
        toml::Value::Array(items) => out.push((
            prefix.to_string(),
            serde_json::to_string(items).unwrap_or_default(),
        )),
    }
}
