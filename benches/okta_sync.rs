//! Org sync from the Okta fake: 100,000 people and 10,000 groups of 20 members (issue 9).
//!
//! The fake runs in a child process (this binary again, with `OKTA_FAKE_SERVE=1`), so the
//! peak RSS measured is the sync's alone and the fake's serving time is its own. Two runs:
//! 1. rate limits raised out of the way, 8 requests in flight: wall time, peak RSS, and the
//!    time the fake spent answering (target ≤ 30 s, ≤ 300 MB);
//! 2. Okta's default-like limits (users 600/min, groups 500/min, one group and below
//!    1000/min): wall time, 429s answered, and calls made after a 429 before its reset.
//!
//! `cargo bench --bench okta_sync`. Knobs: `OKTA_BENCH_PEOPLE`,
//! `OKTA_BENCH_GROUPS`, `OKTA_BENCH_LIMITED=0` (skip run 2, which takes ~20 minutes at full
//! scale), `BENCH_DATABASE_URL` (an empty PostgreSQL database; default a temporary SQLite file).

use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/rss.rs"]
mod rss;
use rss::{peak_rss_mb, reset_peak};
use tollgate::clock::SystemClock;
use tollgate::config::{DatabaseConfig, DatabaseUrl, Secret};
use tollgate::idp::okta::{ManagerSource, OktaAuth, OktaConfig, OktaDirectory};
use tollgate::people::sync::{self, Progress};
use tollgate::store::Store;
use tollgate_fakes::harness::FakeServer;
use tollgate_fakes::okta::FakeOkta;

const TOKEN: &str = "bench-token";
const MEMBERS: usize = 20;

#[path = "support/knob.rs"]
mod knob;
use knob::knob;

/// The child: seeds the org, prints its address, answers `stats` on stdin, stops at EOF.
async fn serve_fake(people: usize, groups: usize, limited: bool) {
    let mut okta = FakeOkta::new().api_token(TOKEN);
    if limited {
        okta = okta.default_like_limits();
    }
    let mut ids: Vec<String> = Vec::with_capacity(people);
    for i in 0..people {
        // A tree: person i reports to person (i - 1) / 10.
        let manager = (i > 0).then(|| ids[(i - 1) / 10].clone());
        let id = okta.add_user(
            &format!("p{i:06}@acme.test"),
            &format!("Person {i}"),
            manager.as_deref(),
            if i % 10 == 0 { "Manager" } else { "Engineer" },
        );
        ids.push(id);
    }
    for g in 0..groups {
        let members: Vec<&str> = (0..MEMBERS)
            .map(|j| ids[(g * 7919 + j * 104_729) % people].as_str())
            .collect();
        let id = okta.add_group(&format!("group-{g:05}"), "OKTA_GROUP", &members);
        if let Some(group) = okta.groups.get_mut(&id) {
            group.owners = vec![ids[g % people].clone()];
        }
    }
    let server = FakeServer::start(okta).await.expect("fake Okta");
    println!("{}", server.url());
    let _ = std::io::stdout().flush();
    let asked = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    });
    let _ = asked.await;
    let counters = server.vendor().counters.clone();
    let requests = server.recorded().len();
    println!(
        "{} {} {} {}",
        server.serving_time().as_millis(),
        requests,
        counters.throttled,
        counters.early
    );
    let _ = std::io::stdout().flush();
}

struct Fake {
    child: Child,
    url: String,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Fake {
    fn spawn(people: usize, groups: usize, limited: bool) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .env("OKTA_FAKE_SERVE", "1")
            .env("OKTA_FAKE_LIMITED", if limited { "1" } else { "0" })
            .env("OKTA_BENCH_PEOPLE", people.to_string())
            .env("OKTA_BENCH_GROUPS", groups.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("fake process");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let url = lines
            .next()
            .and_then(Result::ok)
            .expect("the fake's address");
        Self { child, url, lines }
    }

    /// Serving time, requests, 429s answered, calls before an announced reset.
    fn stats(mut self) -> (Duration, usize, usize, usize) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = writeln!(stdin, "stats");
        }
        let line = self.lines.next().and_then(Result::ok).unwrap_or_default();
        let numbers: Vec<u64> = line
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let _ = self.child.kill();
        let _ = self.child.wait();
        (
            Duration::from_millis(numbers.first().copied().unwrap_or(0)),
            numbers.get(1).copied().unwrap_or(0) as usize,
            numbers.get(2).copied().unwrap_or(0) as usize,
            numbers.get(3).copied().unwrap_or(0) as usize,
        )
    }
}

