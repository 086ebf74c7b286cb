//! The identity source's settings, one kind per connector, and their validation: what each kind
//! needs, parsed once at start so a connector never sees a setting it cannot use.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::Secret;
use super::parse::{
    parse_base_url, parse_positive, parse_positive_duration, parse_share, read_key_file,
};
use super::raw::{ConfigError, Origin, RawSettings, describe};

/// Which identity source the org chart is synced from, with its settings.
#[derive(Debug, Clone)]
pub enum IdpSource {
    File(PathBuf),
    Scim(ScimConfig),
    Ldap(LdapConfig),
    Okta(OktaConfig),
    Entra(GraphConfig),
    Google(GoogleConfig),
    /// The identity provider pushes SCIM 2.0 to Tollgate's `/scim/v2`.
    ScimPush(ScimPushConfig),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScimPushConfig {
    /// The pushed user's attribute that is the person's id.
    pub person_key: crate::scim::PersonKey,
}

#[derive(Debug, Clone)]
pub struct IdpConfig {
    pub source: IdpSource,
    pub sync_interval: Duration,
    pub brake: LeaverBrake,
    /// Leavers counted together for the brake (pushed changes come one person at a time).
    pub brake_window: Duration,
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

pub(super) fn idp_config(
    raw: &RawSettings,
    workflows_dir: &Path,
) -> Result<IdpConfig, ConfigError> {
    use ScimConfig;
    let kind = raw.require("idp.kind", |v| match v {
        "file" | "scim" | "ldap" | "okta" | "entra" | "google" | "scim_push" => Ok(v.to_string()),
        _ => Err(format!(
            "`{v}` is not one of file, scim, ldap, okta, entra, google, scim_push"
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
        "scim_push" => IdpSource::ScimPush(ScimPushConfig {
            person_key: raw.require("idp.scim_push_person_id", crate::scim::PersonKey::parse)?,
        }),
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
            let budget = raw.parse("idp.rate_limit", Budget::parse)?;
            IdpSource::Google(
                raw.parse("idp.google_credentials_file", |path| {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| format!("cannot read `{path}`: {e}"))?;
                    GoogleConfig::from_key_file(
                        &text,
                        admin.clone(),
                        customer.clone(),
                        api_url.clone(),
                        page_size,
                        concurrency,
                    )
                    .map(|config| GoogleConfig { budget, ..config })
                    .map_err(|e| format!("`{path}` {e}"))
                })?
                .ok_or_else(|| missing("idp.google_credentials_file"))?,
            )
        }
        "entra" => IdpSource::Entra(GraphConfig {
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
            budget: raw.parse("idp.rate_limit", Budget::parse)?,
            client_state: raw.get("idp.entra_client_state").map(Secret::new),
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
        brake_window: raw.require("idp.leaver_brake_window", parse_positive_duration)?,
    })
}

fn okta_config(
    raw: &RawSettings,
    missing: &dyn Fn(&str) -> ConfigError,
) -> Result<OktaConfig, ConfigError> {
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
        hook_secret: raw.get("idp.okta_hook_secret").map(Secret::new),
    })
}

#[derive(Debug, Clone)]
pub struct ScimConfig {
    pub url: String,
    pub token: Secret,
    pub page_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    OpenLdap,
    ActiveDirectory,
}

impl Flavor {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "openldap" => Ok(Self::OpenLdap),
            "ad" | "active-directory" => Ok(Self::ActiveDirectory),
            _ => Err(format!("`{text}` is neither `openldap` nor `ad`")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LdapConfig {
    pub url: String,
    pub bind_dn: String,
    pub bind_password: Secret,
    pub base_dn: String,
    pub people_filter: String,
    pub group_filter: String,
    pub flavor: Flavor,
    pub page_size: i32,
    /// What a `groupOfNames` keeps as its member once its last person is removed: the
    /// schema requires one. Empty is the empty DN, which names nobody.
    pub empty_group_member: String,
}

#[derive(Debug, Clone)]
pub enum OktaAuth {
    /// `Authorization: SSWS {token}`: acts as the admin who made the token.
    ApiToken(Secret),
    /// An OAuth service app (`private_key_jwt`), least privilege: `okta.users.read`,
    /// `okta.groups.manage`.
    ServiceApp {
        client_id: String,
        key_pem: Secret,
        key_id: Option<String>,
        /// Default `{url}/oauth2/v1/token`.
        token_url: Option<String>,
    },
}

/// Where a person's manager comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagerSource {
    /// `profile.managerId`: a plain string, with no referential integrity.
    ManagerId,
    /// A linked object relationship (its primary name, e.g. `manager`): one call per person.
    Linked(String),
}

impl ManagerSource {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "" | "managerId" | "managerid" => Ok(Self::ManagerId),
            other => match other.strip_prefix("linked:") {
                Some(name)
                    if !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    Ok(Self::Linked(name.to_string()))
                }
                _ => Err("is `managerId` or `linked:<primary relationship name>`".into()),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct OktaConfig {
    /// The org, e.g. `https://acme.okta.com`.
    pub url: String,
    pub auth: OktaAuth,
    pub manager: ManagerSource,
    pub page_size: u32,
    /// Requests in flight at once while reading groups (Okta's concurrent limit is per org).
    pub concurrency: usize,
    /// The `Authorization` header value Okta's event hook sends; unset: `/hooks/okta` is closed.
    pub hook_secret: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// The directory (tenant) id.
    pub tenant: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Default `https://graph.microsoft.com/v1.0`.
    pub graph_url: String,
    /// Default `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
    pub token_url: Option<String>,
    pub page_size: u32,
    pub concurrency: usize,
    /// Graph announces no budget: the one to keep to (`TOLLGATE_IDP_RATE_LIMIT`).
    pub budget: Option<Budget>,
    /// The `clientState` Graph's change notifications carry; unset: `/hooks/graph` is closed.
    pub client_state: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// `my_customer`, or the customer id.
    pub customer: String,
    /// The admin the service account acts as.
    pub admin: String,
    pub client_email: String,
    pub private_key: Secret,
    pub key_id: Option<String>,
    /// The key file's `token_uri` (default `https://oauth2.googleapis.com/token`).
    pub token_url: String,
    /// Default `https://admin.googleapis.com`.
    pub api_url: String,
    pub page_size: u32,
    pub concurrency: usize,
    /// Google announces no budget: the one to keep to (`TOLLGATE_IDP_RATE_LIMIT`).
    pub budget: Option<Budget>,
}

impl GoogleConfig {
    /// Fills the credential from a service account key file's JSON.
    pub fn from_key_file(
        text: &str,
        admin: String,
        customer: String,
        api_url: String,
        page_size: u32,
        concurrency: usize,
    ) -> Result<Self, String> {
        let key: Value =
            serde_json::from_str(text).map_err(|e| format!("is not a key file (JSON): {e}"))?;
        if key["type"] != "service_account" {
            return Err("is not a service account key (`type` is not `service_account`)".into());
        }
        let field = |name: &str| {
            key[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("has no `{name}`"))
        };
        Ok(Self {
            customer,
            admin,
            client_email: field("client_email")?,
            private_key: Secret::new(field("private_key")?),
            key_id: key["private_key_id"].as_str().map(str::to_string),
            token_url: key["token_uri"]
                .as_str()
                .unwrap_or("https://oauth2.googleapis.com/token")
                .to_string(),
            api_url,
            budget: None,
            page_size,
            concurrency,
        })
    }
}

/// A budget of `calls` per window of `per`, from configuration (`100/10s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub calls: u32,
    pub per: Duration,
}

impl Budget {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a budget like 100/10s");
        let (calls, per) = text.split_once('/').ok_or_else(bad)?;
        let calls: u32 = calls.trim().parse().map_err(|_| bad())?;
        let per = crate::duration::parse(per.trim()).map_err(|_| bad())?;
        if calls == 0 || per.is_zero() {
            return Err(bad());
        }
        Ok(Self { calls, per })
    }
}
