//! Stateful fakes of the vendor APIs, faithful to their documented behaviour; shared by the
//! product's tests and benchmarks (a dev-dependency), and by a later "try it without Jira" mode
//! (its own binary in the workspace, so the product binary never ships fake vendor endpoints).

pub mod atlassian;
pub mod contract;
pub mod forge;
pub mod google;
pub mod graph;
pub mod harness;
pub mod okta;
pub mod slapd;
