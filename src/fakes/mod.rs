//! Stateful fakes of the vendor APIs, faithful to their documented behaviour; shared by tests,
//! benchmarks and a later "try it without Jira" mode. Built with the `fakes` feature.

pub mod atlassian;
pub mod contract;
pub mod forge;
pub mod google;
pub mod graph;
pub mod harness;
pub mod okta;
pub mod slapd;
