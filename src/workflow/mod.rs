//! Workflows as code: the resource catalog, intake mapping and approval workflows an IT admin
//! writes as YAML, checked at load and turned into routing decisions. Pure: no database, no
//! network (reading the directory is the one I/O, in [`load::load_dir`]).

pub mod birthright;
pub mod condition;
pub mod definition;
pub mod inactive;
pub mod load;
mod model;
pub mod products;
pub mod route;

pub use definition::*;
pub use load::{LoadOutcome, Workflows, load_dir, load_sources};
pub use route::{Decision, RequestedDuration, RouteError, RouteRequest, Routing, StagePlan, route};

#[cfg(test)]
mod tests;
