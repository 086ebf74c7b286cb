//! Settings: an optional TOML file, overridden by environment variables, validated once at start.
//!
//! Every setting is one row of [`SETTINGS`]: its TOML key, its environment variable, whether it
//! is a secret (then it also accepts `…_FILE` / `…_file`, and its value never appears in errors
//! or `Debug` output). Later modules add rows; `docs/configuration.md` lists them all (a test
//! keeps the two in step).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secrets::SecretKey;

/// One configurable value.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Dotted TOML key, `section.key`.
    pub key: &'static str,
    /// Environment variable that overrides the TOML value.
    pub env: &'static str,
    /// Secrets accept a `…_FILE` variant and are never printed.
    pub secret: bool,
    /// Default as written in the docs; `None` when the setting is optional.
    pub default: Option<&'static str>,
    pub help: &'static str,
}

const fn setting(
    key: &'static str,
    env: &'static str,
    default: Option<&'static str>,
    help: &'static str,
) -> Setting {
    Setting {
        key,
        env,
        secret: false,
        default,
        help,
    }
}

const fn secret(key: &'static str, env: &'static str, help: &'static str) -> Setting {
    Setting {
        key,
        env,
        secret: true,
        default: None,
        help,
    }
}

/// Every setting Tollgate reads.
pub const SETTINGS: &[Setting] = &[
    setting(
        "server.bind",
        "TOLLGATE_BIND",
        Some("127.0.0.1:8080"),
        "Address the HTTP server listens on (port 0 picks a free port).",
    ),
    setting(
        "server.base_url",
        "TOLLGATE_BASE_URL",
        Some("http://localhost:8080"),
        "Public URL at which Atlassian reaches this service.",
    ),
    setting(
        "server.request_timeout",
        "TOLLGATE_SERVER_REQUEST_TIMEOUT",
        Some("20s"),
        "Longest time one HTTP request may take, from the end of its headers, before it is answered with 408.",
    ),
    setting(
        "server.header_timeout",
        "TOLLGATE_SERVER_HEADER_TIMEOUT",
        Some("10s"),
        "Longest time a client may take to send a request's headers; a keep-alive connection idle this long is closed.",
    ),
    setting(
        "server.max_connections",
        "TOLLGATE_SERVER_MAX_CONNECTIONS",
        Some("512"),
        "Connections open at once; more wait in the listen backlog until one closes.",
    ),
    setting(
        "server.shutdown_timeout",
        "TOLLGATE_SERVER_SHUTDOWN_TIMEOUT",
        Some("30s"),
        "On SIGTERM/SIGINT, how long in-flight requests and jobs may take to finish.",
    ),
    setting(
        "database.url",
        "DATABASE_URL",
        Some("sqlite://tollgate.db"),
        "`sqlite://PATH` (created if missing) or `postgres://…`.",
    ),
    setting(
        "database.max_connections",
        "TOLLGATE_DATABASE_MAX_CONNECTIONS",
        Some("10"),
        "Size of the connection pool.",
    ),
    setting(
        "database.connect_timeout",
        "TOLLGATE_DATABASE_CONNECT_TIMEOUT",
        Some("10s"),
        "How long to wait for the database at start before giving up.",
    ),
    setting(
        "workflows.dir",
        "TOLLGATE_WORKFLOWS_DIR",
        Some("./workflows"),
        "Directory holding the resource catalog and workflow files.",
    ),
    secret(
        "secrets.key",
        "TOLLGATE_SECRET_KEY",
        "Key that encrypts secrets at rest: 32 bytes, base64; several, comma-separated, newest first, while rotating (`tollgate secrets rotate`). Generated beside a SQLite database if unset; required with PostgreSQL.",
    ),
    setting(
        "log.filter",
        "TOLLGATE_LOG",
        Some("info"),
        "Log filter in `tracing` syntax, e.g. `info,tollgate=debug`.",
    ),
    setting(
        "log.format",
        "TOLLGATE_LOG_FORMAT",
        Some("pretty"),
        "`pretty` for people, `json` for log collectors.",
    ),
    setting(
        "jobs.poll_interval",
        "TOLLGATE_JOBS_POLL_INTERVAL",
        Some("1s"),
        "How often an idle worker looks for due jobs.",
    ),
    setting(
        "connect.key",
        "TOLLGATE_CONNECT_KEY",
        Some("io.tollgate.access"),
        "Atlassian Connect app key (the Confluence descriptor appends `.confluence`).",
    ),
    setting(
        "connect.keys_url",
        "TOLLGATE_CONNECT_KEYS_URL",
        Some("https://connect-install-keys.atlassian.com"),
        "Where the public keys of signed installs are fetched (`/{kid}` is appended).",
    ),
    setting(
        "connect.allowed_sites",
        "TOLLGATE_CONNECT_ALLOWED_SITES",
        Some("https://*.atlassian.net,https://*.jira.com"),
        "Sites that may install the app: comma-separated `scheme://host[:port]`, the host may start with `*.` and the port may be `*`.",
    ),
    setting(
        "connect.webhook_jql",
        "TOLLGATE_CONNECT_WEBHOOK_JQL",
        None,
        "JQL filter on the descriptor's webhooks, e.g. `project = IT`; unset sends all.",
    ),
    setting(
        "connect.jwt_leeway",
        "TOLLGATE_CONNECT_JWT_LEEWAY",
        Some("30s"),
        "Clock skew allowed when checking a token's `exp`.",
    ),
    setting(
        "jobs.concurrency",
        "TOLLGATE_JOBS_CONCURRENCY",
        Some("4"),
        "Jobs one worker process runs at the same time.",
    ),
    setting(
        "jobs.heartbeat",
        "TOLLGATE_JOBS_HEARTBEAT",
        Some("5s"),
        "How often a worker says it is alive. A worker silent for two of these is dead: its jobs, running or only claimed, go back to the queue for any other worker.",
    ),
    setting(
        "events.retry_for",
        "TOLLGATE_EVENTS_RETRY_FOR",
        Some("24h"),
        "How long an acknowledged event whose processing keeps failing (Jira or the IdP down) is retried before it is recorded as dead, with an alert.",
    ),
    setting(
        "events.ticket_block",
        "TOLLGATE_EVENTS_TICKET_BLOCK",
        Some("10m"),
        "How long an event of a ticket that keeps failing holds back that ticket's later events (they are processed in Jira's order); after that they proceed, and the failing one is judged on re-read facts when it succeeds.",
    ),
    setting(
        "events.retry_base",
        "TOLLGATE_EVENTS_RETRY_BASE",
        Some("10s"),
        "The first wait before an event is retried; it doubles with each failure, up to `events.retry_max`, never sooner than the vendor's Retry-After.",
    ),
    setting(
        "events.retry_max",
        "TOLLGATE_EVENTS_RETRY_MAX",
        Some("10m"),
        "The longest wait between two retries of an event.",
    ),
    setting(
        "atlassian.api_url",
        "TOLLGATE_ATLASSIAN_API_URL",
        Some("https://api.atlassian.com"),
        "Base URL of the organization Admin API and the Atlassian SCIM directory.",
    ),
    setting(
        "atlassian.org_id",
        "TOLLGATE_ATLASSIAN_ORG_ID",
        None,
        "Atlassian organization id, for the Admin API (group membership, product access, users).",
    ),
    secret(
        "atlassian.admin_api_key",
        "TOLLGATE_ATLASSIAN_ADMIN_API_KEY",
        "Organization Admin API key (sent as a bearer token).",
    ),
    setting(
        "atlassian.scim_directory_id",
        "TOLLGATE_ATLASSIAN_SCIM_DIRECTORY_ID",
        None,
        "Atlassian SCIM directory id, to map people to accounts and detect SCIM-synced groups.",
    ),
    secret(
        "atlassian.scim_api_key",
        "TOLLGATE_ATLASSIAN_SCIM_API_KEY",
        "API key of that SCIM directory (not the organization key).",
    ),
    setting(
        "atlassian.site_admin_email",
        "TOLLGATE_ATLASSIAN_SITE_ADMIN_EMAIL",
        None,
        "Email of a site-admin service account, for Jira group membership without the Admin API.",
    ),
    secret(
        "atlassian.site_admin_token",
        "TOLLGATE_ATLASSIAN_SITE_ADMIN_TOKEN",
        "API token of that service account (basic auth).",
    ),
    setting(
        "atlassian.cloud_id",
        "TOLLGATE_ATLASSIAN_CLOUD_ID",
        None,
        "The site's cloud id: product access grants (`atlassian_product`) name the site's product by it.",
    ),
    setting(
        "atlassian.synced_groups",
        "TOLLGATE_ATLASSIAN_SYNCED_GROUPS",
        None,
        "Comma-separated Atlassian groups fed from the IdP by SCIM (also detected through the SCIM directory): granted through the IdP group of the same name.",
    ),
    setting(
        "atlassian.account_index_interval",
        "TOLLGATE_ATLASSIAN_ACCOUNT_INDEX_INTERVAL",
        Some("6h"),
        "How often, at most, the organization's account list is read whole into the account index (with the full org sync; the Admin API has no change feed). Between reads, an account missing from the index is found by one targeted query.",
    ),
    setting(
        "grants.remind_before",
        "TOLLGATE_GRANTS_REMIND_BEFORE",
        Some("24h,1h"),
        "When, before temporary access expires, the ticket reminds the requester (comma-separated; `none` for no reminders).",
    ),
    setting(
        "grants.reconcile_interval",
        "TOLLGATE_GRANTS_RECONCILE_INTERVAL",
        Some("5m"),
        "How often the reconcile sweep revokes overdue grants, retries failed revocations and checks membership.",
    ),
    secret(
        "audit.api_token",
        "TOLLGATE_API_TOKEN",
        "Bearer token for the report API (/api/v1/reports/…); unset, the API is closed.",
    ),
    setting(
        "alerts.site",
        "TOLLGATE_ALERTS_SITE",
        None,
        "The Jira site (host, e.g. `acme.atlassian.net`) where each alert also opens an issue; with `alerts.project`.",
    ),
    setting(
        "alerts.project",
        "TOLLGATE_ALERTS_JIRA_PROJECT",
        None,
        "The project key of those alert issues (a JSM or Jira project Tollgate is installed in).",
    ),
    setting(
        "alerts.issue_type",
        "TOLLGATE_ALERTS_ISSUE_TYPE",
        Some("Task"),
        "The issue type of those alert issues.",
    ),
    setting(
        "audit.checkpoint_interval",
        "TOLLGATE_AUDIT_CHECKPOINT_INTERVAL",
        Some("1h"),
        "How often every audit chain that moved is checkpointed (besides every 1,000 events): the most of a chain's newest events that could be deleted unseen.",
    ),
    setting(
        "grants.admin_group",
        "TOLLGATE_GRANTS_ADMIN_GROUP",
        None,
        "IdP group whose members may `/revoke` any grant (approvers and the resource owner always may).",
    ),
    setting(
        "forge.app_id",
        "TOLLGATE_FORGE_APP_ID",
        None,
        "The Forge app's id (`app.id` in forge/manifest.yml, bare or as `ari:cloud:ecosystem::app/…`); unset, the Forge door (/forge/…) is closed.",
    ),
    setting(
        "forge.jwks_url",
        "TOLLGATE_FORGE_JWKS_URL",
        Some("https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json"),
        "Where Forge's invocation-token keys are published (staging: forge.cdn.stg.atlassian-dev.net).",
    ),
    setting(
        "idp.kind",
        "TOLLGATE_IDP_KIND",
        Some("file"),
        "Where the org chart comes from: `file` (org.yaml), `scim`, `ldap`, `okta`, `entra` or `google`.",
    ),
    setting(
        "idp.file",
        "TOLLGATE_IDP_FILE",
        None,
        "The org chart file for `file`; default `org.yaml` in the workflows directory.",
    ),
    setting(
        "idp.sync_interval",
        "TOLLGATE_IDP_SYNC_INTERVAL",
        Some("15m"),
        "How often `serve` runs an incremental org sync (a full one at least daily).",
    ),
    setting(
        "idp.leaver_brake_grants",
        "TOLLGATE_IDP_LEAVER_BRAKE_GRANTS",
        Some("100"),
        "…and a sync whose leavers would lose more grants than this at once is held too.",
    ),
    setting(
        "idp.rate_limit",
        "TOLLGATE_IDP_RATE_LIMIT",
        None,
        "For Entra ID and Google, which announce no budget: the calls to keep to, e.g. `100/10s` (their `Retry-After` and rate-limit answers are honoured either way).",
    ),
    setting(
        "idp.leaver_brake_share",
        "TOLLGATE_IDP_LEAVER_BRAKE_SHARE",
        Some("2%"),
        "A sync that would make more than this share of the active people leavers holds their removals for approval (`tollgate org leavers`).",
    ),
    setting(
        "idp.leaver_brake_min",
        "TOLLGATE_IDP_LEAVER_BRAKE_MIN",
        Some("10"),
        "…but never for fewer leavers than this: below it, leavers lose access at once.",
    ),
    setting(
        "idp.scim_url",
        "TOLLGATE_IDP_SCIM_URL",
        None,
        "SCIM 2.0 base URL (the one `/Users` is appended to), for `scim`.",
    ),
    secret(
        "idp.scim_token",
        "TOLLGATE_IDP_SCIM_TOKEN",
        "Bearer token for the SCIM service provider.",
    ),
    setting(
        "idp.scim_page_size",
        "TOLLGATE_IDP_SCIM_PAGE_SIZE",
        Some("100"),
        "`count` asked per SCIM page.",
    ),
    setting(
        "idp.ldap_url",
        "TOLLGATE_IDP_LDAP_URL",
        None,
        "`ldap://host:389` or `ldaps://host:636`, for `ldap`.",
    ),
    setting(
        "idp.ldap_bind_dn",
        "TOLLGATE_IDP_LDAP_BIND_DN",
        None,
        "DN Tollgate binds as (it needs read access, and write access to `member` of granted groups).",
    ),
    secret(
        "idp.ldap_bind_password",
        "TOLLGATE_IDP_LDAP_BIND_PASSWORD",
        "Password of that DN.",
    ),
    setting(
        "idp.ldap_base_dn",
        "TOLLGATE_IDP_LDAP_BASE_DN",
        None,
        "Where people and groups are searched, e.g. `dc=example,dc=com`.",
    ),
    setting(
        "idp.ldap_flavor",
        "TOLLGATE_IDP_LDAP_FLAVOR",
        Some("openldap"),
        "`openldap` (inetOrgPerson, groupOfNames, modifyTimestamp) or `ad` (users, groups, uSNChanged).",
    ),
    setting(
        "idp.ldap_people_filter",
        "TOLLGATE_IDP_LDAP_PEOPLE_FILTER",
        None,
        "Filter selecting people; default `(objectClass=inetOrgPerson)`, or AD's user filter.",
    ),
    setting(
        "idp.ldap_group_filter",
        "TOLLGATE_IDP_LDAP_GROUP_FILTER",
        None,
        "Filter selecting groups; default `(objectClass=groupOfNames)`, or `(objectClass=group)` on AD.",
    ),
    setting(
        "idp.ldap_empty_group_member",
        "TOLLGATE_IDP_LDAP_EMPTY_GROUP_MEMBER",
        None,
        "DN a groupOfNames keeps as `member` when its last person is removed (the schema needs one); default the empty DN.",
    ),
    setting(
        "idp.ldap_page_size",
        "TOLLGATE_IDP_LDAP_PAGE_SIZE",
        Some("500"),
        "Entries per paged-search page (keep it at or under the server's size limit).",
    ),
    setting(
        "idp.concurrency",
        "TOLLGATE_IDP_CONCURRENCY",
        Some("8"),
        "Requests in flight at once to a REST identity provider (Okta, Entra ID, Google) during a sync.",
    ),
    setting(
        "idp.okta_url",
        "TOLLGATE_IDP_OKTA_URL",
        None,
        "The Okta org, e.g. `https://acme.okta.com`, for `okta`.",
    ),
    secret(
        "idp.okta_token",
        "TOLLGATE_IDP_OKTA_TOKEN",
        "An Okta API token (sent as `SSWS`); or use a service app (`idp.okta_client_id`).",
    ),
    setting(
        "idp.okta_client_id",
        "TOLLGATE_IDP_OKTA_CLIENT_ID",
        None,
        "Client id of an Okta API service app (`private_key_jwt`, scopes okta.users.read and okta.groups.manage).",
    ),
    setting(
        "idp.okta_private_key_file",
        "TOLLGATE_IDP_OKTA_PRIVATE_KEY_FILE",
        None,
        "PEM file of the service app's RSA private key.",
    ),
    setting(
        "idp.okta_key_id",
        "TOLLGATE_IDP_OKTA_KEY_ID",
        None,
        "The `kid` of that key as registered in Okta, if it has one.",
    ),
    setting(
        "idp.okta_token_url",
        "TOLLGATE_IDP_OKTA_TOKEN_URL",
        None,
        "Token endpoint of the service app; default `{okta_url}/oauth2/v1/token`.",
    ),
    setting(
        "idp.okta_manager",
        "TOLLGATE_IDP_OKTA_MANAGER",
        Some("managerId"),
        "Where managers come from: `managerId` (profile attribute) or `linked:<name>` (a linked-object relationship).",
    ),
    setting(
        "idp.entra_tenant",
        "TOLLGATE_IDP_ENTRA_TENANT",
        None,
        "The Entra ID directory (tenant) id, for `entra`.",
    ),
    setting(
        "idp.entra_client_id",
        "TOLLGATE_IDP_ENTRA_CLIENT_ID",
        None,
        "Application (client) id of the app registration (User.Read.All, GroupMember.ReadWrite.All).",
    ),
    secret(
        "idp.entra_client_secret",
        "TOLLGATE_IDP_ENTRA_CLIENT_SECRET",
        "Client secret of that app registration.",
    ),
    setting(
        "idp.entra_graph_url",
        "TOLLGATE_IDP_ENTRA_GRAPH_URL",
        Some("https://graph.microsoft.com/v1.0"),
        "Microsoft Graph's base URL (national clouds have their own).",
    ),
    setting(
        "idp.entra_token_url",
        "TOLLGATE_IDP_ENTRA_TOKEN_URL",
        None,
        "Token endpoint; default `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.",
    ),
    setting(
        "idp.entra_page_size",
        "TOLLGATE_IDP_ENTRA_PAGE_SIZE",
        Some("999"),
        "`$top` asked per Graph page (at most 999).",
    ),
    setting(
        "idp.google_credentials_file",
        "TOLLGATE_IDP_GOOGLE_CREDENTIALS_FILE",
        None,
        "The service account's JSON key file (domain-wide delegation for the directory user, group and member scopes), for `google`.",
    ),
    setting(
        "idp.google_admin",
        "TOLLGATE_IDP_GOOGLE_ADMIN",
        None,
        "The Workspace admin the service account acts as.",
    ),
    setting(
        "idp.google_customer",
        "TOLLGATE_IDP_GOOGLE_CUSTOMER",
        Some("my_customer"),
        "The Workspace customer id (`my_customer`: the admin's own).",
    ),
    setting(
        "idp.google_api_url",
        "TOLLGATE_IDP_GOOGLE_API_URL",
        Some("https://admin.googleapis.com"),
        "The Admin SDK's base URL.",
    ),
    setting(
        "idp.google_page_size",
        "TOLLGATE_IDP_GOOGLE_PAGE_SIZE",
        Some("500"),
        "`maxResults` asked per page of users (at most 500; groups and members at most 200).",
    ),
    setting(
        "idp.okta_page_size",
        "TOLLGATE_IDP_OKTA_PAGE_SIZE",
        Some("200"),
        "`limit` asked per Okta page.",
    ),
];

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
enum Origin {
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

fn setting_for(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

fn describe(key: &str, origin: &Origin) -> String {
    let env = setting_for(key).map(|s| s.env).unwrap_or("?");
    match origin {
        Origin::File(path) => format!("{env} (`{key}` in {})", path.display()),
        Origin::Env(var) => format!("{var} (`{key}`, from the environment)"),
        Origin::Default => format!("{env} (`{key}`, default)"),
    }
}

fn read_secret_file(s: &Setting, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|source| ConfigError::SecretFile {
            setting: format!("{}_FILE", s.env),
            path: path.to_owned(),
            source,
        })
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
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
    pub connections: crate::http::serve::Limits,
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
    pub allowed_sites: crate::connect::sites::AllowedSites,
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

/// Which identity source the org chart is synced from, with its settings.
#[derive(Debug, Clone)]
pub enum IdpSource {
    File(PathBuf),
    Scim(crate::idp::scim::ScimConfig),
    Ldap(crate::idp::ldap::LdapConfig),
    Okta(crate::idp::okta::OktaConfig),
    Entra(crate::idp::graph::GraphConfig),
    Google(crate::idp::google::GoogleConfig),
}

#[derive(Debug, Clone)]
pub struct IdpConfig {
    pub source: IdpSource,
    pub sync_interval: Duration,
    pub brake: LeaverBrake,
}

/// When a sync's leavers are too many to be believed at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeaverBrake {
    /// Of the active people before the sync, 0.0–1.0.
    pub share: f64,
    pub min_people: usize,
    /// Grants revoked at once for leavers, past which they are held too.
    pub max_grants: usize,
}

impl LeaverBrake {
    /// The most leavers one sync may make before its removals are held.
    pub fn limit(&self, active_before: usize) -> usize {
        let share = (self.share * active_before as f64).floor() as usize;
        share.max(self.min_people)
    }
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
            idp: idp_config(raw, &workflows_dir)?,
            server: ServerConfig {
                bind: raw.require("server.bind", |v| {
                    v.parse::<SocketAddr>()
                        .map_err(|_| format!("`{v}` is not an address like 127.0.0.1:8080"))
                })?,
                base_url: raw.require("server.base_url", parse_base_url)?,
                request_timeout: raw.require("server.request_timeout", parse_positive_duration)?,
                shutdown_timeout: raw.require("server.shutdown_timeout", crate::duration::parse)?,
                connections: crate::http::serve::Limits {
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
                    crate::connect::sites::AllowedSites::parse,
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
                    // Tenants are found by host, as the site's base URL names it.
                    site: {
                        let bare = site.trim().trim_start_matches("https://");
                        let bare = bare.trim_start_matches("http://");
                        crate::connect::tenant::host_of(&format!("https://{bare}"))
                            .unwrap_or_default()
                    },
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
            forge: ForgeConfig {
                app_id: raw.parse("forge.app_id", |v| {
                    let id = v
                        .strip_prefix(crate::forge::token::APP_ARI_PREFIX)
                        .unwrap_or(v);
                    parse_identifier(id)
                        .map(|_| v.to_string())
                        .map_err(|_| format!("`{v}` is not a Forge app id"))
                })?,
                jwks_url: raw.require("forge.jwks_url", parse_base_url)?,
            },
        })
    }
}

