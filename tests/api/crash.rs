//! `kill -9` at random points while a burst of tickets is filed and approved, with grants in
//! flight: the real binary (one process; or two web replicas and two workers on PostgreSQL), a
//! real `slapd` as the IdP and the fake Jira. Jira retries a delivery that was not acknowledged,
//! as it does. Afterwards no acknowledged event is lost and nothing is doubled: each ticket has
//! one request, granted once, and each of Tollgate's comments once.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate::lifecycle::State;
use tollgate::store::requests;
use tollgate_fakes::atlassian::connect::{FakeSite, InstallKeyServer, TEST_KEY_1, issue_created};
use tollgate_fakes::atlassian::{FakeAtlassian, FakeKeys, FakeUser, World};
use tollgate_fakes::slapd;

use crate::support::database::postgres_admin_url;
use crate::support::process::{Running, free_port, running, wait_ready};
use crate::support::{
    TestDatabase, env, eventually, init, tenant_key, test_secret_key, ticket_key,
};

const TRIALS: usize = 10;
const TICKETS_PER_TRIAL: usize = 5;
const APPROVER: (&str, &str) = ("acc-dev", "Dev Dean");

const CATALOG: &str = r#"
resources:
  - id: crash-tools
    name: Crash tools
    owner: { user: ceo@example.com }
    default_duration: 7d
    grants:
      - idp_group: fin-tools
      - jira_project_role: { project: FIN, role: Administrators }
"#;

const WORKFLOW: &str = "workflow: default\napplies_to: { default: true }\nstages:\n  - name: manager\n    approvers: manager\n";

/// Person `n` of the burst: their directory uid, and their Atlassian account.
fn person(n: usize) -> (String, String) {
    (format!("p{n:06}"), format!("acc-p{n:06}"))
}

fn ticket(n: usize) -> String {
    format!("IT-{}", 1000 + n)
}

fn world() -> World {
    let mut world = World::sample();
    world.users.push(FakeUser {
        account_id: APPROVER.0.into(),
        email: "dev@example.com".into(),
        display_name: APPROVER.1.into(),
        active: true,
        email_visible: true,
    });
    for n in 0..TRIALS * TICKETS_PER_TRIAL {
        let (uid, account) = person(n);
        world.users.push(FakeUser {
            account_id: account.clone(),
            email: format!("{uid}@example.com"),
            display_name: format!("Person {n}"),
            active: true,
            email_visible: true,
        });
        let issue = world.add_issue(&ticket(n), &account);
        issue
            .custom
            .insert("customfield_10050".into(), json!({"value": "crash-tools"}));
        issue.custom.insert("customfield_10052".into(), json!("7d"));
    }
    world
}

/// Which processes run: one doing everything, or web replicas and workers apart.
#[derive(Clone, Copy, Debug)]
enum Shape {
    OneProcess,
    TwoReplicasTwoWorkers,
}

struct Cluster {
    envs: Vec<(String, String)>,
    /// (port, process) of each web replica; the one process serves jobs too.
    web: Vec<(u16, Running)>,
    workers: Vec<Running>,
    shape: Shape,
}

impl Cluster {
    fn start_web(envs: &[(String, String)], shape: Shape, port: u16) -> Running {
        let bind = format!("127.0.0.1:{port}");
        let mut pairs: Vec<(&str, &str)> =
            envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pairs.push(("TOLLGATE_BIND", &bind));
        let command = match shape {
            Shape::OneProcess => "serve",
            Shape::TwoReplicasTwoWorkers => "serve --no-worker",
        };
        running(&pairs, command)
    }

    fn start_worker(envs: &[(String, String)]) -> Running {
        let pairs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        running(&pairs, "worker")
    }

