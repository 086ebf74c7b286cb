//! Integration tests, one binary: each test spawns the real application on a random port with a
//! fresh database (a temporary SQLite file, or a fresh PostgreSQL database when
//! `TEST_DATABASE_URL` is set).

mod support;

mod accounts;
mod atlassian_client;
mod atlassian_ops;
mod audit;
mod cli;
mod connect;
mod crash;
mod edge;
mod engine;
mod forge;
mod grant_steps;
mod grants;
mod health;
mod idp;
mod idp_hooks;
mod idp_rest;
mod ingress;
mod jobs;
mod lifecycle;
mod reports;
mod scim_push;
mod store;
mod workflows_cli;
