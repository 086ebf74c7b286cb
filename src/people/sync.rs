//! Org chart sync: a full read staged page by page (a crash resumes at the last staged page),
//! or an incremental one applied to the newest snapshot; either way one new snapshot written in
//! one transaction, so routing never sees a half-synced org.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::clock::Clock;
use crate::idp::{Delta, Directory, IdpError, Page};
use crate::orgchart::OrgSnapshot;
use crate::store::org::{self as org_store, RunKind};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Idp(#[from] IdpError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A read that found nobody is not swapped in: an empty org would route nothing.
    #[error("the source returned no people; the current org chart is kept")]
    Empty,
    /// Another sync of the same source moved its cursor while this one read: what this one read
    /// may be older than what is applied, so it is dropped and tried again.
    #[error("another sync of the same source finished first; reading again")]
    Raced,
}

impl SyncError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Idp(e) => e.is_retryable(),
            Self::Store(_) | Self::Raced => true,
            Self::Empty => false,
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub kind: RunKind,
    /// People and groups in the snapshot written (or changed, for an incremental run).
    pub people: usize,
    pub groups: usize,
    pub pages: i64,
    /// The snapshot written; `None` when nothing changed.
    pub version: Option<i64>,
    /// An incremental run whose cursor was refused, so it read everything.
    pub fell_back_to_full: bool,
    /// A full run that picked up where a crash left it.
    pub resumed: bool,
    pub millis: u128,
}

/// Told about progress, for the CLI's progress line.
pub trait Progress: Send + Sync {
    fn page(&self, pages: i64, people: usize, groups: usize);
}

/// No progress reporting (jobs log the summary instead).
pub struct Quiet;

impl Progress for Quiet {
    fn page(&self, _: i64, _: usize, _: usize) {}
}

/// Incremental when a cursor is stored and `full` is not asked for; falls back to a full read
/// by itself when the source refuses the cursor.
pub async fn sync<D: Directory + Sync>(
    store: &Store,
    directory: &D,
    clock: &dyn Clock,
    full: bool,
    progress: &dyn Progress,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let source = directory.source();
    let has_snapshot = org_store::latest_version(store).await?.is_some();
    let cursor = org_store::cursor(store, &source).await?;
    if let (false, true, Some(cursor)) = (full, has_snapshot, cursor) {
        match incremental(store, directory, clock, &source, &cursor).await {
            Ok(mut report) => {
                report.millis = started.elapsed().as_millis();
                return Ok(report);
            }
            Err(SyncError::Idp(IdpError::CursorExpired(why))) => {
                tracing::info!(%source, %why, "incremental sync not possible, reading everything");
                let mut report = full_sync(store, directory, clock, &source, progress).await?;
                report.fell_back_to_full = true;
                report.millis = started.elapsed().as_millis();
                return Ok(report);
            }
            Err(e) => return Err(e),
        }
    }
    let mut report = full_sync(store, directory, clock, &source, progress).await?;
    report.millis = started.elapsed().as_millis();
    Ok(report)
}

/// Items staged in one transaction during a full read.
const STAGE_ITEMS: usize = 1_000;

fn page_items(page: &Page) -> usize {
    page.people.len() + page.groups.len() + page.departments.len()
}

/// What a full read has staged so far.
struct Staged {
    pages: i64,
    people: usize,
    groups: usize,
}

impl Staged {
    async fn stage(
        &mut self,
        store: &Store,
        run_id: &str,
        batch: Page,
        count: i64,
        progress: &dyn Progress,
    ) -> Result<(), SyncError> {
        org_store::stage_page(store, run_id, &batch, count).await?;
        self.pages += count;
        self.people += batch.people.len();
        self.groups += batch.groups.len();
        progress.page(self.pages, self.people, self.groups);
        Ok(())
    }
}