fn parse_base_url(v: &str) -> Result<String, String> {
    let trimmed = v.trim_end_matches('/');
    let ok = (trimmed.starts_with("https://") || trimmed.starts_with("http://"))
        && trimmed
            .split("://")
            .nth(1)
            .is_some_and(|rest| !rest.is_empty())
        && !trimmed.contains(['?', '#', ' ']);
    if ok {
        Ok(trimmed.to_string())
    } else {
        Err(format!(
            "`{v}` is not an absolute http(s) URL without query or fragment"
        ))
    }
}

fn idp_config(raw: &RawSettings, workflows_dir: &Path) -> Result<IdpConfig, ConfigError> {
    use crate::idp::ldap::{Flavor, LdapConfig};
    use crate::idp::scim::ScimConfig;
    let kind = raw.require("idp.kind", |v| match v {
        "file" | "scim" | "ldap" | "okta" | "entra" | "google" => Ok(v.to_string()),
        _ => Err(format!(
            "`{v}` is not one of file, scim, ldap, okta, entra, google"
        )),
    })?;
    // A setting the chosen kind needs: its absence names the variable.
    let missing = |key: &str| ConfigError::Invalid {
        setting: describe(key, &Origin::Default),
        reason: format!("is required when TOLLGATE_IDP_KIND is `{kind}`"),
    };
    let needed = |key: &str| -> Result<String, ConfigError> {
        raw.get(key).map(str::to_string).ok_or_else(|| missing(key))
    };
    let source = match kind.as_str() {
        "scim" => IdpSource::Scim(ScimConfig {
            url: raw
                .parse("idp.scim_url", parse_base_url)?
                .ok_or_else(|| missing("idp.scim_url"))?,
            token: Secret::new(needed("idp.scim_token")?),
            page_size: raw.require("idp.scim_page_size", parse_positive)?,
        }),
        "ldap" => {
            let flavor = raw.require("idp.ldap_flavor", Flavor::parse)?;
            let (people, groups) = match flavor {
                Flavor::OpenLdap => ("(objectClass=inetOrgPerson)", "(objectClass=groupOfNames)"),
                Flavor::ActiveDirectory => (
                    "(&(objectCategory=person)(objectClass=user))",
                    "(objectClass=group)",
                ),
            };
            IdpSource::Ldap(LdapConfig {
                url: raw
                    .parse("idp.ldap_url", |v| {
                        (v.starts_with("ldap://") || v.starts_with("ldaps://"))
                            .then(|| v.to_string())
                            .ok_or_else(|| format!("`{v}` is not an ldap:// or ldaps:// URL"))
                    })?
                    .ok_or_else(|| missing("idp.ldap_url"))?,
                bind_dn: needed("idp.ldap_bind_dn")?,
                bind_password: Secret::new(needed("idp.ldap_bind_password")?),
                base_dn: needed("idp.ldap_base_dn")?,
                people_filter: raw
                    .get("idp.ldap_people_filter")
                    .unwrap_or(people)
                    .to_string(),
                group_filter: raw
                    .get("idp.ldap_group_filter")
                    .unwrap_or(groups)
                    .to_string(),
                flavor,
                page_size: raw.require("idp.ldap_page_size", parse_positive)?,
                empty_group_member: raw
                    .get("idp.ldap_empty_group_member")
                    .unwrap_or_default()
                    .to_string(),
            })
        }
        "okta" => IdpSource::Okta(okta_config(raw, &missing)?),
        "google" => {
            let admin = needed("idp.google_admin")?;
            let customer = needed("idp.google_customer")?;
            let api_url = raw.require("idp.google_api_url", parse_base_url)?;
            let page_size = raw.require("idp.google_page_size", |v| {
                parse_positive::<u32>(v).and_then(|n| {
                    (n <= 500)
                        .then_some(n)
                        .ok_or_else(|| format!("`{v}` is over Google's 500"))
                })
            })?;
            let concurrency = raw.require("idp.concurrency", parse_positive::<usize>)?;
            let budget = raw.parse("idp.rate_limit", crate::idp::pacing::Budget::parse)?;
            IdpSource::Google(
                raw.parse("idp.google_credentials_file", |path| {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| format!("cannot read `{path}`: {e}"))?;
                    crate::idp::google::GoogleConfig::from_key_file(
                        &text,
                        admin.clone(),
                        customer.clone(),
                        api_url.clone(),
                        page_size,
                        concurrency,
                    )
                    .map(|config| crate::idp::google::GoogleConfig { budget, ..config })
                    .map_err(|e| format!("`{path}` {e}"))
                })?
                .ok_or_else(|| missing("idp.google_credentials_file"))?,
            )
        }
        "entra" => IdpSource::Entra(crate::idp::graph::GraphConfig {
            tenant: needed("idp.entra_tenant")?,
            client_id: needed("idp.entra_client_id")?,
            client_secret: Secret::new(needed("idp.entra_client_secret")?),
            graph_url: raw.require("idp.entra_graph_url", parse_base_url)?,
            token_url: raw.parse("idp.entra_token_url", parse_base_url)?,
            page_size: raw.require("idp.entra_page_size", |v| {
                parse_positive::<u32>(v).and_then(|n| {
                    (n <= 999)
                        .then_some(n)
                        .ok_or_else(|| format!("`{v}` is over Graph's 999"))
                })
            })?,
            concurrency: raw.require("idp.concurrency", parse_positive::<usize>)?,
            budget: raw.parse("idp.rate_limit", crate::idp::pacing::Budget::parse)?,
        }),
        _ => IdpSource::File(
            raw.get("idp.file")
                .map(PathBuf::from)
                .unwrap_or_else(|| workflows_dir.join("org.yaml")),
        ),
    };
    Ok(IdpConfig {
        source,
        sync_interval: raw.require("idp.sync_interval", parse_positive_duration)?,
        brake: LeaverBrake {
            share: raw.require("idp.leaver_brake_share", parse_share)?,
            min_people: raw.require("idp.leaver_brake_min", parse_positive::<usize>)?,
            max_grants: raw.require("idp.leaver_brake_grants", parse_positive::<usize>)?,
        },
    })
}

