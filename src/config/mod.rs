//! Settings: an optional TOML file, overridden by environment variables, validated once at start.
//!
//! Every setting is one row of [`SETTINGS`]: its TOML key, its environment variable, whether it
//! is a secret (then it also accepts `…_FILE` / `…_file`, and its value never appears in errors
//! or `Debug` output). Later modules add rows; `docs/configuration.md` lists them all (a test
//! keeps the two in step).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secrets::SecretKey;

pub mod idp;
mod parse;
mod raw;
mod settings;

pub use idp::{IdpConfig, IdpSource, LeaverBrake};
use parse::*;
pub use raw::{CONFIG_FILE_ENV, ConfigError, RawSettings};
use raw::{Origin, describe};
pub use settings::{SETTINGS, Setting};
/// What the clients may hold of the server (`http::serve`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From a connection's first byte (or the end of its previous response) to the end of the
    /// request's headers.
    pub header_timeout: Duration,
    /// Connections open at once; past it, new ones wait in the listen backlog.
    pub max_connections: usize,
}

/// The database the deployment uses; the URL decides.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(String),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(url.to_string()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url.to_string()))
        } else {
            Err("expected `sqlite://PATH` or `postgres://USER@HOST/DB`".into())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Sqlite(url) | Self::Postgres(url) => url,
        }
    }

    /// The database file of a SQLite URL, if it names one (not `:memory:`).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let Self::Sqlite(url) = self else { return None };
        let rest = url
            .trim_start_matches("sqlite:")
            .trim_start_matches("//")
            .split('?')
            .next()
            .unwrap_or_default();
        (!rest.is_empty() && !rest.contains(":memory:")).then(|| PathBuf::from(rest))
    }

    /// Where the secret key lives when it is not configured.
    pub fn key_home(&self) -> crate::secrets::KeyHome {
        use crate::secrets::KeyHome;
        match (self, self.sqlite_file()) {
            (Self::Postgres(_), _) => KeyHome::Server,
            (Self::Sqlite(_), Some(file)) => KeyHome::BesideFile(file),
            (Self::Sqlite(_), None) => KeyHome::Process,
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    /// A PostgreSQL URL may carry a password: show only the scheme and host part after `@`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(url) => write!(f, "{url}"),
            Self::Postgres(url) => match url.rsplit_once('@') {
                Some((_, host)) => write!(f, "postgres://…@{host}"),
                None => write!(f, "{url}"),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub base_url: String,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub connections: ConnectionLimits,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: DatabaseUrl,
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub filter: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone)]
pub struct ConnectConfig {
    pub key: String,
    pub keys_url: String,
    pub allowed_sites: crate::tenant::sites::AllowedSites,
    pub webhook_jql: Option<String>,
    pub jwt_leeway: Duration,
}

/// Credentials beyond Connect (API-NOTES §1.7): each is optional, and an operation that needs a
/// missing one is refused when a grant is planned (`atlassian::credentials`).
#[derive(Debug, Clone)]
pub struct AtlassianConfig {
    pub api_url: String,
    pub org_id: Option<String>,
    pub admin_api_key: Option<Secret>,
    pub scim_directory_id: Option<String>,
    pub scim_api_key: Option<Secret>,
    pub site_admin_email: Option<String>,
    pub site_admin_token: Option<Secret>,
    pub cloud_id: Option<String>,
    /// Atlassian groups SCIM keeps in step with the IdP's group of the same name.
    pub synced_groups: Vec<String>,
    pub account_index_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct JobsConfig {
    pub poll_interval: Duration,
    pub concurrency: usize,
    pub heartbeat: Duration,
}

/// How acknowledged events are retried when processing them fails.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    pub ticket_block: Duration,
    pub retry_for: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
}

#[derive(Debug, Clone)]
pub struct GrantsConfig {
    /// Reminders before expiry, longest first.
    pub remind_before: Vec<Duration>,
    pub reconcile_interval: Duration,
    pub admin_group: Option<String>,
}

/// The Forge remote front door (`None` app id: closed).
#[derive(Debug, Clone)]
pub struct ForgeConfig {
    pub app_id: Option<String>,
    pub jwks_url: String,
}

/// Where alerts open an issue, besides the audit event, metric and log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertTicketConfig {
    pub site: String,
    pub project: String,
    pub issue_type: String,
}

