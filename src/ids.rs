//! Who and what, as types: identities parsed once where they come in, so an account id is
//! never taken for an email. Plain data with no I/O, below every other module.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// How an Atlassian app id is written as an ARI (a Forge app's id, in its tokens and settings).
pub const APP_ARI_PREFIX: &str = "ari:cloud:ecosystem::app/";

/// Read-only access to an identity's text (to pass it to a query, a URL, a log), and equality
/// with plain text. Making one from text goes through its `parse`.
macro_rules! reads_as_text {
    ($($name:ident),*) => {$(
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

/// Read back from stored JSON through `parse`, so a stored value is checked as an outside one is.
macro_rules! parsed_from_text {
    ($($name:ident),*) => {$(
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }
    )*};
}

reads_as_text!(
    Email, AccountId, PersonId, ResourceId, TargetKey, TenantKey, TicketKey
);
parsed_from_text!(Email, TenantKey, TicketKey);

/// A tenant's key: a Connect install's `clientKey`, a Forge installation's id (for a site that
/// came by Forge alone), or `jira-webhook:{source}`. Whichever door, one string that names
/// whose data it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantKey(String);

impl TenantKey {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > 255 || text.chars().any(char::is_control) {
            Err(format!("`{text}` is not a tenant key"))
        } else {
            Ok(Self(text.to_string()))
        }
    }
}

/// A Jira issue key (`IT-7`): a project key (a letter, then letters, digits or `_`), a dash,
/// and the issue's number. Upper-cased, as Jira shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TicketKey(String);

impl TicketKey {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a Jira issue key (like IT-7)");
        let (project, number) = text.rsplit_once('-').ok_or_else(bad)?;
        let project_ok = project
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && project
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        let number_ok = !number.is_empty() && number.chars().all(|c| c.is_ascii_digit());
        if project_ok && number_ok && text.len() <= 255 {
            Ok(Self(format!("{}-{number}", project.to_ascii_uppercase())))
        } else {
            Err(bad())
        }
    }
}

/// An email address, lower-cased so lookups do not depend on how someone typed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let valid = trimmed.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !trimmed.contains(char::is_whitespace)
        });
        if valid {
            Ok(Self(trimmed.to_lowercase()))
        } else {
            Err(format!("`{text}` is not an email address"))
        }
    }
}

/// The identity provider's stable id for a person (never the email: emails change).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PersonId(pub String);

/// An Atlassian account id (`5b10a2844c20165700ede21g`), which is not an email.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountId(pub String);

/// A resource's id in the catalog (`netsuite`): what a request asks for, as the catalog names
/// it; on a request declined as invalid, what its ticket wrote (kept to show what was asked).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceId(pub String);

/// What a grant puts in place, as one key (`jira_project_role:IT:Developers`): who holds it
/// is counted per target key and person. Made by `lifecycle::plan::target_key` only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TargetKey(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_keys_are_jira_issue_keys_and_nothing_else() {
        assert_eq!(TicketKey::parse("IT-7").expect("key").as_str(), "IT-7");
        assert_eq!(TicketKey::parse("ops_2-1042").expect("key"), "OPS_2-1042");
        for hostile in [
            "",
            "IT",
            "IT-",
            "-7",
            "7-7",
            "IT-7a",
            "IT 7",
            "IT-7/../../admin",
            "IT-7?jql=",
            "ÏT-7",
            "IT-7\n",
        ] {
            assert!(
                TicketKey::parse(hostile).is_err(),
                "{hostile:?} taken for a key"
            );
        }
        assert!(TicketKey::parse(&format!("{}-1", "A".repeat(300))).is_err());
    }

    #[test]
    fn tenant_keys_are_any_printable_name_of_bounded_length() {
        for key in [
            "jira:acme",
            "forge:ari:cloud:ecosystem::installation/1",
            "jira-webhook:ops",
        ] {
            assert_eq!(TenantKey::parse(key).expect("key"), key);
        }
        for hostile in ["", "acme\0", "acme\nX-Injected: 1"] {
            assert!(
                TenantKey::parse(hostile).is_err(),
                "{hostile:?} taken for a key"
            );
        }
        assert!(TenantKey::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn stored_identities_read_back_through_their_parse() {
        let stored: Result<TicketKey, _> = serde_json::from_str("\"IT-9\"");
        assert_eq!(stored.expect("parses"), "IT-9");
        let forged: Result<TicketKey, _> = serde_json::from_str("\"IT-9; DROP\"");
        assert!(forged.is_err());
    }
}
