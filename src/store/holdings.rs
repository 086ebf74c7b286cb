//! Who holds what: per person and target, whether the access was there before any Tollgate
//! grant, and which grants hold it. Access is removed when the last grant holding it ends,
//! unless it predates Tollgate.
//!
//! Every change locks the holding's row first (a no-op `UPDATE`: a row lock on PostgreSQL,
//! and SQLite's write transaction holds the database anyway), so a grant joining and the last
//! holder leaving cannot both decide on what they read before the other wrote.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{StoreError, Tx};
use crate::ids::TargetKey;
use crate::on_tx;

/// The scope of organisation-wide targets (IdP groups, the organization's groups and product
/// access), which every site of the deployment shares.
pub const ORG_SCOPE: &str = "org";

/// One person's hold on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// The tenant for targets that live in one site, else [`ORG_SCOPE`].
    pub scope: String,
    pub target_key: TargetKey,
    /// The IdP person id, or `email:<address>` for someone not in the org chart.
    pub person: String,
}

/// What a grant's hold is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderState {
    /// Its step is putting the access in place.
    Applying,
    /// The access is in place for it.
    Holds,
    /// It was the last holder and is taking the access away.
    Removing,
}

impl HolderState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applying => "applying",
            Self::Holds => "holds",
            Self::Removing => "removing",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "applying" => Some(Self::Applying),
            "holds" => Some(Self::Holds),
            "removing" => Some(Self::Removing),
            _ => None,
        }
    }
}

/// Another grant's hold, as read for a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub request: String,
    pub ticket: String,
    pub state: HolderState,
}

/// How a grant step found the access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// It was not there: this step put it in place.
    Applied,
    /// It was already there. `first_try`: on this step's first attempt, never claimed before
    /// (a later attempt may find what its own earlier attempt put in place).
    InPlace { first_try: bool },
}

/// Whether a grant may start applying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Join {
    Joined,
    /// The last holder (`ticket`) is removing the access: apply after it has.
    Wait {
        ticket: String,
    },
}

/// What a grant ending does with the access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leave {
    /// Take it away (this grant is now `removing`).
    Remove,
    /// Leave it: it was there before Tollgate granted it.
    Predates,
    /// Leave it: another grant holds it.
    HeldBy { ticket: String },
}

/// The pure rules, so each is a unit test.
mod rule {
    use super::*;

    pub fn join(others: &[Holder]) -> Join {
        match others.iter().find(|h| h.state == HolderState::Removing) {
            Some(h) => Join::Wait {
                ticket: h.ticket.clone(),
            },
            None => Join::Joined,
        }
    }

    pub fn leave(others: &[Holder], predates: Option<bool>) -> Leave {
        // A grant still applying counts as a holder: its vendor call may land after ours.
        if let Some(h) = others.iter().find(|h| h.state != HolderState::Removing) {
            return Leave::HeldBy {
                ticket: h.ticket.clone(),
            };
        }
        if predates == Some(true) {
            return Leave::Predates;
        }
        Leave::Remove
    }

    /// `predates` once this grant settled its grant step as `found`: applied means it was not
    /// there; found in place on a first try while nobody else is applying means it was there
    /// before (every grant that settled meanwhile found it so too, or `predates` would be
    /// known); a later attempt may have found its own doing, so it does not count as before.
    pub fn predates_after(
        predates: Option<bool>,
        found: Found,
        others_applying: bool,
    ) -> Option<bool> {
        match (predates, found) {
            (_, Found::Applied) => Some(false),
            (Some(known), _) => Some(known),
            (None, Found::InPlace { first_try: false }) => Some(false),
            (None, Found::InPlace { first_try: true }) if !others_applying => Some(true),
            (None, Found::InPlace { first_try: true }) => None,
        }
    }
}

/// Runs `$sql` for holding `$h`: its scope, target and person are `$1`–`$3`, `$extra` follow.
macro_rules! on_holding {
    ($tx:expr, $sql:expr, $h:expr $(, $extra:expr)*) => {
        on_tx!($tx, |conn| {
            sqlx::query($sql)
                .bind(&$h.scope)
                .bind($h.target_key.as_str())
                .bind(&$h.person)
                $(.bind($extra))*
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })
    };
}

