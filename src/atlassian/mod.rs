//! Outbound calls to Atlassian (Jira, JSM, Confluence, the Admin API): credentials, retries and
//! typed errors. Operations (issues, comments, roles, groups, …) build on [`client`].

pub mod client;
pub mod errors;
pub mod pages;
pub mod retry;
