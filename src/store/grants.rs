//! A grant's steps, kept with their request: the request's `steps` column holds one entry per
//! target, with a status for granting and one for revoking. What a step *is* (its target,
//! the system and credential it goes through) repeats across many grants, so it is stored
//! once in `step_plans` and each entry names it by id, with the person it is for.
//!
//! A step is applied by whoever *claims* it (a compare-and-set that also leases it), so two
//! deliveries of the same job, on two replicas, never both call the vendor. Every change to
//! the column is compared-and-set on the text it was read as: two steps of one grant settling
//! at once on two replicas both land, one after reading the other's.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, Tx};
use crate::lifecycle::plan::Step;
use crate::lifecycle::step;
pub use crate::lifecycle::step::{Claim, Phase, Progress, Status};
use crate::{on_db, on_tx};

/// A step as its readers see it: the plan with the person filled in, and its progress.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    pub request_id: Uuid,
    pub step: i64,
    pub plan: Step,
    pub grant_status: Status,
    pub revoke_status: Option<Status>,
    pub attempts: i64,
    /// `applied`, `already_in_place`, `pre_existing` (already there before Tollgate's first try).
    pub granted_change: Option<String>,
    pub revoked_change: Option<String>,
    pub error: Option<String>,
    pub drift_at: Option<DateTime<Utc>>,
    /// Since when the step keeps failing on retryable errors (cleared once it settles).
    pub failing_since: Option<DateTime<Utc>>,
}

impl StepRow {
    pub fn status(&self, phase: Phase) -> Option<Status> {
        match phase {
            Phase::Grant => Some(self.grant_status),
            Phase::Revoke => self.revoke_status,
        }
    }
}

fn decode(request: &str, text: Option<&str>) -> Result<Vec<Progress>, StoreError> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| StoreError::corrupt(format!("steps of request {request}: {e}"))),
    }
}

/// The `steps` column for `steps` (benches and tests seed with it too).
pub fn encode(steps: &[Progress]) -> Result<String, StoreError> {
    serde_json::to_string(steps).map_err(|e| StoreError::corrupt(format!("steps: {e}")))
}

/// A plan as shared between grants: the person is kept with each grant instead.
fn shared_plan(step: &Step) -> Result<String, StoreError> {
    let shared = Step {
        idp_person: None,
        ..step.clone()
    };
    serde_json::to_string(&shared).map_err(|e| StoreError::corrupt(format!("step plan: {e}")))
}

/// The id of `step`'s plan in `step_plans`, stored on first use.
pub async fn plan_id(tx: &mut Tx, step: &Step) -> Result<i64, StoreError> {
    let plan = shared_plan(step)?;
    let key = step.target_key();
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO step_plans (plan, target_key) VALUES ($1, $2) \
             ON CONFLICT (plan) DO NOTHING",
        )
        .bind(&plan)
        .bind(key.as_str())
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected())
    })?;
    let id: i64 = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT id FROM step_plans WHERE plan = $1")
            .bind(&plan)
            .fetch_one(&mut *conn)
            .await
    })?;
    Ok(id)
}

/// Stores the plan's steps, all pending (a second call for the same request changes nothing).
pub async fn insert(
    tx: &mut Tx,
    request: Uuid,
    steps: &[Step],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut progress = Vec::with_capacity(steps.len());
    for step in steps {
        let plan = plan_id(tx, step).await?;
        progress.push(Progress::planned(plan, step.idp_person.clone(), now));
    }
    let text = encode(&progress)?;
    let due = step::due(&progress);
    on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE requests SET steps = $1, steps_due = $2 WHERE id = $3 AND steps IS NULL",
        )
        .bind(&text)
        .bind(due)
        .bind(request.to_string())
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected())
    })?;
    Ok(())
}

