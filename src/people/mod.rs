//! The org chart as this deployment keeps it: synced from the identity provider (`sync`), the
//! newest snapshot cached for routing (`cache`), and people matched to their Atlassian accounts
//! (`accounts`). The model itself, and how it is searched, is `orgchart` (pure).

pub mod accounts;
pub mod cache;
pub mod sync;
