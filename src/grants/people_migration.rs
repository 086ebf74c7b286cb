//! The one-time move to people by IdP id and counted holders, for a database written before
//! either existed. Run at start, after the SQL migrations, once (`data_migrations` records it):
//!
//! - requests get the person id of whom they are for, from the current org chart snapshot by
//!   email; those whose person is no longer in it keep their email (`tollgate org unmatched`);
//! - stored email → account matches move to the organization's, by person id;
//! - holder records are back-filled from the grants that hold access now, and a step recorded
//!   `pre_existing` although an earlier Tollgate grant of the same person and target put the
//!   access there is corrected to `already_in_place` (the access predates Tollgate only when
//!   the first grant ever to reach it found it there).
//!
//! All of it commits in one transaction with its audit event: a crash re-runs it whole.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::plan::per_site;
use crate::audit::{self, Actor};
use crate::ids::TargetKey;
use crate::lifecycle::State;
use crate::orgchart::{Email, PersonId};
use crate::store::grants::{self as steps, Status, StepRow};
use crate::store::holdings::{self, Holding};
use crate::store::requests::{self, Request};
use crate::store::{Store, StoreError, Tx, org as org_store};
use crate::{on_db, on_tx};

pub const NAME: &str = "20261203_people_and_holders";

/// What the migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub matched: usize,
    pub unmatched: usize,
    pub accounts: usize,
    pub holdings: usize,
    /// `(ticket, step)` of the steps corrected from `pre_existing`.
    pub corrected: Vec<(String, i64)>,
}

async fn done(store: &Store) -> Result<bool, StoreError> {
    let row: Option<String> = on_db!(store.db(), |pool| {
        sqlx::query_scalar("SELECT name FROM data_migrations WHERE name = $1")
            .bind(NAME)
            .fetch_optional(pool)
            .await
    })?;
    Ok(row.is_some())
}

/// Runs the migration unless it ran; `None` when it had. `account_org`: the organization the
/// stored account matches belong to (the Admin API's org id), if the deployment has one.
pub async fn run(
    store: &Store,
    account_org: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<Summary>, StoreError> {
    if done(store).await? {
        return Ok(None);
    }
    let people: HashMap<String, PersonId> = match org_store::latest(store).await? {
        Some((_, snapshot)) => snapshot
            .people
            .into_iter()
            .map(|p| (p.email.as_str().to_string(), p.id))
            .collect(),
        None => HashMap::new(),
    };
    let mut tx = store.begin().await?;
    let mut summary = Summary::default();
    let all = all_requests(&mut tx).await?;
    let mut with_person = Vec::with_capacity(all.len());
    for mut request in all {
        if request.subject_person.is_none()
            && let Some(id) = request
                .subject()
                .and_then(|e| Email::parse(e).ok())
                .and_then(|e| people.get(e.as_str()))
        {
            set_person(&mut tx, request.id, id).await?;
            request.subject_person = Some(id.clone());
            summary.matched += 1;
        }
        if request.subject_person.is_none() && !request.state.is_final() {
            summary.unmatched += 1;
        }
        with_person.push(request);
    }
    if let Some(org) = account_org {
        summary.accounts = move_account_matches(&mut tx, org, &people).await?;
    }
    back_fill_holders(&mut tx, &with_person, now, &mut summary).await?;
    audit::append(
        &mut tx,
        &audit::Event {
            at: now,
            tenant: None,
            request_id: None,
            ticket_key: None,
            actor: Actor::System("migration".into()),
            action: audit::Action::PeopleMigrated,
            target: None,
            details: json!({
                "requests_matched": summary.matched,
                "requests_unmatched": summary.unmatched,
                "account_matches": summary.accounts,
                "holdings": summary.holdings,
                "corrected_pre_existing": summary.corrected.iter()
                    .map(|(t, s)| json!({"ticket": t, "step": s})).collect::<Vec<_>>(),
            }),
            workflow_version: None,
        },
    )
    .await?;
    let text = format!(
        "{} matched, {} unmatched, {} holdings, {} corrected",
        summary.matched,
        summary.unmatched,
        summary.holdings,
        summary.corrected.len()
    );
    on_tx!(&mut tx, |conn| {
        sqlx::query("INSERT INTO data_migrations (name, done_at, summary) VALUES ($1, $2, $3)")
            .bind(NAME)
            .bind(now)
            .bind(&text)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    })?;
    tx.commit().await?;
    tracing::info!(migration = NAME, %text, "data migration done");
    Ok(Some(summary))
}

async fn all_requests(tx: &mut Tx) -> Result<Vec<Request>, StoreError> {
    let ids: Vec<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT id FROM requests ORDER BY id")
            .fetch_all(&mut *conn)
            .await
    })?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let id = Uuid::parse_str(&id)
            .map_err(|e| StoreError::corrupt(format!("request id {id}: {e}")))?;
        if let Some(request) = requests::lock_id(tx, id).await? {
            out.push(request);
        }
    }
    Ok(out)
}

