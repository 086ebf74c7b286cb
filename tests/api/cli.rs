//! The real `tollgate` binary: start-up failures, migrations, and a scheduled job surviving
//! `kill -9` and a restart.

use std::process::Stdio;
use std::time::Duration;

use tollgate::app::{Application, Mode};
use tollgate::store::selfcheck;

use crate::support::process::{Running, free_port, running, tollgate, wait_ready};
use crate::support::{TestDatabase, eventually, init, test_config, test_secret_key};

#[test]
fn help_describes_the_commands() {
    let output = tollgate(&[]).arg("--help").output().expect("runs");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for command in ["serve", "worker", "migrate", "--config"] {
        assert!(text.contains(command), "--help lacks {command}: {text}");
    }
    let output = tollgate(&[])
        .args(["serve", "--help"])
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&output.stdout).contains("--no-worker"));
}

#[test]
fn an_unsupported_database_url_fails_fast_naming_the_setting() {
    let output = tollgate(&[("DATABASE_URL", "mysql://localhost/x")])
        .arg("serve")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

#[test]
fn an_unreachable_database_fails_fast() {
    let started = std::time::Instant::now();
    let output = tollgate(&[
        ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
        ("TOLLGATE_SECRET_KEY", &test_secret_key()),
        ("TOLLGATE_DATABASE_CONNECT_TIMEOUT", "2s"),
    ])
    .arg("serve")
    .output()
    .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot open the database"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn postgres_without_a_secret_key_refuses_to_start() {
    let output = tollgate(&[("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")])
        .arg("serve")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TOLLGATE_SECRET_KEY is required"),
        "{stderr}"
    );
}

#[test]
fn a_bad_bind_address_fails_fast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let output = tollgate(&[("DATABASE_URL", &db), ("TOLLGATE_BIND", "not-an-address")])
        .arg("serve")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("TOLLGATE_BIND"));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let output = tollgate(&[("DATABASE_URL", &db), ("TOLLGATE_BIND", &addr)])
        .arg("serve")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Said once, in plain text: stderr is a pipe here.
    assert_eq!(stderr.matches("cannot listen on").count(), 1, "{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr}");

    // With JSON logs, the failure is one more JSON line, and still said once.
    let output = tollgate(&[
        ("DATABASE_URL", &db),
        ("TOLLGATE_BIND", &addr),
        ("TOLLGATE_LOG_FORMAT", "json"),
    ])
    .arg("serve")
    .output()
    .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("cannot listen on").count(), 1, "{stderr}");
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON line: {line}");
    }
}

/// `serve`'s log written to a file has no terminal escape sequences, whatever `NO_COLOR` says.
#[tokio::test]
async fn a_log_written_to_a_file_is_plain_text() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let port = free_port();
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = tollgate(&[
        ("DATABASE_URL", &db),
        ("TOLLGATE_BIND", &format!("127.0.0.1:{port}")),
        ("TOLLGATE_LOG", "debug"),
    ])
    .arg("serve")
    .stdout(Stdio::null())
    .stderr(log)
    .spawn()
    .expect("starts");
    let running = Running(child);
    wait_ready(port).await;
    drop(running);
    let text = std::fs::read_to_string(&log_path).expect("read log");
    assert!(text.lines().count() > 3, "{text}");
    assert!(
        !text.contains('\x1b'),
        "escape sequences in a log file: {text}"
    );
}

#[test]
fn migrate_brings_a_fresh_sqlite_database_up_to_date_and_generates_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fresh.db");
    let db = format!("sqlite://{}", path.display());
    for _ in 0..2 {
        let output = tollgate(&[("DATABASE_URL", &db)])
            .arg("migrate")
            .output()
            .expect("runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains("up to date"));
    }
    assert!(path.exists());
}

/// The binary running `command` with `envs`, killed (SIGKILL) when dropped.
/// Waits until the self-check job `id` has recorded its run.
async fn self_check_ran(
    store: &tollgate::store::Store,
    id: uuid::Uuid,
) -> Option<selfcheck::SelfCheck> {
    eventually(Duration::from_secs(90), || async {
        selfcheck::get(store, id)
            .await
            .expect("read")
            .filter(|c| c.ran_at.is_some())
    })
    .await
}