/// Where a change to a request's steps is made: inside the caller's transaction (with the
/// state change and audit event it belongs to), or on its own. A claim needs no transaction:
/// its compare-and-set is one statement, and on PostgreSQL that saves two round trips a step.
enum On<'a> {
    Tx(&'a mut Tx),
    Pool(&'a Store),
}

const READ_STEPS: &str = "SELECT steps FROM requests WHERE id = $1";
const SWAP_STEPS: &str =
    "UPDATE requests SET steps = $1, steps_due = $2 WHERE id = $3 AND steps = $4";

impl On<'_> {
    /// The request's `steps` column (`None` when nothing is planned).
    async fn read(&mut self, request: &str) -> Result<Option<String>, StoreError> {
        let text: Option<Option<String>> = match self {
            On::Tx(tx) => on_tx!(tx, |conn| {
                sqlx::query_scalar(READ_STEPS)
                    .bind(request)
                    .fetch_optional(&mut *conn)
                    .await
            })?,
            On::Pool(store) => on_db!(store.db(), |pool| {
                sqlx::query_scalar(READ_STEPS)
                    .bind(request)
                    .fetch_optional(pool)
                    .await
            })?,
        };
        Ok(text.flatten())
    }

    /// Writes `new` if the column still reads `old`; whether it did.
    async fn swap(
        &mut self,
        request: &str,
        new: &str,
        due: Option<DateTime<Utc>>,
        old: &str,
    ) -> Result<bool, StoreError> {
        macro_rules! swap {
            ($conn:expr) => {
                sqlx::query(SWAP_STEPS)
                    .bind(new)
                    .bind(due)
                    .bind(request)
                    .bind(old)
                    .execute($conn)
                    .await
                    .map(|done| done.rows_affected())
            };
        }
        let written = match self {
            On::Tx(tx) => on_tx!(tx, |conn| swap!(&mut *conn))?,
            On::Pool(store) => on_db!(store.db(), |pool| swap!(pool))?,
        };
        Ok(written == 1)
    }
}

/// How often a compare-and-set of a request's steps is retried after losing to another
/// writer. Each loss means another step of the same grant moved meanwhile, so this bounds
/// nothing a grant with fewer steps could reach.
const MAX_CONFLICTS: usize = 64;

/// Reads the request's steps, lets `change` edit them and writes them back if they changed,
/// only if they still read as they did: on losing to another writer it reads them again.
async fn change<T>(
    mut on: On<'_>,
    request: Uuid,
    mut change: impl FnMut(&mut Vec<Progress>) -> T,
) -> Result<T, StoreError> {
    let id = request.to_string();
    for _ in 0..MAX_CONFLICTS {
        let Some(text) = on.read(&id).await? else {
            // No grant planned for this request: there is nothing to change.
            return Ok(change(&mut Vec::new()));
        };
        let mut steps = decode(&id, Some(&text))?;
        let out = change(&mut steps);
        let new = encode(&steps)?;
        if new == text || on.swap(&id, &new, step::due(&steps), &text).await? {
            return Ok(out);
        }
    }
    Err(StoreError::Internal(format!(
        "the steps of request {id} kept changing under {MAX_CONFLICTS} attempts to update them"
    )))
}