    async fn start(envs: Vec<(String, String)>, shape: Shape) -> Self {
        let replicas = match shape {
            Shape::OneProcess => 1,
            Shape::TwoReplicasTwoWorkers => 2,
        };
        let mut web = Vec::new();
        for _ in 0..replicas {
            let port = free_port();
            web.push((port, Self::start_web(&envs, shape, port)));
            wait_ready(port).await;
        }
        let workers = match shape {
            Shape::OneProcess => Vec::new(),
            Shape::TwoReplicasTwoWorkers => (0..2).map(|_| Self::start_worker(&envs)).collect(),
        };
        Self {
            envs,
            web,
            workers,
            shape,
        }
    }

    /// `kill -9` of the process doing the jobs (the one process, or worker `which`), and a
    /// restart of it.
    async fn kill_and_restart(&mut self, which: usize) {
        match self.shape {
            Shape::OneProcess => {
                let (port, process) = self.web.remove(0);
                drop(process);
                self.web
                    .insert(0, (port, Self::start_web(&self.envs, self.shape, port)));
                wait_ready(port).await;
            }
            Shape::TwoReplicasTwoWorkers => {
                let i = which % self.workers.len();
                let dead = std::mem::replace(&mut self.workers[i], Self::start_worker(&self.envs));
                drop(dead);
            }
        }
    }

    fn ports(&self) -> Vec<u16> {
        self.web.iter().map(|(port, _)| *port).collect()
    }
}

/// A small random number from the system's entropy (no crate for it): where to kill.
fn random_below(n: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(n)) as u64
}

