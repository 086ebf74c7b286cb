//! One access request end to end through each front door (Connect, Forge remote, a plain Jira
//! webhook) against the same fakes: filed, routed, approved in the ticket, granted in Jira,
//! expired, and on the tenant's audit chain. The engine never learns which door it came
//! through; outbound calls use the door's credential (Connect JWT, Forge system token through
//! the gateway, site-admin API token).

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tollgate::app::Mode;
use tollgate::clock::ManualClock;
use tollgate::lifecycle::State;
use tollgate::store::requests;
use tollgate_fakes::atlassian::connect::{FakeSite, InstallKeyServer, TEST_KEY_1, issue_created};
use tollgate_fakes::atlassian::{Caller, FakeAtlassian, FakeKeys, FakeUser, World};
use tollgate_fakes::forge::{FakeForge, bodies};

use crate::support::{self, TestApp, TestDatabase, eventually, tenant_key, ticket_key};

const DEV: (&str, &str) = ("acc-dev", "Dev Dean");
const VP: (&str, &str) = ("acc-vp", "Vera Vance");
const CLOUD_ID: &str = "5d1c7e0a-cloud-acme";
const SITE_ADMIN: (&str, &str) = ("bot@acme.io", "site-token");

const CATALOG: &str = r#"
resources:
  - id: fin-admin
    name: FIN administration
    owner: { user: vp@example.com }
    default_duration: 7d
    grants:
      - jira_project_role: { project: FIN, role: Administrators }
"#;
const WORKFLOW: &str = "workflow: default\napplies_to: { default: true }\nstages:\n  - name: manager\n    approvers: manager\n";
const ORG: &str = "people:\n  - { email: vp@example.com, name: Vera Vance, title: VP }\n  - { email: dev@example.com, name: Dev Dean, title: Engineer, manager: vp@example.com }\n";

fn workflows() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let intake = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/intake.yaml");
    std::fs::copy(intake, dir.path().join("intake.yaml")).expect("intake");
    std::fs::write(dir.path().join("catalog.yaml"), CATALOG).expect("catalog");
    std::fs::write(dir.path().join("default.yaml"), WORKFLOW).expect("workflow");
    std::fs::write(dir.path().join("org.yaml"), ORG).expect("org");
    dir
}

fn world() -> World {
    let mut world = World::sample();
    for ((account, name), uid) in [(DEV, "dev"), (VP, "vp")] {
        world.users.push(FakeUser {
            account_id: account.into(),
            email: format!("{uid}@example.com"),
            display_name: name.into(),
            active: true,
            email_visible: true,
        });
    }
    let issue = world.add_issue("IT-7", DEV.0);
    issue
        .custom
        .insert("customfield_10050".into(), json!({"value": "fin-admin"}));
    issue.custom.insert("customfield_10052".into(), json!("7d"));
    world
}

#[derive(Debug, Clone, Copy)]
enum Door {
    Connect,
    Forge,
    Webhook,
}

/// The sender on the Atlassian side of each door.
enum Front {
    Connect(FakeSite),
    Forge(Arc<FakeForge>),
    Webhook { secret: String, url: String },
}

struct Env {
    app: TestApp,
    cloud: FakeAtlassian,
    clock: ManualClock,
    /// The doors the test sends through; the first is the request's own.
    fronts: Vec<Front>,
    /// The first door's tenant.
    tenant: String,
    http: reqwest::Client,
    _keys: InstallKeyServer,
    _workflows: tempfile::TempDir,
}

