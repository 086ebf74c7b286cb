//! `audit verify`: walks every chain from its start (or from the checkpoint an archive left)
//! and checks each link, each hash, each event's own statement of its position, and the
//! chain against its signed checkpoints and its head row. Reports the first break per chain.
//!
//! Events are read in pages by sequence number, so memory stays flat however long a chain is.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::checkpoint::{self, Checkpoint, CheckpointKey};
use super::{GENESIS, chain_hash};
use crate::on_db;
use crate::store::{Store, StoreError};

const PAGE: i64 = 5_000;

/// Where a chain first fails to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub seq: i64,
    /// The event at fault, when there is one (a missing event has none).
    pub event_id: Option<String>,
    pub problem: String,
    pub expected: Option<String>,
    pub found: Option<String>,
}

impl Break {
    fn new(seq: i64, event_id: Option<&str>, problem: impl Into<String>) -> Self {
        Self {
            seq,
            event_id: event_id.map(str::to_string),
            problem: problem.into(),
            expected: None,
            found: None,
        }
    }

    fn expected(mut self, expected: impl ToString, found: impl ToString) -> Self {
        self.expected = Some(expected.to_string());
        self.found = Some(found.to_string());
        self
    }
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at event {}", self.seq)?;
        if let Some(id) = &self.event_id {
            write!(f, " (id {id})")?;
        }
        write!(f, ": {}", self.problem)?;
        if let (Some(expected), Some(found)) = (&self.expected, &self.found) {
            write!(f, "; expected {expected}, found {found}")?;
        }
        Ok(())
    }
}

/// One chain's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub chain: String,
    /// Events checked (up to the break, if any).
    pub events: i64,
    /// The first event present (above 1 when older events were archived).
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub checkpoints: usize,
    pub broken: Option<Break>,
}

/// The position an event's canonical bytes claim; the rest is skipped unparsed.
#[derive(Deserialize)]
struct Position {
    chain: String,
    seq: i64,
    prev_hash: String,
}

type EventRow = (i64, String, String, String, String);

async fn page(store: &Store, chain: &str, after: i64) -> Result<Vec<EventRow>, StoreError> {
    on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT seq, id, canonical, prev_hash, hash FROM audit_events \
             WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(chain)
        .bind(after)
        .bind(PAGE)
        .fetch_all(pool)
        .await
    })
    .map_err(Into::into)
}

/// Walks `chain`'s events in order, checking them against `checkpoints` (already known to be
/// genuine). Without checkpoints only the links are checked, and the chain must start at 1.
pub async fn walk(
    store: &Store,
    chain: &str,
    checkpoints: &[Checkpoint],
) -> Result<ChainReport, StoreError> {
    let at: BTreeMap<i64, &Checkpoint> = checkpoints.iter().map(|c| (c.seq, c)).collect();
    let mut report = ChainReport {
        chain: chain.to_string(),
        events: 0,
        first_seq: None,
        last_seq: None,
        checkpoints: checkpoints.len(),
        broken: None,
    };
    let mut expected_seq = 0;
    let mut expected_prev = String::new();
    // The next page is read while this one is hashed: the two cores share the work.
    let next_page = |after: i64| {
        let store = store.clone();
        let chain = chain.to_string();
        tokio::spawn(async move { page(&store, &chain, after).await })
    };
    let mut pending = next_page(0);
    loop {
        let rows = pending
            .await
            .map_err(|e| StoreError::Internal(format!("reading the chain stopped: {e}")))??;
        let Some(last) = rows.last() else { break };
        pending = next_page(last.0);
        for (seq, id, canonical, prev_hash, hash) in &rows {
            let (seq, id) = (*seq, Some(id.as_str()));
            if report.first_seq.is_none() {
                report.first_seq = Some(seq);
                // A chain starts at 1, or right after a checkpoint whose events were archived.
                expected_prev = if seq == 1 {
                    GENESIS.to_string()
                } else if let Some(start) = at.get(&(seq - 1)) {
                    start.hash.clone()
                } else {
                    report.broken = Some(
                        Break::new(
                            1,
                            None,
                            "events missing from the start of the chain, and no checkpoint \
                             marks them as archived",
                        )
                        .expected("event 1", format!("event {seq} first")),
                    );
                    return Ok(report);
                };
                expected_seq = seq;
            }
            let broken = check_event(
                Expected {
                    chain,
                    seq: expected_seq,
                    prev: &expected_prev,
                    signed: at.get(&expected_seq).map(|c| c.hash.as_str()),
                },
                (seq, id, canonical, prev_hash, hash),
            );
            if broken.is_some() {
                report.broken = broken;
                return Ok(report);
            }
            report.events += 1;
            report.last_seq = Some(seq);
            expected_prev = hash.clone();
            expected_seq = seq + 1;
        }
    }
    // Events cut off the end: a checkpoint (or the head row) is beyond the last event.
    let last = report.last_seq.unwrap_or(0);
    if let Some((&signed, _)) = at.range(last + 1..).next_back() {
        report.broken = Some(
            Break::new(
                last + 1,
                None,
                "the newest events are missing: a signed checkpoint is beyond the last event",
            )
            .expected(
                format!("events up to {signed}"),
                format!("events up to {last}"),
            ),
        );
    }
    Ok(report)
}

