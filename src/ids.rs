//! Who and what, as types: identities parsed once where they come in, so an account id is
//! never taken for an email. Plain data with no I/O, below every other module.

use std::fmt;

/// How an Atlassian app id is written as an ARI (a Forge app's id, in its tokens and settings).
pub const APP_ARI_PREFIX: &str = "ari:cloud:ecosystem::app/";

use serde::{Deserialize, Serialize};

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

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The identity provider's stable id for a person (never the email: emails change).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PersonId(pub String);

/// An Atlassian account id (`5b10a2844c20165700ede21g`), which is not an email.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountId(pub String);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