/// Opens `door` for the site: installs the Connect app (with the site's cloud id, so a later
/// Forge installation continues it), installs the Forge app, or registers a plain source. The
/// sender, and the tenant the door was installed as.
async fn open(
    door: Door,
    app: &TestApp,
    cloud: &FakeAtlassian,
    forge: &Arc<FakeForge>,
    clock: &ManualClock,
) -> (Front, String) {
    match door {
        Door::Connect => {
            let site = FakeSite::jira(&app.url(""), "acme.atlassian.net", "k1")
                .at(&cloud.site_url())
                .with_cloud_id(CLOUD_ID);
            cloud.install(site.fake_tenant(&site.descriptor().await.expect("descriptor")));
            assert_eq!(site.install().await.expect("install").status(), 204);
            let tenant = site.client_key.clone();
            (Front::Connect(site), tenant)
        }
        Door::Forge => {
            let response = forge
                .invoke(
                    cloud,
                    &app.url(""),
                    "/forge/installed",
                    &bodies::installed(CLOUD_ID),
                )
                .await
                .expect("sent");
            assert_eq!(response.status(), 204);
            (Front::Forge(forge.clone()), forge.installation_id.clone())
        }
        Door::Webhook => {
            let registered = tollgate::jira_webhooks::register(
                &app.state.store,
                &app.state.secret_key,
                "https://tollgate.example.com",
                "acme-plain",
                &cloud.site_url(),
                Some(tollgate::jira_webhooks::ApiToken {
                    email: SITE_ADMIN.0.into(),
                    token: tollgate::config::Secret::new(SITE_ADMIN.1),
                }),
                clock_now(clock),
            )
            .await
            .expect("registered");
            assert_eq!(
                registered.url,
                "https://tollgate.example.com/webhooks/jira/acme-plain"
            );
            let front = Front::Webhook {
                secret: registered.secret,
                url: app.url("/webhooks/jira/acme-plain"),
            };
            (front, registered.tenant.to_string())
        }
    }
}

impl Env {
    async fn start(door: Door) -> Self {
        Self::start_with(&[door]).await
    }

    async fn start_with(doors: &[Door]) -> Self {
        support::init();
        let cloud = FakeAtlassian::start(
            world(),
            FakeKeys {
                site_admin: Some((SITE_ADMIN.0.into(), SITE_ADMIN.1.into())),
                ..FakeKeys::default()
            },
        )
        .await
        .expect("cloud");
        let workflows = workflows();
        let clock = ManualClock::new(
            chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("now"),
        );
        let mut settings = vec![
            (
                "TOLLGATE_BASE_URL",
                "https://tollgate.example.com".to_string(),
            ),
            (
                "TOLLGATE_WORKFLOWS_DIR",
                workflows.path().display().to_string(),
            ),
        ];
        let keys = InstallKeyServer::start().await.expect("key server");
        keys.publish("k1", TEST_KEY_1.1);
        settings.push(("TOLLGATE_CONNECT_KEYS_URL", keys.url()));
        // Every door is open; the test sends through the ones it names.
        let forge = Arc::new(FakeForge::start(&cloud, CLOUD_ID).await.expect("forge"));
        settings.push(("TOLLGATE_FORGE_APP_ID", forge.app_id.clone()));
        settings.push(("TOLLGATE_FORGE_JWKS_URL", forge.jwks_url()));
        let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let app = support::spawn_app_on(
            TestDatabase::create().await,
            Mode::All,
            &pairs,
            Arc::new(clock.clone()),
        )
        .await;
        let mut fronts = Vec::new();
        for door in doors {
            fronts.push(open(*door, &app, &cloud, &forge, &clock).await);
        }
        let tenant = fronts[0].1.clone();
        let fronts = fronts.into_iter().map(|(front, _)| front).collect();
        let synced = eventually(Duration::from_secs(15), || async { app.state.org.index() }).await;
        assert!(synced.is_some(), "the org chart was loaded");
        Self {
            app,
            cloud,
            clock,
            fronts,
            tenant,
            http: reqwest::Client::new(),
            _keys: keys,
            _workflows: workflows,
        }
    }

    /// Delivers one event through the first door; `id` is the event's own id (delivery,
    /// comment).
    async fn deliver(&self, id: &str, webhook: Value, forge_event: Value) {
        self.deliver_via(&self.fronts[0], id, webhook, forge_event)
            .await;
    }

