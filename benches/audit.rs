//! `audit verify` throughput (issue 10): 1,000,000 events in one chain, checkpointed every
//! 1,000 as the service does, then the whole chain verified as `tollgate audit verify` does.
//!
//! Then the `report access` CSV export of 100,000 requests (each with an approval and two grant
//! steps): its time, and the process's resident memory before and at its highest during it.
//!
//! `cargo bench --bench audit` runs on SQLite; `BENCH_DATABASE_URL=postgres://…/db` (an empty
//! database) on PostgreSQL. `AUDIT_BENCH_EVENTS` (1,000,000) and `AUDIT_BENCH_REQUESTS` (100,000) scale it.

use std::time::Instant;

use chrono::{SecondsFormat, TimeDelta, Utc};
use serde_json::json;
use tollgate::audit::checkpoint::{CHECKPOINT_EVERY, CheckpointKey};
use tollgate::audit::{GENESIS, canonical, chain_hash, verify};
use tollgate::config::Config;
use tollgate::grants::plan::{Step, Via};
use tollgate::secrets::SecretKey;
use tollgate::store::grants::{self, Progress, Status};
use tollgate::store::{Db, Store};
use tollgate::workflow::GrantTarget;

const CHAIN: &str = "bench:acme";

fn config(database: &str) -> Config {
    let vars = [("DATABASE_URL".to_string(), database.to_string())];
    let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    Config::from_sources(None, &lookup).expect("config")
}

/// One event as the service writes it: (seq, id, at, canonical, prev_hash, hash).
type Row = (i64, String, chrono::DateTime<Utc>, String, String, String);

fn event(seq: i64, prev: &str) -> Row {
    let id = uuid::Uuid::now_v7().to_string();
    let at = Utc::now() - TimeDelta::days(30) + TimeDelta::seconds(seq);
    let canonical = canonical::to_string(&json!({
        "id": id,
        "chain": CHAIN,
        "seq": seq,
        "prev_hash": prev,
        "at": at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "tenant": CHAIN,
        "request_id": uuid::Uuid::now_v7().to_string(),
        "ticket_key": format!("IT-{}", seq / 7 + 1),
        "actor": {"kind": "approver", "id": "557058:f3c2a1b0-1111-2222-3333-444455556666"},
        "action": "decision.approved",
        "target": "netsuite",
        "details": {"stage": 1, "via": "comment", "comment": "approved, thanks"},
        "workflow_version": "2026-11-01",
    }));
    let hash = chain_hash(prev, &canonical);
    (seq, id, at, canonical, prev.to_string(), hash)
}

