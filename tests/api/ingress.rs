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
use tollgate::engine::machine::State;
use tollgate::fakes::atlassian::connect::{FakeSite, InstallKeyServer, TEST_KEY_1, issue_created};
use tollgate::fakes::atlassian::{Caller, FakeAtlassian, FakeKeys, FakeUser, World};
use tollgate::fakes::forge::{FakeForge, bodies};
use tollgate::store::requests;

use crate::support::{self, TestApp, TestDatabase, eventually};

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
    Forge(FakeForge),
    Webhook { secret: String, url: String },
}

struct Env {
    app: TestApp,
    cloud: FakeAtlassian,
    clock: ManualClock,
    front: Front,
    tenant: String,
    http: reqwest::Client,
    _keys: InstallKeyServer,
    _workflows: tempfile::TempDir,
}

impl Env {
    async fn start(door: Door) -> Self {
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
        let forge = match door {
            Door::Forge => {
                let forge = FakeForge::start(&cloud, CLOUD_ID).await.expect("forge");
                settings.push(("TOLLGATE_FORGE_APP_ID", forge.app_id.clone()));
                settings.push(("TOLLGATE_FORGE_JWKS_URL", forge.jwks_url()));
                Some(forge)
            }
            _ => None,
        };
        let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let app = support::spawn_app_on(
            TestDatabase::create().await,
            Mode::All,
            &pairs,
            Arc::new(clock.clone()),
        )
        .await;
        let (front, tenant) = match (door, forge) {
            (Door::Connect, _) => {
                let site =
                    FakeSite::jira(&app.url(""), "acme.atlassian.net", "k1").at(&cloud.site_url());
                cloud.install(site.fake_tenant(&site.descriptor().await.expect("descriptor")));
                assert_eq!(site.install().await.expect("install").status(), 204);
                let tenant = site.client_key.clone();
                (Front::Connect(site), tenant)
            }
            (Door::Forge, Some(forge)) => {
                let response = forge
                    .invoke(
                        &cloud,
                        &app.url(""),
                        "/forge/installed",
                        &bodies::installed(CLOUD_ID),
                    )
                    .await
                    .expect("sent");
                assert_eq!(response.status(), 204);
                let tenant = forge.installation_id.clone();
                (Front::Forge(forge), tenant)
            }
            _ => {
                let registered = tollgate::jira_webhooks::register(
                    &app.state.store,
                    &app.state.secret_key,
                    "https://tollgate.example.com",
                    "acme-plain",
                    &cloud.site_url(),
                    Some(tollgate::jira_webhooks::ApiToken {
                        email: SITE_ADMIN.0.into(),
                        token: SITE_ADMIN.1.into(),
                    }),
                    clock_now(&clock),
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
                (front, registered.tenant)
            }
        };
        let synced = eventually(Duration::from_secs(15), || async { app.state.org.index() }).await;
        assert!(synced.is_some(), "the org chart was loaded");
        Self {
            app,
            cloud,
            clock,
            front,
            tenant,
            http: reqwest::Client::new(),
            _keys: keys,
            _workflows: workflows,
        }
    }

    /// Delivers one event through the door; `id` is the event's own id (delivery, comment).
    async fn deliver(&self, id: &str, webhook: Value, forge_event: Value) {
        let response = match &self.front {
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
        let id: u64 = webhook["comment"]["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("Jira's comment ids are numbers in a string");
        let forge_event = bodies::commented("IT-7", id, who, text);
        self.deliver(delivery, webhook.clone(), forge_event.clone())
            .await;
        (webhook, forge_event)
    }

    /// An event naming comment `id`, which Jira does not have, as `who` saying `text`: signed
    /// as the door signs, but only a hint.
    async fn forged_comment(&self, delivery: &str, id: u64, who: (&str, &str), text: &str) {
        let mut webhook = tollgate::fakes::atlassian::connect::comment_created("IT-7", who, text);
        webhook["comment"]["id"] = json!(id.to_string());
        self.deliver(delivery, webhook, bodies::commented("IT-7", id, who, text))
            .await;
    }

    /// Time moves for the app and for the sender's clock alike.
    async fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
        match &self.front {
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
        requests::by_ticket(&self.app.state.store, &self.tenant, "IT-7")
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

    fn comments(&self) -> Vec<String> {
        self.cloud.world().issues["IT-7"]
            .comments
            .iter()
            .map(|c| tollgate::atlassian::adf::plain_text(&c.body))
            .collect()
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
    let Front::Webhook { secret, url } = &env.front else {
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
    let source = tollgate::store::webhook_sources::get(&store, "jira-webhook:acme-plain")
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