    async fn deliver_via(&self, front: &Front, id: &str, webhook: Value, forge_event: Value) {
        let response = match front {
            Front::Connect(site) => {
                let path = match webhook["webhookEvent"].as_str() {
                    Some("comment_created") => "/connect/webhooks/comment-created",
                    _ => "/connect/webhooks/issue-created",
                };
                site.send_webhook(path, id, &webhook).await
            }
            Front::Forge(forge) => {
                forge
                    .invoke(
                        &self.cloud,
                        &self.app.url(""),
                        "/forge/events",
                        &forge_event,
                    )
                    .await
            }
            Front::Webhook { secret, url } => {
                let body = webhook.to_string();
                self.http
                    .post(url)
                    .header("content-type", "application/json")
                    .header("x-atlassian-webhook-identifier", id)
                    .header("x-hub-signature", sign(secret, body.as_bytes()))
                    .body(body)
                    .send()
                    .await
            }
        }
        .expect("sent");
        assert_eq!(
            response.status(),
            204,
            "{}",
            response.text().await.unwrap_or_default()
        );
    }

    async fn filed(&self) {
        self.deliver(
            "d-1",
            issue_created("IT-7", DEV.0),
            bodies::issue_created("IT-7", DEV.0),
        )
        .await;
    }

    /// `who` writes `text` on IT-7 in Jira; the door delivers the event. Returns what was
    /// delivered, to deliver it again.
    async fn comment(&self, delivery: &str, who: (&str, &str), text: &str) -> (Value, Value) {
        let webhook = self.cloud.comment_by("IT-7", who, text);
        let id = tollgate_fakes::atlassian::connect::comment_id(&webhook);
        let forge_event = bodies::commented("IT-7", id, who, text);
        self.deliver(delivery, webhook.clone(), forge_event.clone())
            .await;
        (webhook, forge_event)
    }

    /// An event naming comment `id`, which Jira does not have, as `who` saying `text`: signed
    /// as the door signs, but only a hint.
    async fn forged_comment(&self, delivery: &str, id: u64, who: (&str, &str), text: &str) {
        let mut webhook = tollgate_fakes::atlassian::connect::comment_created("IT-7", who, text);
        webhook["comment"]["id"] = json!(id.to_string());
        self.deliver(delivery, webhook, bodies::commented("IT-7", id, who, text))
            .await;
    }