async fn lock(tx: &mut Tx, h: &Holding, now: DateTime<Utc>) -> Result<Option<bool>, StoreError> {
    on_holding!(
        tx,
        "INSERT INTO holdings (scope, target_key, person, predates, since) \
         VALUES ($1, $2, $3, NULL, $4) ON CONFLICT (scope, target_key, person) DO NOTHING",
        h,
        now
    )?;
    let predates: Option<Option<bool>> = on_tx!(tx, |conn| {
        sqlx::query_scalar(
            "UPDATE holdings SET person = person WHERE scope = $1 AND target_key = $2 \
             AND person = $3 RETURNING predates",
        )
        .bind(&h.scope)
        .bind(h.target_key.as_str())
        .bind(&h.person)
        .fetch_optional(&mut *conn)
        .await
    })?;
    Ok(predates.flatten())
}

async fn holders(tx: &mut Tx, h: &Holding) -> Result<Vec<(Holder, i64)>, StoreError> {
    let rows: Vec<(String, String, i64, Option<String>)> = on_tx!(tx, |conn| {
        sqlx::query_as(
            "SELECT h.request_id, h.state, h.step, r.ticket_key FROM holders h \
             LEFT JOIN requests r ON r.id = h.request_id \
             WHERE h.scope = $1 AND h.target_key = $2 AND h.person = $3 ORDER BY h.since",
        )
        .bind(&h.scope)
        .bind(h.target_key.as_str())
        .bind(&h.person)
        .fetch_all(&mut *conn)
        .await
    })?;
    rows.into_iter()
        .map(|(request, state, step, ticket)| {
            let state = HolderState::parse(&state)
                .ok_or_else(|| StoreError::corrupt(format!("holder {request}: state `{state}`")))?;
            Ok((
                Holder {
                    ticket: ticket.unwrap_or_else(|| request.clone()),
                    request,
                    state,
                },
                step,
            ))
        })
        .collect()
}

fn others(all: Vec<(Holder, i64)>, request: Uuid) -> Vec<Holder> {
    let me = request.to_string();
    all.into_iter()
        .map(|(h, _)| h)
        .filter(|h| h.request != me)
        .collect()
}

async fn set_holder(
    tx: &mut Tx,
    h: &Holding,
    request: Uuid,
    step: i64,
    state: HolderState,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_holding!(
        tx,
        "INSERT INTO holders (scope, target_key, person, request_id, step, state, since) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (scope, target_key, person, request_id) \
         DO UPDATE SET state = excluded.state, step = excluded.step",
        h,
        request.to_string(),
        step,
        state.as_str(),
        now
    )?;
    Ok(())
}

async fn drop_holder(tx: &mut Tx, h: &Holding, request: Uuid) -> Result<(), StoreError> {
    on_holding!(
        tx,
        "DELETE FROM holders WHERE scope = $1 AND target_key = $2 AND person = $3 \
         AND request_id = $4",
        h,
        request.to_string()
    )?;
    Ok(())
}

async fn set_predates(tx: &mut Tx, h: &Holding, predates: Option<bool>) -> Result<(), StoreError> {
    on_holding!(
        tx,
        "UPDATE holdings SET predates = $4 WHERE scope = $1 AND target_key = $2 AND person = $3",
        h,
        predates
    )?;
    Ok(())
}

/// After a holder left: with nobody applying any more an unknown `predates` is settled (every
/// grant left found the access in place on a first try), and a holding nobody holds that did
/// not predate Tollgate is gone with its access.
async fn tidy(tx: &mut Tx, h: &Holding, predates: Option<bool>) -> Result<(), StoreError> {
    let left = holders(tx, h).await?;
    if left.iter().any(|(x, _)| x.state == HolderState::Applying) {
        return Ok(());
    }
    if left.is_empty() && predates != Some(true) {
        on_holding!(
            tx,
            "DELETE FROM holdings WHERE scope = $1 AND target_key = $2 AND person = $3",
            h
        )?;
        return Ok(());
    }
    if predates.is_none() {
        set_predates(tx, h, Some(true)).await?;
    }
    Ok(())
}

