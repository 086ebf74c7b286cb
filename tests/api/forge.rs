//! The Forge door on its own: forged invocation tokens (none accepted, none a 5xx, nothing
//! stored), the key set fetched once and again only for a new kid at most once a minute, Forge's
//! retries deduplicated, a closed door, and a site moving from Connect to Forge staying one
//! tenant with one audit chain.

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Value, json};
use tollgate::app::Mode;
use tollgate::clock::SystemClock;
use tollgate::store::{Db, Store, forge as installations, tenants};
use tollgate::tenant::TenantKind;
use tollgate_fakes::atlassian::connect::{FakeSite, InstallKeyServer, TEST_KEY_1, TEST_KEY_2};
use tollgate_fakes::atlassian::{FakeAtlassian, World};
use tollgate_fakes::forge::{FakeForge, bodies};

use crate::support::{self, TestApp, TestDatabase, tenant_key};

const CLOUD_ID: &str = "7a0c-cloud-acme";

struct Env {
    app: TestApp,
    cloud: FakeAtlassian,
    forge: FakeForge,
    keys: InstallKeyServer,
}

async fn start() -> Env {
    support::init();
    let mut world = World::sample();
    world.add_issue("IT-7", "5b10ac8d82e05b22cc7d4e01");
    let cloud = FakeAtlassian::start(world, Default::default())
        .await
        .expect("cloud");
    let forge = FakeForge::start(&cloud, CLOUD_ID).await.expect("forge");
    let keys = InstallKeyServer::start().await.expect("key server");
    keys.publish("k1", TEST_KEY_1.1);
    let keys_url = keys.url();
    let jwks = forge.jwks_url();
    let app = support::spawn_app_on(
        TestDatabase::create().await,
        Mode::WebOnly,
        &[
            ("TOLLGATE_BASE_URL", "https://tollgate.example.com"),
            ("TOLLGATE_CONNECT_KEYS_URL", &keys_url),
            ("TOLLGATE_FORGE_APP_ID", &forge.app_id),
            ("TOLLGATE_FORGE_JWKS_URL", &jwks),
        ],
        Arc::new(SystemClock),
    )
    .await;
    Env {
        app,
        cloud,
        forge,
        keys,
    }
}

async fn count(store: &Store, sql: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match store.db() {
        Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
    }
    .expect("count")
}

impl Env {
    async fn post(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.forge
            .invoke_with(token, &self.cloud, &self.app.url(""), path, body)
            .await
            .expect("sent")
    }

    async fn inbound(&self) -> i64 {
        count(&self.app.state.store, "SELECT COUNT(*) FROM inbound_events").await
    }
}

#[tokio::test]
async fn forged_invocation_tokens_are_refused_and_store_nothing() {
    let env = start().await;
    let event = bodies::issue_created("IT-7", "acc-dev");
    let genuine = || env.forge.claims();
    let with = |pointer: &str, value: Value| {
        let mut claims = genuine();
        if let Some(slot) = claims.pointer_mut(pointer) {
            *slot = value;
        }
        claims
    };
    let now = Utc::now().timestamp();
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let cases: Vec<(&str, String)> = vec![
        (
            "unknown kid, another key",
            env.forge.sign_as(&genuine(), "nobody-knows", TEST_KEY_2.0),
        ),
        (
            "known kid, signed by another key",
            env.forge.sign_as(&genuine(), &env.forge.kid, TEST_KEY_2.0),
        ),
        (
            "wrong aud",
            env.forge.sign(&with(
                "/aud",
                json!("ari:cloud:ecosystem::app/someone-else"),
            )),
        ),
        (
            "app.id of another app",
            env.forge.sign(&with(
                "/app/id",
                json!("ari:cloud:ecosystem::app/someone-else"),
            )),
        ),
        (
            "wrong iss",
            env.forge.sign(&with("/iss", json!("forge/something-else"))),
        ),
        ("expired", env.forge.sign(&with("/exp", json!(now - 600)))),
        (
            "not yet valid",
            env.forge.sign(&with("/nbf", json!(now + 600))),
        ),
        (
            "alg confusion: HS256 keyed with the public key",
            tollgate::atlassian::jwt::sign_hs256(
                &serde_json::from_value(json!({"iss": "forge/invocation-token", "exp": now + 60}))
                    .expect("claims"),
                TEST_KEY_1.1.as_bytes(),
            )
            .expect("signs"),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT", "kid": env.forge.kid})),
                b64(&genuine())
            ),
        ),
        ("garbage", "not.a.token".into()),
        ("empty", String::new()),
    ];
    for (case, token) in &cases {
        let response = env.post(token, "/forge/events", &event).await;
        assert_eq!(response.status(), 401, "{case}");
    }
    // Without any Authorization header.
    let response = reqwest::Client::new()
        .post(env.app.url("/forge/events"))
        .json(&event)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    assert_eq!(env.inbound().await, 0, "nothing was stored");
    assert_eq!(
        count(
            &env.app.state.store,
            "SELECT COUNT(*) FROM forge_installations"
        )
        .await,
        0
    );
    // The key set was read for the first token and not again for every unknown kid after it.
    assert_eq!(env.forge.jwks_fetches(), 1);

    // A genuine one goes through; Forge's retry of it is the same delivery.
    assert_eq!(
        env.post(&env.forge.sign(&genuine()), "/forge/events", &event)
            .await
            .status(),
        204
    );
    let mut retried = event.clone();
    retried["retryContext"] = json!({"retryCount": 1, "retryReason": "TIMEOUT"});
    assert_eq!(
        env.post(&env.forge.sign(&genuine()), "/forge/events", &retried)
            .await
            .status(),
        204
    );
    assert_eq!(env.inbound().await, 1);
    // A genuine token with a broken body: a clear 400, nothing stored.
    let response = env
        .post(
            &env.forge.sign(&genuine()),
            "/forge/events",
            &json!({"eventType": "avi:jira:created:issue"}),
        )
        .await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.expect("body").contains("issue"));
    // Events Tollgate does not act on are answered and dropped.
    let deleted =
        json!({"eventType": "avi:jira:deleted:issue", "issue": {"id": "1", "key": "IT-1"}});
    assert_eq!(
        env.post(&env.forge.sign(&genuine()), "/forge/events", &deleted)
            .await
            .status(),
        204
    );
    assert_eq!(env.inbound().await, 1);
    let violations = env.cloud.take_violations();
    assert!(violations.is_empty(), "{violations:#?}");
    drop(env.keys);
}