async fn set_person(tx: &mut Tx, request: Uuid, person: &PersonId) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query("UPDATE requests SET subject_person = $1 WHERE id = $2")
            .bind(&person.0)
            .bind(request.to_string())
            .execute(&mut *conn)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

async fn move_account_matches(
    tx: &mut Tx,
    org: &str,
    people: &HashMap<String, PersonId>,
) -> Result<usize, StoreError> {
    let rows: Vec<(String, String, String, DateTime<Utc>)> = on_tx!(tx, |conn| {
        sqlx::query_as("SELECT email, account_id, found_by, resolved_at FROM atlassian_accounts")
            .fetch_all(&mut *conn)
            .await
    })?;
    let mut moved = 0;
    for (email, account, found_by, at) in rows {
        let Some(person) = people.get(&email.to_ascii_lowercase()) else {
            continue;
        };
        on_tx!(tx, |conn| {
            sqlx::query(
                "INSERT INTO account_matches (org, person, email, account_id, found_by, \
                 resolved_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org, person) DO NOTHING",
            )
            .bind(org)
            .bind(&person.0)
            .bind(&email)
            .bind(&account)
            .bind(&found_by)
            .bind(at)
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
        moved += 1;
    }
    Ok(moved)
}

/// A grant step that reached the access, with when its grant became active.
struct Reach {
    request: Uuid,
    ticket: String,
    step: i64,
    at: DateTime<Utc>,
    pre_existing: bool,
    holds: bool,
}

fn key_of(request: &Request, row: &StepRow) -> Holding {
    Holding {
        scope: if per_site(&row.plan.applied) {
            request.tenant.to_string()
        } else {
            holdings::ORG_SCOPE.to_string()
        },
        target_key: row.plan.target_key(),
        person: request.person_key(),
    }
}

/// Whether the step still holds its access: granted, and not (yet) removed.
fn still_holds(request: &Request, row: &StepRow) -> bool {
    let live = matches!(
        request.state,
        State::Active | State::Provisioning | State::Revoking | State::RevokeFailed
    );
    live && row.grant_status == Status::Done
        && !matches!(row.revoke_status, Some(Status::Done | Status::Skipped))
}

async fn back_fill_holders(
    tx: &mut Tx,
    all: &[Request],
    now: DateTime<Utc>,
    summary: &mut Summary,
) -> Result<(), StoreError> {
    let by_id: HashMap<Uuid, &Request> = all.iter().map(|r| (r.id, r)).collect();
    // Every grant step ever done, by holding (BTreeMap: a stable order for the audit event).
    let mut reaches: BTreeMap<(String, TargetKey, String), Vec<Reach>> = BTreeMap::new();
    for request in all {
        for row in steps::of_request(tx, request.id).await? {
            if row.grant_status != Status::Done {
                continue;
            }
            let key = key_of(request, &row);
            reaches
                .entry((key.scope, key.target_key, key.person))
                .or_default()
                .push(Reach {
                    request: request.id,
                    ticket: request.ticket_key.to_string(),
                    step: row.step,
                    at: request.granted_at.unwrap_or(request.updated_at),
                    pre_existing: row.granted_change.as_deref() == Some("pre_existing"),
                    holds: still_holds(request, &row),
                });
        }
    }
    let mut corrected: HashSet<(Uuid, i64)> = HashSet::new();
    for ((scope, target_key, person), mut list) in reaches {
        if !list.iter().any(|r| r.holds) {
            continue;
        }
        list.sort_by_key(|r| (r.at, r.request));
        // The first grant ever to reach it says whether it was there before Tollgate.
        let predates = list.first().is_some_and(|r| r.pre_existing);
        let holding = Holding {
            scope,
            target_key,
            person,
        };
        for (i, reach) in list.iter().enumerate() {
            if reach.pre_existing
                && (i > 0 || !predates)
                && corrected.insert((reach.request, reach.step))
            {
                steps::correct_change(tx, reach.request, reach.step, "already_in_place").await?;
                summary.corrected.push((reach.ticket.clone(), reach.step));
            }
            if reach.holds && by_id.contains_key(&reach.request) {
                holdings::record(tx, &holding, reach.request, reach.step, predates, now).await?;
            }
        }
        summary.holdings += 1;
    }
    Ok(())
}
