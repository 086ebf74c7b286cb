//! The audit chain: appended in the caller's transaction, verified link by link, broken by any
//! edit or deletion, and never forked by concurrent writers.

use chrono::Utc;
use serde_json::json;
use tollgate::audit::{self, Actor, Event};
use tollgate::store::Store;

use crate::support::{self, TestDatabase};

fn event(tenant: Option<&str>, action: &str, n: usize) -> Event {
    Event {
        at: Utc::now(),
        tenant: tenant.map(str::to_string),
        request_id: Some(uuid::Uuid::now_v7()),
        ticket_key: Some(format!("IT-{n}")),
        actor: Actor::System("engine".into()),
        action: action.into(),
        target: Some("netsuite".into()),
        details: json!({"n": n, "note": "ünïcödé \"quoted\""}),
        workflow_version: Some("v1".into()),
    }
}

async fn append(store: &Store, e: &Event) -> audit::Appended {
    let mut tx = store.begin().await.expect("begin");
    let appended = audit::append(&mut tx, e).await.expect("append");
    tx.commit().await.expect("commit");
    appended
}

async fn execute(store: &Store, sql: &'static str) {
    match store.db() {
        tollgate::store::Db::Sqlite(pool) => {
            sqlx::query(sql).execute(pool).await.expect("tamper");
        }
        tollgate::store::Db::Postgres(pool) => {
            sqlx::query(sql).execute(pool).await.expect("tamper");
        }
    }
}

#[tokio::test]
async fn chains_link_every_event_and_any_edit_breaks_them() {
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    for n in 1..=3 {
        let appended = append(&store, &event(Some("jira:acme"), "request.received", n)).await;
        assert_eq!(
            (appended.chain.as_str(), appended.seq),
            ("jira:acme", n as i64)
        );
    }
    append(&store, &event(None, "org.synced", 0)).await;
    assert_eq!(
        audit::verify_chain(&store, "jira:acme")
            .await
            .expect("read"),
        Ok(3)
    );
    assert_eq!(
        audit::verify_chain(&store, "system").await.expect("read"),
        Ok(1)
    );

    // A rolled-back transaction leaves no trace and no gap.
    let mut tx = store.begin().await.expect("begin");
    audit::append(&mut tx, &event(Some("jira:acme"), "request.received", 9))
        .await
        .expect("append");
    tx.rollback().await.expect("rollback");
    assert_eq!(
        append(&store, &event(Some("jira:acme"), "request.routed", 4))
            .await
            .seq,
        4
    );

    execute(&store, "UPDATE audit_events SET canonical = replace(canonical, 'netsuite', 'payroll') WHERE chain = 'jira:acme' AND seq = 2").await;
    let broken = audit::verify_chain(&store, "jira:acme")
        .await
        .expect("read")
        .expect_err("edited");
    assert_eq!(broken.seq, 2, "{broken:?}");

    execute(&store, "DELETE FROM audit_events WHERE chain = 'system'").await;
    execute(&store, "INSERT INTO audit_events (chain, seq, id, at, actor_kind, action, canonical, prev_hash, hash) SELECT 'system', 2, 'x', at, actor_kind, action, canonical, prev_hash, hash FROM audit_events WHERE chain = 'jira:acme' AND seq = 1").await;
    let gap = audit::verify_chain(&store, "system")
        .await
        .expect("read")
        .expect_err("gap");
    assert!(gap.problem.contains("expected event 1"), "{gap:?}");
}

#[tokio::test]
async fn concurrent_writers_never_fork_or_gap_the_chain() {
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..25 {
                append(
                    &store,
                    &event(Some("jira:busy"), "decision.recorded", writer * 100 + n),
                )
                .await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    assert_eq!(
        audit::verify_chain(&store, "jira:busy")
            .await
            .expect("read"),
        Ok(200)
    );
}