async fn full_sync<D: Directory + Sync>(
    store: &Store,
    directory: &D,
    clock: &dyn Clock,
    source: &str,
    progress: &dyn Progress,
) -> Result<SyncReport, SyncError> {
    let start_cursor = directory.start_cursor().await?;
    let run = org_store::open_full_run(store, source, &start_cursor, clock.now()).await?;
    if run.resumed {
        tracing::info!(%source, pages = run.pages, "resuming an interrupted full sync");
    }
    let mut resume = run.resume.clone();
    let mut staged = Staged {
        pages: run.pages,
        people: 0,
        groups: 0,
    };
    // A resumed run whose last page was the final one has nothing left to read.
    let finished_before = run.resumed && run.pages > 0 && resume.is_none();
    if !finished_before {
        // Pages are staged a batch at a time (one transaction per ~1,000 items, not per page),
        // and a batch is staged while the next page is read, so a slow source and a slow
        // database do not take turns. A failed read stages what came before it; a crash
        // resumes after the last staged batch.
        let mut held: Option<(Page, i64)> = None;
        loop {
            let reading = directory.read_page(resume.as_deref());
            let read = match held.take_if(|(page, _)| page_items(page) >= STAGE_ITEMS) {
                Some((batch, count)) => {
                    let staging = staged.stage(store, &run.id, batch, count, progress);
                    let (read, result) = tokio::join!(reading, staging);
                    result?;
                    read
                }
                None => reading.await,
            };
            if read.is_err()
                && let Some((batch, count)) = held.take()
            {
                // What was read before the failure is kept: the next run goes on after it.
                staged.stage(store, &run.id, batch, count, progress).await?;
            }
            let page = match read {
                Ok(page) => page,
                Err(e) if !e.is_retryable() => {
                    let mut tx = store.begin().await?;
                    org_store::finish_run(&mut tx, &run.id, Some(&e.to_string()), clock.now())
                        .await?;
                    tx.commit().await?;
                    return Err(e.into());
                }
                // Transient: the run stays open and the job's retry resumes it.
                Err(e) => return Err(e.into()),
            };
            let next = page.next.clone();
            held = Some(match held {
                Some((mut batch, count)) => {
                    batch.people.extend(page.people);
                    batch.groups.extend(page.groups);
                    batch.departments.extend(page.departments);
                    batch.next = page.next;
                    (batch, count + 1)
                }
                None => (page, 1),
            });
            match next {
                Some(next) => resume = Some(next),
                None => break,
            }
        }
        if let Some((batch, count)) = held {
            staged.stage(store, &run.id, batch, count, progress).await?;
        }
    }
    let pages = staged.pages;
    let snapshot = org_store::staged(store, &run.id).await?;
    let mut tx = store.begin().await?;
    if snapshot.people.is_empty() {
        org_store::finish_run(
            &mut tx,
            &run.id,
            Some(&SyncError::Empty.to_string()),
            clock.now(),
        )
        .await?;
        tx.commit().await?;
        return Err(SyncError::Empty);
    }
    let version = org_store::save_snapshot(&mut tx, source, clock.now(), &snapshot).await?;
    org_store::finish_run(&mut tx, &run.id, None, clock.now()).await?;
    let cursor = run.start_cursor.unwrap_or(start_cursor);
    org_store::set_cursor(&mut tx, source, &cursor, clock.now()).await?;
    tx.commit().await?;
    Ok(SyncReport {
        kind: RunKind::Full,
        people: snapshot.people.len(),
        groups: snapshot.groups.len(),
        pages,
        version: Some(version),
        fell_back_to_full: false,
        resumed: run.resumed,
        millis: 0,
    })
}

async fn incremental<D: Directory + Sync>(
    store: &Store,
    directory: &D,
    clock: &dyn Clock,
    source: &str,
    cursor: &str,
) -> Result<SyncReport, SyncError> {
    let started_at = clock.now();
    let changes = directory.changes_since(cursor).await?;
    let (people, groups) = changes.deltas.iter().fold((0, 0), |(p, g), d| match d {
        Delta::Person(_) | Delta::PersonGone(_) => (p + 1, g),
        Delta::Group(_) | Delta::GroupGone(_) => (p, g + 1),
    });
    // Read before the write transaction: a read on a second connection while holding the
    // write lock can wait on a pool that the lock's other waiters have drained.
    let base = if changes.deltas.is_empty() {
        None
    } else {
        let Some((_, mut snapshot)) = org_store::latest(store).await? else {
            return Err(IdpError::CursorExpired("no snapshot to apply changes to".into()).into());
        };
        apply(&mut snapshot, changes.deltas);
        Some(snapshot)
    };
    let mut tx = store.begin().await?;
    let version = match &base {
        None => None,
        Some(snapshot) => {
            Some(org_store::save_snapshot(&mut tx, source, clock.now(), snapshot).await?)
        }
    };
    if !org_store::advance_cursor(&mut tx, source, (cursor, &changes.cursor), clock.now()).await? {
        tx.rollback().await?;
        return Err(SyncError::Raced);
    }
    org_store::record_incremental(&mut tx, source, started_at, clock.now()).await?;
    tx.commit().await?;
    Ok(SyncReport {
        kind: RunKind::Incremental,
        people,
        groups,
        pages: 1,
        version,
        fell_back_to_full: false,
        resumed: false,
        millis: 0,
    })
}

