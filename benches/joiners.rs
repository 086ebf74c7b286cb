//! An acquisition wave (issue 28): `JOINERS_BENCH_PEOPLE` (1,000) people join a real `slapd` at
//! once. A birthright policy gives everyone in engineering an LDAP group and a Jira project
//! role, granted in a lifecycle ticket raised on each joiner's behalf. The fake Atlassian cloud
//! is limited to `JOINERS_BENCH_RATE` (100) requests per second, all APIs together.
//!
//! Measured, from the sync that shows the wave: the time until every birthright grant is active
//! (its LDAP membership and project role applied), beside the floor the limit sets (the
//! Atlassian calls answered ÷ the rate), the 429s answered, and the process's peak RSS (the app,
//! the fakes and the bench share it; slapd is a process of its own).
//!
//! `cargo bench --bench joiners` runs on SQLite; `BENCH_DATABASE_URL=postgres://…/db` (an empty
//! database) on PostgreSQL. Needs slapd.

use std::time::{Duration, Instant};

use tollgate::app::Mode;
use tollgate::store::{Db, Store};
use tollgate_fakes::atlassian::connect::{InstallKeyServer, TEST_KEY_1};
use tollgate_fakes::atlassian::{FakeAtlassian, FakeUser, World};
use tollgate_fakes::slapd;

#[path = "support/app.rs"]
mod app;
#[path = "support/rss.rs"]
mod rss;

#[path = "support/knob.rs"]
mod knob;
use knob::knob;

fn uid(i: usize) -> String {
    format!("j{i:06}")
}

const CATALOG: &str = r#"
resources:
  - id: eng-tools
    name: Engineering tools
    owner: { user: ceo@example.com }
    permanent_allowed: true
    grants:
      - idp_group: eng-tools
      - jira_project_role: { project: FIN, role: Administrators }
"#;

const BIRTHRIGHT: &str = r#"
birthright:
  - id: engineering
    when: person.department == "ENG"
    grants:
      - { resource: eng-tools }
"#;

fn workflows() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let intake = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/intake.yaml");
    std::fs::copy(intake, dir.path().join("intake.yaml")).expect("intake");
    for (name, text) in [
        ("catalog.yaml", CATALOG),
        ("birthright.yaml", BIRTHRIGHT),
        (
            "default.yaml",
            "workflow: default\napplies_to: { default: true }\nstages:\n  - name: manager\n    approvers: manager\n",
        ),
    ] {
        std::fs::write(dir.path().join(name), text).expect("workflow file");
    }
    dir
}

fn world(people: usize) -> World {
    let mut world = World::sample();
    for i in 0..people {
        world.users.push(FakeUser {
            account_id: format!("acc-{}", uid(i)),
            email: format!("{}@example.com", uid(i)),
            display_name: uid(i),
            active: true,
            email_visible: true,
        });
    }
    world
}

