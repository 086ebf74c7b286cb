//! SCIM 2.0 (RFC 7643/7644) as Tollgate's inbound service provider speaks it, pure: filters,
//! PATCH, the shape of users and groups, what a pushed user is as a person, and the discovery
//! documents. Storage is `store::scim_resources`; the door is `scim_push`.

pub mod discovery;
pub mod error;
pub mod filter;
pub mod patch;
pub mod path;
pub mod person;
pub mod resource;

pub use error::ScimError;
pub use filter::Filter;
pub use person::PersonKey;
pub use resource::Kind;
