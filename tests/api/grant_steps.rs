//! A grant's steps as the store keeps them (with their request, plans shared): the move from
//! one row per step, steps of one grant changing at once, the overlap and stall queries.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Barrier;
use tollgate::grants::plan::{Step, Via};
use tollgate::store::grants::{self, Claim, Phase, Status};
use tollgate::store::{Db, Store};
use tollgate::workflow::GrantTarget;
use uuid::Uuid;

use crate::support::{self, TestDatabase};

/// The last migration with a row per step.
const STEPS_AS_ROWS: i64 = 20261129000010;

fn group(name: &str, person: Option<&str>) -> Step {
    Step {
        idp_person: person.map(str::to_string),
        ..Step::direct(
            GrantTarget::IdpGroup { group: name.into() },
            Via::Idp {
                source: "ldap".into(),
            },
        )
    }
}

fn role() -> Step {
    Step::direct(
        GrantTarget::JiraProjectRole {
            project: "FIN".into(),
            role: "Administrators".into(),
        },
        Via::Connect,
    )
}

fn t0() -> DateTime<Utc> {
    "2026-11-01T09:00:00Z".parse().expect("time")
}

async fn connect(db: &TestDatabase) -> Store {
    support::init();
    let config = support::test_config(db, &[]);
    Store::connect(&config.database).await.expect("store")
}

/// A request row, as little of one as the steps need.
async fn request(store: &Store, id: Uuid, ticket: &str, subject: &str, state: &str) {
    let sql = "INSERT INTO requests (id, tenant, ticket_key, issue_id, state, requester_account, \
               requester_email, version, created_at, updated_at) \
               VALUES ($1, 'jira:acme', $2, '1', $3, 'acc', $4, 1, $5, $5)";
    macro_rules! insert {
        ($pool:expr) => {
            sqlx::query(sql)
                .bind(id.to_string())
                .bind(ticket)
                .bind(state)
                .bind(subject)
                .bind(t0())
                .execute($pool)
                .await
                .map(|_| ())
        };
    }
    match store.db() {
        Db::Sqlite(pool) => insert!(pool),
        Db::Postgres(pool) => insert!(pool),
    }
    .expect("request");
}

async fn plan(store: &Store, id: Uuid, steps: &[Step]) {
    let mut tx = store.begin().await.expect("tx");
    grants::insert(&mut tx, id, steps, t0())
        .await
        .expect("insert");
    // Planning twice changes nothing (a redelivered job).
    grants::insert(&mut tx, id, &[role()], t0())
        .await
        .expect("again");
    tx.commit().await.expect("commit");
}

async fn settle(
    store: &Store,
    id: Uuid,
    step: i64,
    phase: Phase,
    status: Status,
    at: DateTime<Utc>,
) {
    let mut tx = store.begin().await.expect("tx");
    grants::settle(&mut tx, id, step, phase, status, Some("applied"), None, at)
        .await
        .expect("settle");
    tx.commit().await.expect("commit");
}

async fn count(store: &Store, sql: &str) -> i64 {
    match store.db() {
        Db::Sqlite(pool) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_one(pool)
                .await
        }
        Db::Postgres(pool) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_one(pool)
                .await
        }
    }
    .expect("count")
}

/// A `grant_steps` row as the release before kept it.
struct OldStep {
    request: Uuid,
    step: i64,
    plan: Step,
    granted: &'static str,
    revoked: Option<&'static str>,
    attempts: i64,
    lease: Option<DateTime<Utc>>,
    granted_change: Option<&'static str>,
    revoked_change: Option<&'static str>,
}

impl OldStep {
    fn new(
        request: Uuid,
        step: i64,
        plan: Step,
        granted: &'static str,
        revoked: Option<&'static str>,
    ) -> Self {
        Self {
            request,
            step,
            plan,
            granted,
            revoked,
            attempts: 1,
            lease: None,
            granted_change: Some("applied"),
            revoked_change: None,
        }
    }
}

