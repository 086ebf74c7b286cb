//! Expiry at scale (issue 8).
//!
//! Part 1: 100,000 active temporary grants are seeded into the store, each with an `idp_group`
//! step (a real `slapd`) and a `jira_project_role` step (the fake Jira); 10,000 of them are past
//! their expiry when the app starts, the rest staggered over 30 days. The fake Atlassian cloud
//! is limited to 100 requests per second. Measured: the time until all 10,000 are `expired`
//! (each: its LDAP membership removed, its project role removed, the expiry comment posted),
//! beside the floor the limit sets (Jira calls made ÷ 100/s), the 429s answered and the calls
//! that arrived during a back-off window.
//!
//! Part 2: 1,000,000 scheduled expiries: the database size, and webhook intake latency (median
//! of 5 runs of 300 sequential signed webhooks to a web-only process) beside the same on an
//! empty database.
//!
//! `cargo bench --bench grants` runs on SQLite; `BENCH_DATABASE_URL=postgres://…/db` (an empty
//! database) on PostgreSQL. Knobs: `GRANTS_BENCH_TOTAL` (100000), `GRANTS_BENCH_EXPIRING`
//! (10000), `GRANTS_BENCH_SCHEDULED` (1000000), `GRANTS_BENCH_RATE` (100). Needs slapd.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use tollgate::app::Mode;
use tollgate::grants::plan::{Step, Via};
use tollgate::store::grants::{self, Progress, Status};
use tollgate::store::{Db, Store};
use tollgate::workflow::GrantTarget;
use tollgate_fakes::atlassian::connect::{FakeSite, InstallKeyServer, TEST_KEY_1, issue_created};
use tollgate_fakes::atlassian::{FakeAtlassian, FakeUser, World};
use tollgate_fakes::slapd;

#[path = "support/app.rs"]
mod app;
use app::{config, install, run};

#[path = "support/knob.rs"]
mod knob;
use knob::knob;

fn uid(i: usize) -> String {
    format!("b{i:06}")
}

fn account(i: usize) -> String {
    format!("acc-{}", uid(i))
}

fn directory(expiring: usize) -> String {
    let mut ldif = slapd::seed(0);
    // groupOfNames must keep one member: the CEO stays in it.
    let mut members = vec!["ceo".to_string()];
    for i in 0..expiring {
        ldif.push('\n');
        ldif.push_str(&slapd::person(&uid(i), Some("dev"), "Engineer", "ENG"));
        members.push(uid(i));
    }
    ldif.push('\n');
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    ldif.push_str(&slapd::group("bench-tools", &refs));
    ldif
}

fn world(expiring: usize) -> World {
    let mut world = World::sample();
    let mut actors = std::collections::BTreeSet::new();
    for i in 0..expiring {
        world.users.push(FakeUser {
            account_id: account(i),
            email: format!("{}@example.com", uid(i)),
            display_name: uid(i),
            active: true,
            email_visible: true,
        });
        world.add_issue(&format!("IT-{}", i + 1), &account(i));
        actors.insert(account(i));
    }
    world
        .project_roles
        .insert(("FIN".into(), 10002), (actors, Default::default()));
    world
}

/// The expiring grants hold `bench-tools` and the Administrators role; the others (for the
/// same people, who must stay in the org chart or they would be revoked as leavers) hold other
/// targets, so no other grant keeps an expiring one's access in place.
fn steps(i: usize, expiring: usize) -> [Step; 2] {
    let (group, role) = if i < expiring {
        ("bench-tools", "Administrators")
    } else {
        ("other-tools", "Developers")
    };
    [
        Step {
            asked: GrantTarget::IdpGroup {
                group: group.into(),
            },
            applied: GrantTarget::IdpGroup {
                group: group.into(),
            },
            via: Via::Idp {
                source: "ldap".into(),
            },
            idp_person: Some(tollgate::ids::PersonId(format!(
                "uid={},ou=people,{}",
                uid(i % expiring.max(1)),
                slapd::BASE
            ))),
            note: None,
        },
        Step {
            asked: GrantTarget::JiraProjectRole {
                project: "FIN".into(),
                role: role.into(),
            },
            applied: GrantTarget::JiraProjectRole {
                project: "FIN".into(),
                role: role.into(),
            },
            via: Via::Connect,
            idp_person: None,
            note: None,
        },
    ]
}