/// Where the identity lifecycle opens its tickets: a JSM service desk and request type on a
/// site Tollgate is installed in; each run's ticket is raised on the person's behalf.
#[derive(Debug, Clone)]
pub struct LifecycleTicketConfig {
    pub site: String,
    pub service_desk: String,
    pub request_type: String,
}

/// The identity lifecycle's settings.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// Where runs open their tickets; unset, birthright is only planned.
    pub ticket: Option<LifecycleTicketConfig>,
    /// How long a mover keeps birthright access that is no longer due.
    pub grace_period: Duration,
    /// How long a manager has to decide in a lifecycle ticket.
    pub decide_within: Duration,
    /// How often last-active dates are read and judged.
    pub inactive_scan_interval: Duration,
    /// Whether a leaver's Atlassian account is disabled (managed accounts; the others lose
    /// their product access instead).
    pub deactivate_atlassian_account: bool,
}

impl LifecycleConfig {
    /// The clock of a decision asked in a lifecycle ticket: reminded halfway, declined at the
    /// deadline, never escalated (the manager is who decides).
    pub fn timeouts(&self) -> crate::workflow::Timeouts {
        crate::workflow::Timeouts {
            remind_after: Some(self.decide_within / 2),
            escalate_after: None,
            decline_after: Some(self.decide_within),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub checkpoint_interval: Duration,
    pub api_token: Option<Secret>,
}

/// The validated configuration. `Debug` never shows a secret.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub workflows_dir: PathBuf,
    pub secret_key: Option<SecretKey>,
    pub log: LogConfig,
    pub jobs: JobsConfig,
    pub events: EventsConfig,
    pub connect: ConnectConfig,
    pub atlassian: AtlassianConfig,
    pub idp: IdpConfig,
    pub grants: GrantsConfig,
    pub audit: AuditConfig,
    pub forge: ForgeConfig,
    pub alert_ticket: Option<AlertTicketConfig>,
    pub lifecycle: LifecycleConfig,
}

/// Tenants are found by host, as the site's base URL names it.
fn site_host(site: &str) -> String {
    let bare = site.trim().trim_start_matches("https://");
    let bare = bare.trim_start_matches("http://");
    crate::tenant::host_of(&format!("https://{bare}")).unwrap_or_default()
}

/// `lifecycle.site`, `lifecycle.service_desk` and `lifecycle.request_type`: all three or none.
fn lifecycle_ticket(raw: &RawSettings) -> Result<Option<LifecycleTicketConfig>, ConfigError> {
    let keys = [
        "lifecycle.site",
        "lifecycle.service_desk",
        "lifecycle.request_type",
    ];
    match keys.map(|k| raw.get(k).map(str::trim)) {
        [None, None, None] => Ok(None),
        [Some(site), Some(desk), Some(request_type)] => {
            for (key, value) in keys[1..].iter().zip([desk, request_type]) {
                if !value.chars().all(|c| c.is_ascii_digit()) || value.is_empty() {
                    return Err(ConfigError::Invalid {
                        setting: describe(key, &Origin::Default),
                        reason: format!("`{value}` is not a JSM id (a number)"),
                    });
                }
            }
            Ok(Some(LifecycleTicketConfig {
                site: site_host(site),
                service_desk: desk.to_string(),
                request_type: request_type.to_string(),
            }))
        }
        _ => Err(ConfigError::Invalid {
            setting: describe("lifecycle.site", &Origin::Default),
            reason: "TOLLGATE_LIFECYCLE_SITE, TOLLGATE_LIFECYCLE_SERVICE_DESK and \
                     TOLLGATE_LIFECYCLE_REQUEST_TYPE go together"
                .into(),
        }),
    }
}

impl Config {
    /// Loads from the process environment and the file named by `--config` or `TOLLGATE_CONFIG`.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| env(CONFIG_FILE_ENV).map(PathBuf::from));
        Self::from_sources(file.as_deref(), &env)
    }

