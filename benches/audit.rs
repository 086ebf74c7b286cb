//! `audit verify` throughput (issue 10): 1,000,000 events in one chain, checkpointed every
//! 1,000 as the service does, then the whole chain verified as `tollgate audit verify` does.
//!
//! `cargo bench --bench audit` runs on SQLite; `BENCH_DATABASE_URL=postgres://…/db` (an empty
//! database) on PostgreSQL. `AUDIT_BENCH_EVENTS` scales it (default 1,000,000).

use std::time::Instant;

use chrono::{SecondsFormat, TimeDelta, Utc};
use serde_json::json;
use tollgate::audit::checkpoint::{CHECKPOINT_EVERY, CheckpointKey};
use tollgate::audit::{GENESIS, canonical, chain_hash, verify};
use tollgate::config::Config;
use tollgate::secrets::SecretKey;
use tollgate::store::{Db, Store};

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
}