/// A job scheduled for the future survives `kill -9` of the process that would have run it.
#[tokio::test]
async fn a_scheduled_job_survives_kill_9_and_a_restart() {
    init();
    let db = TestDatabase::create().await;
    let key = test_secret_key();
    let port = free_port();
    let port_text = port.to_string();
    let bind = format!("127.0.0.1:{port_text}");
    let mut envs: Vec<(&str, &str)> = vec![
        ("DATABASE_URL", db.url()),
        ("TOLLGATE_BIND", &bind),
        ("TOLLGATE_JOBS_POLL_INTERVAL", "200ms"),
        ("TOLLGATE_LOG", "warn"),
    ];
    if db.is_postgres() {
        envs.push(("TOLLGATE_SECRET_KEY", &key));
    }

    let first = running(&envs, "serve");
    wait_ready(port).await;

    // Schedule through the library against the same database, as the engine would; this
    // second instance is built but never run, so it only writes.
    let scheduler = Application::build(
        test_config(&db, &[("TOLLGATE_SECRET_KEY", &key)]),
        Mode::WebOnly,
    )
    .await
    .expect("builds");
    let state = scheduler.state().clone();
    let store = state.store.clone();
    let id = tollgate::worker::schedule_self_check(&state, Duration::from_secs(4))
        .await
        .expect("scheduled");

    // SIGKILL: no graceful anything.
    drop(first);
    let row = selfcheck::get(&store, id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(
        row.ran_at, None,
        "the job must not have run before its time"
    );

    let _second = running(&envs, "serve");
    let ran = self_check_ran(&store, id)
        .await
        .expect("the job ran after the restart");
    assert_eq!(ran.runs, 1);
    assert!(
        ran.ran_at.expect("ran") >= ran.due_at,
        "ran before it was due"
    );
    store.close().await;
}

/// Runs one SQL statement on the SQLite database at `path` (what an earlier release, or a
/// state the test needs, left there).
fn execute_sql(path: &std::path::Path, sql: &str) {
    let conn = format!("sqlite://{}?mode=rw", path.display());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        use sqlx::ConnectOptions;
        let mut c = conn
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .expect("url")
            .connect()
            .await
            .expect("open");
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .expect("executed");
    });
}

