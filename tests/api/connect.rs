//! The Connect app, inbound: descriptors, signed installs, lifecycle, webhooks, and every
//! forged case the issue lists.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tollgate::app::Mode;
use tollgate::atlassian::jwt::{Audience, Claims, sign_hs256};
use tollgate::atlassian::qsh;
use tollgate::clock::SystemClock;
use tollgate::store::{inbound, tenants};
use tollgate::tenant::{Product, TenantState};
use tollgate_fakes::atlassian::connect::{
    FakeSite, InstallKeyServer, TEST_KEY_1, TEST_KEY_2, issue_created,
};

use crate::support::{TestApp, TestDatabase, eventually, spawn_app_on, tenant_key};

const BASE_URL: &str = "https://tollgate.example.com";
const KID: &str = "key-1";

struct Env {
    app: TestApp,
    keys: InstallKeyServer,
    /// Where the installed site lives, so the engine's calls back are answered.
    cloud: tollgate_fakes::atlassian::FakeAtlassian,
}

async fn start() -> Env {
    start_on(Arc::new(SystemClock)).await
}

async fn start_on(clock: Arc<dyn tollgate::clock::Clock>) -> Env {
    let keys = InstallKeyServer::start().await.expect("key server");
    keys.publish(KID, TEST_KEY_1.1);
    let keys_url = keys.url();
    let app = spawn_app_on(
        TestDatabase::create().await,
        Mode::All,
        &[
            ("TOLLGATE_BASE_URL", BASE_URL),
            ("TOLLGATE_CONNECT_KEYS_URL", &keys_url),
        ],
        clock,
    )
    .await;
    let cloud = tollgate_fakes::atlassian::FakeAtlassian::start(
        // An empty site: the start-up recovery finds no tickets to take in.
        tollgate_fakes::atlassian::World::default(),
        Default::default(),
    )
    .await
    .expect("fake cloud");
    Env { app, keys, cloud }
}

fn app_url(app: &TestApp) -> String {
    format!("http://{}", app.address)
}

async fn installed_site(env: &Env) -> FakeSite {
    let site =
        FakeSite::jira(&app_url(&env.app), "acme.atlassian.net", KID).at(&env.cloud.site_url());
    let descriptor = site.descriptor().await.expect("descriptor");
    env.cloud.install(site.fake_tenant(&descriptor));
    let response = site.install().await.expect("sent");
    assert_eq!(
        response.status(),
        204,
        "{}",
        response.text().await.unwrap_or_default()
    );
    site
}

/// The tenant's shared secret as stored (unsealed).
fn stored_secret(app: &TestApp, tenant: &tollgate::tenant::Tenant) -> Vec<u8> {
    app.state
        .secret_key
        .unseal(
            &tenant.shared_secret_sealed,
            &tollgate::tenant::Tenant::secret_context(&tenant.client_key),
        )
        .expect("unseals")
}

async fn events_of(app: &TestApp, client_key: &str) -> Vec<inbound::InboundEvent> {
    inbound::list_for_tenant(&app.state.store, &tenant_key(client_key))
        .await
        .expect("read")
}

async fn tenant_count(app: &TestApp) -> i64 {
    tenants::count(&app.state.store).await.expect("count")
}