/// Claims step `step` of `request` for `phase` at `attempt`, leasing it until `lease_until`.
pub async fn claim(
    store: &Store,
    request: Uuid,
    step: i64,
    phase: Phase,
    attempt: i64,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Claim, StoreError> {
    change(On::Pool(store), request, |steps| {
        step::claim(steps, step, phase, attempt, now, lease_until)
    })
    .await
}

/// Extends the lease of a step `attempt` is running (its vendor call is taking a while).
pub async fn renew(
    store: &Store,
    request: Uuid,
    step: i64,
    phase: Phase,
    attempt: i64,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    change(On::Pool(store), request, |steps| {
        step::renew(steps, step, phase, attempt, until)
    })
    .await
}

/// Records a phase's outcome for the step and releases its lease.
#[allow(clippy::too_many_arguments)]
pub async fn settle(
    tx: &mut Tx,
    request: Uuid,
    step: i64,
    phase: Phase,
    status: Status,
    change_made: Option<&str>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    change(On::Tx(tx), request, |steps| {
        step::settle(steps, step, phase, status, change_made, error, now)
    })
    .await
}

/// Puts the step back to pending for another try, as attempt `attempts`.
pub async fn retry(
    tx: &mut Tx,
    request: Uuid,
    step: i64,
    phase: Phase,
    attempts: i64,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    change(On::Tx(tx), request, |steps| {
        step::retry(steps, step, phase, attempts, error, now)
    })
    .await
}

pub async fn mark_drift(
    tx: &mut Tx,
    request: Uuid,
    step: i64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    change(On::Tx(tx), request, |steps| step::drift(steps, step, at)).await
}

/// Makes a stalled step pending again under the next attempt, so a fresh job may claim it;
/// `false` when someone moved it meanwhile.
pub async fn bump(
    tx: &mut Tx,
    request: Uuid,
    step: i64,
    phase: Phase,
    attempts: i64,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    change(On::Tx(tx), request, |steps| {
        step::bump(steps, step, phase, attempts, now)
    })
    .await
}

/// Starts (or restarts, after failures) revoking: steps that were applied become pending,
/// the others skipped; failed revocations are tried again. Returns the steps to run with
/// their attempt numbers.
pub async fn start_revoke(
    tx: &mut Tx,
    request: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<(i64, i64)>, StoreError> {
    change(On::Tx(tx), request, |steps| step::start_revoke(steps, now)).await
}

/// Corrects what the step's grant phase recorded it found (`pre_existing` that was another
/// grant's doing becomes `already_in_place`).
pub async fn correct_change(
    tx: &mut Tx,
    request: Uuid,
    step: i64,
    granted: &str,
) -> Result<(), StoreError> {
    change(On::Tx(tx), request, |steps| {
        step::correct(steps, step, granted)
    })
    .await
}

/// `(request id, steps)` as read from `requests`.
type Stored = (String, Option<String>);

/// `(id, plan)` of the plans `$ids` names, on a pool or a transaction's connection.
macro_rules! fetch_plans {
    ($conn:expr, $ids:expr) => {{
        let marks: Vec<String> = (1..=$ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, plan FROM step_plans WHERE id IN ({})",
            marks.join(", ")
        );
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for id in $ids {
            query = query.bind(*id);
        }
        query.fetch_all($conn).await
    }};
}

fn plan_ids(stored: &[(String, Vec<Progress>)]) -> Vec<i64> {
    let ids: HashSet<i64> = stored
        .iter()
        .flat_map(|(_, steps)| steps.iter().map(|p| p.plan))
        .collect();
    ids.into_iter().collect()
}

fn parse_plans(rows: Vec<(i64, String)>) -> Result<HashMap<i64, Step>, StoreError> {
    rows.into_iter()
        .map(|(id, plan)| {
            serde_json::from_str(&plan)
                .map(|step| (id, step))
                .map_err(|e| StoreError::corrupt(format!("step plan {id}: {e}")))
        })
        .collect()
}

fn decode_all(rows: Vec<Stored>) -> Result<Vec<(String, Vec<Progress>)>, StoreError> {
    rows.into_iter()
        .map(|(id, text)| {
            let steps = decode(&id, text.as_deref())?;
            Ok((id, steps))
        })
        .collect()
}

/// The rows of every step of `stored` that `keep` keeps, with their plans.
fn expand(
    stored: &[(String, Vec<Progress>)],
    plans: &HashMap<i64, Step>,
    keep: impl Fn(&Progress) -> bool,
) -> Result<Vec<StepRow>, StoreError> {
    let mut rows = Vec::new();
    for (id, steps) in stored {
        let request_id = Uuid::parse_str(id)
            .map_err(|e| StoreError::corrupt(format!("step request id {id}: {e}")))?;
        for (index, p) in (0_i64..).zip(steps) {
            if !keep(p) {
                continue;
            }
            let mut plan = plans.get(&p.plan).cloned().ok_or_else(|| {
                StoreError::corrupt(format!("request {id} names unknown plan {}", p.plan))
            })?;
            plan.idp_person = p.person.clone();
            rows.push(StepRow {
                request_id,
                step: index,
                plan,
                grant_status: p.grant,
                revoke_status: p.revoke,
                attempts: p.attempts,
                granted_change: p.granted.clone(),
                revoked_change: p.revoked.clone(),
                error: p.error.clone(),
                drift_at: p.drift,
                failing_since: p.failing,
            });
        }
    }
    Ok(rows)
}

async fn rows_on_pool(
    store: &Store,
    stored: Vec<Stored>,
    keep: impl Fn(&Progress) -> bool,
) -> Result<Vec<StepRow>, StoreError> {
    let stored = decode_all(stored)?;
    let ids = plan_ids(&stored);
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let plans: Vec<(i64, String)> = on_db!(store.db(), |pool| fetch_plans!(pool, &ids))?;
    expand(&stored, &parse_plans(plans)?, keep)
}

/// The request's steps, read inside `tx` (it may have planned them).
pub async fn of_request(tx: &mut Tx, request: Uuid) -> Result<Vec<StepRow>, StoreError> {
    let id = request.to_string();
    let text = On::Tx(tx).read(&id).await?;
    let stored = decode_all(vec![(id, text)])?;
    let ids = plan_ids(&stored);
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let plans: Vec<(i64, String)> = on_tx!(tx, |conn| fetch_plans!(&mut *conn, &ids))?;
    expand(&stored, &parse_plans(plans)?, |_| true)
}

/// The steps of several requests at once (a sweep or a report reads a page of grants in one
/// query), ordered by request id and step.
pub async fn of_requests(store: &Store, requests: &[Uuid]) -> Result<Vec<StepRow>, StoreError> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=requests.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT id, steps FROM requests WHERE id IN ({}) AND steps IS NOT NULL ORDER BY id",
        placeholders.join(", ")
    );
    let stored: Vec<Stored> = on_db!(store.db(), |pool| {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
        for id in requests {
            query = query.bind(id.to_string());
        }
        query.fetch_all(pool).await
    })?;
    rows_on_pool(store, stored, |_| true).await
}

