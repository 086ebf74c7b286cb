//! Identity provider connectors behind two small traits: reading the directory
//! ([`Directory`]) and changing group membership ([`GroupWriter`]). One module per IdP; the
//! sync machinery (`people::sync`) and grants use only the traits, through [`Connector`].

use std::time::Duration;

pub mod events;
pub mod file;
pub mod google;
pub mod graph;
pub mod ldap;
pub mod okta;
pub mod pacing;
pub mod rest;
pub mod scim;
pub mod scim_push;

use crate::change::Change;
use crate::orgchart::PersonId;
pub use crate::orgchart::{Changes, Delta, Page};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdpError {
    #[error("identity provider configuration: {0}")]
    Config(String),
    /// Worth trying again later: the source is down, slow or throttling.
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    #[error("identity provider throttled us (retry after {retry_after:?})")]
    Throttled { retry_after: Option<Duration> },
    /// The incremental cursor is not accepted any more: a full sync is needed.
    #[error("incremental cursor no longer valid: {0}")]
    CursorExpired(String),
    #[error("the {0} identity source is read-only: grants to it are not possible")]
    ReadOnly(&'static str),
    #[error("group `{group}` cannot be changed: {reason}")]
    GroupNotWritable { group: String, reason: String },
    #[error("not found in the identity provider: {0}")]
    NotFound(String),
    #[error("identity provider refused: {0}")]
    Refused(String),
    /// An answer that cannot be read as the complete page it claims to be: it does not parse,
    /// has the wrong shape, or ends before its own count. A read never passes it for the end
    /// of the list; the run stays open and is tried again.
    #[error("the identity provider's answer could not be read: {0}")]
    Unreadable(String),
}

impl IdpError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Throttled { .. } | Self::Unreadable(_)
        )
    }
}

/// Reading people, managers, groups and owners.
pub trait Directory {
    /// A stable name for this source (cursors and runs are kept per source).
    fn source(&self) -> String;

    /// The incremental cursor as of now; taken before a full read starts, so changes made
    /// during the read are picked up by the next incremental sync.
    fn start_cursor(&self) -> impl Future<Output = Result<String, IdpError>> + Send;

    /// One page of a full read, from `resume` (`None`: the beginning).
    fn read_page(
        &self,
        resume: Option<&str>,
    ) -> impl Future<Output = Result<Page, IdpError>> + Send;

    /// Changes since `cursor`; [`IdpError::CursorExpired`] when only a full read will do.
    fn changes_since(&self, cursor: &str)
    -> impl Future<Output = Result<Changes, IdpError>> + Send;
}

/// Changing group membership. "Already a member" / "not a member" are success.
pub trait GroupWriter {
    /// `group` is the group's name as workflows write it.
    fn set_member(
        &self,
        group: &str,
        person: &PersonId,
        member: bool,
    ) -> impl Future<Output = Result<Change, IdpError>> + Send;
}

/// The configured connector.
#[derive(Debug)]
pub enum Connector {
    File(file::FileDirectory),
    Scim(scim::ScimDirectory),
    Ldap(ldap::LdapDirectory),
    Okta(Box<okta::OktaDirectory>),
    Graph(Box<graph::GraphDirectory>),
    Google(Box<google::GoogleDirectory>),
    ScimPush(scim_push::ScimPushDirectory),
}

impl Connector {
    /// The connector for `source`; a pushed chart is read from `store`.
    pub fn new(source: &crate::config::IdpSource, store: &crate::store::Store) -> Self {
        use crate::config::IdpSource;
        match source {
            IdpSource::File(path) => Self::File(file::FileDirectory { path: path.clone() }),
            IdpSource::Scim(config) => Self::Scim(scim::ScimDirectory::new(config.clone())),
            IdpSource::Ldap(config) => Self::Ldap(ldap::LdapDirectory::new(config.clone())),
            IdpSource::Okta(config) => {
                Self::Okta(Box::new(okta::OktaDirectory::new(config.clone())))
            }
            IdpSource::Entra(config) => {
                Self::Graph(Box::new(graph::GraphDirectory::new(config.clone())))
            }
            IdpSource::Google(config) => {
                Self::Google(Box::new(google::GoogleDirectory::new(config.clone())))
            }
            IdpSource::ScimPush(config) => Self::ScimPush(scim_push::ScimPushDirectory::new(
                store.clone(),
                config.person_key,
            )),
        }
    }
}

impl Connector {
    /// Reads again the one person or group an event named: the delta it makes (gone when the
    /// source no longer has it). Only the sources with event hooks read this way.
    pub async fn reread(&self, target: &events::Reread) -> Result<Delta, IdpError> {
        match self {
            Self::Okta(c) => c.reread(target).await,
            Self::Graph(c) => c.reread(target).await,
            other => Err(IdpError::Config(format!(
                "the {} source has no event hooks; its sync reads every change",
                other.source()
            ))),
        }
    }
}

impl Directory for Connector {
    fn source(&self) -> String {
        match self {
            Self::File(c) => c.source(),
            Self::Scim(c) => c.source(),
            Self::Ldap(c) => c.source(),
            Self::Okta(c) => c.source(),
            Self::Graph(c) => c.source(),
            Self::Google(c) => c.source(),
            Self::ScimPush(c) => c.source(),
        }
    }

    async fn start_cursor(&self) -> Result<String, IdpError> {
        match self {
            Self::File(c) => c.start_cursor().await,
            Self::Scim(c) => c.start_cursor().await,
            Self::Ldap(c) => c.start_cursor().await,
            Self::Okta(c) => c.start_cursor().await,
            Self::Graph(c) => c.start_cursor().await,
            Self::Google(c) => c.start_cursor().await,
            Self::ScimPush(c) => c.start_cursor().await,
        }
    }

    async fn read_page(&self, resume: Option<&str>) -> Result<Page, IdpError> {
        match self {
            Self::File(c) => c.read_page(resume).await,
            Self::Scim(c) => c.read_page(resume).await,
            Self::Ldap(c) => c.read_page(resume).await,
            Self::Okta(c) => c.read_page(resume).await,
            Self::Graph(c) => c.read_page(resume).await,
            Self::Google(c) => c.read_page(resume).await,
            Self::ScimPush(c) => c.read_page(resume).await,
        }
    }

    async fn changes_since(&self, cursor: &str) -> Result<Changes, IdpError> {
        match self {
            Self::File(c) => c.changes_since(cursor).await,
            Self::Scim(c) => c.changes_since(cursor).await,
            Self::Ldap(c) => c.changes_since(cursor).await,
            Self::Okta(c) => c.changes_since(cursor).await,
            Self::Graph(c) => c.changes_since(cursor).await,
            Self::Google(c) => c.changes_since(cursor).await,
            Self::ScimPush(c) => c.changes_since(cursor).await,
        }
    }
}

impl GroupWriter for Connector {
    async fn set_member(
        &self,
        group: &str,
        person: &PersonId,
        member: bool,
    ) -> Result<Change, IdpError> {
        match self {
            Self::File(_) => Err(IdpError::ReadOnly("file (org.yaml)")),
            Self::Scim(c) => c.set_member(group, person, member).await,
            Self::Ldap(c) => c.set_member(group, person, member).await,
            Self::Okta(c) => c.set_member(group, person, member).await,
            Self::Graph(c) => c.set_member(group, person, member).await,
            Self::Google(c) => c.set_member(group, person, member).await,
            Self::ScimPush(c) => c.set_member(group, person, member).await,
        }
    }
}
