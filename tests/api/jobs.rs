use std::time::Duration;

use chrono::Utc;
use tollgate::jobs::{self, Enqueued, Job};
use tollgate::store::selfcheck;
use uuid::Uuid;

use crate::support::{eventually, spawn_app};

#[tokio::test]
async fn a_due_job_runs_and_is_counted() {
    let app = spawn_app().await;
    let id = tollgate::worker::schedule_self_check(&app.state, Duration::ZERO)
        .await
        .expect("scheduled");
    let ran = eventually(Duration::from_secs(15), || async {
        selfcheck::get(&app.state.store, id)
            .await
            .expect("read")
            .filter(|c| c.ran_at.is_some())
    })
    .await
    .expect("the job ran");
    assert_eq!(ran.runs, 1);

    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains(r#"tollgate_jobs_total{type="self_check",outcome="success"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_future_job_waits_for_its_time() {
    let app = spawn_app().await;
    let id = tollgate::worker::schedule_self_check(&app.state, Duration::from_secs(3))
        .await
        .expect("scheduled");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let early = selfcheck::get(&app.state.store, id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(early.ran_at, None, "ran before it was due");
    let ran = eventually(Duration::from_secs(15), || async {
        selfcheck::get(&app.state.store, id)
            .await
            .expect("read")
            .and_then(|c| c.ran_at.map(|at| (at, c.due_at)))
    })
    .await
    .expect("the job ran");
    assert!(ran.0 >= ran.1, "ran before it was due: {ran:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_never_runs() {
    let app = spawn_app().await;
    let id = Uuid::now_v7();
    let now = Utc::now();
    let mut tx = app.state.store.begin().await.expect("begin");
    selfcheck::insert(&mut tx, id, now, now)
        .await
        .expect("insert");
    jobs::schedule(&mut tx, &Job::SelfCheck { id, hold_ms: 0 }, now)
        .await
        .expect("enqueue");
    tx.rollback().await.expect("rollback");

    // A committed job scheduled after it runs, so the worker has had its chance.
    let later = tollgate::worker::schedule_self_check(&app.state, Duration::ZERO)
        .await
        .expect("scheduled");
    eventually(Duration::from_secs(15), || async {
        selfcheck::get(&app.state.store, later)
            .await
            .expect("read")
            .and_then(|c| c.ran_at)
    })
    .await
    .expect("the committed job ran");
    assert_eq!(
        selfcheck::get(&app.state.store, id).await.expect("read"),
        None
    );
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(!metrics.contains(r#"outcome="failure""#), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn the_same_job_is_enqueued_once() {
    let app = spawn_app().await;
    let id = Uuid::now_v7();
    let due = Utc::now() + chrono::Duration::hours(1);
    let mut tx = app.state.store.begin().await.expect("begin");
    selfcheck::insert(&mut tx, id, Utc::now(), due)
        .await
        .expect("insert");
    let job = Job::SelfCheck { id, hold_ms: 0 };
    assert_eq!(
        jobs::schedule(&mut tx, &job, due).await.expect("first"),
        Enqueued::Added
    );
    assert_eq!(
        jobs::schedule(&mut tx, &job, due).await.expect("second"),
        Enqueued::AlreadyScheduled
    );
    // The transaction is still usable after the duplicate (PostgreSQL would have aborted it).
    tx.commit().await.expect("commit");
    assert!(
        selfcheck::get(&app.state.store, id)
            .await
            .expect("read")
            .is_some()
    );
    app.stop().await;
}