/// When the people were all read and when the last group page was staged, for the report.
struct Phases {
    started: Instant,
    people: usize,
    people_read: std::sync::Mutex<Option<Duration>>,
    pages_read: std::sync::Mutex<Option<Duration>>,
    groups: usize,
}

impl Progress for Phases {
    fn page(&self, _: i64, people: usize, groups: usize) {
        let at = self.started.elapsed();
        if people >= self.people {
            self.people_read.lock().expect("lock").get_or_insert(at);
        }
        if groups >= self.groups {
            self.pages_read.lock().expect("lock").get_or_insert(at);
        }
    }
}

async fn store(dir: &std::path::Path, name: &str) -> Store {
    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/{name}.db", dir.display()));
    let store = Store::connect(&DatabaseConfig {
        url: DatabaseUrl::parse(&url).expect("database URL"),
        max_connections: 5,
        connect_timeout: Duration::from_secs(10),
    })
    .await
    .expect("database");
    store.migrate().await.expect("migrate");
    store
}

async fn run(dir: &std::path::Path, people: usize, groups: usize, limited: bool) {
    let started = Instant::now();
    let fake = Fake::spawn(people, groups, limited);
    let seeded = started.elapsed();
    let store = store(dir, if limited { "limited" } else { "open" }).await;
    let directory = OktaDirectory::new(OktaConfig {
        url: fake.url.clone(),
        auth: OktaAuth::ApiToken(Secret::new(TOKEN)),
        manager: ManagerSource::ManagerId,
        page_size: 200,
        concurrency: 8,
        hook_secret: None,
    });
    reset_peak();
    let base = peak_rss_mb();
    let started = Instant::now();
    let phases = Phases {
        started,
        people,
        groups,
        people_read: Default::default(),
        pages_read: Default::default(),
    };
    let report = sync::sync(&store, &directory, &SystemClock, true, &phases)
        .await
        .expect("full sync");
    let wall = started.elapsed();
    let peak = peak_rss_mb();
    let (serving, requests, throttled, early) = fake.stats();
    assert_eq!(report.people, people);
    assert_eq!(report.groups, groups);
    println!(
        "{}: {people} people, {groups} groups × {MEMBERS} (fake seeded in {:.1} s)",
        if limited {
            "default-like limits"
        } else {
            "limits out of the way"
        },
        seeded.as_secs_f64()
    );
    println!(
        "  full sync {:.1} s wall, peak RSS {peak:.0} MiB (before: {base:.0} MiB), {requests} requests",
        wall.as_secs_f64()
    );
    let at = |m: &std::sync::Mutex<Option<Duration>>| {
        m.lock().expect("lock").map_or(0.0, |d| d.as_secs_f64())
    };
    println!(
        "  people read and staged at {:.1} s, groups at {:.1} s, snapshot written at {:.1} s",
        at(&phases.people_read),
        at(&phases.pages_read),
        wall.as_secs_f64()
    );
    println!(
        "  the fake's own serving time {:.1} s; 429s answered {throttled}, calls before an announced reset {early}",
        serving.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let people = knob("OKTA_BENCH_PEOPLE", 100_000);
    let groups = knob("OKTA_BENCH_GROUPS", 10_000);
    if std::env::var("OKTA_FAKE_SERVE").is_ok() {
        serve_fake(
            people,
            groups,
            std::env::var("OKTA_FAKE_LIMITED").as_deref() == Ok("1"),
        )
        .await;
        return;
    }
    let dir = std::env::temp_dir().join(format!("tollgate-okta-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    run(&dir, people, groups, false).await;
    if knob("OKTA_BENCH_LIMITED", 1) == 1 {
        run(&dir, people, groups, true).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
