//! A tenant: one product install (Jira or Confluence) of one Atlassian site, whichever door it
//! came in by (Connect, Forge, or a plain webhook source), and which sites may install.

pub mod sites;

use crate::ids::TenantKey;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    Jira,
    Confluence,
}

impl Product {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "jira" => Some(Self::Jira),
            "confluence" => Some(Self::Confluence),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jira => "jira",
            Self::Confluence => "confluence",
        }
    }
}

/// Lifecycle state. `disabled` and `uninstalled` may arrive in either order; `uninstalled`
/// wins until the next install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantState {
    Installed,
    Enabled,
    Disabled,
    Uninstalled,
}

impl TenantState {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "installed" => Some(Self::Installed),
            "enabled" => Some(Self::Enabled),
            "disabled" => Some(Self::Disabled),
            "uninstalled" => Some(Self::Uninstalled),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Installed => "installed",
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::Uninstalled => "uninstalled",
        }
    }

    /// Whether the tenant's webhooks and calls are accepted.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Installed | Self::Enabled)
    }
}

/// How a tenant first came in, which says what its stored secret is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantKind {
    /// A Connect install: the secret is its Connect shared secret.
    Connect,
    /// A Forge installation with no Connect install behind it: no secret; outbound calls use
    /// the installation's system token.
    Forge,
    /// A registered plain-webhook source: the secret verifies its webhooks' signatures.
    JiraWebhook,
}

impl TenantKind {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "connect" => Some(Self::Connect),
            "forge" => Some(Self::Forge),
            "jira_webhook" => Some(Self::JiraWebhook),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Forge => "forge",
            Self::JiraWebhook => "jira_webhook",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub client_key: TenantKey,
    pub kind: TenantKind,
    pub product: Product,
    /// The app key this install used: `iss` of our outbound tokens for it.
    pub app_key: String,
    pub base_url: String,
    /// The site's host: Jira and Confluence tenants of one site share it.
    pub host: String,
    pub display_url: Option<String>,
    /// The site's cloud id, when known: what ties a Forge installation to this tenant.
    pub cloud_id: Option<String>,
    /// The shared secret, sealed with `TOLLGATE_SECRET_KEY`.
    pub shared_secret_sealed: String,
    pub state: TenantState,
    pub installed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub uninstalled_at: Option<DateTime<Utc>>,
}

impl Tenant {
    /// The context in which its secret is sealed, so a sealed secret copied onto another
    /// tenant's row does not decrypt.
    pub fn secret_context(client_key: &str) -> String {
        format!("tenant:{client_key}:shared_secret")
    }

    /// The path of the base URL (`/wiki` for Confluence), which outbound qsh strips.
    pub fn base_path(&self) -> &str {
        base_path(&self.base_url)
    }
}

/// The host of an absolute URL, lower-cased, without port.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?.split(':').next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// The path part of an absolute URL (`https://x/wiki` → `/wiki`), empty when there is none.
pub fn base_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.find('/') {
        Some(i) => rest[i..].trim_end_matches('/'),
        None => "",
    }
}

/// How a plain webhook source's tenant key starts: `jira-webhook:{name}`.
pub const WEBHOOK_SOURCE_PREFIX: &str = "jira-webhook:";

/// The tenant key of the plain webhook source `name`; a source's name is part of its URL
/// (`/webhooks/jira/{name}`), so only a-z, 0-9 and `-`, at most 40.
pub fn webhook_source_key(name: &str) -> Result<TenantKey, String> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(format!(
            "`{name}` is not a source name (a-z, 0-9 and -, at most 40)"
        ));
    }
    TenantKey::parse(&format!("{WEBHOOK_SOURCE_PREFIX}{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_paths_of_base_urls() {
        assert_eq!(
            host_of("https://Acme.atlassian.net/wiki").as_deref(),
            Some("acme.atlassian.net")
        );
        assert_eq!(
            host_of("http://localhost:2990/jira").as_deref(),
            Some("localhost")
        );
        assert_eq!(host_of("not a url"), None);
        assert_eq!(base_path("https://acme.atlassian.net/wiki/"), "/wiki");
        assert_eq!(base_path("https://acme.atlassian.net"), "");
    }

    #[test]
    fn source_names_are_url_safe() {
        assert_eq!(
            webhook_source_key("dc-prod-1").expect("a name"),
            "jira-webhook:dc-prod-1"
        );
        for bad in ["", "Prod", "a/b", "a b", "a\n", &"x".repeat(41)] {
            assert!(webhook_source_key(bad).is_err(), "{bad:?}");
        }
    }
}
