//! Finding Atlassian accounts in an organization of 100,000 (issue 23): the account index read
//! once with the sync, then what one access request costs in Admin API calls.
//!
//! One request resolves its filer (account → person), its approver and its subject (person →
//! account), and grants one product role. Before the index, each person whose match was not
//! stored cost a walk of the organization's whole user list (1,000 pages at 100 a page); now a
//! lookup is a local read, and a miss is one targeted query. Target: at most 3 Admin API calls
//! per request beyond the sync.
//!
//! `cargo bench --bench accounts`. Knobs: `ACCOUNTS_BENCH_PEOPLE` (default
//! 100,000), `ACCOUNTS_BENCH_REQUESTS` (default 200), `BENCH_DATABASE_URL` (an empty PostgreSQL
//! database; default a temporary SQLite file).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use tollgate::atlassian::client::AtlassianClient;
use tollgate::atlassian::{Atlassian, Credentials, Site};
use tollgate::clock::SystemClock;
use tollgate::config::{AtlassianConfig, DatabaseConfig, DatabaseUrl, Secret};
use tollgate::connect::descriptor::Descriptors;
use tollgate::orgchart::{AccountId, Email, OrgIndex, OrgSnapshot, Person, PersonId};
use tollgate::outbound::retry::RetryPolicy;
use tollgate::people::accounts;
use tollgate::store::Store;
use tollgate::workflow::products::Assignment;
use tollgate_fakes::atlassian::{FakeAtlassian, FakeKeys, FakeTenant, FakeUser, World};

#[path = "support/knob.rs"]
mod knob;
use knob::knob;

fn person(i: usize) -> Person {
    Person::new(
        PersonId(format!("00u{i:07}")),
        Email::parse(&format!("p{i:06}@acme.test")).unwrap_or_else(|e| panic!("{e}")),
        format!("Person {i}"),
    )
}

fn account(i: usize) -> String {
    format!("acc-{i:07}")
}

fn admin_calls(fake: &FakeAtlassian) -> usize {
    fake.recorded()
        .iter()
        .filter(|r| r.path.starts_with("/admin/"))
        .count()
}

async fn store() -> (Store, Option<tempfile::TempDir>) {
    let (url, dir) = match std::env::var("BENCH_DATABASE_URL") {
        Ok(url) => (DatabaseUrl::Postgres(url), None),
        Err(_) => {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let path = dir.path().join("bench.db");
            (
                DatabaseUrl::Sqlite(format!("sqlite://{}", path.display())),
                Some(dir),
            )
        }
    };
    let config = DatabaseConfig {
        url,
        max_connections: 4,
        connect_timeout: Duration::from_secs(10),
    };
    let store = Store::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
    (store, dir)
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let people = knob("ACCOUNTS_BENCH_PEOPLE", 100_000);
    let requests = knob("ACCOUNTS_BENCH_REQUESTS", 200);
    let mut world = World::sample();
    world.users = (0..people)
        .map(|i| FakeUser {
            account_id: account(i),
            email: format!("p{i:06}@acme.test"),
            display_name: format!("Person {i}"),
            active: true,
            // Hidden from apps, as most profiles are: only the organization's sources tell.
            email_visible: false,
        })
        .collect();
    let keys = FakeKeys {
        admin_api_key: Some("admin-key".into()),
        scim_key: None,
        site_admin: None,
    };
    let fake = FakeAtlassian::start(world, keys)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let descriptors = Descriptors::render("https://tollgate.example", "io.tollgate.access", None);
    fake.install(FakeTenant::from_descriptor(
        &descriptors.jira,
        "jira:acme",
        "jira-secret",
        "",
    ));
    let site = Site::connect(
        &tollgate::ids::TenantKey::parse("jira:acme").expect("a key"),
        "io.tollgate.access",
        b"jira-secret".to_vec(),
        &fake.site_url(),
    );
    let credentials = Credentials::from_config(&AtlassianConfig {
        api_url: fake.api_url(),
        org_id: Some("org-acme".into()),
        admin_api_key: Some(Secret::new("admin-key")),
        scim_directory_id: None,
        scim_api_key: None,
        site_admin_email: None,
        site_admin_token: None,
        cloud_id: Some("acme-cloud".into()),
        account_index_interval: Duration::from_secs(21_600),
        synced_groups: Vec::new(),
    });
    let policy = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(3),
    };
    let atlassian = Atlassian::new(Arc::new(AtlassianClient::new(policy, 8)), credentials);
    let (store, _dir) = store().await;
    let clock = SystemClock;
    let org = OrgIndex::build(OrgSnapshot {
        people: (0..people).map(person).collect(),
        groups: Vec::new(),
        departments: Vec::new(),
    });

    // With the sync: the whole list, once.
    let started = Instant::now();
    let read = accounts::refresh_index(&store, &atlassian, &clock, TimeDelta::hours(6))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let index_time = started.elapsed();
    let sync_calls = admin_calls(&fake);
    println!(
        "index: {read} accounts read in {:.2} s with {sync_calls} Admin API calls",
        index_time.as_secs_f64()
    );

    // Requests: filer → person, approver and subject → account, one product role granted.
    let role = Assignment {
        role: "atlassian/user".into(),
        resource: "ari:cloud:confluence::site/acme-cloud".into(),
    };
    let mut worst = 0;
    let mut total = 0;
    let started = Instant::now();
    for r in 0..requests {
        let (filer, approver) = ((r * 7_919) % people, (r * 104_729 + 1) % people);
        let before = admin_calls(&fake);
        let found = accounts::person_for_account(
            &store,
            &atlassian,
            &site,
            &org,
            &AccountId(account(filer)),
            &clock,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("filer {filer} not found"));
        for idx in [found, org.by_id(&person(approver).id).unwrap_or(found)] {
            let got = accounts::account_for(&store, &atlassian, &site, org.person(idx), &clock)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(got.is_some(), "every person has an account");
        }
        atlassian
            .set_product_role(&AccountId(account(filer)), &role, true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let calls = admin_calls(&fake) - before;
        worst = worst.max(calls);
        total += calls;
    }
    let per_request = started.elapsed() / requests.max(1) as u32;
    println!(
        "requests: {requests}, Admin API calls per request: at most {worst}, {:.2} on average \
         (the product role grant is one of them); {:.2} ms per request",
        total as f64 / requests.max(1) as f64,
        per_request.as_secs_f64() * 1_000.0
    );
    assert!(
        worst <= 3,
        "at most 3 Admin API calls per request, saw {worst}"
    );

    // A person the index has not seen yet (joined after the last read): one targeted query
    // (the site's user search here; the SCIM directory's filter where it is configured).
    let newcomer = people;
    fake.world().users.push(FakeUser {
        account_id: account(newcomer),
        email: format!("p{newcomer:06}@acme.test"),
        display_name: "Newcomer".into(),
        active: true,
        email_visible: true,
    });
    let (before_admin, before_all) = (admin_calls(&fake), fake.recorded().len());
    let got = accounts::account_for(&store, &atlassian, &site, &person(newcomer), &clock)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "a miss: found {:?} with {} Admin API calls and {} calls in all",
        got.map(|a| a.0),
        admin_calls(&fake) - before_admin,
        fake.recorded().len() - before_all
    );
}