#[tokio::test]
async fn steps_stored_as_rows_move_into_their_requests() {
    let db = TestDatabase::create().await;
    let store = connect(&db).await;
    store.migrate_to(STEPS_AS_ROWS).await.expect("old schema");
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    request(&store, a, "IT-1", "erin@example.com", "revoking").await;
    request(&store, b, "IT-2", "finn@example.com", "provisioning").await;
    let lease = t0() + TimeDelta::minutes(5);
    // A: its group step applied and being revoked (leased); its role step done both ways.
    // B: its group step (the same plan for another person) still pending.
    let rows = [
        OldStep {
            lease: Some(lease),
            ..OldStep::new(
                a,
                0,
                group("fin-tools", Some("uid=erin")),
                "done",
                Some("running"),
            )
        },
        OldStep {
            granted_change: Some("already_in_place"),
            revoked_change: Some("applied"),
            ..OldStep::new(a, 1, role(), "done", Some("done"))
        },
        OldStep {
            attempts: 0,
            granted_change: None,
            ..OldStep::new(b, 0, group("fin-tools", Some("uid=finn")), "pending", None)
        },
    ];
    for row in rows {
        let OldStep {
            request: id,
            step,
            plan,
            granted,
            revoked,
            attempts,
            lease: leased,
            granted_change,
            revoked_change,
        } = row;
        let sql = "INSERT INTO grant_steps (request_id, step, plan, target_key, subject, \
                   grant_status, revoke_status, attempts, leased_until, granted_change, \
                   revoked_change, updated_at) VALUES ($1, $2, $3, $4, '', $5, $6, $7, $8, $9, $10, $11)";
        let text = serde_json::to_string(&plan).expect("plan");
        macro_rules! insert {
            ($pool:expr) => {
                sqlx::query(sql)
                    .bind(id.to_string())
                    .bind(step)
                    .bind(&text)
                    .bind(plan.target_key())
                    .bind(granted)
                    .bind(revoked)
                    .bind(attempts)
                    .bind(leased)
                    .bind(granted_change)
                    .bind(revoked_change)
                    .bind(t0())
                    .execute($pool)
                    .await
                    .map(|_| ())
            };
        }
        match store.db() {
            Db::Sqlite(pool) => insert!(pool),
            Db::Postgres(pool) => insert!(pool),
        }
        .expect("old step row");
    }

    store.migrate().await.expect("migrate");

    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM step_plans").await,
        2,
        "one plan per kind of step"
    );
    let steps = grants::read(&store, a).await.expect("read");
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].plan, group("fin-tools", Some("uid=erin")));
    assert_eq!(
        (
            steps[0].grant_status,
            steps[0].revoke_status,
            steps[0].attempts
        ),
        (Status::Done, Some(Status::Running), 1)
    );
    assert_eq!(steps[0].granted_change.as_deref(), Some("applied"));
    assert_eq!(steps[1].plan, role());
    assert_eq!(
        (
            steps[1].granted_change.as_deref(),
            steps[1].revoked_change.as_deref()
        ),
        (Some("already_in_place"), Some("applied"))
    );
    let other = grants::read(&store, b).await.expect("read");
    assert_eq!(other[0].plan, group("fin-tools", Some("uid=finn")));
    assert_eq!(other[0].grant_status, Status::Pending);

    // What was unsettled is still found by the sweep, and the lease still holds.
    let later = t0() + TimeDelta::minutes(10);
    let stalled = grants::stalled(&store, Phase::Grant, later)
        .await
        .expect("stalled");
    assert_eq!(
        stalled
            .iter()
            .map(|s| (s.request_id, s.step))
            .collect::<Vec<_>>(),
        [(b, 0)]
    );
    let stalled = grants::stalled(&store, Phase::Revoke, later)
        .await
        .expect("stalled");
    assert_eq!(
        stalled
            .iter()
            .map(|s| (s.request_id, s.step))
            .collect::<Vec<_>>(),
        [(a, 0)]
    );
    let claim_revoke = |at: DateTime<Utc>| {
        grants::claim(
            &store,
            a,
            0,
            Phase::Revoke,
            1,
            at,
            at + TimeDelta::minutes(5),
        )
    };
    let early = t0() + TimeDelta::minutes(2);
    assert_eq!(
        claim_revoke(early).await.expect("claim"),
        Claim::NotOurs,
        "the migrated lease holds until it runs out"
    );
    assert_eq!(
        claim_revoke(later).await.expect("claim"),
        Claim::Taken { retaken: true }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_step_of_a_grant_settles_when_all_move_at_once() {
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let id = Uuid::now_v7();
    request(&store, id, "IT-1", "erin@example.com", "provisioning").await;
    let steps: Vec<Step> = (0..8)
        .map(|i| group(&format!("g{i}"), Some("uid=erin")))
        .collect();
    plan(&store, id, &steps).await;
    // Eight workers (on PostgreSQL, eight connections) each take a step through a claim, a
    // retry, a second claim and a settle, all at once: a compare-and-set that loses reads
    // again, so no step's change is lost to another's.
    let start = Arc::new(Barrier::new(8));
    let now = t0() + TimeDelta::seconds(1);
    let lease = now + TimeDelta::minutes(5);
    let workers: Vec<_> = (0..8_i64)
        .map(|step| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let claim = grants::claim(&store, id, step, Phase::Grant, 0, now, lease).await;
                assert_eq!(claim.expect("claim"), Claim::Taken { retaken: false });
                let mut tx = store.begin().await.expect("tx");
                grants::retry(&mut tx, id, step, Phase::Grant, 1, "429", now)
                    .await
                    .expect("retry");
                tx.commit().await.expect("commit");
                let claim = grants::claim(&store, id, step, Phase::Grant, 1, now, lease).await;
                assert_eq!(claim.expect("claim"), Claim::Taken { retaken: false });
                settle(&store, id, step, Phase::Grant, Status::Done, now).await;
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let rows = grants::read(&store, id).await.expect("read");
    assert_eq!(rows.len(), 8);
    assert!(
        rows.iter()
            .all(|r| r.grant_status == Status::Done && r.attempts == 1),
        "{rows:?}"
    );
    let stalled = grants::stalled(&store, Phase::Grant, now + TimeDelta::hours(1))
        .await
        .expect("stalled");
    assert!(
        stalled.is_empty(),
        "settled steps are not stalled: {stalled:?}"
    );
}

#[tokio::test]
async fn another_live_grant_of_the_same_target_is_found_and_plans_are_shared() {
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let (mine, other, ended, stranger) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    request(&store, mine, "IT-1", "erin@example.com", "active").await;
    request(&store, other, "IT-2", "erin@example.com", "active").await;
    request(&store, ended, "IT-3", "erin@example.com", "expired").await;
    request(&store, stranger, "IT-4", "finn@example.com", "active").await;
    for id in [mine, other, ended] {
        plan(&store, id, &[group("fin-tools", Some("uid=erin")), role()]).await;
    }
    plan(&store, stranger, &[group("fin-tools", Some("uid=finn"))]).await;
    assert_eq!(count(&store, "SELECT COUNT(*) FROM step_plans").await, 2);
    let key = role().target_key();
    let (store_ref, key_ref) = (&store, &key);
    let held = |except| async move {
        grants::held_elsewhere(
            store_ref,
            key_ref,
            Some("jira:acme"),
            "erin@example.com",
            except,
        )
        .await
        .map(|h| h.map(|h| h.ticket))
    };
    // Nothing is granted yet: nothing holds it.
    assert_eq!(held(mine).await.expect("held"), None);
    let now = t0() + TimeDelta::seconds(1);
    for id in [other, ended, stranger] {
        settle(&store, id, 0, Phase::Grant, Status::Done, now).await;
        settle(&store, id, 1, Phase::Grant, Status::Done, now).await;
    }
    assert_eq!(held(mine).await.expect("held").as_deref(), Some("IT-2"));
    // An IdP group is the organization's, whichever site granted it.
    let group_key = group("fin-tools", None).target_key();
    let anywhere = grants::held_elsewhere(&store, &group_key, None, "erin@example.com", mine).await;
    assert_eq!(
        anywhere.expect("held").map(|h| h.ticket).as_deref(),
        Some("IT-2")
    );
    assert_eq!(
        held(other).await.expect("held"),
        None,
        "an expired grant holds nothing"
    );
    assert_eq!(
        grants::held_elsewhere(&store, &key, Some("jira:other"), "erin@example.com", mine)
            .await
            .expect("held"),
        None,
        "another site's grants are another matter"
    );
    // Once the other grant's revocation starts, it no longer holds the target.
    let mut tx = store.begin().await.expect("tx");
    let todo = grants::start_revoke(&mut tx, other, now)
        .await
        .expect("start");
    tx.commit().await.expect("commit");
    assert_eq!(todo, [(0, 1), (1, 1)]);
    assert_eq!(held(mine).await.expect("held"), None);
    // The steps read back whole, the person restored into each grant's own plan.
    let rows = grants::of_requests(&store, &[stranger, other])
        .await
        .expect("rows");
    let people: Vec<_> = rows
        .iter()
        .map(|r| (r.request_id, r.step, r.plan.idp_person.clone()))
        .collect();
    let mut expected = vec![
        (other, 0, Some("uid=erin".to_string())),
        (other, 1, None),
        (stranger, 0, Some("uid=finn".to_string())),
    ];
    expected.sort_by_key(|(id, step, _)| (id.to_string(), *step));
    assert_eq!(people, expected);
}
