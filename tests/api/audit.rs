//! The audit chain: appended in the caller's transaction, verified link by link, broken by any
//! edit or deletion, and never forked by concurrent writers.

use chrono::Utc;
use serde_json::json;
use tollgate::audit::{self, Actor, Event};
use tollgate::lifecycle::Action as Did;
use tollgate::store::Store;

use crate::support::database::exec;
use crate::support::{self, TestDatabase};

fn event(tenant: Option<&str>, action: impl Into<audit::Action>, n: usize) -> Event {
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

#[tokio::test]
async fn chains_link_every_event_and_any_edit_breaks_them() {
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    for n in 1..=3 {
        let appended = append(&store, &event(Some("jira:acme"), Did::RequestReceived, n)).await;
        assert_eq!(
            (appended.chain.as_str(), appended.seq),
            ("jira:acme", n as i64)
        );
    }
    append(&store, &event(None, audit::Action::PersonRenamed, 0)).await;
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
    audit::append(&mut tx, &event(Some("jira:acme"), Did::RequestReceived, 9))
        .await
        .expect("append");
    tx.rollback().await.expect("rollback");
    assert_eq!(
        append(&store, &event(Some("jira:acme"), Did::RequestRouted, 4))
            .await
            .seq,
        4
    );

    exec(&store, "UPDATE audit_events SET canonical = replace(canonical, 'netsuite', 'payroll') WHERE chain = 'jira:acme' AND seq = 2", &[]).await;
    let broken = audit::verify_chain(&store, "jira:acme")
        .await
        .expect("read")
        .expect_err("edited");
    assert_eq!(broken.seq, 2, "{broken:?}");

    exec(
        &store,
        "DELETE FROM audit_events WHERE chain = 'system'",
        &[],
    )
    .await;
    exec(&store, "INSERT INTO audit_events (chain, seq, id, at, actor_kind, action, canonical, prev_hash, hash) SELECT 'system', 2, 'x', at, actor_kind, action, canonical, prev_hash, hash FROM audit_events WHERE chain = 'jira:acme' AND seq = 1", &[]).await;
    let gap = audit::verify_chain(&store, "system")
        .await
        .expect("read")
        .expect_err("gap");
    assert!(gap.problem.contains("missing from the start"), "{gap:?}");
    assert_eq!(gap.expected.as_deref(), Some("event 1"));
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
                    &event(Some("jira:busy"), Did::DecisionApproved, writer * 100 + n),
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

mod checkpoints {
    use chrono::Utc;
    use tollgate::audit::checkpoint::{self, CheckpointKey};
    use tollgate::audit::verify::{self, ChainReport};
    use tollgate::audit::{self, chain_hash};
    use tollgate::secrets::SecretKey;
    use tollgate::store::{Db, Store};

    use super::{Did, append, event};
    use crate::support::database::exec;
    use crate::support::{self, TestDatabase};

    /// `n` events on `chain`, checkpointed at event 10 and at its head.
    async fn seed(store: &Store, key: &CheckpointKey, chain: &str, n: usize) {
        for i in 1..=n {
            append(store, &event(Some(chain), Did::RequestReceived, i)).await;
        }
        assert!(
            checkpoint::write_at(store, key, chain, 10, Utc::now())
                .await
                .expect("checkpoint")
        );
        checkpoint::write_heads(store, key, Utc::now())
            .await
            .expect("heads");
    }

    async fn report(store: &Store, key: &CheckpointKey, chain: &str) -> ChainReport {
        let mut reports = verify::verify(store, key, Some(chain))
            .await
            .expect("verify");
        assert_eq!(reports.len(), 1);
        reports.remove(0)
    }

    /// Someone with database access rewrites event 3 and re-hashes everything after it, so
    /// every link checks out again.
    async fn rehash_from(store: &Store, chain: &str, edit_seq: i64) {
        let rows: Vec<(i64, String, String)> = support_rows(store, chain).await;
        let mut prev = audit::GENESIS.to_string();
        let mut statements = Vec::new();
        for (seq, canonical, old_prev) in rows {
            let mut canonical = canonical.replace(&old_prev, &prev);
            if seq == edit_seq {
                canonical = canonical.replace("netsuite", "payroll");
            }
            let hash = chain_hash(&prev, &canonical);
            statements.push(format!(
                "UPDATE audit_events SET canonical = '{}', prev_hash = '{prev}', hash = '{hash}' \
                 WHERE chain = '{chain}' AND seq = {seq}",
                canonical.replace('\'', "''")
            ));
            prev = hash;
        }
        statements.push(format!(
            "UPDATE audit_chains SET head_hash = '{prev}' WHERE chain = '{chain}'"
        ));
        for sql in statements {
            exec(store, &sql, &[]).await;
        }
    }

    async fn support_rows(store: &Store, chain: &str) -> Vec<(i64, String, String)> {
        let sql =
            "SELECT seq, canonical, prev_hash FROM audit_events WHERE chain = $1 ORDER BY seq";
        match store.db() {
            Db::Sqlite(pool) => sqlx::query_as(sql).bind(chain).fetch_all(pool).await,
            Db::Postgres(pool) => sqlx::query_as(sql).bind(chain).fetch_all(pool).await,
        }
        .expect("rows")
    }

    #[tokio::test]
    async fn tampering_is_found_and_named_and_an_archive_still_verifies() {
        let db = TestDatabase::create().await;
        let store = support::store(&db).await;
        let key = CheckpointKey::derive(&SecretKey::generate().expect("key"));
        let chains = [
            "intact", "edit", "reorder", "middle", "newest", "rehash", "forged", "archive",
        ];
        for chain in chains {
            seed(&store, &key, chain, 25).await;
        }

        let intact = report(&store, &key, "intact").await;
        assert_eq!(intact.broken, None, "{intact:?}");
        assert_eq!(
            (
                intact.events,
                intact.first_seq,
                intact.last_seq,
                intact.checkpoints
            ),
            (25, Some(1), Some(25), 2)
        );

        exec(&store, "UPDATE audit_events SET canonical = replace(canonical, 'netsuite', 'payroll') WHERE chain = 'edit' AND seq = 5", &[]).await;
        let edit = report(&store, &key, "edit")
            .await
            .broken
            .expect("edit found");
        assert_eq!(edit.seq, 5);
        assert!(edit.event_id.is_some(), "names the event: {edit:?}");
        assert!(edit.problem.contains("hash does not match"), "{edit:?}");
        assert_ne!(edit.expected, edit.found);

        for sql in [
            "UPDATE audit_events SET seq = -7 WHERE chain = 'reorder' AND seq = 7",
            "UPDATE audit_events SET seq = 7 WHERE chain = 'reorder' AND seq = 8",
            "UPDATE audit_events SET seq = 8 WHERE chain = 'reorder' AND seq = -7",
        ] {
            exec(&store, sql, &[]).await;
        }
        let reorder = report(&store, &key, "reorder").await.broken.expect("found");
        assert_eq!(reorder.seq, 7, "{reorder:?}");

        exec(
            &store,
            "DELETE FROM audit_events WHERE chain = 'middle' AND seq = 12",
            &[],
        )
        .await;
        let middle = report(&store, &key, "middle").await.broken.expect("found");
        assert_eq!(middle.seq, 12, "{middle:?}");
        assert_eq!(middle.expected.as_deref(), Some("event 12"));
        assert_eq!(middle.found.as_deref(), Some("event 13"));

        // The newest events deleted and the head row tidied up to match: only the signed
        // checkpoint at 25 still knows.
        let head: Vec<(i64, String, String)> = support_rows(&store, "newest").await;
        let hash_23 = head
            .iter()
            .find(|r| r.0 == 24)
            .map(|r| r.2.clone())
            .expect("24");
        exec(
            &store,
            "DELETE FROM audit_events WHERE chain = 'newest' AND seq > 23",
            &[],
        )
        .await;
        exec(
            &store,
            &format!(
                "UPDATE audit_chains SET seq = 23, head_hash = '{hash_23}' WHERE chain = 'newest'"
            ),
            &[],
        )
        .await;
        assert_eq!(
            audit::verify_chain(&store, "newest").await.expect("read"),
            Ok(23)
        );
        let newest = report(&store, &key, "newest").await.broken.expect("found");
        assert_eq!(newest.seq, 24, "{newest:?}");
        assert!(
            newest.problem.contains("newest events are missing"),
            "{newest:?}"
        );

        rehash_from(&store, "rehash", 3).await;
        assert_eq!(
            audit::verify_chain(&store, "rehash").await.expect("read"),
            Ok(25),
            "every link checks out after the re-hash"
        );
        let rehash = report(&store, &key, "rehash").await.broken.expect("found");
        assert_eq!(rehash.seq, 10, "the first checkpoint sees it: {rehash:?}");
        assert!(rehash.problem.contains("signed checkpoint"), "{rehash:?}");

        // A checkpoint written without the key (or with another one).
        let other = CheckpointKey::derive(&SecretKey::generate().expect("key"));
        let fake = other.sign("forged", 20, "00", Utc::now());
        exec(&store, &format!("INSERT INTO audit_checkpoints (chain, seq, hash, at, mac) SELECT chain, 20, hash, at, '{}' FROM audit_checkpoints WHERE chain = 'forged' AND seq = 10", fake.mac), &[]).await;
        let forged = report(&store, &key, "forged").await.broken.expect("found");
        assert!(forged.problem.contains("signature"), "{forged:?}");

        // An operator archives events 1..=10 (up to a checkpoint): what is left verifies.
        exec(
            &store,
            "DELETE FROM audit_events WHERE chain = 'archive' AND seq <= 10",
            &[],
        )
        .await;
        let archive = report(&store, &key, "archive").await;
        assert_eq!(archive.broken, None, "{archive:?}");
        assert_eq!((archive.first_seq, archive.events), (Some(11), 15));
        // …but not from a point no checkpoint marks.
        exec(
            &store,
            "DELETE FROM audit_events WHERE chain = 'archive' AND seq = 11",
            &[],
        )
        .await;
        let cut = report(&store, &key, "archive").await.broken.expect("found");
        assert!(cut.problem.contains("missing from the start"), "{cut:?}");

        // A verifier with another key trusts no checkpoint, and names the key they need.
        let wrong = report(&store, &other, "intact")
            .await
            .broken
            .expect("found");
        assert!(
            wrong.problem.contains("not in TOLLGATE_SECRET_KEY"),
            "{wrong:?}"
        );

        // Every chain at once: the intact one passes, each tampered one is reported.
        let all = verify::verify(&store, &key, None).await.expect("verify");
        let broken: Vec<&str> = all
            .iter()
            .filter(|r| r.broken.is_some())
            .map(|r| r.chain.as_str())
            .collect();
        assert_eq!(
            broken,
            [
                "archive", "edit", "forged", "middle", "newest", "rehash", "reorder"
            ]
        );
    }

    #[tokio::test]
    async fn chains_written_and_checkpointed_concurrently_verify() {
        let db = TestDatabase::create().await;
        // Two "replicas": two stores on the same database.
        let stores = [support::store(&db).await, support::store(&db).await];
        let key = CheckpointKey::derive(&SecretKey::generate().expect("key"));
        let mut tasks = Vec::new();
        for (writer, store) in stores.iter().cycle().take(6).enumerate() {
            let store = store.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..20 {
                    append(
                        &store,
                        &event(Some("jira:busy"), Did::DecisionApproved, writer * 100 + n),
                    )
                    .await;
                    if n % 5 == 0 {
                        checkpoint::write_heads(&store, &key, Utc::now())
                            .await
                            .expect("checkpoint");
                    }
                }
            }));
        }
        for task in tasks {
            task.await.expect("writer");
        }
        checkpoint::write_heads(&stores[0], &key, Utc::now())
            .await
            .expect("checkpoint");
        let report = report(&stores[1], &key, "jira:busy").await;
        assert_eq!(report.broken, None, "{report:?}");
        assert_eq!(report.events, 120);
        assert!(report.checkpoints >= 2, "{report:?}");
    }

    /// The running service checkpoints a chain when it reaches every 1,000th event.
    #[tokio::test]
    async fn the_worker_checkpoints_every_thousandth_event() {
        let app = crate::support::spawn_app().await;
        let store = app.state.store.clone();
        let mut tx = store.begin().await.expect("begin");
        for n in 1..=checkpoint::CHECKPOINT_EVERY as usize {
            audit::append(&mut tx, &event(Some("jira:big"), Did::RequestReceived, n))
                .await
                .expect("append");
        }
        tx.commit().await.expect("commit");
        app.state.job_wake.wake();
        let written = crate::support::eventually(std::time::Duration::from_secs(20), || async {
            let rows = checkpoint::of_chain(&store, "jira:big")
                .await
                .expect("read");
            (!rows.is_empty()).then_some(rows)
        })
        .await
        .expect("a checkpoint was written");
        assert_eq!(written[0].seq, checkpoint::CHECKPOINT_EVERY);
        let key = CheckpointKey::derive(&app.state.secret_key);
        let report = report(&store, &key, "jira:big").await;
        assert_eq!(report.broken, None, "{report:?}");
        assert_eq!(report.events, checkpoint::CHECKPOINT_EVERY);
        app.stop().await;
    }

    /// The command an operator runs: exit 0 on an intact log, 1 naming the break.
    #[tokio::test]
    async fn the_verify_command_exits_non_zero_on_a_break() {
        let db = TestDatabase::create().await;
        let store = support::store(&db).await;
        let secret = SecretKey::generate().expect("key");
        let key = CheckpointKey::derive(&secret);
        seed(&store, &key, "jira:acme", 12).await;
        let run = || {
            crate::support::binary()
                .args(["audit", "verify"])
                .env("DATABASE_URL", db.url())
                .env("TOLLGATE_SECRET_KEY", secret.to_base64())
                .output()
                .expect("runs")
        };
        let ok = run();
        let stdout = String::from_utf8_lossy(&ok.stdout);
        assert!(
            ok.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        assert!(
            stdout.contains("ok      jira:acme: 12 events (1..12), 2 checkpoints"),
            "{stdout}"
        );

        exec(&store, "UPDATE audit_events SET canonical = replace(canonical, 'netsuite', 'payroll') WHERE chain = 'jira:acme' AND seq = 4", &[]).await;
        let broken = run();
        let stdout = String::from_utf8_lossy(&broken.stdout);
        assert_eq!(broken.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains("BROKEN  jira:acme: at event 4 (id "),
            "{stdout}"
        );
        assert!(stdout.contains("expected "), "{stdout}");

        // A tenant with no chain is an error, not a clean bill.
        let unknown = crate::support::binary()
            .args(["audit", "verify", "--tenant", "jira:acne"])
            .env("DATABASE_URL", db.url())
            .env("TOLLGATE_SECRET_KEY", secret.to_base64())
            .output()
            .expect("runs");
        assert_eq!(unknown.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&unknown.stderr).contains("no audit chain named"));

        // Without the service's key it refuses rather than call every checkpoint forged.
        let keyless = crate::support::binary()
            .args(["audit", "verify"])
            .env("DATABASE_URL", db.url())
            .output()
            .expect("runs");
        assert_eq!(keyless.status.code(), Some(2));
    }
}