fn okta_config(
    raw: &RawSettings,
    missing: &dyn Fn(&str) -> ConfigError,
) -> Result<crate::idp::okta::OktaConfig, ConfigError> {
    use crate::idp::okta::{ManagerSource, OktaAuth, OktaConfig};
    let url = raw
        .parse("idp.okta_url", parse_base_url)?
        .ok_or_else(|| missing("idp.okta_url"))?;
    let auth = match (raw.get("idp.okta_token"), raw.get("idp.okta_client_id")) {
        (Some(token), _) => OktaAuth::ApiToken(Secret::new(token)),
        (None, Some(client_id)) => OktaAuth::ServiceApp {
            client_id: client_id.to_string(),
            key_pem: Secret::new(
                raw.parse("idp.okta_private_key_file", read_key_file)?
                    .ok_or_else(|| missing("idp.okta_private_key_file"))?,
            ),
            key_id: raw.get("idp.okta_key_id").map(str::to_string),
            token_url: raw.parse("idp.okta_token_url", parse_base_url)?,
        },
        (None, None) => return Err(missing("idp.okta_token")),
    };
    Ok(OktaConfig {
        url,
        auth,
        manager: raw.require("idp.okta_manager", ManagerSource::parse)?,
        page_size: raw.require("idp.okta_page_size", parse_positive)?,
        concurrency: raw.require("idp.concurrency", parse_positive::<usize>)?,
    })
}

