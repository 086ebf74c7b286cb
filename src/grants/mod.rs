//! Grants: an approved request becomes access in the IdP and in Atlassian, and temporary
//! access ends.
//!
//! `approved` → a [`crate::jobs::Job::Provision`] job plans the steps ([`plan`]) and stores
//! them (`provisioning`); each step is its own job ([`run::step`]), claimed before it calls
//! the vendor, retried with backoff on transient errors; when every step has settled the
//! request is `active` (its expiry counted from then), or rolled back and `failed` — never left
//! `provisioning`. Expiry, early revocation, leavers and rollbacks all go through
//! [`run::begin_revoke`] → `revoking` → `expired | revoked | failed`, or `revoke_failed`, which
//! the reconcile sweep ([`sweep`]) retries. Every transition commits with its audit event.

pub mod apply;
pub mod expiry;
pub mod extend;
pub mod leavers;
pub mod notices;
pub mod people_migration;
pub mod plan;
pub mod remap;
pub mod review;
pub mod run;
pub mod sweep;

pub(crate) use crate::jobs::wall;