/// Runs the binary with `args`: whether it succeeded, its stdout and its stderr.
fn run_cli(envs: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let output = tollgate(envs).args(args).output().expect("runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// `tollgate org unmatched` and `tollgate org remap` on a database: a grant whose person id the
/// org chart no longer has is listed, a dry run shows the remap by email and changes nothing,
/// and the remap gives the grant its person back.
#[test]
fn org_unmatched_and_remap_find_people_again_by_email() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("remap.db");
    let db = format!("sqlite://{}", path.display());
    std::fs::write(
        dir.path().join("org.yaml"),
        "people:\n  - { id: p-erin, email: erin@example.com, name: Erin }\n",
    )
    .expect("org.yaml");
    let org = dir.path().join("org.yaml").display().to_string();
    let envs = [
        ("DATABASE_URL", db.as_str()),
        ("TOLLGATE_IDP_FILE", org.as_str()),
    ];
    let run = |args: &[&str]| run_cli(&envs, args);
    let (ok, _, err) = run(&["org", "unmatched"]);
    assert!(!ok && err.contains("no org chart has been synced"), "{err}");
    let (ok, _, err) = run(&["org", "sync", "--full"]);
    assert!(ok, "{err}");
    // An active grant of Erin's as an earlier source knew her (another id).
    execute_sql(
        &path,
        "INSERT INTO requests (id, tenant, ticket_key, issue_id, state, requester_account, \
         requester_email, version, created_at, updated_at, subject_person) VALUES \
         ('0193a6d2-0000-7000-8000-000000000001', 'jira:acme', 'IT-1', '1', 'active', 'acc', 'erin@example.com', 1, \
         '2026-12-01T09:00:00Z', '2026-12-01T09:00:00Z', 'uid=erin')",
    );
    let (ok, out, err) = run(&["org", "unmatched"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("IT-1 (active): person uid=erin is gone <erin@example.com>"),
        "{out}"
    );
    let (ok, out, err) = run(&["org", "remap", "--dry-run"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("IT-1 <erin@example.com>: uid=erin -> p-erin"),
        "{out}"
    );
    assert!(out.contains("would remap 1 requests"), "{out}");
    let (_, out, _) = run(&["org", "unmatched"]);
    assert!(out.contains("IT-1"), "a dry run changes nothing: {out}");
    let (ok, out, err) = run(&["org", "remap", "--by", "ana"]);
    assert!(ok && out.contains("remapped 1 requests"), "{out}{err}");
    let (_, out, _) = run(&["org", "unmatched"]);
    assert!(
        out.contains("every open request and grant names a person"),
        "{out}"
    );
}

/// `tollgate events list --dead` shows a dead event with why; `tollgate events retry --all`
/// queues it for the worker; an id that is not dead is a clear error.
#[test]
fn dead_events_are_listed_and_retried_from_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    let db = format!("sqlite://{}", path.display());
    let envs = [("DATABASE_URL", db.as_str())];
    let run = |args: &[&str]| run_cli(&envs, args);
    let (ok, out, err) = run(&["events", "list", "--dead"]);
    assert!(ok && out.contains("no dead events"), "{out}{err}");
    let id = "0193a6d2-0000-7000-8000-0000000000e1";
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        use sqlx::ConnectOptions;
        let mut c = format!("sqlite://{}?mode=rw", path.display())
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .expect("url")
            .connect()
            .await
            .expect("open");
        sqlx::query(
            "INSERT INTO inbound_events (id, tenant, ingress, delivery_id, event_type, payload, \
             received_at, attempts, last_error, dead_at) VALUES ($1, 'jira:acme', 'connect', \
             'd-1', 'jira:issue_created', '{}', '2026-12-01T09:00:00Z', 3, \
             'cannot be processed: not allowed', '2026-12-01T10:00:00Z')",
        )
        .bind(uuid::Uuid::parse_str(id).expect("uuid"))
        .execute(&mut c)
        .await
        .expect("insert");
    });
    let (ok, out, err) = run(&["events", "list", "--dead"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(id) && out.contains("cannot be processed: not allowed"),
        "{out}"
    );
    let (ok, _, err) = run(&["events", "retry", "0193a6d2-0000-7000-8000-0000000000ff"]);
    assert!(
        !ok && err.contains("is not a dead event or notice"),
        "{err}"
    );
    let (ok, out, err) = run(&["events", "retry", "--all"]);
    assert!(
        ok && out.contains("queued 1 events and 0 ticket notices"),
        "{out}{err}"
    );
    let (_, out, _) = run(&["events", "list", "--dead"]);
    assert!(out.contains("no dead events"), "{out}");
}

/// The self-check job `id`'s queue row: its status and the worker holding it.
async fn job_row(
    store: &tollgate::store::Store,
    id: uuid::Uuid,
) -> Option<(String, Option<String>)> {
    let key = format!("self_check:{id}");
    match store.db() {
        tollgate::store::Db::Sqlite(pool) => {
            sqlx::query_as("SELECT status, lock_by FROM Jobs WHERE idempotency_key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await
        }
        tollgate::store::Db::Postgres(pool) => {
            sqlx::query_as("SELECT status, lock_by FROM apalis.jobs WHERE idempotency_key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await
        }
    }
    .expect("read the queue")
}

/// The environment of a `tollgate worker` on `db` (quick polls, no periodic sync in the
/// way), with `extra` on top.
fn worker_envs<'a>(
    db: &'a TestDatabase,
    key: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut envs = vec![
        ("DATABASE_URL", db.url()),
        ("TOLLGATE_SECRET_KEY", key),
        ("TOLLGATE_JOBS_POLL_INTERVAL", "200ms"),
        ("TOLLGATE_LOG", "warn"),
        ("TOLLGATE_IDP_SYNC_INTERVAL", "24h"),
    ];
    envs.extend_from_slice(extra);
    envs
}

/// An app on `db` built only to schedule jobs (never run: the worker processes run them).
async fn scheduler_on(db: &TestDatabase, key: &str) -> Application {
    Application::build(
        test_config(db, &[("TOLLGATE_SECRET_KEY", key)]),
        Mode::WebOnly,
    )
    .await
    .expect("builds")
}

/// A worker stopped gracefully (SIGTERM) while a job runs past its shutdown timeout hands the
/// job back at once: it is queued again when the process exits (its heartbeat, 30 s, would
/// take a minute), and the next worker runs it to its end once.
#[tokio::test]
async fn a_stopping_worker_hands_its_unfinished_jobs_back() {
    init();
    let db = TestDatabase::create().await;
    let key = test_secret_key();
    let envs = worker_envs(
        &db,
        &key,
        &[
            ("TOLLGATE_JOBS_HEARTBEAT", "30s"),
            ("TOLLGATE_SERVER_SHUTDOWN_TIMEOUT", "1s"),
        ],
    );
    let scheduler = scheduler_on(&db, &key).await;
    let state = scheduler.state().clone();
    let store = state.store.clone();
    let mut first = running(&envs, "worker");
    let id = tollgate::worker::schedule_self_check_holding(
        &state,
        Duration::ZERO,
        Duration::from_secs(8),
    )
    .await
    .expect("scheduled");
    let claimed = eventually(Duration::from_secs(30), || async {
        job_row(&store, id)
            .await
            .filter(|(status, _)| status == "Running")
    })
    .await;
    assert!(claimed.is_some(), "the first worker runs the job");
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &first.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let exited = first.0.wait().expect("wait");
    assert!(exited.success(), "a graceful stop exits 0: {exited:?}");
    let row = job_row(&store, id).await;
    assert_eq!(row, Some(("Pending".to_string(), None)), "handed back");
    let _second = running(&envs, "worker");
    let ran = self_check_ran(&store, id)
        .await
        .expect("the next worker ran it");
    assert_eq!(ran.runs, 1, "run to its end once");
    store.close().await;
}

/// A job still running when its worker is killed (`kill -9`) is taken over by another worker
/// once the dead one misses two heartbeats (`TOLLGATE_JOBS_HEARTBEAT`, 1 s here), and runs to
/// its end once. How long the takeover takes is printed (the figure is a measurement, not a
/// limit: see docs/benchmarks.md).
#[tokio::test]
async fn a_job_running_when_its_worker_dies_is_taken_over() {
    init();
    let db = TestDatabase::create().await;
    let key = test_secret_key();
    let envs = worker_envs(&db, &key, &[("TOLLGATE_JOBS_HEARTBEAT", "1s")]);
    let scheduler = scheduler_on(&db, &key).await;
    let state = scheduler.state().clone();
    let store = state.store.clone();
    let first = running(&envs, "worker");
    // Long enough that it is still running when its worker dies.
    let id = tollgate::worker::schedule_self_check_holding(
        &state,
        Duration::from_millis(500),
        Duration::from_secs(4),
    )
    .await
    .expect("scheduled");
    let claimed = eventually(Duration::from_secs(30), || async {
        job_row(&store, id).await.filter(|(_, by)| by.is_some())
    })
    .await;
    assert!(claimed.is_some(), "the first worker took the job");
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(first);
    let killed = std::time::Instant::now();
    let _second = running(&envs, "worker");
    let ran = self_check_ran(&store, id)
        .await
        .expect("another worker took the job over");
    assert_eq!(ran.runs, 1, "run to its end once");
    println!(
        "takeover: the job finished {:.1} s after its worker was killed (4 s of it the job itself)",
        killed.elapsed().as_secs_f64()
    );
    store.close().await;
}

/// Every kind of stored secret (a Connect site's shared secret, one still in the format from
/// before keys had ids, a webhook source's secret and API token, a Forge system token) and
/// signed checkpoints, under the old key; a new key is put in front and `tollgate secrets
/// rotate` runs: the new key alone opens every secret, checkpoints verify while the old key is
/// kept at the end of the list (and say which key they need when it is not), and the service
/// on the rotated database takes the site's webhooks.
#[tokio::test]
async fn a_key_rotation_keeps_every_secret_readable_and_every_checkpoint_verifiable() {
    use tollgate::secrets::SecretKey;
    use tollgate_fakes::atlassian::connect::{FakeSite, InstallKeyServer, TEST_KEY_1};

    init();
    let keys = InstallKeyServer::start().await.expect("key server");
    keys.publish("k1", TEST_KEY_1.1);
    let cloud = tollgate_fakes::atlassian::FakeAtlassian::start(
        tollgate_fakes::atlassian::World::default(),
        Default::default(),
    )
    .await
    .expect("cloud");
    let db = TestDatabase::create().await;
    let old = SecretKey::generate().expect("key");
    let (old_text, keys_url) = (old.to_base64(), keys.url());
    let settings = |key: &str| {
        vec![
            ("TOLLGATE_SECRET_KEY".to_string(), key.to_string()),
            (
                "TOLLGATE_BASE_URL".into(),
                "https://tollgate.example.com".into(),
            ),
            ("TOLLGATE_CONNECT_KEYS_URL".into(), keys_url.clone()),
        ]
    };
    let spawn = |key: &str| {
        let settings = settings(key);
        let db = db.share();
        async move {
            let pairs: Vec<(&str, &str)> = settings
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            crate::support::spawn_app_on(
                db,
                Mode::All,
                &pairs,
                std::sync::Arc::new(tollgate::clock::SystemClock),
            )
            .await
        }
    };
    let app = spawn(&old_text).await;
    let site = FakeSite::jira(&app.url(""), "acme.atlassian.net", "k1").at(&cloud.site_url());
    let descriptor = site.descriptor().await.expect("descriptor");
    cloud.install(site.fake_tenant(&descriptor));
    assert_eq!(site.install().await.expect("install").status(), 204);
    let api = tollgate::jira_webhooks::ApiToken {
        email: "admin@acme.example".into(),
        token: tollgate::config::Secret::new("ATATT-api-token"),
    };
    let config = &app.state.config;
    tollgate::cli::webhook_source_add(
        config,
        "dc",
        "https://dc.atlassian.net",
        Some(api),
        &mut Vec::new(),
    )
    .await
    .expect("source");
    let store = app.state.store.clone();
    let forge_id = "ari:cloud:ecosystem::installation/1";
    let context = tollgate::store::forge::token_context(forge_id);
    let now = chrono::Utc::now();
    let mut tx = store.begin().await.expect("tx");
    tollgate::store::forge::insert_in(
        &mut tx,
        &tollgate::store::forge::Installation {
            installation_id: forge_id.into(),
            tenant: crate::support::tenant_key(forge_id),
            app_id: "app".into(),
            cloud_id: "cloud-1".into(),
            api_base_url: "https://api.atlassian.com/ex/jira/cloud-1".into(),
            system_token: Some(old.seal(b"forge-system-token", &context).expect("seal")),
            token_expires_at: Some(now + chrono::TimeDelta::hours(1)),
            installed_at: now,
            uninstalled_at: None,
        },
    )
    .await
    .expect("forge");
    tx.commit().await.expect("commit");
    // The Connect site's secret as the release before key ids wrote it.
    let legacy = format!(
        "UPDATE tenants SET shared_secret = 'v1:' || \
         substr(shared_secret, {}) WHERE client_key = $1",
        5 + old.newest_id().len()
    );
    tollgate::on_db!(store.db(), |pool| {
        sqlx::query(sqlx::AssertSqlSafe(legacy.clone()))
            .bind(&site.client_key)
            .execute(pool)
            .await
            .map(|_| ())
    })
    .expect("legacy");
    let checkpoint_key = tollgate::audit::checkpoint::CheckpointKey::derive(&old);
    tollgate::audit::checkpoint::write_heads(&store, &checkpoint_key, now)
        .await
        .expect("checkpoints");
    // Written here or by the service's own checkpoint job: under the old key either way.
    let count = "SELECT COUNT(*) FROM audit_checkpoints WHERE key_id = $1";
    let under_old: i64 = tollgate::on_db!(store.db(), |pool| {
        sqlx::query_scalar(count)
            .bind(old.newest_id())
            .fetch_one(pool)
            .await
    })
    .expect("count");
    assert!(under_old >= 2, "{under_old} checkpoints under the old key");
    app.stop().await;

    // A new key in front of the old, then the rotation.
    let both = old.with_new_key().expect("key");
    let new_only = SecretKey::from_base64(both.to_base64().split(',').next().expect("first"))
        .expect("new key");
    let run = |key: &str, args: &[&str]| {
        tollgate(&[("DATABASE_URL", db.url()), ("TOLLGATE_SECRET_KEY", key)])
            .args(args)
            .output()
            .expect("runs")
    };
    let rotated = run(&both.to_base64(), &["secrets", "rotate"]);
    let said = String::from_utf8_lossy(&rotated.stdout).to_string();
    assert!(
        rotated.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(
        said.contains("4 resealed, 0 already were, 0 could not be opened"),
        "{said}"
    );
    let again = run(&both.to_base64(), &["secrets", "rotate"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 resealed, 4 already were"));

    // The new key alone opens every stored secret.
    let store = crate::support::store(&db).await;
    let sealed: Vec<(String, String, String)> = tollgate::on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT 'tenant', client_key, shared_secret FROM tenants \
             UNION ALL SELECT 'forge', installation_id, system_token FROM forge_installations \
             UNION ALL SELECT 'api', tenant, api_token FROM webhook_sources",
        )
        .fetch_all(pool)
        .await
    })
    .expect("read");
    assert_eq!(sealed.len(), 4, "{sealed:?}");
    for (kind, id, value) in &sealed {
        let context = match kind.as_str() {
            "tenant" => tollgate::tenant::Tenant::secret_context(id),
            "forge" => tollgate::store::forge::token_context(id),
            _ => tollgate::store::webhook_sources::token_context(id),
        };
        assert!(
            new_only.unseal(value, &context).is_ok(),
            "{kind} {id} does not open"
        );
    }
    store.close().await;

    // Checkpoints: verified with the old key kept at the end; named when it is dropped.
    let verified = run(&both.to_base64(), &["audit", "verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let without_old = run(&new_only.to_base64(), &["audit", "verify"]);
    assert_eq!(without_old.status.code(), Some(1));
    let told = String::from_utf8_lossy(&without_old.stdout);
    assert!(
        told.contains(old.newest_id()) && told.contains("not in TOLLGATE_SECRET_KEY"),
        "{told}"
    );

    // The service on the rotated database: the site's webhook is taken (its secret opens).
    let app = spawn(&both.to_base64()).await;
    let mut site = site;
    site.app_url = app.url("").trim_end_matches('/').to_string();
    let response = site
        .send_webhook(
            "/connect/webhooks/issue-created",
            "d-1",
            &tollgate_fakes::atlassian::connect::issue_created("IT-1", "acc-1"),
        )
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
}

/// `tollgate lifecycle runs` lists a wave the joiner brake held and how to release it;
/// `tollgate lifecycle release` lets it go (once), and says so when nothing is held.
#[test]
fn a_held_joiner_wave_is_listed_and_released_from_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("runs.db");
    let db = format!("sqlite://{}", path.display());
    let envs = [("DATABASE_URL", db.as_str())];
    let run = |args: &[&str]| run_cli(&envs, args);
    let (ok, out, err) = run(&["lifecycle", "runs"]);
    assert!(ok && out.contains("no lifecycle runs"), "{out}{err}");
    execute_sql(
        &path,
        "INSERT INTO lifecycle_runs (id, person, email, name, event, version, state, \
         created_at, updated_at) VALUES \
         ('0193a6d2-0000-7000-8000-0000000000a1', 'uid=gina', 'gina@example.com', 'Gina Gray', \
         'joiner', 7, 'held', '2026-12-01T09:00:00Z', '2026-12-01T09:00:00Z')",
    );
    let (ok, out, err) = run(&["lifecycle", "runs", "--person", "gina@example.com"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(
            "joiner Gina Gray <gina@example.com> (snapshot 7), no ticket: held by the brake: \
             `tollgate lifecycle release 7`"
        ),
        "{out}"
    );
    let (ok, _, err) = run(&["lifecycle", "runs", "--person", "not an email"]);
    assert!(!ok && err.contains("--person"), "{err}");
    let (ok, _, err) = run(&["lifecycle", "release", "8"]);
    assert!(
        !ok && err.contains("no lifecycle runs are held for snapshot 8"),
        "{err}"
    );
    let (ok, out, err) = run(&["lifecycle", "release", "7", "--by", "ana"]);
    assert!(
        ok && out.contains("released 1 held runs of snapshot 7"),
        "{out}{err}"
    );
    let (_, out, _) = run(&["lifecycle", "runs"]);
    assert!(out.contains("(snapshot 7), no ticket: queued"), "{out}");
    let (ok, _, _) = run(&["lifecycle", "release", "7"]);
    assert!(!ok, "a wave is released once");
}

/// `tollgate report inactive` lists the cases as CSV (or JSON), `--open` only those still open;
/// an unknown format is refused.
#[test]
fn the_inactive_report_lists_cases_from_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("inactive.db");
    let db = format!("sqlite://{}", path.display());
    let envs = [("DATABASE_URL", db.as_str())];
    let run = |args: &[&str]| run_cli(&envs, args);
    let (ok, out, err) = run(&["report", "inactive"]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim_end(),
        "email,name,account,product,last_used,unused_days,action,state,ends_at,ticket,outcome,found_at"
    );
    for (id, product, state) in [
        ("a1", "confluence", "ended"),
        ("a2", "jira-software", "noticed"),
    ] {
        execute_sql(
            &path,
            &format!(
                "INSERT INTO inactive_cases (id, person, email, name, account, product, since, \
                 action, state, created_at, updated_at) VALUES \
                 ('0193a6d2-0000-7000-8000-0000000000{id}', 'uid=gina', 'gina@example.com', \
                 'Gina Gray', 'acc-gina', '{product}', '2026-01-05', 'end', '{state}', \
                 '2026-12-01T09:00:00Z', '2026-12-01T09:00:00Z')"
            ),
        );
    }
    let (ok, out, err) = run(&["report", "inactive", "--open"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[1].starts_with("gina@example.com,Gina Gray,acc-gina,jira-software,2026-01-05,"),
        "{out}"
    );
    assert!(lines[1].contains(",end,noticed,"), "{out}");
    let (ok, out, err) = run(&[
        "report",
        "inactive",
        "--format",
        "json",
        "--person",
        "gina@example.com",
    ]);
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{out}");
    let (ok, _, err) = run(&["report", "inactive", "--format", "xml"]);
    assert!(!ok && err.contains("csv or json"), "{err}");
}

/// `tollgate scim-push token issue|list|revoke`: the token is printed once with where to push,
/// stored sealed (the key file beside the SQLite database), listed without it, and revoked.
#[test]
fn scim_push_tokens_are_issued_listed_and_revoked_from_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("scim.db");
    let db = format!("sqlite://{}", path.display());
    let envs = [
        ("DATABASE_URL", db.as_str()),
        ("TOLLGATE_IDP_KIND", "scim_push"),
        ("TOLLGATE_BASE_URL", "https://tollgate.example.com"),
    ];
    let run = |args: &[&str]| run_cli(&envs, args);
    let (ok, out, err) = run(&[
        "scim-push",
        "token",
        "issue",
        "--name",
        "entra",
        "--by",
        "ana",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("SCIM base URL: https://tollgate.example.com/scim/v2"),
        "{out}"
    );
    let token = out
        .lines()
        .find(|l| l.starts_with("tgscim_"))
        .expect("the token is printed")
        .to_string();
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("token ").and_then(|r| r.split(' ').next()))
        .expect("its id")
        .to_string();
    let (ok, listed, err) = run(&["scim-push", "token", "list"]);
    assert!(ok, "{err}");
    assert!(listed.contains(&id) && listed.contains("entra"), "{listed}");
    assert!(!listed.contains(&token), "the token is never shown again");
    let raw = std::fs::read(&path).expect("the database file");
    assert!(
        !raw.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token is sealed at rest"
    );
    let (ok, out, err) = run(&["scim-push", "token", "revoke", &id, "--by", "ana"]);
    assert!(ok, "{err}");
    assert!(out.contains("revoked"), "{out}");
    let (ok, _, err) = run(&["scim-push", "token", "revoke", &id]);
    assert!(!ok, "a revoked token cannot be revoked again");
    assert!(err.contains("no active token"), "{err}");
    let (ok, _, err) = run(&["scim-push", "token", "issue", "--name", " "]);
    assert!(!ok);
    assert!(err.contains("needs a name"), "{err}");
}