    /// Time moves for the app and for the sender's clock alike.
    async fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
        for front in &self.fronts {
            self.advance_sender(front, by).await;
        }
    }

    async fn advance_sender(&self, front: &Front, by: TimeDelta) {
        match front {
            Front::Connect(site) => site.advance(by),
            Front::Forge(forge) => {
                forge.advance(by);
                // Forge's hourly trigger: what hands the remote a token for the work ahead.
                let response = forge
                    .invoke(
                        &self.cloud,
                        &self.app.url(""),
                        "/forge/scheduled",
                        &json!({}),
                    )
                    .await
                    .expect("sent");
                assert_eq!(response.status(), 204);
            }
            Front::Webhook { .. } => {}
        }
    }

    async fn request(&self) -> Option<requests::Request> {
        requests::by_ticket(
            &self.app.state.store,
            &tenant_key(&self.tenant),
            &ticket_key("IT-7"),
        )
        .await
        .expect("read")
    }

    async fn reaches(&self, state: State) -> requests::Request {
        let found = eventually(Duration::from_secs(30), || async {
            self.request().await.filter(|r| r.state == state)
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "IT-7 never became {state:?}; comments {:#?}",
                self.comments()
            )
        })
    }

    /// What Tollgate wrote on IT-7.
    fn comments(&self) -> Vec<String> {
        self.cloud.world().issues["IT-7"].app_comments()
    }

    async fn comment_with(&self, text: &str) -> String {
        let found = eventually(Duration::from_secs(20), || async {
            self.comments().into_iter().find(|c| c.contains(text))
        })
        .await;
        found.unwrap_or_else(|| panic!("no comment with {text:?} in {:#?}", self.comments()))
    }

    fn holds_role(&self) -> bool {
        self.cloud.world().project_roles[&("FIN".to_string(), 10002)]
            .0
            .contains(DEV.0)
    }
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<Utc> {
    tollgate::clock::Clock::now(clock)
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

async fn the_whole_request(door: Door) {
    let env = Env::start(door).await;
    env.filed().await;
    env.comment_with("Stage 1").await;
    env.advance(TimeDelta::hours(1)).await;
    // A comment Jira does not have, in the approver's name: nothing counts.
    env.forged_comment("f-1", 99_999, VP, "/approve").await;
    let unverified = eventually(Duration::from_secs(10), || async {
        let events = tollgate::audit::events(
            &env.app.state.store,
            Some(&env.tenant),
            "comment.unverified",
        )
        .await
        .expect("events");
        (!events.is_empty()).then_some(())
    })
    .await;
    assert!(
        unverified.is_some(),
        "{door:?}: the forged comment was read back and not found"
    );
    assert_eq!(env.request().await.map(|r| r.state), Some(State::Pending));
    let (approval, forge_approval) = env.comment("c-100", VP, "/approve").await;
    let active = env.reaches(State::Active).await;
    assert!(env.holds_role(), "{door:?}: the role was granted");
    assert_eq!(
        active.expires_at,
        active.granted_at.map(|g| g + TimeDelta::days(7))
    );
    env.comment_with("Access granted").await;
    // The same approval delivered again changes nothing.
    env.deliver("c-100", approval, forge_approval).await;

    // The expiry job waits in wall time; the reconcile sweep (its safety net) ends grants
    // the app's clock says are over.
    env.advance(TimeDelta::days(7) + TimeDelta::minutes(1))
        .await;
    tollgate::grants::sweep::sweep(&env.app.state)
        .await
        .expect("sweep");
    let ended = env.reaches(State::Expired).await;
    assert!(ended.ended_at.is_some());
    assert!(!env.holds_role(), "{door:?}: the role was removed");
    env.comment_with("expired and has been removed").await;

    let chain = tollgate::audit::verify_chain(&env.app.state.store, &env.tenant)
        .await
        .expect("read");
    let events = chain.unwrap_or_else(|e| panic!("{door:?}: chain broken: {e:?}"));
    assert!(events >= 6, "{door:?}: only {events} events on the chain");

    // Every call back went out with this door's credential.
    let callers: Vec<Caller> = env
        .cloud
        .recorded()
        .into_iter()
        .filter(|r| r.path.starts_with("/rest/"))
        .filter_map(|r| r.caller)
        .collect();
    assert!(!callers.is_empty());
    for caller in callers {
        let expected = match (door, &caller) {
            (Door::Connect, Caller::Connect { client_key }) => client_key == &env.tenant,
            (Door::Forge, Caller::Forge { cloud_id, .. }) => cloud_id == CLOUD_ID,
            (Door::Webhook, Caller::SiteAdmin) => true,
            _ => false,
        };
        assert!(expected, "{door:?}: a call went out as {caller:?}");
    }
    let violations = env.cloud.take_violations();
    assert!(violations.is_empty(), "{violations:#?}");
}

#[tokio::test]
async fn a_request_through_connect_is_routed_granted_and_expires() {
    the_whole_request(Door::Connect).await;
}

#[tokio::test]
async fn a_request_through_forge_is_routed_granted_and_expires() {
    the_whole_request(Door::Forge).await;
}

#[tokio::test]
async fn a_request_through_a_plain_webhook_is_routed_granted_and_expires() {
    the_whole_request(Door::Webhook).await;
}

/// A plain webhook must carry the source's signature over the exact body: a missing, wrong or
/// stale signature, an edited body, an unknown source, all get the same 401 and store nothing.
#[tokio::test]
async fn plain_webhooks_without_the_right_signature_are_refused() {
    let env = Env::start(Door::Webhook).await;
    let Front::Webhook { secret, url } = &env.fronts[0] else {
        unreachable!("a webhook door");
    };
    let body = issue_created("IT-7", DEV.0).to_string();
    let send = |url: String, signature: Option<String>, body: String| {
        let mut request = env
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-atlassian-webhook-identifier", "f-1");
        if let Some(signature) = signature {
            request = request.header("x-hub-signature", signature);
        }
        request.body(body).send()
    };
    let good = sign(secret, body.as_bytes());
    let cases = [
        ("no signature", url.clone(), None, body.clone()),
        (
            "another secret",
            url.clone(),
            Some(sign("guess", body.as_bytes())),
            body.clone(),
        ),
        (
            "edited body",
            url.clone(),
            Some(good.clone()),
            body.replace("IT-7", "IT-8"),
        ),
        (
            "sha1 label",
            url.clone(),
            Some(good.replace("sha256=", "sha1=")),
            body.clone(),
        ),
        (
            "not hex",
            url.clone(),
            Some("sha256=zz".into()),
            body.clone(),
        ),
        (
            "unknown source",
            env.app.url("/webhooks/jira/nobody"),
            Some(good.clone()),
            body.clone(),
        ),
        (
            "bad source name",
            env.app.url("/webhooks/jira/..%2F..%2Fx"),
            Some(good.clone()),
            body.clone(),
        ),
    ];
    for (case, url, signature, body) in cases {
        let response = send(url, signature, body).await.expect("sent");
        assert_eq!(response.status(), 401, "{case}");
    }
    let stored: i64 = match env.app.state.store.db() {
        tollgate::store::Db::Sqlite(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM inbound_events")
                .fetch_one(pool)
                .await
        }
        tollgate::store::Db::Postgres(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM inbound_events")
                .fetch_one(pool)
                .await
        }
    }
    .expect("count");
    assert_eq!(stored, 0, "nothing was stored");
    // Signed but not a Jira event: a clear 400.
    let junk = "{\"hello\": 1}".to_string();
    let response = send(url.clone(), Some(sign(secret, junk.as_bytes())), junk)
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    // The genuine delivery, twice (Jira's retry), is one event.
    for _ in 0..2 {
        let response = send(url.clone(), Some(good.clone()), body.clone())
            .await
            .expect("sent");
        assert_eq!(response.status(), 204);
    }
    env.comment_with("Stage 1").await;
    assert_eq!(env.comments().len(), 1);
}

/// `tollgate webhook-source add` registers a source and prints the URL and secret once; a
/// second run gives a new secret, and the old one stops working.
#[tokio::test]
async fn the_cli_registers_a_webhook_source_and_rotates_its_secret() {
    let db = TestDatabase::create().await;
    let token_file = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(token_file.path(), "api-token-123\n").expect("write");
    let secret_key = support::test_secret_key();
    let run = || {
        support::binary()
            .args([
                "webhook-source",
                "add",
                "acme-plain",
                "--site",
                "https://jira.acme.example",
            ])
            .args(["--api-email", "bot@acme.example", "--api-token-file"])
            .arg(token_file.path())
            .env("DATABASE_URL", db.url())
            .env("TOLLGATE_SECRET_KEY", &secret_key)
            .env("TOLLGATE_BASE_URL", "https://tollgate.example.com")
            .output()
            .expect("runs")
    };
    let secret_of = |output: &std::process::Output| {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            text.contains("https://tollgate.example.com/webhooks/jira/acme-plain"),
            "{text}"
        );
        assert!(
            !text.contains("api-token-123"),
            "the API token is never printed"
        );
        text.lines()
            .find_map(|l| l.trim().strip_prefix("Secret: "))
            .expect("a secret line")
            .to_string()
    };
    let first = secret_of(&run());
    let second = secret_of(&run());
    assert_ne!(first, second);
    let store = support::store(&db).await;
    let key = tollgate::secrets::SecretKey::from_base64(&secret_key).expect("key");
    let body = b"{}";
    for (secret, accepted) in [(&first, false), (&second, true)] {
        let signature = sign(secret, body);
        let found = tollgate::jira_webhooks::authenticate(
            &store,
            &key,
            "acme-plain",
            Some(&signature),
            body,
        )
        .await
        .expect("read");
        assert_eq!(found.is_some(), accepted, "secret {secret}");
    }
    let source =
        tollgate::store::webhook_sources::get(&store, &tenant_key("jira-webhook:acme-plain"))
            .await
            .expect("read")
            .expect("source");
    assert_eq!(source.api_email.as_deref(), Some("bot@acme.example"));
    assert!(
        source
            .api_token
            .is_some_and(|t| !t.contains("api-token-123")),
        "sealed"
    );

    let bad = support::binary()
        .args([
            "webhook-source",
            "add",
            "Bad Name",
            "--site",
            "https://jira.acme.example",
        ])
        .env("DATABASE_URL", db.url())
        .env("TOLLGATE_SECRET_KEY", support::test_secret_key())
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a source name"));
}