/// Writes the deltas of a targeted re-read (an event named someone) onto the newest snapshot,
/// as a new one; the cursor stays where it is, so the next incremental sync still reads every
/// change after it. `None` when the deltas change nothing, or no chart exists yet (the first
/// sync will read everything). A snapshot written meanwhile by another sync is not overwritten:
/// the deltas are applied again on top of it.
pub async fn apply_reread(
    store: &Store,
    source: &str,
    deltas: Vec<Delta>,
    clock: &dyn Clock,
) -> Result<Option<i64>, SyncError> {
    for _ in 0..3 {
        let Some((info, mut snapshot)) = org_store::latest(store).await? else {
            return Ok(None);
        };
        let mut before = snapshot.clone();
        // The same ordering on both sides: only what the deltas change differs.
        apply(&mut before, Vec::new());
        apply(&mut snapshot, deltas.clone());
        if snapshot == before {
            return Ok(None);
        }
        let mut tx = store.begin().await?;
        if org_store::latest_version_in(&mut tx).await? != Some(info.version) {
            tx.rollback().await?;
            continue;
        }
        let version = org_store::save_snapshot(&mut tx, source, clock.now(), &snapshot).await?;
        tx.commit().await?;
        return Ok(Some(version));
    }
    Err(SyncError::Raced)
}

/// Applies deltas in order; a person or group that reappears replaces the old one.
pub fn apply(snapshot: &mut OrgSnapshot, deltas: Vec<Delta>) {
    let mut people: BTreeMap<_, _> = std::mem::take(&mut snapshot.people)
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let mut groups: BTreeMap<_, _> = std::mem::take(&mut snapshot.groups)
        .into_iter()
        .map(|g| (g.id.clone(), g))
        .collect();
    for delta in deltas {
        match delta {
            Delta::Person(p) => {
                people.insert(p.id.clone(), p);
            }
            Delta::PersonGone(id) => {
                people.remove(&id);
            }
            Delta::Group(g) => {
                groups.insert(g.id.clone(), g);
            }
            Delta::GroupGone(id) => {
                groups.remove(&id);
            }
        }
    }
    snapshot.people = people.into_values().collect();
    snapshot.groups = groups.into_values().collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orgchart::Group;
    use crate::orgchart::test_person as person;

    #[test]
    fn deltas_replace_add_and_remove() {
        let mut snapshot = OrgSnapshot {
            people: vec![
                person("a@x.io", None, "Dev", "ENG"),
                person("b@x.io", None, "Dev", "ENG"),
            ],
            groups: vec![Group {
                id: "g".into(),
                name: "G".into(),
                members: vec![],
                owners: vec![],
            }],
            departments: vec![],
        };
        let mut moved = person("a@x.io", None, "Lead", "ENG");
        moved.id = snapshot.people[0].id.clone();
        let gone = snapshot.people[1].id.clone();
        apply(
            &mut snapshot,
            vec![
                Delta::Person(moved),
                Delta::PersonGone(gone),
                Delta::Person(person("c@x.io", None, "Dev", "OPS")),
                Delta::GroupGone("g".into()),
            ],
        );
        let titles: Vec<_> = snapshot
            .people
            .iter()
            .map(|p| (p.email.as_str(), p.title.as_deref()))
            .collect();
        assert_eq!(titles, [("a@x.io", Some("Lead")), ("c@x.io", Some("Dev"))]);
        assert!(snapshot.groups.is_empty());
    }
}