async fn insert(store: &Store, rows: &[Row]) {
    let values: Vec<String> = (0..rows.len())
        .map(|r| {
            let b = r * 6;
            format!(
                "('{CHAIN}', ${}, ${}, ${}, '{CHAIN}', 'approver', 'decision.approved', ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO audit_events (chain, seq, id, at, tenant, actor_kind, action, canonical, \
         prev_hash, hash) VALUES {}",
        values.join(", ")
    );
    macro_rules! run {
        ($pool:expr) => {{
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (seq, id, at, canonical, prev, hash) in rows {
                q = q
                    .bind(*seq)
                    .bind(id.clone())
                    .bind(*at)
                    .bind(canonical.clone())
                    .bind(prev.clone())
                    .bind(hash.clone());
            }
            q.execute($pool).await.expect("insert");
        }};
    }
    match store.db() {
        Db::Sqlite(pool) => run!(pool),
        Db::Postgres(pool) => run!(pool),
    }
}

async fn exec(store: &Store, sql: String) {
    match store.db() {
        Db::Sqlite(pool) => sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await
            .map(|_| ()),
        Db::Postgres(pool) => sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await
            .map(|_| ()),
    }
    .expect("statement");
}

#[tokio::main]
async fn main() {
    let events: i64 = std::env::var("AUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("dir");
    let database = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/audit.db", dir.path().display()));
    let backend = if database.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let store = Store::connect(&config(&database).database)
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    let key = CheckpointKey::derive(&SecretKey::generate().expect("key"));

    let seeding = Instant::now();
    let mut prev = GENESIS.to_string();
    let mut batch = Vec::with_capacity(500);
    for seq in 1..=events {
        let row = event(seq, &prev);
        prev = row.5.clone();
        if seq % CHECKPOINT_EVERY == 0 || seq == events {
            let signed = key.sign(CHAIN, seq, &prev, row.2);
            exec(
                &store,
                format!(
                    "INSERT INTO audit_checkpoints (chain, seq, hash, at, mac) VALUES \
                     ('{CHAIN}', {seq}, '{prev}', '{}', '{}')",
                    row.2.to_rfc3339_opts(SecondsFormat::Micros, true),
                    signed.mac
                ),
            )
            .await;
        }
        batch.push(row);
        if batch.len() == 500 {
            insert(&store, &batch).await;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        insert(&store, &batch).await;
    }
    exec(
        &store,
        format!("INSERT INTO audit_chains (chain, seq, head_hash) VALUES ('{CHAIN}', {events}, '{prev}')"),
    )
    .await;
    println!(
        "{backend}: seeded {events} events in {:.0} s",
        seeding.elapsed().as_secs_f64()
    );

    let mut rates = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let reports = verify::verify(&store, &key, None).await.expect("verify");
        let seconds = started.elapsed().as_secs_f64();
        assert!(reports.iter().all(|r| r.broken.is_none()), "{reports:?}");
        assert_eq!(reports.iter().map(|r| r.events).sum::<i64>(), events);
        rates.push(events as f64 / seconds);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{backend}: audit verify of {events} events: median {:.0} events/s (runs: {})",
        rates[1],
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    export(&store, backend).await;
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Seeds `n` finished requests in July 2026, each with one approval and two grant steps.
async fn seed_requests(store: &Store, n: usize) {
    let base = "2026-07-01T00:00:00Z"
        .parse::<chrono::DateTime<Utc>>()
        .expect("t");
    let mut tx = store.begin().await.expect("begin");
    let mut plans = Vec::new();
    for target in [
        GrantTarget::IdpGroup {
            group: "finance".into(),
        },
        GrantTarget::JiraProjectRole {
            project: "FIN".into(),
            role: "Administrators".into(),
        },
    ] {
        let via = match target {
            GrantTarget::IdpGroup { .. } => Via::Idp {
                source: "ldap".into(),
            },
            _ => Via::Connect,
        };
        let plan = grants::plan_id(&mut tx, &Step::direct(target, via))
            .await
            .expect("plan");
        plans.push(Progress {
            grant: Status::Done,
            revoke: Some(Status::Done),
            since: None,
            ..Progress::planned(plan, None, base)
        });
    }
    tx.commit().await.expect("commit");
    let steps = grants::encode(&plans).expect("steps");
    let mut start = 0;
    while start < n {
        let end = (start + 500).min(n);
        let mut requests = Vec::new();
        let mut decisions = Vec::new();
        for i in start..end {
            let id = format!("00000000-0000-7000-8000-{i:012}");
            let at = base + TimeDelta::seconds(i as i64 * 20);
            let at_text = at.to_rfc3339();
            let later = (at + TimeDelta::days(7)).to_rfc3339();
            requests.push(format!(
                "('{id}', '{CHAIN}', 'IT-{i}', '{i}', 'expired', 'acc-{i}', 'person{i}@example.com', \
                 'netsuite', 'admin', 'Quarter close, \"urgent\"', 'finance', 'v7', 1, '{at_text}', \
                 '{at_text}', '{at_text}', '{later}', '{later}', 'expired', '{steps}')"
            ));
            decisions.push(format!(
                "('{id}', 0, 'acc-boss', 'boss@example.com', 'approved', 'comment', 'approve', '{at_text}')"
            ));
        }
        exec(
            store,
            format!(
                "INSERT INTO requests (id, tenant, ticket_key, issue_id, state, requester_account, \
             requester_email, resource, level, justification, workflow, workflow_version, version, \
             created_at, updated_at, granted_at, expires_at, ended_at, end_cause, steps) VALUES {}",
                requests.join(", ")
            ),
        )
        .await;
        exec(store, format!(
            "INSERT INTO decisions (request_id, stage, approver_account, approver_email, verdict, \
             via, answer, decided_at) VALUES {}",
            decisions.join(", ")
        )).await;
        start = end;
    }
}

async fn export(store: &Store, backend: &str) {
    use tollgate::audit::report::{Format, Query, Report, Scope};
    let n = std::env::var("AUDIT_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000usize);
    seed_requests(store, n).await;
    // A bulk load leaves the planner without statistics until autovacuum gets to it; a live
    // database has them.
    exec(store, "ANALYZE".into()).await;
    let query = Query {
        scope: Scope::Period {
            from: "2026-01-01T00:00:00Z".parse().expect("t"),
            to: "2027-01-01T00:00:00Z".parse().expect("t"),
        },
        resource: None,
        person: None,
        tenant: None,
        tz: chrono_tz::Tz::UTC,
    };
    let mut times = Vec::new();
    let mut peaks = Vec::new();
    let before = rss_kib();
    for _ in 0..3 {
        let started = Instant::now();
        let mut report = Report::new(store.clone(), query.clone(), Format::Csv);
        let mut bytes = 0usize;
        let mut peak = 0;
        let mut sink = std::io::sink();
        while let Some(chunk) = report.next_chunk().await.expect("chunk") {
            bytes += chunk.len();
            std::io::Write::write_all(&mut sink, &chunk).expect("write");
            peak = peak.max(rss_kib());
        }
        assert_eq!(report.rows(), n as u64);
        times.push(started.elapsed().as_secs_f64());
        peaks.push(peak);
        println!(
            "{backend}: exported {n} requests, {:.1} MB of CSV",
            bytes as f64 / 1e6
        );
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{backend}: report access CSV of {n} requests: median {:.2} s (runs {:.2}, {:.2}, {:.2}); \
         RSS before {} MiB, highest during the runs {:?} MiB",
        times[1],
        times[0],
        times[1],
        times[2],
        before / 1024,
        peaks.iter().map(|p| p / 1024).collect::<Vec<_>>()
    );
}