/// How many requests IT-7 has on any tenant.
async fn requests_for_it_7(env: &Env) -> i64 {
    tollgate::on_db!(env.app.state.store.db(), |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM requests WHERE ticket_key = 'IT-7'")
            .fetch_one(pool)
            .await
    })
    .expect("count")
}

/// One site, one tenant, whichever door: the ticket filed through the plain webhook source,
/// its creation delivered again through Connect and Forge, and the approval through all three,
/// is one request on the site's tenant, decided once. The plain source joined its site on its
/// first event (it had no requests), recorded on both audit chains.
#[tokio::test]
async fn the_same_ticket_through_all_three_doors_is_one_request() {
    let env = Env::start_with(&[Door::Connect, Door::Forge, Door::Webhook]).await;
    let [connect, forge, plain] = &env.fronts[..] else {
        panic!("three doors");
    };
    let created = || {
        (
            issue_created("IT-7", DEV.0),
            bodies::issue_created("IT-7", DEV.0),
        )
    };
    let (webhook, event) = created();
    env.deliver_via(plain, "p-1", webhook, event).await;
    env.comment_with("Stage 1").await;
    for (front, delivery) in [(connect, "c-1"), (forge, "f-1")] {
        let (webhook, event) = created();
        env.deliver_via(front, delivery, webhook, event).await;
    }
    let approval = env.cloud.comment_by("IT-7", VP, "/approve");
    let id = tollgate_fakes::atlassian::connect::comment_id(&approval);
    for (front, delivery) in [(forge, "f-2"), (plain, "p-2"), (connect, "c-2")] {
        let event = bodies::commented("IT-7", id, VP, "/approve");
        env.deliver_via(front, delivery, approval.clone(), event)
            .await;
    }
    let active = env.reaches(State::Active).await;
    assert_eq!(
        active.tenant,
        env.tenant.as_str(),
        "on the site's (Connect) tenant"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(requests_for_it_7(&env).await, 1, "one request");
    let comments = env.comments();
    assert_eq!(
        comments.iter().filter(|c| c.contains("Stage 1")).count(),
        1,
        "{comments:#?}"
    );
    assert!(
        !comments.iter().any(|c| c.contains("not counted")),
        "{comments:#?}"
    );
    let store = &env.app.state.store;
    let linked =
        tollgate::store::tenant_links::site_of(store, &tenant_key("jira-webhook:acme-plain"))
            .await
            .expect("read");
    assert_eq!(linked.as_deref(), Some(env.tenant.as_str()));
    for chain in [env.tenant.as_str(), "jira-webhook:acme-plain"] {
        let events = tollgate::audit::events(store, Some(chain), "tenant.linked")
            .await
            .expect("events");
        assert_eq!(events.len(), 1, "{chain}");
        let verified = tollgate::audit::verify_chain(store, chain)
            .await
            .expect("read");
        assert!(verified.is_ok(), "{chain}: {verified:?}");
    }
    let decisions = tollgate::audit::events(store, Some(&env.tenant), "decision.approved")
        .await
        .expect("events");
    assert_eq!(decisions.len(), 1, "decided once");
}

/// A plain source that took tickets in before its site installed the Connect app is linked by
/// `tollgate webhook-source link` (a dry run first changes nothing): its request stays on its
/// own chain, the approval through Connect decides that request (no second one), and the
/// evidence asked of the site's tenant finds it.
#[tokio::test]
async fn a_source_with_requests_is_linked_to_its_site_by_the_command() {
    let mut env = Env::start(Door::Webhook).await;
    env.filed().await;
    let on_source = env.reaches(State::Pending).await;
    assert_eq!(on_source.tenant, "jira-webhook:acme-plain");
    let forge = Arc::new(FakeForge::start(&env.cloud, CLOUD_ID).await.expect("forge"));
    let (connect, site_tenant) =
        open(Door::Connect, &env.app, &env.cloud, &forge, &env.clock).await;
    env.fronts.push(connect);
    let config = &env.app.state.config;
    let run = |dry_run: bool| async move {
        let mut out = Vec::new();
        tollgate::cli::webhook_source_link(config, "acme-plain", dry_run, &mut out)
            .await
            .expect("link");
        String::from_utf8(out).expect("utf-8")
    };
    let said = run(true).await;
    assert!(
        said.contains(&format!(
            "Would link jira-webhook:acme-plain to {site_tenant}"
        )) && said.contains("1 requests stay")
            && said.contains("Dry run: nothing changed."),
        "{said}"
    );
    let store = &env.app.state.store;
    let source = tenant_key("jira-webhook:acme-plain");
    let site_of = || tollgate::store::tenant_links::site_of(store, &source);
    assert_eq!(
        site_of().await.expect("read"),
        None,
        "a dry run changes nothing"
    );
    let said = run(false).await;
    assert!(said.contains("Linked."), "{said}");
    assert_eq!(
        site_of().await.expect("read"),
        Some(tenant_key(&site_tenant))
    );
    let again = tollgate::engine::links::link_plan(store, "acme-plain").await;
    assert!(again.is_err(), "linked once");
    // The approval comes through Connect, for the site's tenant.
    let approval = env.cloud.comment_by("IT-7", VP, "/approve");
    let id = tollgate_fakes::atlassian::connect::comment_id(&approval);
    let event = bodies::commented("IT-7", id, VP, "/approve");
    env.deliver_via(&env.fronts[1], "c-2", approval, event)
        .await;
    let active = env.reaches(State::Active).await;
    assert_eq!(active.id, on_source.id, "the same request");
    assert_eq!(requests_for_it_7(&env).await, 1);
    let key = tollgate::audit::checkpoint::CheckpointKey::derive(&env.app.state.secret_key);
    let bundle = tollgate::audit::evidence::bundle(
        store,
        &key,
        Some(&tenant_key(&site_tenant)),
        &tollgate::ids::TicketKey::parse("IT-7").expect("key"),
    )
    .await
    .expect("evidence through the site's tenant");
    assert_eq!(bundle["tenant"], "jira-webhook:acme-plain", "its own chain");
    for chain in [site_tenant.as_str(), "jira-webhook:acme-plain"] {
        let verified = tollgate::audit::verify_chain(store, chain)
            .await
            .expect("read");
        assert!(verified.is_ok(), "{chain}: {verified:?}");
    }
}