#[tokio::test]
async fn a_new_kid_is_fetched_at_most_once_a_minute() {
    let env = start().await;
    let event = bodies::issue_created("IT-7", "acc-dev");
    let genuine = env.forge.sign(&env.forge.claims());
    assert_eq!(
        env.post(&genuine, "/forge/events", &event).await.status(),
        204
    );
    assert_eq!(env.forge.jwks_fetches(), 1);
    // Forge rotates to a new key: within the minute since the last fetch its kid is refused
    // (Forge retries the event later); tokens under the known kid keep working.
    env.forge.publish("forge-fake-2", TEST_KEY_2.0);
    let rotated = env
        .forge
        .sign_as(&env.forge.claims(), "forge-fake-2", TEST_KEY_2.0);
    assert_eq!(
        env.post(&rotated, "/forge/events", &event).await.status(),
        401
    );
    assert_eq!(
        env.forge.jwks_fetches(),
        1,
        "no second fetch within a minute"
    );
    let genuine = env.forge.sign(&env.forge.claims());
    assert_eq!(
        env.post(&genuine, "/forge/events", &event).await.status(),
        204
    );

    // The same cache with a short interval: once it has passed, the new kid is fetched, once.
    use tollgate::forge::keys::{ForgeKeys, KeyError};
    let keys =
        ForgeKeys::with_min_refresh(&env.forge.jwks_url(), std::time::Duration::from_millis(300));
    let before = env.forge.jwks_fetches();
    assert!(keys.get(&env.forge.kid).await.is_ok());
    assert!(matches!(
        keys.get("forge-fake-3").await,
        Err(KeyError::Unknown(_))
    ));
    assert_eq!(env.forge.jwks_fetches(), before + 1);
    env.forge.publish("forge-fake-3", TEST_KEY_2.0);
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert!(keys.get("forge-fake-3").await.is_ok());
    assert!(keys.get("forge-fake-3").await.is_ok());
    assert_eq!(env.forge.jwks_fetches(), before + 2);
}