/// A PEM private key named by its file (the path is not secret; the file is).
fn read_key_file(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
    if text.contains("PRIVATE KEY-----") {
        Ok(text)
    } else {
        Err(format!("`{path}` holds no PEM private key"))
    }
}

fn comma_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// An id that goes into a URL path: no separators or spaces.
fn parse_identifier(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c));
    ok.then(|| v.to_string())
        .ok_or_else(|| format!("`{v}` is not an id (letters, digits, - _ : .)"))
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

fn parse_positive<T: std::str::FromStr + Default + PartialOrd>(v: &str) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(format!("`{v}` is not a positive whole number")),
    }
}

/// `2%` or `0.02`: a share between 0 and 1.
fn parse_share(v: &str) -> Result<f64, String> {
    let share = match v.trim().strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => v.trim().parse::<f64>(),
    }
    .map_err(|_| format!("`{v}` is not a share (2% or 0.02)"))?;
    if (0.0..=1.0).contains(&share) {
        Ok(share)
    } else {
        Err(format!("`{v}` is not between 0% and 100%"))
    }
}

fn parse_positive_duration(v: &str) -> Result<Duration, String> {
    match crate::duration::parse(v)? {
        d if d.is_zero() => Err("must be longer than zero".into()),
        d => Ok(d),
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
        use crate::idp::okta::{ManagerSource, OktaAuth};
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
        let docs = include_str!("../docs/configuration.md");
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
