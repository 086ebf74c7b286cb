//! From a signed `jira:issue_created` webhook to the routing comment on the ticket, with the
//! fake Jira/JSM on loopback: 50 new requests a second for 20 seconds against the real app
//! (in this process, worker included), timing each ticket from its webhook being sent to its
//! first comment existing in the fake. Target (issue 7): p50 ≤ 100 ms, p99 ≤ 500 ms.
//!
//! `cargo bench --bench engine` runs it on SQLite; `BENCH_DATABASE_URL=postgres://…` (an empty
//! database) runs it on PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate::app::{Application, Mode};
use tollgate::clock::SystemClock;
use tollgate::config::Config;
use tollgate_fakes::atlassian::connect::{FakeSite, InstallKeyServer, TEST_KEY_1, issue_created};
use tollgate_fakes::atlassian::{FakeAtlassian, FakeUser, World};

const RATE: u64 = 50;
const SECONDS: u64 = 20;

fn world(tickets: usize) -> World {
    let mut world = World::sample();
    for (account, name) in [
        ("acc-erin", "Erin Evans"),
        ("acc-dan", "Dan Diaz"),
        ("acc-carol", "Carol Chen"),
    ] {
        world.users.push(FakeUser {
            account_id: account.into(),
            email: format!("{}@acme.example", name.to_lowercase().replace(' ', ".")),
            display_name: name.into(),
            active: true,
            email_visible: true,
        });
    }
    for i in 0..tickets {
        world.add_issue(&format!("IT-{}", 1000 + i), "acc-erin");
    }
    world
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let total = (RATE * SECONDS) as usize;
    let dir = tempfile::tempdir().expect("dir");
    let database = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db", dir.path().display()));
    let keys = InstallKeyServer::start().await.expect("key server");
    keys.publish("k1", TEST_KEY_1.1);
    let cloud = FakeAtlassian::start(world(total), Default::default())
        .await
        .expect("cloud");
    let keys_url = keys.url();
    let vars: Vec<(&str, String)> = vec![
        ("TOLLGATE_BIND", "127.0.0.1:0".into()),
        ("DATABASE_URL", database.clone()),
        (
            "TOLLGATE_SECRET_KEY",
            tollgate::secrets::SecretKey::generate()
                .expect("key")
                .to_base64(),
        ),
        ("TOLLGATE_CONNECT_KEYS_URL", keys_url),
        (
            "TOLLGATE_CONNECT_ALLOWED_SITES",
            tollgate_fakes::atlassian::connect::TEST_SITES.into(),
        ),
        ("TOLLGATE_BASE_URL", "https://tollgate.bench".into()),
        ("TOLLGATE_LOG", "warn".into()),
    ];
    let lookup = move |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let config = Config::from_sources(None, &lookup).expect("config");
    let app = Application::build_with_clock(config, Mode::All, Arc::new(SystemClock))
        .await
        .expect("app");
    let address = app.local_addr().expect("address");
    let state = app.state().clone();
    let shutdown = app.shutdown_handle();
    let running = tokio::spawn(app.run_until_stopped());

    let site = FakeSite::jira(&format!("http://{address}"), "acme.atlassian.net", "k1")
        .at(&cloud.site_url());
    let descriptor = site.descriptor().await.expect("descriptor");
    cloud.install(site.fake_tenant(&descriptor));
    assert_eq!(site.install().await.expect("install").status(), 204);
    while state.org.index().is_none() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let cloud = Arc::new(cloud);
    let started = Instant::now();
    let mut sends = Vec::with_capacity(total);
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    for i in 0..total {
        ticker.tick().await;
        let site = site.clone();
        let key = format!("IT-{}", 1000 + i);
        let cloud = cloud.clone();
        sends.push(tokio::spawn(async move {
            let sent = Instant::now();
            let body = issue_created(&key, "acc-erin");
            let response = site
                .send_webhook(
                    "/connect/webhooks/issue-created",
                    &format!("bench-{i}"),
                    &body,
                )
                .await
                .expect("sent");
            assert_eq!(response.status(), 204);
            loop {
                if !cloud.world().issues[&key].comments.is_empty() {
                    return sent.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for send in sends {
        latencies.push(send.await.expect("request"));
    }
    let wall = started.elapsed();
    latencies.sort();
    println!("database: {}", state.store.backend().as_str());
    println!(
        "{total} requests at {RATE}/s in {:.1} s: webhook → routing comment p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms (targets p50 ≤ 100 ms, p99 ≤ 500 ms)",
        wall.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.9).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
    shutdown.trigger();
    let _ = running.await;
}