    pub fn from_sources(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::from_raw(&RawSettings::gather(file, env)?)
    }

    pub fn from_raw(raw: &RawSettings) -> Result<Self, ConfigError> {
        let workflows_dir = raw.require("workflows.dir", |v| Ok(PathBuf::from(v)))?;
        Ok(Config {
            idp: idp::idp_config(raw, &workflows_dir)?,
            server: ServerConfig {
                bind: raw.require("server.bind", |v| {
                    v.parse::<SocketAddr>()
                        .map_err(|_| format!("`{v}` is not an address like 127.0.0.1:8080"))
                })?,
                base_url: raw.require("server.base_url", parse_base_url)?,
                request_timeout: raw.require("server.request_timeout", parse_positive_duration)?,
                shutdown_timeout: raw.require("server.shutdown_timeout", crate::duration::parse)?,
                connections: ConnectionLimits {
                    header_timeout: raw
                        .require("server.header_timeout", parse_positive_duration)?,
                    max_connections: raw
                        .require("server.max_connections", parse_positive::<usize>)?,
                },
            },
            database: DatabaseConfig {
                url: raw.require("database.url", DatabaseUrl::parse)?,
                max_connections: raw.require("database.max_connections", parse_positive)?,
                connect_timeout: raw
                    .require("database.connect_timeout", parse_positive_duration)?,
            },
            workflows_dir,
            secret_key: raw.parse("secrets.key", SecretKey::from_base64)?,
            log: LogConfig {
                filter: raw.require("log.filter", |v| {
                    tracing_subscriber::EnvFilter::try_new(v)
                        .map(|_| v.to_string())
                        .map_err(|e| e.to_string())
                })?,
                format: raw.require("log.format", |v| match v {
                    "pretty" => Ok(LogFormat::Pretty),
                    "json" => Ok(LogFormat::Json),
                    _ => Err(format!("`{v}` is neither `pretty` nor `json`")),
                })?,
            },
            jobs: JobsConfig {
                poll_interval: raw.require("jobs.poll_interval", parse_positive_duration)?,
                concurrency: raw.require("jobs.concurrency", parse_positive)?,
                heartbeat: raw.require("jobs.heartbeat", parse_positive_duration)?,
            },
            events: EventsConfig {
                ticket_block: raw.require("events.ticket_block", parse_positive_duration)?,
                retry_for: raw.require("events.retry_for", parse_positive_duration)?,
                retry_base: raw.require("events.retry_base", parse_positive_duration)?,
                retry_max: raw.require("events.retry_max", parse_positive_duration)?,
            },
            connect: ConnectConfig {
                key: raw.require("connect.key", |v| {
                    let ok = !v.is_empty()
                        && v.len() <= 64
                        && v.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
                    ok.then(|| v.to_string()).ok_or_else(|| {
                        format!("`{v}` is not an app key (letters, digits, - . _; at most 64)")
                    })
                })?,
                keys_url: raw.require("connect.keys_url", parse_base_url)?,
                allowed_sites: raw.require(
                    "connect.allowed_sites",
                    crate::tenant::sites::AllowedSites::parse,
                )?,
                webhook_jql: raw.parse("connect.webhook_jql", |v| Ok(v.to_string()))?,
                jwt_leeway: raw.require("connect.jwt_leeway", crate::duration::parse)?,
            },
            atlassian: AtlassianConfig {
                api_url: raw.require("atlassian.api_url", parse_base_url)?,
                org_id: raw.parse("atlassian.org_id", parse_identifier)?,
                admin_api_key: raw.parse("atlassian.admin_api_key", Secret::parse)?,
                scim_directory_id: raw.parse("atlassian.scim_directory_id", parse_identifier)?,
                scim_api_key: raw.parse("atlassian.scim_api_key", Secret::parse)?,
                site_admin_email: raw.parse("atlassian.site_admin_email", |v| {
                    (v.contains('@') && !v.contains(char::is_whitespace))
                        .then(|| v.to_string())
                        .ok_or_else(|| format!("`{v}` is not an email address"))
                })?,
                site_admin_token: raw.parse("atlassian.site_admin_token", Secret::parse)?,
                cloud_id: raw.parse("atlassian.cloud_id", parse_identifier)?,
                account_index_interval: raw
                    .require("atlassian.account_index_interval", parse_positive_duration)?,
                synced_groups: raw
                    .parse("atlassian.synced_groups", |v| Ok(comma_list(v)))?
                    .unwrap_or_default(),
            },
            grants: GrantsConfig {
                remind_before: raw.require("grants.remind_before", |v| {
                    if v.trim().eq_ignore_ascii_case("none") {
                        return Ok(Vec::new());
                    }
                    let mut all = comma_list(v)
                        .iter()
                        .map(|d| parse_positive_duration(d))
                        .collect::<Result<Vec<_>, _>>()?;
                    all.sort_by(|a, b| b.cmp(a));
                    all.dedup();
                    Ok(all)
                })?,
                reconcile_interval: raw
                    .require("grants.reconcile_interval", parse_positive_duration)?,
                admin_group: raw.parse("grants.admin_group", |v| Ok(v.trim().to_string()))?,
            },
            audit: AuditConfig {
                checkpoint_interval: raw
                    .require("audit.checkpoint_interval", parse_positive_duration)?,
                api_token: raw.parse("audit.api_token", Secret::parse)?,
            },
            alert_ticket: match (raw.get("alerts.site"), raw.get("alerts.project")) {
                (None, None) => None,
                (Some(site), Some(project)) => Some(AlertTicketConfig {
                    site: site_host(site),
                    project: project.trim().to_string(),
                    issue_type: raw.get("alerts.issue_type").unwrap_or("Task").to_string(),
                }),
                (Some(_), None) | (None, Some(_)) => {
                    return Err(ConfigError::Invalid {
                        setting: describe("alerts.project", &Origin::Default),
                        reason: "TOLLGATE_ALERTS_SITE and TOLLGATE_ALERTS_JIRA_PROJECT go together"
                            .into(),
                    });
                }
            },
            lifecycle: LifecycleConfig {
                ticket: lifecycle_ticket(raw)?,
                grace_period: raw.require("lifecycle.grace_period", crate::duration::parse)?,
                decide_within: raw.require("lifecycle.decide_within", crate::duration::parse)?,
                inactive_scan_interval: raw
                    .require("lifecycle.inactive_scan_interval", crate::duration::parse)?,
                deactivate_atlassian_account: raw
                    .require("leavers.deactivate_atlassian_account", parse_bool)?,
            },
            forge: ForgeConfig {
                app_id: raw.parse("forge.app_id", |v| {
                    let id = v.strip_prefix(crate::ids::APP_ARI_PREFIX).unwrap_or(v);
                    parse_identifier(id)
                        .map(|_| v.to_string())
                        .map_err(|_| format!("`{v}` is not a Forge app id"))
                })?,
                jwks_url: raw.require("forge.jwks_url", parse_base_url)?,
            },
        })
    }
}

