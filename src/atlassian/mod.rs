//! Outbound calls to Atlassian (Jira, JSM, Confluence, the Admin API, the SCIM directory):
//! [`client`] sends one call with its credential, retries and typed errors; [`api`] holds the
//! [`api::Atlassian`] handle that the operation modules extend.

pub mod adf;
pub mod admin;
pub mod api;
pub mod client;
pub mod comments;
pub mod confluence;
pub mod credentials;
pub mod errors;
pub mod jira;
pub mod jsm;
pub mod jwt;
pub mod lookup;
pub mod pages;
pub mod qsh;

pub use api::{Atlassian, AtlassianError, Change, Site};
pub use credentials::{CredentialKind, Credentials, MissingCredential, Operation};