/// Numbers in an event's canonical form are written as ECMAScript writes them (RFC 8785), asked
/// of Node itself for doubles of every magnitude: random bit patterns, random values around
/// each power of ten, and the neighbours of the powers of ten where the notation changes.
#[test]
fn canonical_numbers_are_written_as_ecmascript_writes_them() {
    if !support::oracle::available() {
        return;
    }
    // xorshift64*: a fixed sequence, so a failure reproduces.
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut doubles: Vec<f64> = Vec::new();
    for _ in 0..5_000 {
        doubles.push(f64::from_bits(next()));
        let fraction = (next() >> 11) as f64 / (1_u64 << 53) as f64;
        let power = (next() % 34) as i32 - 9;
        doubles.push(fraction * 10_f64.powi(power));
    }
    for power in -10..=25 {
        let bits = 10_f64.powi(power).to_bits();
        doubles.extend((bits - 3..=bits + 3).map(f64::from_bits));
    }
    doubles.retain(|x| x.is_finite());
    let cases: Vec<String> = doubles
        .iter()
        .map(|x| format!("{:016x}", x.to_bits()))
        .collect();
    let answers = support::oracle::ask(&json!({"op": "numbers", "cases": cases}));
    let answers = answers.as_array().expect("one answer per number");
    assert_eq!(answers.len(), doubles.len());
    let mut wrong = Vec::new();
    for ((x, bits), expected) in doubles.iter().zip(&cases).zip(answers) {
        let ours = serde_json::Number::from_f64(*x)
            .map(|n| tollgate::audit::canonical::to_string(&serde_json::Value::Number(n)));
        if ours.as_deref() != expected.as_str() {
            wrong.push(format!("{bits}: ours {ours:?}, ECMAScript {expected}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {}:\n{}",
        wrong.len(),
        doubles.len(),
        wrong.join("\n")
    );
}