/// A secret value (API key, token, shared secret): never printed by `Debug`, wiped from memory
/// when dropped (`secrecy`), compared in constant time.
#[derive(Clone)]
pub struct Secret(secrecy::SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(secrecy::SecretString::from(value.into()))
    }

    fn parse(v: &str) -> Result<Self, String> {
        let v = v.trim();
        if v.is_empty() || v.contains(char::is_whitespace) {
            return Err("is empty or contains white space".into());
        }
        Ok(Self::new(v))
    }

    pub fn expose(&self) -> &str {
        use secrecy::ExposeSecret;
        self.0.expose_secret()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.expose()
            .as_bytes()
            .ct_eq(other.expose().as_bytes())
            .into()
    }
}

impl Eq for Secret {}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(deserializer).map(Self::new)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let config = Config::from_sources(None, &env_of(&[])).expect("defaults are valid");
        assert_eq!(config.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.base_url, "http://localhost:8080");
        assert_eq!(
            config.database.url,
            DatabaseUrl::Sqlite("sqlite://tollgate.db".into())
        );
        assert_eq!(config.workflows_dir, PathBuf::from("./workflows"));
        assert!(config.secret_key.is_none());
        assert_eq!(config.log.format, LogFormat::Pretty);
        assert_eq!(config.jobs.poll_interval, Duration::from_secs(1));
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tollgate.toml");
        std::fs::write(
            &path,
            "[server]\nbind = \"0.0.0.0:9000\"\nbase_url = \"https://file.example\"\n[log]\nformat = \"json\"\n[jobs]\nconcurrency = 8\n",
        )
        .expect("write");
        let config = Config::from_sources(
            Some(&path),
            &env_of(&[("TOLLGATE_BASE_URL", "https://env.example/")]),
        )
        .expect("valid");
        assert_eq!(config.server.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(config.server.base_url, "https://env.example");
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.jobs.concurrency, 8);
    }

    #[test]
    fn an_invalid_value_names_the_setting_and_its_source() {
        let err = Config::from_sources(None, &env_of(&[("TOLLGATE_BIND", "localhost")]))
            .expect_err("invalid bind");
        let text = err.to_string();
        assert!(text.contains("TOLLGATE_BIND"), "{text}");
        assert!(text.contains("server.bind"), "{text}");
        assert!(text.contains("localhost"), "{text}");

        let err = Config::from_sources(None, &env_of(&[("DATABASE_URL", "mysql://x")]))
            .expect_err("unsupported database");
        assert!(err.to_string().contains("DATABASE_URL"));
    }

    #[test]
    fn rest_identity_providers_need_their_address_and_a_credential() {
        use crate::config::idp::{ManagerSource, OktaAuth};
        let err = Config::from_sources(None, &env_of(&[("TOLLGATE_IDP_KIND", "okta")]))
            .expect_err("no org");
        assert!(err.to_string().contains("TOLLGATE_IDP_OKTA_URL"), "{err}");
        let err = Config::from_sources(
            None,
            &env_of(&[
                ("TOLLGATE_IDP_KIND", "okta"),
                ("TOLLGATE_IDP_OKTA_URL", "https://acme.okta.com"),
            ]),
        )
        .expect_err("no credential");
        assert!(err.to_string().contains("TOLLGATE_IDP_OKTA_TOKEN"), "{err}");
        let config = Config::from_sources(
            None,
            &env_of(&[
                ("TOLLGATE_IDP_KIND", "okta"),
                ("TOLLGATE_IDP_OKTA_URL", "https://acme.okta.com/"),
                ("TOLLGATE_IDP_OKTA_TOKEN", "00abc"),
                ("TOLLGATE_IDP_OKTA_MANAGER", "linked:manager"),
            ]),
        )
        .expect("valid");
        let IdpSource::Okta(okta) = config.idp.source else {
            panic!("okta expected");
        };
        assert_eq!(okta.url, "https://acme.okta.com");
        assert!(matches!(okta.auth, OktaAuth::ApiToken(t) if t.expose() == "00abc"));
        assert_eq!(okta.manager, ManagerSource::Linked("manager".into()));
        assert_eq!((okta.page_size, okta.concurrency), (200, 8));
        let dir = tempfile::tempdir().expect("tempdir");
        let not_a_key = dir.path().join("key.pem");
        std::fs::write(&not_a_key, "hello").expect("write");
        let err = Config::from_sources(
            None,
            &env_of(&[
                ("TOLLGATE_IDP_KIND", "okta"),
                ("TOLLGATE_IDP_OKTA_URL", "https://acme.okta.com"),
                ("TOLLGATE_IDP_OKTA_CLIENT_ID", "0oa1"),
                (
                    "TOLLGATE_IDP_OKTA_PRIVATE_KEY_FILE",
                    not_a_key.to_str().expect("utf8"),
                ),
            ]),
        )
        .expect_err("not a key");
        assert!(err.to_string().contains("no PEM private key"), "{err}");
    }

    #[test]
    fn the_lifecycle_ticket_needs_its_site_desk_and_request_type_together() {
        let none = Config::from_sources(None, &env_of(&[])).expect("defaults");
        assert!(none.lifecycle.ticket.is_none());
        assert_eq!(none.lifecycle.grace_period, Duration::from_secs(7 * 86_400));
        assert_eq!(
            none.lifecycle.decide_within,
            Duration::from_secs(14 * 86_400)
        );
        let all = Config::from_sources(
            None,
            &env_of(&[
                ("TOLLGATE_LIFECYCLE_SITE", "https://acme.atlassian.net/"),
                ("TOLLGATE_LIFECYCLE_SERVICE_DESK", "4"),
                ("TOLLGATE_LIFECYCLE_REQUEST_TYPE", " 31 "),
            ]),
        )
        .expect("all three");
        let ticket = all.lifecycle.ticket.expect("configured");
        assert_eq!(
            (
                ticket.site.as_str(),
                ticket.service_desk.as_str(),
                ticket.request_type.as_str()
            ),
            ("acme.atlassian.net", "4", "31")
        );
        let err = Config::from_sources(
            None,
            &env_of(&[("TOLLGATE_LIFECYCLE_SITE", "acme.atlassian.net")]),
        )
        .expect_err("the site alone");
        assert!(err.to_string().contains("go together"), "{err}");
        let err = Config::from_sources(
            None,
            &env_of(&[
                ("TOLLGATE_LIFECYCLE_SITE", "acme.atlassian.net"),
                ("TOLLGATE_LIFECYCLE_SERVICE_DESK", "IT"),
                ("TOLLGATE_LIFECYCLE_REQUEST_TYPE", "31"),
            ]),
        )
        .expect_err("a desk key, not its id");
        let text = err.to_string();
        assert!(
            text.contains("TOLLGATE_LIFECYCLE_SERVICE_DESK")
                && text.contains("`IT` is not a JSM id"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tollgate.toml");
        std::fs::write(&path, "[server]\nbnid = \"0.0.0.0:9000\"\n").expect("write");
        let err = Config::from_sources(Some(&path), &env_of(&[])).expect_err("typo");
        assert!(err.to_string().contains("server.bnid"), "{err}");
    }

    #[test]
    fn secrets_come_from_files_and_never_show_in_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key_path = dir.path().join("key");
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        std::fs::write(&key_path, format!("{key}\n")).expect("write");
        let config = Config::from_sources(
            None,
            &env_of(&[("TOLLGATE_SECRET_KEY_FILE", key_path.to_str().expect("utf8"))]),
        )
        .expect("valid");
        assert!(config.secret_key.is_some());
        assert!(!format!("{config:?}").contains(key));

        let err = Config::from_sources(None, &env_of(&[("TOLLGATE_SECRET_KEY", "c2hvcnQ=")]))
            .expect_err("short key");
        let text = err.to_string();
        assert!(text.contains("TOLLGATE_SECRET_KEY"), "{text}");
        assert!(!text.contains("c2hvcnQ="), "{text}");
    }

    #[test]
    fn database_url_hides_passwords_in_debug() {
        let url = DatabaseUrl::parse("postgres://app:hunter2@db.internal/tollgate").expect("ok");
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn sqlite_file_is_found_in_the_url() {
        let url = DatabaseUrl::parse("sqlite://data/tollgate.db?mode=rwc").expect("ok");
        assert_eq!(url.sqlite_file(), Some(PathBuf::from("data/tollgate.db")));
        let memory = DatabaseUrl::parse("sqlite::memory:").expect("ok");
        assert_eq!(memory.sqlite_file(), None);
    }

    #[test]
    fn the_leaver_brake_takes_a_share_and_a_floor() {
        assert_eq!(parse_share("2%"), Ok(0.02));
        assert_eq!(parse_share("0.3"), Ok(0.3));
        assert!(parse_share("150%").is_err());
        assert!(parse_share("lots").is_err());
        let brake = LeaverBrake {
            share: 0.02,
            min_people: 10,
            max_grants: 100,
        };
        assert_eq!(brake.limit(48), 10);
        assert_eq!(brake.limit(100_000), 2_000);
    }

    #[test]
    fn docs_list_every_setting() {
        let docs = include_str!("../../docs/configuration.md");
        for s in SETTINGS {
            assert!(
                docs.contains(&format!("`{}`", s.env)) && docs.contains(&format!("`{}`", s.key)),
                "docs/configuration.md does not document {} / {}",
                s.env,
                s.key
            );
        }
    }
}
