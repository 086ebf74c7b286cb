//! The in-memory org index every replica routes with, built from the newest stored snapshot
//! and rebuilt when a newer one appears (a sync on any replica writes it).

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use crate::orgchart::OrgIndex;
use crate::store::org as org_store;
use crate::store::{Store, StoreError};

/// A snapshot's version, when it was taken, and its index.
type Held = (i64, DateTime<Utc>, Arc<OrgIndex>);

#[derive(Debug, Default)]
pub struct OrgCache {
    current: RwLock<Option<Held>>,
}

impl OrgCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The index routing uses now, if any snapshot was ever written.
    pub fn index(&self) -> Option<Arc<OrgIndex>> {
        self.current
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|(_, _, i)| i.clone()))
    }

    pub fn version(&self) -> Option<i64> {
        self.current
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|(v, _, _)| *v))
    }

    /// When the snapshot behind [`Self::index`] was taken: what happened after is not in it.
    pub fn taken_at(&self) -> Option<DateTime<Utc>> {
        self.current
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|(_, t, _)| *t))
    }

    /// Whether the index held is the newest stored (one `MAX(version)` query): a person
    /// missing from a stale one may be in the snapshot another replica just wrote, so a miss
    /// there is "not yet", not "no such person".
    pub async fn is_newest(&self, store: &Store) -> Result<bool, StoreError> {
        Ok(org_store::latest_version(store).await? == self.version())
    }

    /// Loads the newest snapshot if it is newer than the one held; `true` when it changed.
    /// Polling costs one `MAX(version)` query.
    pub async fn refresh(&self, store: &Store) -> Result<bool, StoreError> {
        let newest = org_store::latest_version(store).await?;
        if newest.is_none() || newest == self.version() {
            return Ok(false);
        }
        let Some((info, snapshot)) = org_store::latest(store).await? else {
            return Ok(false);
        };
        // Built off the async threads: 100,000 people take a noticeable moment.
        let Ok(index) = tokio::task::spawn_blocking(move || OrgIndex::build(snapshot)).await else {
            tracing::error!(
                version = info.version,
                "building the org index failed; keeping the previous one"
            );
            return Ok(false);
        };
        let index = Arc::new(index);
        if let Ok(mut current) = self.current.write() {
            // Another refresh may have installed a newer one meanwhile.
            if current.as_ref().is_none_or(|(v, _, _)| *v < info.version) {
                *current = Some((info.version, info.taken_at, index));
            }
        }
        tracing::info!(
            version = info.version,
            people = info.people,
            groups = info.groups,
            "org chart loaded"
        );
        Ok(true)
    }
}