/// Seeds active grants `from..to` in multi-row statements (the seeding is not what is
/// measured). Grants below `expiring` are past their expiry; the others expire over 30 days.
async fn seed(store: &Store, tenant: &str, from: usize, to: usize, expiring: usize) {
    let now = Utc::now();
    // The plans repeat across grants (two per kind of grant); only the person differs.
    let mut plans = HashMap::new();
    let mut tx = store.begin().await.expect("begin");
    for i in [0, expiring] {
        for step in steps(i, expiring) {
            let id = grants::plan_id(&mut tx, &step).await.expect("plan");
            plans.insert(step.target_key(), id);
        }
    }
    tx.commit().await.expect("commit");
    let chunk = 400;
    let mut start = from;
    while start < to {
        let end = (start + chunk).min(to);
        let mut requests = Vec::new();
        for i in start..end {
            let id = uuid::Uuid::now_v7().to_string();
            let expires = if i < expiring {
                now - TimeDelta::minutes(1)
            } else {
                now + TimeDelta::seconds(3_600 + (i as i64 * 2_591) % (30 * 86_400))
            };
            let granted = expires - TimeDelta::days(7);
            let subject = format!("{}@example.com", uid(i % expiring.max(1)));
            let applied: Vec<Progress> = steps(i, expiring)
                .into_iter()
                .map(|step| Progress {
                    grant: Status::Done,
                    granted: Some("applied".into()),
                    since: None,
                    ..Progress::planned(plans[&step.target_key()], step.idp_person, now)
                })
                .collect();
            let applied = grants::encode(&applied).expect("steps");
            requests.push((id, i, expires, granted, subject, applied));
        }
        let values: Vec<String> = (0..requests.len())
            .map(|r| {
                let b = r * 10;
                format!(
                    "(${}, ${}, ${}, ${}, 'active', 0, ${}, ${}, 'bench-tools', 604800, '', 1, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 7, b + 8, b + 9, b + 5, b + 10
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO requests (id, tenant, ticket_key, issue_id, state, stage, \
             requester_account, subject_email, resource, duration_seconds, justification, \
             version, created_at, updated_at, granted_at, expires_at, subject_account, steps) \
             VALUES {}",
            values.join(", ")
        );
        macro_rules! bind_all {
            ($pool:expr) => {{
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                for (id, i, expires, granted, subject, applied) in &requests {
                    q = q
                        .bind(id.clone())
                        .bind(tenant.to_string())
                        .bind(format!("IT-{}", i + 1))
                        .bind(format!("{}", 20_000 + i))
                        .bind(account(*i % expiring.max(1)))
                        .bind(subject.clone())
                        .bind(*granted)
                        .bind(*granted)
                        .bind(*expires)
                        .bind(applied.clone());
                }
                q.execute($pool).await.expect("seed requests");
            }};
        }
        match store.db() {
            Db::Sqlite(pool) => bind_all!(pool),
            Db::Postgres(pool) => bind_all!(pool),
        }
        start = end;
    }
}

async fn count_expired(store: &Store) -> i64 {
    let sql = "SELECT COUNT(*) FROM requests WHERE state = 'expired'";
    match store.db() {
        Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or(0),
        Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or(0),
    }
}

async fn database_bytes(store: &Store, database: &str) -> u64 {
    match store.db() {
        Db::Sqlite(pool) => {
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(pool)
                .await;
            let path = database.trim_start_matches("sqlite://");
            let main = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let wal = std::fs::metadata(format!("{path}-wal"))
                .map(|m| m.len())
                .unwrap_or(0);
            main + wal
        }
        Db::Postgres(pool) => {
            sqlx::query_scalar::<_, i64>("SELECT pg_database_size(current_database())")
                .fetch_one(pool)
                .await
                .unwrap_or(0) as u64
        }
    }
}

/// Median (and spread) of the per-run medians of `runs` × `n` sequential webhooks.
async fn intake_latency(
    site: &FakeSite,
    runs: usize,
    n: usize,
    tag: &str,
) -> (Duration, Duration, Duration) {
    let mut medians = Vec::new();
    for run in 0..runs {
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let body = issue_created(&format!("LAT-{i}"), "acc-erin");
            let started = Instant::now();
            let response = site
                .send_webhook(
                    "/connect/webhooks/issue-created",
                    &format!("{tag}-{run}-{i}"),
                    &body,
                )
                .await
                .expect("sent");
            assert_eq!(response.status(), 204);
            times.push(started.elapsed());
        }
        times.sort();
        medians.push(times[times.len() / 2]);
    }
    medians.sort();
    (
        medians[medians.len() / 2],
        medians[0],
        medians[medians.len() - 1],
    )
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    assert!(slapd::available(), "the grants bench needs slapd");
    let total = knob("GRANTS_BENCH_TOTAL", 100_000);
    let expiring = knob("GRANTS_BENCH_EXPIRING", 10_000).min(total);
    let scheduled = knob("GRANTS_BENCH_SCHEDULED", 1_000_000).max(total);
    let rate = knob("GRANTS_BENCH_RATE", 100) as u32;
    let dir = tempfile::tempdir().expect("dir");
    let (database, backend) = app::database(dir.path());
    let secret = app::secret_key();

    let started = Instant::now();
    let ldap = slapd::Slapd::start(&directory(expiring));
    let keys = InstallKeyServer::start().await.expect("key server");
    keys.publish("k1", TEST_KEY_1.1);
    let cloud = FakeAtlassian::start(world(expiring), Default::default())
        .await
        .expect("cloud");
    let mut base = ldap.settings();
    base.extend([
        ("TOLLGATE_SECRET_KEY", secret.clone()),
        ("TOLLGATE_CONNECT_KEYS_URL", keys.url()),
        (
            "TOLLGATE_CONNECT_ALLOWED_SITES",
            tollgate_fakes::atlassian::connect::TEST_SITES.into(),
        ),
        // The org chart is not what is measured: no sync during the run.
        ("TOLLGATE_IDP_SYNC_INTERVAL", "24h".into()),
        ("TOLLGATE_JOBS_CONCURRENCY", "32".into()),
        ("TOLLGATE_DATABASE_MAX_CONNECTIONS", "40".into()),
    ]);

    // Install the site with a web-only process, seed, then start the worker.
    let web = run(config(&database, &base), Mode::WebOnly).await;
    let site = install(&web.url, &cloud).await;
    seed(&web.app_state.store, &site.client_key, 0, total, expiring).await;
    web.stop().await;
    println!(
        "{backend}: seeded {total} active grants ({expiring} past expiry) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    cloud.limit_rate(rate);
    let before = cloud.recorded().len();
    let t0 = Instant::now();
    let worker = run(config(&database, &base), Mode::All).await;
    loop {
        let done = count_expired(&worker.app_state.store).await;
        // Done when every grant is expired and every expiry comment is on its ticket.
        let comments = cloud.recorded()[before..]
            .iter()
            .filter(|c| c.method == "POST" && c.path.ends_with("/comment") && c.status < 300)
            .count();
        if done >= expiring as i64 && comments >= expiring {
            break;
        }
        if t0.elapsed() > Duration::from_secs(3_600) {
            panic!("only {done} of {expiring} expired within an hour");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = t0.elapsed();
    worker.stop().await;
    let calls = cloud.recorded()[before..].to_vec();
    let answered = calls.iter().filter(|c| c.status != 429).count();
    let by = |m: &str, p: &str| {
        calls
            .iter()
            .filter(|c| c.method == m && c.path.starts_with(p) && c.status != 429)
            .count()
    };
    let limit = cloud.rate_limit().unwrap_or_default();
    let floor = answered as f64 / f64::from(rate);
    println!(
        "{backend}: {expiring} grants expired in {:.1} s; {answered} Atlassian calls answered \
         ({} role removals, {} comments) → floor {floor:.1} s at {rate}/s, {:.1}% over it; \
         {} answered 429, {} calls sent during a back-off window",
        elapsed.as_secs_f64(),
        by("DELETE", "/rest/api/3/project/FIN/role"),
        by("POST", "/rest/api/3/issue/"),
        (elapsed.as_secs_f64() / floor - 1.0) * 100.0,
        limit.throttled,
        limit.early,
    );
    let still = cloud.world().project_roles[&("FIN".to_string(), 10002)]
        .0
        .len();
    assert_eq!(still, 0, "every role membership was removed");

    // Part 2: a million scheduled expiries.
    let web = run(config(&database, &base), Mode::WebOnly).await;
    let store = web.app_state.store.clone();
    let t1 = Instant::now();
    seed(&store, &site.client_key, total, scheduled, 0).await;
    let bytes = database_bytes(&store, &database).await;
    println!(
        "{backend}: {scheduled} scheduled expiries (seeded in {:.0} s): database {:.0} MiB",
        t1.elapsed().as_secs_f64(),
        bytes as f64 / 1_048_576.0
    );
    let mut loaded_site = site.clone();
    loaded_site.app_url = web.url.clone();
    let loaded = intake_latency(&loaded_site, 5, 300, "full").await;
    web.stop().await;

    let empty_dir = tempfile::tempdir().expect("dir");
    let empty_db = if database.starts_with("postgres") {
        std::env::var("BENCH_EMPTY_DATABASE_URL")
            .expect("BENCH_EMPTY_DATABASE_URL: a second empty PostgreSQL database")
    } else {
        format!("sqlite://{}/empty.db", empty_dir.path().display())
    };
    let web = run(config(&empty_db, &base), Mode::WebOnly).await;
    let empty_site = install(&web.url, &cloud).await;
    let empty = intake_latency(&empty_site, 5, 300, "empty").await;
    web.stop().await;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{backend}: webhook intake median latency, 5 runs × 300: empty {:.2} ms ({:.2}–{:.2}); \
         with {scheduled} scheduled expiries {:.2} ms ({:.2}–{:.2})",
        ms(empty.0),
        ms(empty.1),
        ms(empty.2),
        ms(loaded.0),
        ms(loaded.1),
        ms(loaded.2),
    );
}
