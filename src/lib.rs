//! Tollgate: access requests from Jira Service Management, routed to the right approvers,
//! granted in the identity provider and in Atlassian, removed when they expire, and recorded in
//! a tamper-evident audit log.
// Denied, not forbidden: `store::nodelay` works around a sqlx bug with one borrowed descriptor.
#![deny(unsafe_code)]

pub mod alerts;
pub mod app;
pub mod atlassian;
pub mod audit;
pub mod change;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connect;
pub mod duration;
pub mod engine;
pub mod failure;
pub mod forge;
pub mod grants;
pub mod http;
pub mod identity;
pub mod idp;
pub mod idp_hooks;
pub mod ids;
pub mod ingress;
pub mod jira_webhooks;
pub mod jobs;
pub mod lease;
pub mod lifecycle;
pub mod metrics;
pub mod notices;
pub mod orgchart;
pub mod outbound;
pub mod people;
pub mod scim;
pub mod scim_push;
pub mod secrets;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tenant;
pub mod worker;
pub mod workflow;
pub mod yamlfile;
