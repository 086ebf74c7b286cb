//! Signed `jira:issue_created` webhooks (≈2 KB, a unique `X-Atlassian-Webhook-Identifier` each)
//! driven at the real server over loopback with 32 connections by `wrk`, beside the same run's
//! plain `GET /healthz` rate as the ceiling.
//!
//! `cargo bench --bench webhooks` runs it on SQLite, and on PostgreSQL too when
//! `TEST_DATABASE_URL` names a server. Needs `wrk` (Debian package `wrk`).

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tollgate_fakes::atlassian::connect::{FakeSite, InstallKeyServer, TEST_KEY_1, issue_created};
use tollgate_fakes::atlassian::{FakeAtlassian, World};

const BASE_URL: &str = "https://tollgate.bench";
const CONNECTIONS: &str = "32";
const SECONDS: &str = "15";
/// More tokens than a run sends (about 6,000 a second at most here), so none is used twice.
const TOKENS: usize = 150_000;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs wrk and returns its report.
fn wrk(url: &str, script: Option<&std::path::Path>) -> String {
    let mut command = Command::new("wrk");
    command.args([
        "-t2",
        "-c",
        CONNECTIONS,
        "-d",
        &format!("{SECONDS}s"),
        "--latency",
    ]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command
        .arg(url)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn line<'a>(report: &'a str, prefix: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .map(str::trim)
        .unwrap_or("?")
}

async fn run(
    name: &str,
    database_url: &str,
    keys: &InstallKeyServer,
    cloud: &FakeAtlassian,
    worker: bool,
) {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = tollgate::secrets::SecretKey::generate()
        .expect("key")
        .to_base64();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    command.arg("serve");
    if !worker {
        command.arg("--no-worker");
    }
    let child = command
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("TOLLGATE_BIND", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_BASE_URL", BASE_URL)
        .env("TOLLGATE_CONNECT_KEYS_URL", keys.url())
        .env(
            "TOLLGATE_CONNECT_ALLOWED_SITES",
            tollgate_fakes::atlassian::connect::TEST_SITES,
        )
        .env("TOLLGATE_SECRET_KEY", &key)
        .env("TOLLGATE_LOG", "warn")
        .env(
            "TOLLGATE_WORKFLOWS_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/workflows"),
        )
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("tollgate starts");
    let server = Server(child);
    let app = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(format!("{app}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The site lives in the fake cloud, so the worker's calls back (re-reading the ticket) are
    // answered as Jira would.
    let site = FakeSite::jira(&app, "bench.atlassian.net", "bench-key").at(&cloud.site_url());
    let descriptor = site.descriptor().await.expect("descriptor");
    cloud.install(site.fake_tenant(&descriptor));
    let installed = site.install().await.expect("install sent");
    assert_eq!(installed.status(), 204, "install failed");

    let path = "/connect/webhooks/issue-created";
    // One token carries one body (a token seen again with the same body is the same delivery),
    // so each request takes its own from a list written beforehand (wrk's Lua cannot sign).
    // The two threads take alternate tokens.
    let tokens = site.hs256_tokens("POST", path, TOKENS);
    let tokens_path = dir.path().join("tokens.txt");
    std::fs::write(&tokens_path, tokens.join("\n")).expect("tokens written");
    let body = issue_created("IT-1", "557058:bench").to_string();
    let script_path = dir.path().join("webhooks.lua");
    let mut script = std::fs::File::create(&script_path).expect("script");
    write!(
        script,
        "local threads = 0\n\
         setup = function(thread)\n  thread:set(\"tid\", threads)\n  threads = threads + 1\nend\n\
         init = function()\n  tokens = {{}}\n  for line in io.lines({tokens:?}) do tokens[#tokens + 1] = line end\n\
           counter = tid\nend\n\
         wrk.method = \"POST\"\nwrk.body = {body:?}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
         request = function()\n  counter = counter + 2\n  \
         local token = tokens[(counter % #tokens) + 1]\n  \
         wrk.headers[\"Authorization\"] = \"JWT \" .. token\n  \
         wrk.headers[\"X-Atlassian-Webhook-Identifier\"] = tid .. \"-\" .. counter\n  \
         return wrk.format()\nend\n\
         response = function(status)\n  if status ~= 204 then print(\"status \" .. status) os.exit(1) end\nend\n",
        tokens = tokens_path.display().to_string(),
    )
    .expect("script written");
    drop(script);

    let webhooks = wrk(&format!("{app}{path}"), Some(&script_path));
    let rss_after_webhooks = rss_mib(server.0.id());
    let health = wrk(&format!("{app}/healthz"), None);
    println!(
        "== {name}, {} ==",
        if worker {
            "with the job worker draining the queue"
        } else {
            "web only (--no-worker)"
        }
    );
    println!(
        "webhooks:  {}  {}",
        line(&webhooks, "Requests/sec:"),
        line(&webhooks, "Non-2xx")
    );
    for p in ["50%", "90%", "99%"] {
        println!("  latency {p}: {}", line(&webhooks, p));
    }
    let sent = webhooks
        .lines()
        .find(|l| l.contains("requests in"))
        .map_or("?", str::trim);
    println!("  {sent} (each with its own token; {TOKENS} were made)");
    println!("  server RSS after the webhook run: {rss_after_webhooks:.1} MiB");
    println!("healthz:   {}", line(&health, "Requests/sec:"));
    println!("  latency 99%: {}", line(&health, "99%"));
    drop(server);
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let keys = InstallKeyServer::start().await.expect("key server");
    keys.publish("bench-key", TEST_KEY_1.1);
    let cloud = FakeAtlassian::start(World::sample(), Default::default())
        .await
        .expect("fake cloud");
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    for worker in [true, false] {
        let sqlite = format!("{sqlite}-{worker}");
        run(
            "SQLite (WAL, synchronous=NORMAL)",
            &sqlite,
            &keys,
            &cloud,
            worker,
        )
        .await;
    }
    if let Ok(admin) = std::env::var("TEST_DATABASE_URL") {
        use sqlx::Connection;
        let name = format!("tollgate_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("postgres");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create database");
        let url = format!(
            "{}/{name}",
            admin
                .rsplit_once('/')
                .map_or(admin.as_str(), |(base, _)| base)
        );
        for worker in [true, false] {
            run(
                "PostgreSQL (synchronous_commit=on)",
                &url,
                &keys,
                &cloud,
                worker,
            )
            .await;
        }
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}