/// What the next event must be.
struct Expected<'a> {
    chain: &'a str,
    seq: i64,
    prev: &'a str,
    /// The hash a checkpoint signed for this position, if one did.
    signed: Option<&'a str>,
}

fn check_event(
    expected: Expected<'_>,
    (seq, id, canonical, prev_hash, hash): (i64, Option<&str>, &str, &str, &str),
) -> Option<Break> {
    if seq != expected.seq {
        return Some(
            Break::new(expected.seq, None, "an event is missing or out of order")
                .expected(format!("event {}", expected.seq), format!("event {seq}")),
        );
    }
    if prev_hash != expected.prev {
        return Some(
            Break::new(seq, id, "its prev_hash is not the previous event's hash")
                .expected(expected.prev, prev_hash),
        );
    }
    let recomputed = chain_hash(prev_hash, canonical);
    if recomputed != hash {
        return Some(
            Break::new(seq, id, "its hash does not match its content").expected(recomputed, hash),
        );
    }
    if let Some(broken) = claimed_position(expected.chain, seq, prev_hash, canonical, id) {
        return Some(broken);
    }
    match expected.signed {
        Some(signed) if signed != hash => Some(
            Break::new(seq, id, "the chain differs from its signed checkpoint")
                .expected(signed, hash),
        ),
        _ => None,
    }
}

fn claimed_position(
    chain: &str,
    seq: i64,
    prev_hash: &str,
    canonical: &str,
    id: Option<&str>,
) -> Option<Break> {
    let claimed: Option<Position> = serde_json::from_str(canonical).ok();
    match claimed {
        Some(p) if p.chain == chain && p.seq == seq && p.prev_hash == prev_hash => None,
        Some(p) => Some(
            Break::new(seq, id, "its content names another position")
                .expected(format!("{chain}#{seq}"), format!("{}#{}", p.chain, p.seq)),
        ),
        None => Some(Break::new(seq, id, "its content is not a canonical event")),
    }
}

/// Every chain (or the one named), verified against its signed checkpoints and head row.
pub async fn verify(
    store: &Store,
    key: &CheckpointKey,
    only: Option<&str>,
) -> Result<Vec<ChainReport>, StoreError> {
    // The checkpoints name chains too: a chain deleted whole, head row and all, still shows.
    let chains: Vec<(String,)> = on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT chain FROM audit_chains UNION SELECT DISTINCT chain FROM audit_checkpoints \
             ORDER BY chain",
        )
        .fetch_all(pool)
        .await
    })?;
    let mut reports = Vec::new();
    for (chain,) in chains {
        if only.is_some_and(|only| only != chain) {
            continue;
        }
        let checkpoints = checkpoint::of_chain(store, &chain).await?;
        if let Some(forged) = checkpoints.iter().find(|c| !key.verifies(c)) {
            reports.push(ChainReport {
                chain: chain.clone(),
                events: 0,
                first_seq: None,
                last_seq: None,
                checkpoints: checkpoints.len(),
                broken: Some(Break::new(
                    forged.seq,
                    None,
                    if key.knows(forged) {
                        "a checkpoint's signature does not verify with this secret key \
                         (forged, edited, or signed with another key)"
                            .to_string()
                    } else {
                        format!(
                            "a checkpoint was signed under secret key {}, which is not in \
                             TOLLGATE_SECRET_KEY: keep retired keys at the end of the list",
                            forged.key_id.as_deref().unwrap_or("?")
                        )
                    },
                )),
            });
            continue;
        }
        let mut report = walk(store, &chain, &checkpoints).await?;
        if report.broken.is_none() {
            report.broken = check_head(store, &chain, report.last_seq.unwrap_or(0)).await?;
        }
        reports.push(report);
    }
    Ok(reports)
}

/// The head row says where the chain ends; fewer events than that means the newest were
/// deleted (the head row is only as trustworthy as the database: the checkpoints are not).
async fn check_head(store: &Store, chain: &str, last: i64) -> Result<Option<Break>, StoreError> {
    let head: Option<(i64,)> = on_db!(store.db(), |pool| {
        sqlx::query_as("SELECT seq FROM audit_chains WHERE chain = $1")
            .bind(chain)
            .fetch_optional(pool)
            .await
    })?;
    Ok(match head {
        Some((head,)) if head != last => Some(
            Break::new(
                last + 1,
                None,
                "the chain's head row and its events disagree on where it ends",
            )
            .expected(
                format!("events up to {head}"),
                format!("events up to {last}"),
            ),
        ),
        None if last > 0 => Some(Break::new(last, None, "the chain has no head row")),
        _ => None,
    })
}