/// Posts `body` to `path` with an `Authorization: JWT` header.
async fn post_with_token(
    app: &TestApp,
    path: &str,
    token: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("authorization", format!("JWT {token}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("sent")
}

async fn post_unsigned(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .body(body.to_string())
        .send()
        .await
        .expect("sent")
}

async fn assert_unauthorized(response: reqwest::Response) {
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("json error body");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(body["error"]["message"], "authentication failed");
}

#[tokio::test]
async fn descriptors_name_only_urls_that_are_served() {
    let env = start().await;
    let jira: Value = env
        .app
        .get("/atlassian-connect.json")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(jira["baseUrl"], BASE_URL);
    assert_eq!(jira["key"], "io.tollgate.access");
    let confluence: Value = env
        .app
        .get("/confluence/atlassian-connect.json")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(confluence["key"], "io.tollgate.access.confluence");
    for url in env.app.connect.descriptors.urls() {
        let get = env.app.get(&url).await.status();
        let post = env
            .app
            .client
            .post(env.app.url(&url))
            .send()
            .await
            .expect("sent")
            .status();
        assert!(
            get != 404 || post != 404,
            "{url} is named in a descriptor but not served"
        );
    }
}

#[tokio::test]
async fn a_genuine_install_stores_the_tenant_with_its_secret_sealed() {
    let env = start().await;
    let site = installed_site(&env).await;
    let tenant = tenants::get(&env.app.state.store, &tenant_key(&site.client_key))
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(tenant.product, Product::Jira);
    assert_eq!(tenant.state, TenantState::Installed);
    assert_eq!(tenant.base_url, site.base_url);
    assert!(!tenant.shared_secret_sealed.contains(&site.shared_secret));
    let secret = stored_secret(&env.app, &tenant);
    assert_eq!(secret, site.shared_secret.as_bytes());

    // A reinstall (new token, new secret) updates it; the key is fetched once.
    let mut again = site.clone();
    again.shared_secret = "rotated-secret".into();
    assert_eq!(again.install().await.expect("sent").status(), 204);
    let tenant = tenants::get(&env.app.state.store, &tenant_key(&site.client_key))
        .await
        .expect("read")
        .expect("stored");
    let secret = stored_secret(&env.app, &tenant);
    assert_eq!(secret, b"rotated-secret");
    assert_eq!(env.keys.requests(), 1, "keys are cached by kid");
    assert_eq!(tenant_count(&env.app).await, 1);
}

#[tokio::test]
async fn confluence_installs_separately_and_links_by_host() {
    let env = start().await;
    let jira = installed_site(&env).await;
    let confluence = FakeSite::confluence(&app_url(&env.app), "acme.atlassian.net", KID);
    assert_eq!(confluence.install().await.expect("sent").status(), 204);
    let stored = tenants::get(&env.app.state.store, &tenant_key(&confluence.client_key))
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.product, Product::Confluence);
    assert!(stored.base_url.ends_with("/wiki"));
    assert_eq!(stored.app_key, "io.tollgate.access.confluence");
    let linked = tenants::linked(
        &env.app.state.store,
        "acme.atlassian.net",
        Product::Confluence,
    )
    .await
    .expect("read")
    .expect("linked");
    assert_eq!(linked.client_key, confluence.client_key);
    assert_ne!(linked.client_key, jira.client_key);
}

#[tokio::test]
async fn genuine_webhooks_are_accepted_exactly_once_and_processed() {
    let env = start().await;
    let site = installed_site(&env).await;
    let body = issue_created("IT-42", "557058:erin");
    for _ in 0..3 {
        let response = site
            .send_webhook("/connect/webhooks/issue-created", "delivery-1", &body)
            .await
            .expect("sent");
        assert_eq!(response.status(), 204);
    }
    let events = events_of(&env.app, &site.client_key).await;
    assert_eq!(events.len(), 1, "a retried delivery is ignored");
    assert_eq!(events[0].event_type, "jira:issue_created");
    assert_eq!(events[0].delivery_id, "delivery-1");
    let stored: Value = serde_json::from_str(&events[0].payload).expect("json");
    assert_eq!(stored, body, "the body is kept as it arrived");
    let id = events[0].id;
    // No Jira answers for this site here: the job takes the event up, and it is processed, or
    // waiting for its next try with the error it met, never dropped.
    let taken_up = eventually(Duration::from_secs(15), || async {
        inbound::get(&env.app.state.store, id)
            .await
            .expect("read")
            .filter(|e| e.processed_at.is_some() || e.attempts > 0 || e.dead_at.is_some())
    })
    .await;
    let event = taken_up.expect("the job took the event up");
    assert!(
        event.processed_at.is_some() || event.last_error.is_some(),
        "{event:?}"
    );

    // Unknown event types are accepted and ignored.
    let other = json!({"webhookEvent": "jira:worklog_updated", "timestamp": 1});
    let response = site
        .send_webhook("/connect/webhooks/issue-updated", "delivery-2", &other)
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    assert_eq!(events_of(&env.app, &site.client_key).await.len(), 1);
}

#[tokio::test]
async fn malformed_webhook_bodies_get_a_clear_error_and_store_nothing() {
    let env = start().await;
    let site = installed_site(&env).await;
    for body in [
        json!("just a string"),
        json!({"no": "event"}),
        json!([1, 2]),
    ] {
        let response = site
            .send_webhook("/connect/webhooks/issue-created", "bad", &body)
            .await
            .expect("sent");
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.expect("json");
        assert!(
            error["error"]["message"]
                .as_str()
                .expect("message")
                .contains("not a Jira event")
        );
    }
    assert!(events_of(&env.app, &site.client_key).await.is_empty());
}

#[tokio::test]
async fn disabled_and_uninstalled_tenants_are_refused_and_reinstall_resumes() {
    let env = start().await;
    let site = installed_site(&env).await;
    let body = issue_created("IT-1", "557058:erin");
    assert_eq!(site.lifecycle("enabled").await.expect("sent").status(), 204);
    assert_eq!(
        site.lifecycle("disabled").await.expect("sent").status(),
        204
    );
    let response = site
        .send_webhook("/connect/webhooks/issue-created", "d-1", &body)
        .await
        .expect("sent");
    assert_eq!(response.status(), 403);

    assert_eq!(site.lifecycle("enabled").await.expect("sent").status(), 204);
    let first = tenants::get(&env.app.state.store, &tenant_key(&site.client_key))
        .await
        .expect("read")
        .expect("row");
    assert_eq!(first.state, TenantState::Enabled);
    assert_eq!(
        site.lifecycle("uninstalled").await.expect("sent").status(),
        204
    );
    // A late `disabled` (even unsigned) does not resurrect or change it.
    let late = env
        .app
        .client
        .post(env.app.url("/connect/disabled"))
        .body(
            site.lifecycle_body("io.tollgate.access", "disabled")
                .to_string(),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(late.status(), 204);
    let gone = tenants::get(&env.app.state.store, &tenant_key(&site.client_key))
        .await
        .expect("read")
        .expect("the row is kept");
    assert_eq!(gone.state, TenantState::Uninstalled);
    let refused = site
        .send_webhook("/connect/webhooks/issue-created", "d-2", &body)
        .await
        .expect("sent");
    assert_eq!(refused.status(), 403);

    assert_eq!(site.install().await.expect("sent").status(), 204);
    let back = tenants::get(&env.app.state.store, &tenant_key(&site.client_key))
        .await
        .expect("read")
        .expect("row");
    assert_eq!(back.state, TenantState::Installed);
    assert_eq!(
        back.installed_at, first.installed_at,
        "history is picked up again"
    );
    assert_eq!(back.uninstalled_at, None);
    // installed, enabled, disabled, enabled, uninstalled, reinstalled: each on the tenant's chain.
    assert_eq!(
        tollgate::audit::verify_chain(&env.app.state.store, &site.client_key)
            .await
            .expect("read"),
        Ok(6)
    );
}

#[tokio::test]
async fn page_loads_need_a_request_bound_token_and_context_calls_accept_context_tokens() {
    let env = start().await;
    let site = installed_site(&env).await;
    let page = "/connect/admin?lic=none&xdm_e=https%3A%2F%2Facme.atlassian.net";
    let token = site.hs256_token("GET", page);
    let response = env.app.get(&format!("{page}&jwt={token}")).await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .expect("html")
            .contains(&site.base_url)
    );

    let context = site.context_token("557058:viewer");
    let response = env
        .app
        .client
        .get(env.app.url("/connect/api/context"))
        .header("authorization", format!("JWT {context}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let who: Value = response.json().await.expect("json");
    assert_eq!(who["account_id"], "557058:viewer");
    assert_eq!(who["client_key"], site.client_key.as_str());
    assert_unauthorized(env.app.get(&format!("/connect/admin?jwt={context}")).await).await;
}

// ---- forged and replayed requests: none accepted, none a 5xx ----

#[tokio::test]
async fn forged_installs_are_refused_and_store_nothing() {
    let env = start().await;
    let site = FakeSite::jira(&app_url(&env.app), "evil.atlassian.net", KID);
    let body = site.lifecycle_body("io.tollgate.access", "installed");
    let path = "/connect/installed";
    let genuine = || site.install_claims(BASE_URL, path);

    // Unsigned.
    assert_unauthorized(post_unsigned(&env.app, path, &body).await).await;

    // Unknown kid.
    let mut unknown = site.clone();
    unknown.kid = "no-such-key".into();
    assert_unauthorized(
        post_with_token(&env.app, path, &unknown.sign_install(&genuine()), &body).await,
    )
    .await;

    // Signed by another key under a known kid.
    let mut other_key = site.clone();
    other_key.private_key_pem = TEST_KEY_2.0.to_string();
    assert_unauthorized(
        post_with_token(&env.app, path, &other_key.sign_install(&genuine()), &body).await,
    )
    .await;

    // Wrong audience.
    let mut claims = genuine();
    claims.aud = Some(Audience::One("https://someone-else.example".into()));
    assert_unauthorized(post_with_token(&env.app, path, &site.sign_install(&claims), &body).await)
        .await;

    // clientKey in the body is not the token's iss.
    let mut claims = genuine();
    claims.iss = Some("another-client".into());
    assert_unauthorized(post_with_token(&env.app, path, &site.sign_install(&claims), &body).await)
        .await;

    // Expired.
    let mut claims = genuine();
    claims.exp = Some(Utc::now().timestamp() - 3600);
    assert_unauthorized(post_with_token(&env.app, path, &site.sign_install(&claims), &body).await)
        .await;

    // qsh for another path.
    let mut claims = genuine();
    claims.qsh = Some(qsh::qsh("POST", "/connect/uninstalled", ""));
    assert_unauthorized(post_with_token(&env.app, path, &site.sign_install(&claims), &body).await)
        .await;

    // alg: none.
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": KID})),
        b64(&serde_json::to_value(genuine()).expect("claims"))
    );
    assert_unauthorized(post_with_token(&env.app, path, &none, &body).await).await;

    // HS256 signed with the public key (RS/HS confusion).
    let confused = sign_hs256(&genuine(), TEST_KEY_1.1.as_bytes()).expect("signs");
    assert_unauthorized(post_with_token(&env.app, path, &confused, &body).await).await;

    // Garbage.
    assert_unauthorized(post_with_token(&env.app, path, "not.a.token", &body).await).await;
    let response = env
        .app
        .client
        .post(env.app.url(path))
        .header(
            "authorization",
            format!("JWT {}", site.sign_install(&genuine())),
        )
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);

    // A client key that cannot name a tenant (empty, a control character), signed as itself:
    // refused for what it is, before anything is stored under it.
    for bad in ["", "acme\u{7}jira", "acme\njira"] {
        let mut odd = body.clone();
        odd["clientKey"] = json!(bad);
        let mut claims = genuine();
        claims.iss = Some(bad.to_string());
        let response = post_with_token(&env.app, path, &site.sign_install(&claims), &odd).await;
        assert_eq!(response.status(), 400, "{bad:?}");
        let said: Value = response.json().await.expect("json");
        assert!(
            said.to_string().contains("not a tenant key"),
            "{bad:?}: {said}"
        );
    }

    assert_eq!(tenant_count(&env.app).await, 0, "nothing was stored");
}

#[tokio::test]
async fn a_replayed_install_token_with_another_body_is_refused() {
    let env = start().await;
    let site = FakeSite::jira(&app_url(&env.app), "acme.atlassian.net", KID);
    let path = "/connect/installed";
    let token = site.sign_install(&site.install_claims(BASE_URL, path));
    let body = site.lifecycle_body("io.tollgate.access", "installed");
    assert_eq!(
        post_with_token(&env.app, path, &token, &body)
            .await
            .status(),
        204
    );
    // An exact retry is accepted idempotently.
    assert_eq!(
        post_with_token(&env.app, path, &token, &body)
            .await
            .status(),
        204
    );
    // The same token with the attacker's sharedSecret is not.
    let mut stolen = body.clone();
    stolen["sharedSecret"] = json!("attacker-knows-this");
    assert_unauthorized(post_with_token(&env.app, path, &token, &stolen).await).await;
    let tenant = tenants::get(&env.app.state.store, &tenant_key(&site.client_key))
        .await
        .expect("read")
        .expect("row");
    let secret = stored_secret(&env.app, &tenant);
    assert_eq!(secret, site.shared_secret.as_bytes());
}

#[tokio::test]
async fn forged_webhooks_are_refused() {
    let env = start().await;
    let a = installed_site(&env).await;
    let b = FakeSite::jira(&app_url(&env.app), "other.atlassian.net", KID);
    assert_eq!(b.install().await.expect("sent").status(), 204);
    let path = "/connect/webhooks/issue-created";
    let body = issue_created("IT-7", "557058:erin");
    let now = Utc::now().timestamp();
    let claims = |iss: &str, qsh_value: String, exp: i64| Claims {
        iss: Some(iss.into()),
        qsh: Some(qsh_value),
        exp: Some(exp),
        iat: Some(now),
        ..Default::default()
    };
    let good_qsh = qsh::qsh("POST", path, "");

    // Signed with the wrong secret.
    let token =
        sign_hs256(&claims(&a.client_key, good_qsh.clone(), now + 60), b"guess").expect("signs");
    assert_unauthorized(post_with_token(&env.app, path, &token, &body).await).await;
    // Tenant A's secret, tenant B's clientKey.
    let token = sign_hs256(
        &claims(&b.client_key, good_qsh.clone(), now + 60),
        a.shared_secret.as_bytes(),
    )
    .expect("signs");
    assert_unauthorized(post_with_token(&env.app, path, &token, &body).await).await;
    // Expired.
    let token = sign_hs256(
        &claims(&a.client_key, good_qsh.clone(), now - 600),
        a.shared_secret.as_bytes(),
    )
    .expect("signs");
    assert_unauthorized(post_with_token(&env.app, path, &token, &body).await).await;
    // qsh for another path.
    let token = sign_hs256(
        &claims(
            &a.client_key,
            qsh::qsh("POST", "/connect/webhooks/comment-created", ""),
            now + 60,
        ),
        a.shared_secret.as_bytes(),
    )
    .expect("signs");
    assert_unauthorized(post_with_token(&env.app, path, &token, &body).await).await;
    // A context token where a request-bound one is needed.
    let token = sign_hs256(
        &claims(&a.client_key, qsh::CONTEXT_QSH.into(), now + 60),
        a.shared_secret.as_bytes(),
    )
    .expect("signs");
    assert_unauthorized(post_with_token(&env.app, path, &token, &body).await).await;
    // Unknown tenant.
    let token = sign_hs256(&claims("nobody", good_qsh.clone(), now + 60), b"x").expect("signs");
    assert_unauthorized(post_with_token(&env.app, path, &token, &body).await).await;
    // No token at all.
    assert_unauthorized(post_unsigned(&env.app, path, &body).await).await;
    // Token both in the query and in a form body.
    let token = a.hs256_token("POST", path);
    let response = env
        .app
        .client
        .post(env.app.url(&format!("{path}?jwt={token}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("jwt={token}"))
        .send()
        .await
        .expect("sent");
    assert_unauthorized(response).await;

    for site in [&a, &b] {
        assert!(events_of(&env.app, &site.client_key).await.is_empty());
    }
}

// ---- the oracle: Atlassian's own atlassian-jwt ----

#[tokio::test]
async fn tokens_made_by_atlassian_jwt_are_accepted() {
    if !crate::support::oracle::available() {
        return;
    }
    let env = start().await;
    let site = FakeSite::jira(&app_url(&env.app), "oracle.atlassian.net", KID);
    let now = Utc::now().timestamp();
    // An install token signed by atlassian-jwt's encodeAsymmetric, qsh by createQueryStringHash.
    let install_qsh = crate::support::oracle::ask(&json!({
        "op": "qsh", "cases": [{"method": "POST", "url": "/connect/installed"}]
    }))[0]
        .as_str()
        .expect("qsh")
        .to_string();
    let install = crate::support::oracle::ask(&json!({
        "op": "sign_install",
        "kid": KID,
        "privateKey": TEST_KEY_1.0,
        "claims": {"iss": site.client_key, "aud": [BASE_URL], "qsh": install_qsh, "iat": now, "exp": now + 180}
    }));
    let body = site.lifecycle_body("io.tollgate.access", "installed");
    let response = post_with_token(
        &env.app,
        "/connect/installed",
        install.as_str().expect("token"),
        &body,
    )
    .await;
    assert_eq!(response.status(), 204);

    // A webhook and a page load signed by encodeSymmetric.
    let path = "/connect/webhooks/issue-created";
    let page = "/connect/admin?xdm_e=https%3A%2F%2Foracle.atlassian.net&cp=&lic=none";
    let hashes = crate::support::oracle::ask(&json!({
        "op": "qsh", "cases": [{"method": "POST", "url": path}, {"method": "GET", "url": page}]
    }));
    let sign = |qsh_value: &Value| {
        crate::support::oracle::ask(&json!({
            "op": "sign",
            "secret": site.shared_secret,
            "claims": {"iss": site.client_key, "qsh": qsh_value, "iat": now, "exp": now + 180, "sub": "557058:x"}
        }))
        .as_str()
        .expect("token")
        .to_string()
    };
    let response = env
        .app
        .client
        .post(env.app.url(path))
        .header("authorization", format!("JWT {}", sign(&hashes[0])))
        .header("x-atlassian-webhook-identifier", "oracle-1")
        .body(issue_created("IT-9", "557058:x").to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let response = env
        .app
        .get(&format!("{page}&jwt={}", sign(&hashes[1])))
        .await;
    assert_eq!(response.status(), 200);
}

/// Our qsh equals atlassian-jwt's on generated requests: spaces, `+`, repeated keys, unicode,
/// `&` in paths, reserved characters, base URL prefixes.
#[test]
fn our_qsh_matches_atlassian_jwt_on_generated_requests() {
    if !crate::support::oracle::available() {
        return;
    }
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let pieces = [
        "a",
        "B",
        "z9",
        "_x",
        "~t",
        "-",
        ".",
        "%20",
        "+",
        " ",
        "%2B",
        "é",
        "ü",
        "日本",
        "%E2%82%AC",
        "!",
        "'",
        "(",
        ")",
        "*",
        "%21",
        ":",
        "@",
        "$",
        ",",
        ";",
        "%3D",
        "%26",
        "/",
        "%2F",
        "😀",
        "{",
        "}",
        "|",
        "^",
        "`",
        "<",
        ">",
        "\"",
    ];
    let methods = ["GET", "POST", "put", "DELETE"];
    let bases = [
        "",
        "https://acme.atlassian.net/wiki",
        "http://localhost:2990/jira",
    ];
    let word = |next: &mut dyn FnMut(usize) -> usize, max: usize| {
        (0..1 + next(max))
            .map(|_| pieces[next(pieces.len())])
            .collect::<String>()
    };
    let mut cases = Vec::new();
    for _ in 0..1200 {
        let base = bases[next(bases.len())];
        let prefix = base
            .split_once("://")
            .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
            .unwrap_or("");
        let mut path = String::from(prefix);
        for _ in 0..1 + next(3) {
            path.push('/');
            let segment: String = word(&mut next, 3).replace(['/', '?', '#', ' ', '+', '%'], "x");
            path.push_str(&segment);
            if next(6) == 0 {
                path.push_str("&amp");
            }
        }
        if next(8) == 0 {
            path.push('/');
        }
        let mut query = Vec::new();
        let keys = ["a", "A", "b", "_b", "Z", "jwt", "é", "k y", "x+y"];
        for _ in 0..next(5) {
            let key = keys[next(keys.len())].to_string();
            let value = word(&mut next, 4).replace(['&', '#', '='], "q");
            query.push(format!("{key}={value}"));
        }
        let url = if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        };
        cases.push(json!({"method": methods[next(methods.len())], "url": url, "baseUrl": base}));
    }
    let theirs = crate::support::oracle::ask(&json!({"op": "qsh", "cases": cases}));
    let mut mismatches = Vec::new();
    for (case, expected) in cases.iter().zip(theirs.as_array().expect("list")) {
        let base = case["baseUrl"].as_str().unwrap_or_default();
        let base_path = tollgate::tenant::base_path(base);
        let ours = qsh::qsh(
            case["method"].as_str().unwrap_or_default(),
            case["url"].as_str().unwrap_or_default(),
            base_path,
        );
        if ours != expected.as_str().unwrap_or_default() {
            let canonical = qsh::canonical_request(
                case["method"].as_str().unwrap_or_default(),
                case["url"].as_str().unwrap_or_default(),
                base_path,
            );
            mismatches.push((case.clone(), canonical));
        }
    }
    if !mismatches.is_empty() {
        let sample: Vec<Value> = mismatches.iter().take(5).map(|(c, _)| c.clone()).collect();
        let theirs = crate::support::oracle::ask(&json!({"op": "canonical", "cases": sample}));
        let report: Vec<String> = mismatches
            .iter()
            .zip(theirs.as_array().expect("list"))
            .map(|((case, ours), theirs)| format!("{case}\n  ours:   {ours}\n  theirs: {theirs}"))
            .collect();
        panic!(
            "{} of {} differ, e.g.\n{}",
            mismatches.len(),
            cases.len(),
            report.join("\n")
        );
    }
}

/// Another replica stored a reinstall with a new secret: this replica's cached secret fails,
/// and the check retries against the database instead of refusing the tenant.
#[tokio::test]
async fn a_secret_rotated_elsewhere_is_picked_up_despite_the_cache() {
    let env = start().await;
    let site = installed_site(&env).await;
    let path = "/connect/webhooks/issue-created";
    let body = issue_created("IT-3", "557058:erin");
    assert_eq!(
        site.send_webhook(path, "r-1", &body)
            .await
            .expect("sent")
            .status(),
        204
    );

    let store = &env.app.state.store;
    let mut tenant = tenants::get(store, &tenant_key(&site.client_key))
        .await
        .expect("read")
        .expect("row");
    tenant.shared_secret_sealed = env
        .app
        .state
        .secret_key
        .seal(
            b"rotated-elsewhere",
            &format!("tenant:{}:shared_secret", site.client_key),
        )
        .expect("seals");
    let mut tx = store.begin().await.expect("begin");
    tenants::upsert_install(&mut tx, &tenant)
        .await
        .expect("store");
    tx.commit().await.expect("commit");

    let mut rotated = site.clone();
    rotated.shared_secret = "rotated-elsewhere".into();
    assert_eq!(
        rotated
            .send_webhook(path, "r-2", &body)
            .await
            .expect("sent")
            .status(),
        204
    );
    // The old secret no longer works.
    assert_unauthorized(site.send_webhook(path, "r-3", &body).await.expect("sent")).await;
}

/// What a Connect webhook's token signs is bound to what is done: the path's event must be the
/// body's `webhookEvent`; the same token again with the same body is one delivery (acknowledged,
/// stored once, whatever delivery id it claims); with another body it is a replay, refused,
/// unless it comes in the moment the token was signed in (Atlassian's tokens have no unique id:
/// two deliveries to one path signed in the same second share one).
#[tokio::test]
async fn a_webhook_token_is_bound_to_its_path_event_and_its_body() {
    let clock = tollgate::clock::ManualClock::new(Utc::now());
    let env = start_on(Arc::new(clock.clone())).await;
    let site = installed_site(&env).await;
    let key = site.client_key.clone();
    let send = |path: &'static str, token: String, delivery: &'static str, body: Value| {
        let app = &env.app;
        async move {
            app.client
                .post(app.url(path))
                .header("authorization", format!("JWT {token}"))
                .header("content-type", "application/json")
                .header("x-atlassian-webhook-identifier", delivery)
                .body(body.to_string())
                .send()
                .await
                .expect("sent")
        }
    };
    // A comment body on the issue-updated path (signed for that path).
    let updated = "/connect/webhooks/issue-updated";
    let comment = tollgate_fakes::atlassian::connect::comment_created(
        "IT-7",
        ("557058:dan", "Dan"),
        "/approve",
    );
    let response = send(updated, site.hs256_token("POST", updated), "w-1", comment).await;
    assert_eq!(response.status(), 401);
    assert!(events_of(&env.app, &key).await.is_empty(), "nothing stored");

    // One token, one body: sent again under another delivery id, it is the same delivery.
    let created = "/connect/webhooks/issue-created";
    let token = site.hs256_token("POST", created);
    let body = issue_created("IT-7", "557058:erin");
    for delivery in ["w-2", "w-3"] {
        let response = send(created, token.clone(), delivery, body.clone()).await;
        assert_eq!(response.status(), 204, "{delivery}");
    }
    assert_eq!(events_of(&env.app, &key).await.len(), 1, "stored once");
    // Another ticket's delivery signed in the same second: its own event.
    let same_second = issue_created("IT-8", "557058:erin");
    let response = send(created, token.clone(), "w-4", same_second).await;
    assert_eq!(response.status(), 204);
    assert_eq!(events_of(&env.app, &key).await.len(), 2);
    // The same token later with another body: a replay, refused, nothing stored.
    clock.advance(chrono::TimeDelta::seconds(30));
    let replayed = issue_created("IT-9", "557058:erin");
    let response = send(created, token, "w-6", replayed).await;
    assert_eq!(response.status(), 401);
    let events = events_of(&env.app, &key).await;
    assert_eq!(events.len(), 2);
    assert!(!events.iter().any(|e| e.payload.contains("IT-9")));
    // A path that names no event Tollgate registered.
    let nowhere = "/connect/webhooks/issue-deleted";
    let response = send(nowhere, site.hs256_token("POST", nowhere), "w-5", body).await;
    assert_eq!(response.status(), 404);
}

/// `connect.allowed_sites`: a genuinely signed install from a site outside the list is
/// refused with 401 before its key is fetched or anything is stored; the same install is
/// taken once the site is listed.
#[tokio::test]
async fn a_site_outside_the_allowed_sites_may_not_install() {
    let keys = InstallKeyServer::start().await.expect("key server");
    keys.publish(KID, TEST_KEY_1.1);
    let keys_url = keys.url();
    let cloud = tollgate_fakes::atlassian::FakeAtlassian::start(
        tollgate_fakes::atlassian::World::default(),
        Default::default(),
    )
    .await
    .expect("fake cloud");
    let db = TestDatabase::create().await;
    let settings = |sites: &'static str| {
        vec![
            ("TOLLGATE_BASE_URL", BASE_URL),
            ("TOLLGATE_CONNECT_KEYS_URL", keys_url.as_str()),
            ("TOLLGATE_CONNECT_ALLOWED_SITES", sites),
        ]
    };
    // Only Atlassian's own sites: the fake's site at 127.0.0.1 is not one.
    let app = spawn_app_on(
        db.share(),
        Mode::All,
        &settings("https://*.atlassian.net"),
        Arc::new(SystemClock),
    )
    .await;
    let site = FakeSite::jira(&app_url(&app), "acme.atlassian.net", KID).at(&cloud.site_url());
    let response = site.install().await.expect("sent");
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["error"]["message"],
        "this site may not install the app"
    );
    assert_eq!(tenant_count(&app).await, 0, "nothing was stored");
    assert_eq!(keys.requests(), 0, "no key was fetched for it");
    drop(app);

    let app = spawn_app_on(
        db,
        Mode::All,
        &settings("https://*.atlassian.net, http://127.0.0.1:*"),
        Arc::new(SystemClock),
    )
    .await;
    let site = FakeSite::jira(&app_url(&app), "acme.atlassian.net", KID).at(&cloud.site_url());
    let descriptor = site.descriptor().await.expect("descriptor");
    cloud.install(site.fake_tenant(&descriptor));
    assert_eq!(site.install().await.expect("sent").status(), 204);
    assert_eq!(tenant_count(&app).await, 1);
}

/// A flood of forged installs naming made-up key ids: each unknown kid is asked about once
/// and remembered, and fetches are budgeted per minute, so the key server sees a bounded
/// number of calls; every forged install is refused.
#[tokio::test]
async fn a_flood_of_forged_installs_makes_a_bounded_number_of_key_fetches() {
    let env = start().await;
    let site = FakeSite::jira(&app_url(&env.app), "acme.atlassian.net", KID);
    let body = site.lifecycle_body("io.tollgate.access", "installed");
    let path = "/connect/installed";
    let claims = site.install_claims(BASE_URL, path);
    // One made-up kid, 50 times: one fetch.
    let mut forged = site.clone();
    forged.kid = "made-up".into();
    for _ in 0..50 {
        let response = post_with_token(&env.app, path, &forged.sign_install(&claims), &body).await;
        assert_eq!(response.status(), 401);
    }
    assert_eq!(env.keys.requests(), 1, "an unknown kid is remembered");
    // 300 different ones: no more fetches than a minute's budget.
    let mut statuses = std::collections::BTreeMap::new();
    for n in 0..300 {
        forged.kid = format!("made-up-{n}");
        let response = post_with_token(&env.app, path, &forged.sign_install(&claims), &body).await;
        *statuses.entry(response.status().as_u16()).or_insert(0) += 1;
    }
    let budget = tollgate::connect::keys::FETCHES_PER_MINUTE as usize;
    assert!(
        env.keys.requests() <= 1 + budget,
        "{} key fetches",
        env.keys.requests()
    );
    // Those past the budget are told to retry (503), not let in.
    assert_eq!(statuses.keys().copied().collect::<Vec<_>>(), [401, 503]);
    assert_eq!(tenant_count(&env.app).await, 0);
}

/// A 5xx says what happened in words for the caller and a correlation id, never the
/// database's text; the detail is in the log under that id.
#[tokio::test]
async fn a_server_error_carries_a_correlation_id_and_no_internal_text() {
    let env = start().await;
    let site = installed_site(&env).await;
    // The intake's table is gone (a botched manual change, a broken restore).
    let drop_table = "DROP TABLE inbound_events";
    tollgate::on_db!(env.app.state.store.db(), |pool| {
        sqlx::query(drop_table).execute(pool).await.map(|_| ())
    })
    .expect("dropped");
    let response = site
        .send_webhook(
            "/connect/webhooks/issue-created",
            "d-1",
            &issue_created("IT-1", "acc-1"),
        )
        .await
        .expect("sent");
    assert_eq!(response.status(), 503);
    let text = response.text().await.expect("body");
    for internal in [
        "database",
        "inbound_events",
        "does not exist",
        "no such table",
        "sqlx",
    ] {
        assert!(!text.contains(internal), "{internal:?} in {text}");
    }
    let body: Value = serde_json::from_str(&text).expect("json");
    let id = body["error"]["correlation_id"].as_str().expect("an id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(id)),
        "{body}"
    );
}