#[tokio::test]
async fn the_forge_door_is_closed_without_an_app_id() {
    support::init();
    let app = support::spawn_app_with(Mode::WebOnly, &[]).await;
    let response = reqwest::Client::new()
        .post(app.url("/forge/events"))
        .bearer_auth("anything")
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn a_site_moving_from_connect_to_forge_stays_one_tenant() {
    let env = start().await;
    let site = FakeSite::jira(&env.app.url(""), "acme.atlassian.net", "k1")
        .at(&env.cloud.site_url())
        .with_cloud_id(CLOUD_ID);
    env.cloud
        .install(site.fake_tenant(&site.descriptor().await.expect("descriptor")));
    assert_eq!(site.install().await.expect("install").status(), 204);
    let event = bodies::issue_created("IT-7", "acc-dev");
    assert_eq!(
        env.post(
            &env.forge.sign(&env.forge.claims()),
            "/forge/events",
            &event
        )
        .await
        .status(),
        204
    );

    let store = &env.app.state.store;
    let installation = installations::get(store, &env.forge.installation_id)
        .await
        .expect("read")
        .expect("registered");
    assert_eq!(
        installation.tenant, site.client_key,
        "the Connect tenant continues"
    );
    assert!(installation.system_token.is_some());
    let tenant = tenants::get(store, &tenant_key(&site.client_key))
        .await
        .expect("read")
        .expect("tenant");
    assert_eq!(tenant.kind, TenantKind::Connect);
    assert_eq!(
        count(store, "SELECT COUNT(*) FROM tenants").await,
        1,
        "no second tenant"
    );
    let delivered: String = {
        let sql = "SELECT tenant FROM inbound_events";
        match store.db() {
            Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("event")
    };
    assert_eq!(delivered, site.client_key);
    // One chain: the install, then the link, verified end to end.
    assert_eq!(
        tollgate::audit::verify_chain(store, &site.client_key)
            .await
            .expect("read"),
        Ok(2)
    );
    // Calls back now go through Forge's gateway with the system token.
    let (_, outbound) = env
        .app
        .state
        .site(&tenant_key(&site.client_key))
        .await
        .expect("site");
    assert!(outbound.base_url.ends_with(&format!("/ex/jira/{CLOUD_ID}")));
    assert!(!outbound.is_connect());
}

#[tokio::test]
async fn a_connect_site_without_a_cloud_id_is_found_by_its_host() {
    let mut env = start().await;
    let site =
        FakeSite::jira(&env.app.url(""), "acme.atlassian.net", "k1").at(&env.cloud.site_url());
    env.cloud
        .install(site.fake_tenant(&site.descriptor().await.expect("descriptor")));
    assert_eq!(site.install().await.expect("install").status(), 204);
    env.forge.site_url = Some(site.base_url.clone());
    let response = env
        .post(
            &env.forge.sign(&env.forge.claims()),
            "/forge/installed",
            &bodies::installed(CLOUD_ID),
        )
        .await;
    assert_eq!(response.status(), 204);
    let installation = installations::get(&env.app.state.store, &env.forge.installation_id)
        .await
        .expect("read")
        .expect("registered");
    assert_eq!(installation.tenant, site.client_key);
    let tenant = tenants::get(&env.app.state.store, &tenant_key(&site.client_key))
        .await
        .expect("read")
        .expect("tenant");
    assert_eq!(
        tenant.cloud_id.as_deref(),
        Some(CLOUD_ID),
        "learnt from Forge"
    );

    // Uninstalling the Forge app leaves the Connect tenant as it is, and forgets the token.
    let response = env
        .post(
            &env.forge.sign(&env.forge.claims()),
            "/forge/uninstalled",
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), 204);
    let tenant = tenants::get(&env.app.state.store, &tenant_key(&site.client_key))
        .await
        .expect("read")
        .expect("tenant");
    assert!(tenant.state.is_active());
    let (_, outbound) = env
        .app
        .state
        .site(&tenant_key(&site.client_key))
        .await
        .expect("site");
    assert!(outbound.is_connect(), "back to Connect JWTs");
}

/// `forge/manifest.yml` points every trigger at a route Tollgate serves (guarded, so 401
/// without a token, never 404), subscribes to every event the door handles, and keeps the
/// Connect key so Connect installs migrate.
#[tokio::test]
async fn the_manifest_routes_every_trigger_to_a_guarded_forge_route() {
    let env = start().await;
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("forge/manifest.yml"),
    )
    .expect("manifest");
    let manifest: Value = serde_saphyr::from_str(&text).expect("valid YAML");
    assert_eq!(
        manifest["app"]["id"],
        "ari:cloud:ecosystem::app/${TOLLGATE_FORGE_APP_ID}"
    );
    assert_eq!(manifest["app"]["connect"]["key"], "${TOLLGATE_CONNECT_KEY}");
    let remote = &manifest["remotes"][0];
    assert_eq!(remote["baseUrl"], "${TOLLGATE_BASE_URL}");
    assert_eq!(remote["auth"]["appSystemToken"]["enabled"], true);

    let modules = &manifest["modules"];
    let endpoints: Vec<(&str, &str)> = modules["endpoint"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| {
            assert_eq!(e["remote"], remote["key"]);
            assert_eq!(e["auth"]["appSystemToken"]["enabled"], true);
            (
                e["key"].as_str().expect("key"),
                e["route"]["path"].as_str().expect("path"),
            )
        })
        .collect();
    for (_, path) in &endpoints {
        let response = reqwest::Client::new()
            .post(env.app.url(path))
            .json(&json!({}))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 401, "{path}");
    }
    let mut events = Vec::new();
    for trigger in modules["trigger"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(modules["scheduledTrigger"].as_array().into_iter().flatten())
    {
        let endpoint = trigger["endpoint"].as_str().expect("endpoint");
        assert!(
            endpoints.iter().any(|(key, _)| *key == endpoint),
            "{endpoint} is declared"
        );
        events.extend(
            trigger["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str),
        );
    }
    for (forge_event, _) in tollgate::forge::events::EVENTS {
        assert!(events.contains(&forge_event), "{forge_event} is subscribed");
    }
    let scopes: Vec<&str> = manifest["permissions"]["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(scopes.contains(&"read:app-system-token"));
}

/// Forge cannot be asked for a token: a Forge-only tenant whose token lapsed makes calls wait
/// (a retryable error) until the next invocation brings a new one.
#[tokio::test]
async fn a_forge_tenant_without_a_fresh_token_waits_for_the_next_invocation() {
    let env = start().await;
    let token = env.forge.sign(&env.forge.claims());
    let installed = env
        .post(&token, "/forge/installed", &bodies::installed(CLOUD_ID))
        .await;
    assert_eq!(installed.status(), 204);
    let tenant = env.forge.installation_id.clone();
    let stored = tenants::get(&env.app.state.store, &tenant_key(&tenant))
        .await
        .expect("read")
        .expect("a tenant of its own");
    assert_eq!(stored.kind, TenantKind::Forge);
    // The token named no site: its URL (ticket links, the intake mapping by host) was asked
    // from Jira through the gateway.
    assert_eq!(stored.base_url, env.cloud.site_url());
    assert_eq!(stored.host, "127.0.0.1");
    assert!(env.app.state.site(&tenant_key(&tenant)).await.is_ok());

    let lapse = "UPDATE forge_installations SET token_expires_at = '2000-01-01T00:00:00Z'";
    match env.app.state.store.db() {
        Db::Sqlite(pool) => sqlx::query(lapse).execute(pool).await.map(|_| ()),
        Db::Postgres(pool) => sqlx::query(
            "UPDATE forge_installations SET token_expires_at = TIMESTAMPTZ '2000-01-01T00:00:00Z'",
        )
        .execute(pool)
        .await
        .map(|_| ()),
    }
    .expect("lapse");
    match env.app.state.site(&tenant_key(&tenant)).await {
        Err(e) => assert!(e.is_retryable(), "{e}"),
        Ok(site) => panic!("called with a lapsed token: {site:?}"),
    }
    let token = env.forge.sign(&env.forge.claims());
    assert_eq!(
        env.post(&token, "/forge/scheduled", &json!({}))
            .await
            .status(),
        204
    );
    let (_, site) = env
        .app
        .state
        .site(&tenant_key(&tenant))
        .await
        .expect("a fresh token");
    assert!(!site.is_connect());
}

/// A Forge event body is not signed: an event naming another site (cloud id or site URL) than
/// its invocation token's is refused, and nothing is stored, not even the installation.
#[tokio::test]
async fn a_forge_event_for_another_site_than_its_token_is_refused() {
    let env = start().await;
    let token = env.forge.sign(&env.forge.claims());
    let mut other_cloud = json!({
        "payload": bodies::issue_created("IT-7", "acc-dev"),
        "context": {"cloudId": "another-cloud", "installContext": "ari:cloud:jira::site/another-cloud"},
    });
    let response = env.post(&token, "/forge/events", &other_cloud).await;
    assert_eq!(response.status(), 401);
    let mut other_site = bodies::issue_created("IT-7", "acc-dev");
    other_site["issue"]["self"] = json!("https://evil.atlassian.net/rest/api/3/issue/10007");
    let mut naming_its_site = env.forge.claims();
    naming_its_site["context"] =
        json!({"cloudId": CLOUD_ID, "siteUrl": "https://acme.atlassian.net"});
    let site_token = env.forge.sign(&naming_its_site);
    let response = env.post(&site_token, "/forge/events", &other_site).await;
    assert_eq!(response.status(), 401);
    assert_eq!(env.inbound().await, 0);
    assert_eq!(
        count(
            &env.app.state.store,
            "SELECT COUNT(*) FROM forge_installations"
        )
        .await,
        0,
        "no installation registered"
    );
    // The same event naming the token's own cloud is taken.
    other_cloud["context"] = json!({"cloudId": CLOUD_ID});
    let response = env.post(&token, "/forge/events", &other_cloud).await;
    assert_eq!(response.status(), 204);
    assert_eq!(env.inbound().await, 1);
}