/// A grant step is about to apply `h`: it becomes a holder (`applying`), unless the last holder
/// is removing the access right now.
pub async fn join(
    tx: &mut Tx,
    h: &Holding,
    request: Uuid,
    step: i64,
    now: DateTime<Utc>,
) -> Result<Join, StoreError> {
    lock(tx, h, now).await?;
    let all = holders(tx, h).await?;
    let mine = request.to_string();
    if all
        .iter()
        .any(|(x, _)| x.request == mine && x.state == HolderState::Holds)
    {
        // A second delivery after it settled: nothing changes.
        return Ok(Join::Joined);
    }
    let decision = rule::join(&others(all, request));
    if decision == Join::Joined {
        set_holder(tx, h, request, step, HolderState::Applying, now).await?;
    }
    Ok(decision)
}

/// The grant step settled: `Some(found)` when the access is in place for it, `None` when it
/// failed or was skipped (it holds nothing). Returns whether the access predates Tollgate, as
/// far as is known now.
pub async fn granted(
    tx: &mut Tx,
    h: &Holding,
    request: Uuid,
    step: i64,
    found: Option<Found>,
    now: DateTime<Utc>,
) -> Result<Option<bool>, StoreError> {
    let predates = lock(tx, h, now).await?;
    let Some(found) = found else {
        drop_holder(tx, h, request).await?;
        tidy(tx, h, predates).await?;
        return Ok(predates);
    };
    set_holder(tx, h, request, step, HolderState::Holds, now).await?;
    let applying = others(holders(tx, h).await?, request)
        .iter()
        .any(|x| x.state == HolderState::Applying);
    let after = rule::predates_after(predates, found, applying);
    if after != predates {
        set_predates(tx, h, after).await?;
    }
    Ok(after)
}

/// A grant ends: whether to take the access away. A grant that leaves it drops its hold at
/// once; one that removes it is `removing` until [`removed`].
pub async fn leave(
    tx: &mut Tx,
    h: &Holding,
    request: Uuid,
    step: i64,
    now: DateTime<Utc>,
) -> Result<Leave, StoreError> {
    let predates = lock(tx, h, now).await?;
    let decision = rule::leave(&others(holders(tx, h).await?, request), predates);
    match decision {
        Leave::Remove => set_holder(tx, h, request, step, HolderState::Removing, now).await?,
        Leave::Predates | Leave::HeldBy { .. } => {
            drop_holder(tx, h, request).await?;
            tidy(tx, h, predates).await?;
        }
    }
    Ok(decision)
}

/// The removal settled: `true` when the access is gone (the holding goes with it), `false`
/// when it failed (the grant holds it again, and a retry decides anew).
pub async fn removed(
    tx: &mut Tx,
    h: &Holding,
    request: Uuid,
    step: i64,
    gone: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    lock(tx, h, now).await?;
    if gone {
        drop_holder(tx, h, request).await?;
        // Tollgate took it away, so whatever remains of the holding did not predate it.
        tidy(tx, h, Some(false)).await
    } else {
        set_holder(tx, h, request, step, HolderState::Holds, now).await
    }
}

/// A holding and its holders, for reports and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub predates: Option<bool>,
    pub holders: Vec<Holder>,
}

/// The holding `h`, if any grant ever held it.
pub async fn read(tx: &mut Tx, h: &Holding) -> Result<Option<Held>, StoreError> {
    let predates: Option<Option<bool>> = on_tx!(tx, |conn| {
        sqlx::query_scalar(
            "SELECT predates FROM holdings WHERE scope = $1 AND target_key = $2 AND person = $3",
        )
        .bind(&h.scope)
        .bind(h.target_key.as_str())
        .bind(&h.person)
        .fetch_optional(&mut *conn)
        .await
    })?;
    let Some(predates) = predates else {
        return Ok(None);
    };
    let holders = holders(tx, h).await?.into_iter().map(|(x, _)| x).collect();
    Ok(Some(Held { predates, holders }))
}