async fn count(store: &Store, sql: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match store.db() {
        Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or(0),
        Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or(0),
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    assert!(slapd::available(), "the joiners bench needs slapd");
    let people = knob("JOINERS_BENCH_PEOPLE", 1_000);
    let rate = knob("JOINERS_BENCH_RATE", 100) as u32;
    let dir = tempfile::tempdir().expect("dir");
    let (database, backend) = app::database(dir.path());
    let secret = app::secret_key();
    let mut ldif = slapd::seed(0);
    ldif.push('\n');
    ldif.push_str(&slapd::group("eng-tools", &["ceo"]));
    let ldap = slapd::Slapd::start(&ldif);
    let keys = InstallKeyServer::start().await.expect("key server");
    keys.publish("k1", TEST_KEY_1.1);
    let cloud = FakeAtlassian::start(world(people), Default::default())
        .await
        .expect("cloud");
    let workflows = workflows();
    let host = cloud.site_url().trim_start_matches("http://").to_string();
    let mut settings = ldap.settings();
    settings.extend([
        ("TOLLGATE_SECRET_KEY", secret),
        ("TOLLGATE_CONNECT_KEYS_URL", keys.url()),
        (
            "TOLLGATE_CONNECT_ALLOWED_SITES",
            tollgate_fakes::atlassian::connect::TEST_SITES.into(),
        ),
        (
            "TOLLGATE_WORKFLOWS_DIR",
            workflows.path().display().to_string(),
        ),
        ("TOLLGATE_LIFECYCLE_SITE", host),
        ("TOLLGATE_LIFECYCLE_SERVICE_DESK", "1".into()),
        ("TOLLGATE_LIFECYCLE_REQUEST_TYPE", "13".into()),
        // The wave is believed (the brake is another bench's matter) and synced once, here.
        ("TOLLGATE_IDP_LEAVER_BRAKE_MIN", "1000000".into()),
        ("TOLLGATE_IDP_SYNC_INTERVAL", "24h".into()),
        ("TOLLGATE_JOBS_CONCURRENCY", "32".into()),
        ("TOLLGATE_DATABASE_MAX_CONNECTIONS", "40".into()),
    ]);
    let running = app::run(app::config(&database, &settings), Mode::All).await;
    app::install(&running.url, &cloud).await;
    let state = running.app_state.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while state.org.index().is_none() {
        assert!(Instant::now() < deadline, "the first sync did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tollgate::engine::org_change::apply(&state)
        .await
        .expect("the first chart applied");
    let entries: Vec<String> = (0..people)
        .map(|i| slapd::person(&uid(i), Some("vp"), "Engineer", "ENG"))
        .collect();
    ldap.add(&entries).await;

    cloud.limit_rate(rate);
    let before = cloud.recorded().len();
    rss::reset_peak();
    let t0 = Instant::now();
    let connector = tollgate::idp::Connector::new(&state.config.idp.source, &state.store);
    tollgate::people::sync::sync(
        &state.store,
        &connector,
        &*state.clock,
        true,
        &tollgate::people::sync::Quiet,
    )
    .await
    .expect("sync");
    tollgate::engine::org_change::apply(&state)
        .await
        .expect("the wave applied");
    let synced = t0.elapsed();
    let active_sql = "SELECT COUNT(*) FROM requests WHERE run_id IS NOT NULL AND state = 'active'";
    let mut tickets_at = None;
    loop {
        let active = count(&state.store, active_sql).await;
        if tickets_at.is_none()
            && count(
                &state.store,
                "SELECT COUNT(*) FROM lifecycle_runs WHERE state = 'done'",
            )
            .await
                >= people as i64
        {
            tickets_at = Some(t0.elapsed());
        }
        if active >= people as i64 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3_600),
            "only {active} of {people} birthright grants active within an hour"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = t0.elapsed();
    let peak = rss::peak_rss_mb();
    running.stop().await;
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
        "{backend}: {people} joiners: sync and application {:.1} s; every run done (tickets \
         raised) at {:.1} s; every birthright grant active at {:.1} s",
        synced.as_secs_f64(),
        tickets_at.unwrap_or(elapsed).as_secs_f64(),
        elapsed.as_secs_f64(),
    );
    println!(
        "{backend}: {answered} Atlassian calls answered ({} tickets raised, {} user lookups, {} \
         project role writes) → floor {floor:.1} s at {rate}/s, {:.1}% over it; {} answered \
         429, {} sent during a back-off window; peak RSS {peak:.0} MiB",
        by("POST", "/rest/servicedeskapi/request"),
        by("GET", "/rest/api/3/user"),
        by("POST", "/rest/api/3/project/FIN/role"),
        (elapsed.as_secs_f64() / floor - 1.0) * 100.0,
        limit.throttled,
        limit.early,
    );
    let members = ldap.members("eng-tools").await.len();
    assert_eq!(members, people + 1, "every joiner is in the LDAP group");
}