pub async fn read(store: &Store, request: Uuid) -> Result<Vec<StepRow>, StoreError> {
    of_requests(store, &[request]).await
}

/// Steps of `phase` left pending or running since before `stale_before`: their job was lost
/// (deleted, or its worker died holding the lease). Longest stalled grants first.
pub async fn stalled(
    store: &Store,
    phase: Phase,
    stale_before: DateTime<Utc>,
) -> Result<Vec<StepRow>, StoreError> {
    let stored: Vec<Stored> = on_db!(store.db(), |pool| {
        sqlx::query_as("SELECT id, steps FROM requests WHERE steps_due < $1 ORDER BY steps_due")
            .bind(stale_before)
            .fetch_all(pool)
            .await
    })?;
    let stalled = |p: &Progress| {
        p.status(phase).is_some_and(|s| !s.is_settled())
            && p.since.is_some_and(|at| at < stale_before)
            && p.lease.is_none_or(|until| until < stale_before)
    };
    rows_on_pool(store, stored, stalled).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::step::settle;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap_or_default()
    }

    #[test]
    fn the_stored_form_leaves_out_what_is_absent() {
        let mut steps = vec![Progress::planned(
            7,
            Some(crate::ids::PersonId("uid=erin".into())),
            t(0),
        )];
        settle(
            &mut steps,
            0,
            Phase::Grant,
            Status::Done,
            Some("applied"),
            None,
            t(1),
        );
        let text = encode(&steps[..1]).unwrap_or_default();
        assert_eq!(
            text,
            r#"[{"plan":7,"person":"uid=erin","grant":"done","granted":"applied"}]"#
        );
        let back = decode("r", Some(&text)).unwrap_or_default();
        assert_eq!(back, steps[..1].to_vec());
        assert!(decode("r", Some("[{\"plan\":1}]")).is_err());
    }
}
