//! A grant's steps as the store keeps them (with their request, plans shared): the move from
//! one row per step, steps of one grant changing at once, who holds what (every holder
//! counted, a joiner racing the last holder), and the stall query.

use crate::support::database::exec;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Barrier;
use tollgate::grants::plan::{Step, Via};
use tollgate::store::grants::{self, Claim, Phase, Status};
use tollgate::store::holdings::{self, Found, Holding, Join, Leave};
use tollgate::store::{Db, Store};
use tollgate::workflow::GrantTarget;
use uuid::Uuid;

use crate::support::{self, TestDatabase};

/// The last migration with a row per step.
const STEPS_AS_ROWS: i64 = 20261129000010;

fn group(name: &str, person: Option<&str>) -> Step {
    Step {
        idp_person: person.map(|p| tollgate::ids::PersonId(p.to_string())),
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
                    .bind(plan.target_key().to_string())
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
    assert!(
        matches!(
            claim_revoke(early).await.expect("claim"),
            Claim::Leased { .. }
        ),
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
async fn plans_are_shared_and_each_grant_keeps_its_person() {
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let (other, stranger) = (Uuid::now_v7(), Uuid::now_v7());
    request(&store, other, "IT-2", "erin@example.com", "active").await;
    request(&store, stranger, "IT-4", "finn@example.com", "active").await;
    plan(
        &store,
        other,
        &[group("fin-tools", Some("uid=erin")), role()],
    )
    .await;
    plan(&store, stranger, &[group("fin-tools", Some("uid=finn"))]).await;
    assert_eq!(count(&store, "SELECT COUNT(*) FROM step_plans").await, 2);
    // The steps read back whole, the person restored into each grant's own plan.
    let rows = grants::of_requests(&store, &[stranger, other])
        .await
        .expect("rows");
    let people: Vec<_> = rows
        .iter()
        .map(|r| (r.request_id, r.step, r.plan.idp_person.clone()))
        .collect();
    let mut expected = vec![
        (other, 0, Some(tollgate::ids::PersonId("uid=erin".into()))),
        (other, 1, None),
        (
            stranger,
            0,
            Some(tollgate::ids::PersonId("uid=finn".into())),
        ),
    ];
    expected.sort_by_key(|(id, step, _)| (id.to_string(), *step));
    assert_eq!(people, expected);
}

fn erins_group() -> Holding {
    Holding {
        scope: holdings::ORG_SCOPE.into(),
        target_key: group("fin-tools", None).target_key(),
        person: "uid=erin".into(),
    }
}

async fn in_tx<T>(
    store: &Store,
    f: impl AsyncFnOnce(&mut tollgate::store::Tx) -> Result<T, tollgate::store::StoreError>,
) -> T {
    let mut tx = store.begin().await.expect("tx");
    let out = f(&mut tx).await.expect("holdings");
    tx.commit().await.expect("commit");
    out
}

/// Every holder counted: the access goes with the last of them, what predates Tollgate stays,
/// and what predates is only known once every grant applying it has reported.
#[tokio::test]
async fn holders_are_counted_and_access_goes_with_the_last() {
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    request(&store, a, "IT-1", "erin@example.com", "provisioning").await;
    request(&store, b, "IT-2", "erin@example.com", "provisioning").await;
    let h = erins_group();
    let now = t0();
    // Both apply at once; B's call finds what A's put there, and reports first.
    for id in [a, b] {
        let joined = in_tx(&store, async |tx| holdings::join(tx, &h, id, 0, now).await).await;
        assert_eq!(joined, Join::Joined);
    }
    let first = Found::InPlace { first_try: true };
    let predates = in_tx(&store, async |tx| {
        holdings::granted(tx, &h, b, 0, Some(first), now).await
    })
    .await;
    assert_eq!(predates, None, "unknown while A has not reported");
    let predates = in_tx(&store, async |tx| {
        holdings::granted(tx, &h, a, 0, Some(Found::Applied), now).await
    })
    .await;
    assert_eq!(predates, Some(false));
    // A ends: B holds it. B ends: it goes, and the holding with it.
    let leave = in_tx(&store, async |tx| holdings::leave(tx, &h, a, 0, now).await).await;
    assert_eq!(
        leave,
        Leave::HeldBy {
            ticket: "IT-2".into()
        }
    );
    let leave = in_tx(&store, async |tx| holdings::leave(tx, &h, b, 0, now).await).await;
    assert_eq!(leave, Leave::Remove);
    // While B removes it, a new grant waits.
    let waits = in_tx(&store, async |tx| holdings::join(tx, &h, a, 0, now).await).await;
    assert_eq!(
        waits,
        Join::Wait {
            ticket: "IT-2".into()
        }
    );
    in_tx(&store, async |tx| {
        holdings::removed(tx, &h, b, 0, true, now).await
    })
    .await;
    let held = in_tx(&store, async |tx| holdings::read(tx, &h).await).await;
    assert_eq!(held, None);

    // Access Erin had before Tollgate: found in place by both grants on their first try.
    for id in [a, b] {
        in_tx(&store, async |tx| holdings::join(tx, &h, id, 0, now).await).await;
    }
    for id in [a, b] {
        in_tx(&store, async |tx| {
            holdings::granted(tx, &h, id, 0, Some(first), now).await
        })
        .await;
    }
    for (id, expected) in [
        (
            a,
            Leave::HeldBy {
                ticket: "IT-2".into(),
            },
        ),
        (b, Leave::Predates),
    ] {
        let leave = in_tx(&store, async |tx| holdings::leave(tx, &h, id, 0, now).await).await;
        assert_eq!(leave, expected);
    }
    let held = in_tx(&store, async |tx| holdings::read(tx, &h).await).await;
    assert_eq!(
        held.map(|h| (h.predates, h.holders.len())),
        Some((Some(true), 0)),
        "what predates Tollgate is remembered, with nobody holding it"
    );
}

/// The last holder leaving and a new grant joining, at the same moment, many times: either the
/// joiner waits for the removal, or the leaver sees the joiner and keeps the access. Never
/// both "removed" and "joined without waiting".
#[tokio::test]
async fn a_grant_joining_as_the_last_holder_leaves_never_loses_its_access() {
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let h = erins_group();
    let now = t0();
    for round in 0..20 {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        request(
            &store,
            a,
            &format!("A-{round}"),
            "erin@example.com",
            "active",
        )
        .await;
        request(
            &store,
            b,
            &format!("B-{round}"),
            "erin@example.com",
            "approved",
        )
        .await;
        in_tx(&store, async |tx| holdings::join(tx, &h, a, 0, now).await).await;
        in_tx(&store, async |tx| {
            holdings::granted(tx, &h, a, 0, Some(Found::Applied), now).await
        })
        .await;
        let start = Arc::new(Barrier::new(2));
        let leaver = {
            let (store, h, start) = (store.clone(), h.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                in_tx(&store, async |tx| holdings::leave(tx, &h, a, 0, now).await).await
            })
        };
        let joiner = {
            let (store, h, start) = (store.clone(), h.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                in_tx(&store, async |tx| holdings::join(tx, &h, b, 0, now).await).await
            })
        };
        let (left, joined) = (leaver.await.expect("leaver"), joiner.await.expect("joiner"));
        match (&left, &joined) {
            (Leave::Remove, Join::Wait { .. }) | (Leave::HeldBy { .. }, Join::Joined) => {}
            other => panic!("round {round}: {other:?}"),
        }
        // Tidy up for the next round: the removal (if any) lands, B applies and ends.
        if left == Leave::Remove {
            in_tx(&store, async |tx| {
                holdings::removed(tx, &h, a, 0, true, now).await
            })
            .await;
            in_tx(&store, async |tx| holdings::join(tx, &h, b, 0, now).await).await;
        }
        in_tx(&store, async |tx| {
            holdings::granted(tx, &h, b, 0, Some(Found::Applied), now).await
        })
        .await;
        assert_eq!(
            in_tx(&store, async |tx| holdings::leave(tx, &h, b, 0, now).await).await,
            Leave::Remove
        );
        in_tx(&store, async |tx| {
            holdings::removed(tx, &h, b, 0, true, now).await
        })
        .await;
    }
}

/// The last migration before people were keyed by their IdP id and holders counted.
const BEFORE_HOLDERS: i64 = 20261203000012;

fn org_person(id: &str, email: &str) -> tollgate::orgchart::Person {
    tollgate::orgchart::Person::new(
        tollgate::orgchart::PersonId(id.into()),
        tollgate::orgchart::Email::parse(email).expect("email"),
        id,
    )
}

/// Grants written by the release before holders were counted: A put Erin in the group and the
/// role, B found both in place and recorded them `pre_existing` (the bug), Finn had his group
/// before Tollgate, and Gus is no longer in the org chart. After the migration Erin's access
/// is one holding two grants hold and that does not predate Tollgate, B's steps say so, Finn's
/// predates, Gus's request is unmatched, and a second start changes nothing.
#[tokio::test]
async fn a_database_from_before_holders_is_migrated() {
    use tollgate::grants::{people_migration, remap};
    let db = TestDatabase::create().await;
    let store = connect(&db).await;
    store.migrate_to(BEFORE_HOLDERS).await.expect("old schema");
    let snapshot = tollgate::orgchart::OrgSnapshot {
        people: vec![
            org_person("p-erin", "erin@example.com"),
            org_person("p-finn", "finn@example.com"),
        ],
        groups: Vec::new(),
        departments: Vec::new(),
    };
    let mut tx = store.begin().await.expect("tx");
    tollgate::store::org::save_snapshot(&mut tx, "ldap", t0(), &snapshot)
        .await
        .expect("snapshot");
    tx.commit().await.expect("commit");
    let (a, b, f, g) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    let granted = |minutes: i64| (t0() + TimeDelta::minutes(minutes)).to_rfc3339();
    for (id, ticket, who, minutes) in [
        (a, "IT-1", "erin@example.com", 1),
        (b, "IT-2", "erin@example.com", 2),
        (f, "IT-3", "finn@example.com", 3),
        (g, "IT-4", "gus@example.com", 4),
    ] {
        request(&store, id, ticket, who, "active").await;
        let at = granted(minutes);
        let update = match store.db() {
            Db::Sqlite(_) => "UPDATE requests SET granted_at = $1 WHERE id = $2",
            Db::Postgres(_) => {
                "UPDATE requests SET granted_at = CAST($1 AS TIMESTAMPTZ) WHERE id = $2"
            }
        };
        exec(&store, update, &[&at, &id.to_string()]).await;
    }
    plan(&store, a, &[group("fin-tools", Some("uid=erin")), role()]).await;
    plan(&store, b, &[group("fin-tools", Some("uid=erin")), role()]).await;
    plan(&store, f, &[group("fin-tools", Some("uid=finn"))]).await;
    plan(&store, g, &[group("fin-tools", Some("uid=gus"))]).await;
    let mut tx = store.begin().await.expect("tx");
    for (id, step, change) in [
        (a, 0, "applied"),
        (a, 1, "applied"),
        (b, 0, "pre_existing"),
        (b, 1, "pre_existing"),
        (f, 0, "pre_existing"),
        (g, 0, "applied"),
    ] {
        grants::settle(
            &mut tx,
            id,
            step,
            Phase::Grant,
            Status::Done,
            Some(change),
            None,
            t0(),
        )
        .await
        .expect("settle");
    }
    tx.commit().await.expect("commit");
    exec(
        &store,
        "INSERT INTO atlassian_accounts (email, account_id, found_by, resolved_at) \
         VALUES ('erin@example.com', 'acc-erin', 'email lookup', '2026-11-01T09:00:00Z')",
        &[],
    )
    .await;

    // Today's start: the SQL migrations, then the data migration.
    store.migrate().await.expect("migrate");
    let now = t0() + TimeDelta::hours(1);
    let summary = people_migration::run(&store, Some("org-acme"), now)
        .await
        .expect("run")
        .expect("it ran");
    assert_eq!((summary.matched, summary.unmatched), (3, 1), "{summary:?}");
    assert_eq!(summary.accounts, 1);
    let mut corrected = summary.corrected.clone();
    corrected.sort();
    assert_eq!(
        corrected,
        [("IT-2".to_string(), 0), ("IT-2".to_string(), 1)]
    );
    assert_eq!(
        people_migration::run(&store, Some("org-acme"), now)
            .await
            .expect("again"),
        None,
        "once"
    );

    let request_a = tollgate::store::requests::get(&store, a)
        .await
        .expect("read")
        .expect("a");
    assert_eq!(
        request_a.subject_person.map(|p| p.0).as_deref(),
        Some("p-erin")
    );
    let b_steps = grants::read(&store, b).await.expect("steps");
    assert!(
        b_steps
            .iter()
            .all(|s| s.granted_change.as_deref() == Some("already_in_place")),
        "{b_steps:?}"
    );
    let holding = |person: &str, step: &Step, scope: &str| Holding {
        scope: scope.into(),
        target_key: step.target_key(),
        person: person.into(),
    };
    let mut tx = store.begin().await.expect("tx");
    let erin_group = holdings::read(&mut tx, &holding("p-erin", &group("x", None), "org")).await;
    assert_eq!(
        erin_group.expect("read"),
        None,
        "a group named x is nobody's"
    );
    let erin_group = holdings::read(
        &mut tx,
        &holding("p-erin", &group("fin-tools", None), holdings::ORG_SCOPE),
    )
    .await
    .expect("read")
    .expect("erin's group");
    let erin_role = holdings::read(&mut tx, &holding("p-erin", &role(), "jira:acme"))
        .await
        .expect("read")
        .expect("erin's role");
    let finn_group = holdings::read(
        &mut tx,
        &holding("p-finn", &group("fin-tools", None), holdings::ORG_SCOPE),
    )
    .await
    .expect("read")
    .expect("finn's group");
    tx.rollback().await.expect("rollback");
    for held in [&erin_group, &erin_role] {
        let tickets: Vec<&str> = held.holders.iter().map(|h| h.ticket.as_str()).collect();
        assert_eq!((held.predates, tickets.len()), (Some(false), 2), "{held:?}");
    }
    assert_eq!(finn_group.predates, Some(true));
    let matched = tollgate::store::accounts::match_for(
        &store,
        "org-acme",
        &tollgate::orgchart::PersonId("p-erin".into()),
    )
    .await
    .expect("match");
    assert_eq!(matched.map(|m| m.account.0).as_deref(), Some("acc-erin"));
    // Gus is listed as unmatched, and a remap by email after he is back gives him his id.
    let unmatched = remap::unmatched(&store, &snapshot)
        .await
        .expect("unmatched");
    assert_eq!(
        unmatched
            .iter()
            .map(|r| r.ticket_key.as_str())
            .collect::<Vec<_>>(),
        ["IT-4"]
    );
    let mut back = snapshot.clone();
    back.people.push(org_person("p-gus", "gus@example.com"));
    let remaps = remap::plan(&store, &back).await.expect("plan");
    assert_eq!(
        remaps
            .iter()
            .map(|r| (r.ticket.as_str(), r.to.0.as_str()))
            .collect::<Vec<_>>(),
        [("IT-4", "p-gus")]
    );
    remap::apply(&store, &remaps, "test", now)
        .await
        .expect("apply");
    assert!(
        remap::unmatched(&store, &back)
            .await
            .expect("unmatched")
            .is_empty()
    );
    let mut tx = store.begin().await.expect("tx");
    let gus = holdings::read(
        &mut tx,
        &holding("p-gus", &group("fin-tools", None), holdings::ORG_SCOPE),
    )
    .await
    .expect("read");
    tx.rollback().await.expect("rollback");
    assert_eq!(
        gus.map(|h| h.holders.len()),
        Some(1),
        "Gus's hold moved from his email to his id"
    );
}