/// Records, without deciding anything, that `request` holds `h` (the back-fill of grants made
/// before holders were counted). `predates` is kept if already known.
pub async fn record(
    tx: &mut Tx,
    h: &Holding,
    request: Uuid,
    step: i64,
    predates: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let known = lock(tx, h, now).await?;
    if known.is_none() || (known == Some(true) && !predates) {
        set_predates(tx, h, Some(predates)).await?;
    }
    set_holder(tx, h, request, step, HolderState::Holds, now).await
}

/// Moves every holding and hold of person `from` to `to` (a remap of person ids); rows `to`
/// already has are left with `from`.
pub async fn rename_person(tx: &mut Tx, from: &str, to: &str) -> Result<u64, StoreError> {
    const STATEMENTS: [&str; 2] = [
        "UPDATE holdings SET person = $1 WHERE person = $2 AND NOT EXISTS \
         (SELECT 1 FROM holdings t WHERE t.person = $1 AND t.scope = holdings.scope \
         AND t.target_key = holdings.target_key)",
        "UPDATE holders SET person = $1 WHERE person = $2 AND NOT EXISTS \
         (SELECT 1 FROM holders t WHERE t.person = $1 AND t.scope = holders.scope \
         AND t.target_key = holders.target_key AND t.request_id = holders.request_id)",
    ];
    let mut moved = 0;
    for sql in STATEMENTS {
        moved += on_tx!(tx, |conn| {
            sqlx::query(sql)
                .bind(to)
                .bind(from)
                .execute(&mut *conn)
                .await
                .map(|d| d.rows_affected())
        })?;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::rule::{join, leave, predates_after};
    use super::{Found, Holder, HolderState, Join, Leave};

    fn holder(key: &str, state: HolderState) -> Holder {
        Holder {
            request: format!("r-{key}"),
            ticket: key.into(),
            state,
        }
    }

    #[test]
    fn a_grant_waits_only_for_a_removal_in_progress() {
        assert_eq!(join(&[]), Join::Joined);
        assert_eq!(
            join(&[holder("IT-7", HolderState::Holds)]),
            Join::Joined,
            "sharing what another grant holds"
        );
        assert_eq!(
            join(&[
                holder("IT-7", HolderState::Holds),
                holder("IT-8", HolderState::Removing)
            ]),
            Join::Wait {
                ticket: "IT-8".into()
            }
        );
    }

    #[test]
    fn access_goes_with_its_last_holder_unless_it_predates_tollgate() {
        assert_eq!(leave(&[], Some(false)), Leave::Remove);
        assert_eq!(leave(&[], None), Leave::Remove);
        assert_eq!(leave(&[], Some(true)), Leave::Predates);
        for state in [HolderState::Holds, HolderState::Applying] {
            assert_eq!(
                leave(&[holder("IT-8", state)], Some(false)),
                Leave::HeldBy {
                    ticket: "IT-8".into()
                }
            );
        }
        // Another grant already removing it is no holder: both end.
        assert_eq!(
            leave(&[holder("IT-8", HolderState::Removing)], Some(false)),
            Leave::Remove
        );
    }

    #[test]
    fn whether_access_predates_tollgate_is_known_once_nobody_is_applying() {
        let first = Found::InPlace { first_try: true };
        let retry = Found::InPlace { first_try: false };
        assert_eq!(predates_after(None, Found::Applied, true), Some(false));
        assert_eq!(
            predates_after(Some(true), Found::Applied, false),
            Some(false)
        );
        assert_eq!(predates_after(None, first, false), Some(true));
        // Another grant's call may have put it there: wait for it to report.
        assert_eq!(predates_after(None, first, true), None);
        assert_eq!(predates_after(None, retry, false), Some(false));
        assert_eq!(predates_after(Some(false), first, false), Some(false));
        assert_eq!(predates_after(Some(true), retry, false), Some(true));
    }
}