/// Jira's side: delivers `body` to one of the replicas until one acknowledges it (a refused
/// connection or a 5xx is retried with the same delivery id, as Jira does).
async fn deliver(site: &FakeSite, ports: &[u16], path: &str, delivery: &str, body: &Value) {
    for attempt in 0..600 {
        let port = ports[attempt % ports.len()];
        let mut via = site.clone();
        via.app_url = format!("http://127.0.0.1:{port}");
        match via.send_webhook(path, delivery, body).await {
            Ok(response) if response.status().is_success() => return,
            Ok(response) if response.status().is_client_error() => {
                panic!("{delivery} refused: {}", response.status())
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("{delivery} was never acknowledged");
}

/// What the database says about `ticket`'s events and the unfinished jobs, for a failure.
async fn diagnose(store: &tollgate::store::Store, ticket: &str) -> String {
    type Row = (String, i64, Option<String>, Option<String>, Option<String>);
    let events: Vec<Row> = tollgate::on_db!(store.db(), |pool| {
        sqlx::query_as(
            "SELECT event_type, attempts, last_error, CAST(next_attempt_at AS TEXT), \
                 CAST(processed_at AS TEXT) FROM inbound_events WHERE ticket_key = $1",
        )
        .bind(ticket)
        .fetch_all(pool)
        .await
    })
    .unwrap_or_default();
    let jobs: Vec<(String, i64, Option<String>, Option<String>)> = match store.db() {
        tollgate::store::Db::Sqlite(pool) => sqlx::query_as(
            "SELECT status, attempts, CAST(run_at AS TEXT) || job_type, lock_by FROM Jobs WHERE status != 'Done'",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default(),
        tollgate::store::Db::Postgres(pool) => sqlx::query_as(
            "SELECT status, attempts::BIGINT, last_result::TEXT, lock_by FROM apalis.jobs \
             WHERE status != 'Done'",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default(),
    };
    format!("events {events:#?}\nunfinished jobs {jobs:#?}")
}

async fn burst_with_kills(shape: Shape) {
    init();
    if !env::require(
        slapd::available(),
        "OpenLDAP slapd (apt-get install slapd ldap-utils)",
    ) {
        return;
    }
    let people = TRIALS * TICKETS_PER_TRIAL;
    let mut ldif = slapd::seed(people);
    ldif.push('\n');
    ldif.push_str(&slapd::group("fin-tools", &["ceo"]));
    let ldap = slapd::Slapd::start(&ldif);
    let keys = InstallKeyServer::start().await.expect("key server");
    keys.publish("k1", TEST_KEY_1.1);
    let cloud = FakeAtlassian::start(
        world(),
        FakeKeys {
            admin_api_key: Some("admin-key".into()),
            scim_key: None,
            site_admin: None,
        },
    )
    .await
    .expect("cloud");
    let workflows = tempfile::tempdir().expect("dir");
    let intake = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/intake.yaml");
    std::fs::copy(intake, workflows.path().join("intake.yaml")).expect("intake");
    std::fs::write(workflows.path().join("catalog.yaml"), CATALOG).expect("catalog");
    std::fs::write(workflows.path().join("default.yaml"), WORKFLOW).expect("workflow");
    let db = TestDatabase::create().await;
    let envs: Vec<(String, String)> = [
        ("DATABASE_URL", db.url().to_string()),
        ("TOLLGATE_SECRET_KEY", test_secret_key()),
        // Every replica behind the balancer: the same base URL and secret key.
        ("TOLLGATE_BASE_URL", "https://tollgate.example.com".into()),
        ("TOLLGATE_CONNECT_KEYS_URL", keys.url()),
        (
            "TOLLGATE_WORKFLOWS_DIR",
            workflows.path().display().to_string(),
        ),
        ("TOLLGATE_ATLASSIAN_API_URL", cloud.api_url()),
        ("TOLLGATE_ATLASSIAN_ORG_ID", "org-acme".into()),
        ("TOLLGATE_ATLASSIAN_ADMIN_API_KEY", "admin-key".into()),
        ("TOLLGATE_ATLASSIAN_CLOUD_ID", "acme-cloud".into()),
        ("TOLLGATE_JOBS_POLL_INTERVAL", "200ms".into()),
        ("TOLLGATE_JOBS_HEARTBEAT", "1s".into()),
        ("TOLLGATE_EVENTS_RETRY_BASE", "1s".into()),
        ("TOLLGATE_EVENTS_RETRY_MAX", "2s".into()),
        ("TOLLGATE_LOG", "warn".into()),
    ]
    .into_iter()
    .chain(ldap.settings())
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut cluster = Cluster::start(envs, shape).await;
    let store = crate::support::store(&db).await;
    let site = FakeSite::jira(
        &format!("http://127.0.0.1:{}", cluster.ports()[0]),
        "acme.atlassian.net",
        "k1",
    )
    .at(&cloud.site_url());
    let descriptor = site.descriptor().await.expect("descriptor");
    cloud.install(site.fake_tenant(&descriptor));
    assert_eq!(site.install().await.expect("install").status(), 204);
    let tenant = site.client_key.clone();
    let state_of = |n: usize| {
        let (store, tenant) = (store.clone(), tenant.clone());
        async move {
            requests::by_ticket(&store, &tenant_key(&tenant), &ticket_key(&ticket(n)))
                .await
                .ok()
                .flatten()
                .map(|r| r.state)
        }
    };
    let started = Instant::now();
    for trial in 0..TRIALS {
        let ports = cluster.ports();
        let tickets: Vec<usize> = (0..TICKETS_PER_TRIAL)
            .map(|i| trial * TICKETS_PER_TRIAL + i)
            .collect();
        // Each ticket: filed, and once routed, approved by the person's manager.
        let file_and_approve = tickets.iter().map(|&n| {
            let (site, cloud, ports, state_of, store) = (&site, &cloud, &ports, &state_of, &store);
            async move {
                let created = issue_created(&ticket(n), &person(n).1);
                let path = "/connect/webhooks/issue-created";
                deliver(site, ports, path, &format!("c-{n}"), &created).await;
                let pending = eventually(Duration::from_secs(60), || async {
                    (state_of(n).await == Some(State::Pending)).then_some(())
                })
                .await;
                if pending.is_none() {
                    panic!(
                        "{} was not routed: {}",
                        ticket(n),
                        diagnose(store, &ticket(n)).await
                    );
                }
                let approve = cloud.comment_by(&ticket(n), APPROVER, "/approve");
                let path = "/connect/webhooks/comment-created";
                deliver(site, ports, path, &format!("a-{n}"), &approve).await;
            }
        });
        let kill_after = Duration::from_millis(random_below(2_500));
        let kill = async {
            tokio::time::sleep(kill_after).await;
            cluster.kill_and_restart(trial).await;
        };
        tokio::join!(futures::future::join_all(file_and_approve), kill);
        println!("trial {trial}: killed after {kill_after:?}");
    }
    // Everything acknowledged is carried out: every request is active.
    let all_active = eventually(Duration::from_secs(180), || async {
        for n in 0..people {
            if state_of(n).await != Some(State::Active) {
                return None;
            }
        }
        Some(())
    })
    .await;
    let mut states = Vec::new();
    for n in 0..people {
        states.push((ticket(n), state_of(n).await));
    }
    if all_active.is_none() {
        let stuck: Vec<_> = states
            .iter()
            .filter(|(_, s)| *s != Some(State::Active))
            .collect();
        let mut why = String::new();
        if let Some((key, _)) = stuck.first()
            && let Ok(Some(request)) =
                requests::by_ticket(&store, &tenant_key(&tenant), &ticket_key(key)).await
        {
            let steps = tollgate::store::grants::read(&store, request.id).await;
            why = format!("{key}: steps {steps:#?}\n{}", diagnose(&store, key).await);
        }
        panic!("not all active: {stuck:?}\n{why}");
    }
    println!(
        "{shape:?}: {people} tickets filed and granted through {TRIALS} kills in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Let any job still running (a re-run of something done) finish before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let members = ldap.members("fin-tools").await;
    {
        let world = cloud.world();
        let role = &world.project_roles[&("FIN".to_string(), 10002)].0;
        for n in 0..people {
            let (uid, account) = person(n);
            let key = ticket(n);
            let dn = format!("uid={uid},ou=people,{}", slapd::BASE);
            assert_eq!(
                members
                    .iter()
                    .filter(|m| m.eq_ignore_ascii_case(&dn))
                    .count(),
                1,
                "{uid} in the IdP group once"
            );
            assert!(role.contains(&account), "{account} holds the project role");
            let comments = world.issues[&key].app_comments();
            let mut unique = comments.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                unique.len(),
                comments.len(),
                "{key}: a comment said twice: {comments:#?}"
            );
            assert_eq!(
                comments
                    .iter()
                    .filter(|c| c.contains("with its approvers"))
                    .count(),
                1,
                "{key}: one routing comment: {comments:#?}"
            );
        }
    }
    let count = |sql: &'static str| {
        let store = store.clone();
        async move {
            let n: i64 = tollgate::on_db!(store.db(), |pool| {
                sqlx::query_scalar(sql).fetch_one(pool).await
            })
            .expect("count");
            n
        }
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM requests").await,
        people as i64,
        "one request per ticket"
    );
    // An event whose worker was killed holding it is taken again once its lease lapses (the
    // event sweep runs each minute): every acknowledged event is processed, if not yet now.
    let unprocessed = "SELECT COUNT(*) FROM inbound_events WHERE processed_at IS NULL";
    let drained = eventually(Duration::from_secs(150), || async {
        (count(unprocessed).await == 0).then_some(())
    })
    .await;
    assert!(
        drained.is_some(),
        "every acknowledged event processed: {} are not",
        count(unprocessed).await
    );
    let chain = tollgate::audit::verify_chain(&store, &tenant)
        .await
        .expect("verify");
    assert!(chain.is_ok(), "{chain:?}");
    drop(cluster);
    store.close().await;
}

#[tokio::test]
async fn kill_9_during_a_burst_with_grants_in_flight_loses_and_doubles_nothing() {
    burst_with_kills(Shape::OneProcess).await;
}

/// Two web replicas behind one address (Jira's retries reach either) and two workers on
/// PostgreSQL; a worker is killed while it holds claimed jobs.
#[tokio::test]
async fn kill_9_of_a_worker_beside_another_loses_and_doubles_nothing() {
    if postgres_admin_url().is_none() {
        println!("SKIPPED: two replicas and two workers need PostgreSQL (TEST_DATABASE_URL)");
        return;
    }
    burst_with_kills(Shape::TwoReplicasTwoWorkers).await;
}
