//! The identity provider's event hooks beside a polled source: Okta's verification and events,
//! Graph's validation and notifications. An event causes a re-read of just the person it names
//! (checked against the fakes' request logs); a forged or malformed delivery is refused with
//! nothing stored; a redelivery is read once.

use std::time::Duration;

use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use tollgate::app::Mode;
use tollgate::orgchart::PersonId;

use crate::idp_rest::{GraphOrg, OKTA_TOKEN, TENANT, graph_org, okta_org};
use crate::support::{self, TestApp, eventually};

async fn chart_has(
    app: &TestApp,
    what: &str,
    check: impl Fn(&tollgate::orgchart::Person) -> bool,
    id: &PersonId,
) {
    let shown = eventually(Duration::from_secs(20), || async {
        let index = app.state.org.index()?;
        let person = index.person(index.by_id(id)?);
        check(person).then_some(())
    })
    .await;
    assert!(shown.is_some(), "the chart never showed {what}");
}

/// A port to bind and the public URL naming it, known before the app starts.
fn public_address() -> (String, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    (
        format!("127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}"),
    )
}

/// An app on an Entra source with change notifications, its Graph the fake of `org`, answering
/// at its public URL (`base`, else one that reaches it); returns the app and that URL.
async fn entra_app(org: &GraphOrg, mode: Mode, base: Option<&str>) -> (TestApp, String) {
    let url = org.server.url();
    let graph_url = format!("{url}/v1.0");
    let token_url = format!("{url}/{TENANT}/oauth2/v2.0/token");
    let (bind, reachable) = public_address();
    let base = base.map_or(reachable, str::to_string);
    let settings = [
        ("TOLLGATE_BIND", bind.as_str()),
        ("TOLLGATE_BASE_URL", base.as_str()),
        ("TOLLGATE_IDP_KIND", "entra"),
        ("TOLLGATE_IDP_ENTRA_TENANT", TENANT),
        ("TOLLGATE_IDP_ENTRA_CLIENT_ID", "tollgate-app"),
        ("TOLLGATE_IDP_ENTRA_CLIENT_SECRET", "s3cret"),
        ("TOLLGATE_IDP_ENTRA_GRAPH_URL", graph_url.as_str()),
        ("TOLLGATE_IDP_ENTRA_TOKEN_URL", token_url.as_str()),
        ("TOLLGATE_IDP_ENTRA_CLIENT_STATE", "client-state-7"),
        ("TOLLGATE_IDP_SYNC_INTERVAL", "24h"),
    ];
    (support::spawn_app_with(mode, &settings).await, base)
}

async fn received(app: &TestApp) -> Vec<Value> {
    tollgate::audit::events(&app.state.store, None, "idp.event_received")
        .await
        .expect("audit")
}

fn okta_event(uuid: &str, kind: &str, user: &str) -> Value {
    json!({
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "contentType": "application/json",
        "eventId": format!("delivery-{uuid}"),
        "data": {"events": [{
            "uuid": uuid,
            "published": "2026-12-04T10:00:00.000Z",
            "eventType": kind,
            "displayMessage": "Deactivate Okta user",
            "target": [{"id": user, "type": "User", "alternateId": "dev@acme.test", "displayName": "Dee Veloper"}],
        }]},
    })
}

#[tokio::test]
async fn an_okta_hook_is_verified_and_a_deactivation_rereads_just_that_user() {
    let org = okta_org().await;
    let app = support::spawn_app_with(
        Mode::All,
        &[
            ("TOLLGATE_IDP_KIND", "okta"),
            ("TOLLGATE_IDP_OKTA_URL", &org.server.url()),
            ("TOLLGATE_IDP_OKTA_TOKEN", OKTA_TOKEN),
            ("TOLLGATE_IDP_OKTA_HOOK_SECRET", "hook-secret"),
            // No periodic sync during the test: every read is the event's.
            ("TOLLGATE_IDP_SYNC_INTERVAL", "24h"),
        ],
    )
    .await;
    let dev = org.people.dev.clone();
    chart_has(&app, "Dev, active", |p| p.active, &dev).await;
    let http = reqwest::Client::new();
    let hook = app.url("/hooks/okta");

    // The one-time verification: the challenge is answered, for the secret's holder only.
    let verified: Value = http
        .get(&hook)
        .header(header::AUTHORIZATION, "hook-secret")
        .header("X-Okta-Verification-Challenge", "Gk3rJ1_rk0P")
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    assert_eq!(verified, json!({"verification": "Gk3rJ1_rk0P"}));
    let unverified = http
        .get(&hook)
        .header("X-Okta-Verification-Challenge", "Gk3rJ1_rk0P")
        .send()
        .await
        .expect("sent");
    assert_eq!(unverified.status(), StatusCode::UNAUTHORIZED);

    // Forged and malformed deliveries: refused, nothing stored.
    let event = okta_event("e-1", "user.lifecycle.deactivate", &dev.0);
    for (auth, body, status) in [
        (None, event.to_string(), StatusCode::UNAUTHORIZED),
        (Some("guess"), event.to_string(), StatusCode::UNAUTHORIZED),
        (
            Some("hook-secret"),
            "{\"data\": ".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Some("hook-secret"),
            json!({"data": {"events": [{"eventType": "x"}]}}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let mut request = http.post(&hook).body(body);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        assert_eq!(request.send().await.expect("sent").status(), status);
    }
    assert!(
        received(&app).await.is_empty(),
        "nothing of a refused delivery is stored"
    );

    // Dev is deactivated in Okta; the event makes Tollgate read Dev again, and only Dev.
    org.server
        .vendor()
        .update_user(&dev.0, |u| u.status = "DEPROVISIONED".into());
    let before = org.server.recorded().len();
    for _ in 0..2 {
        // Okta retries a delivery it did not see acknowledged: the second is the same event.
        let delivered = http
            .post(&hook)
            .header(header::AUTHORIZATION, "hook-secret")
            .json(&event)
            .send()
            .await
            .expect("sent");
        assert_eq!(delivered.status(), StatusCode::OK);
    }
    chart_has(&app, "Dev, deactivated", |p| !p.active, &dev).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reads: Vec<String> = org.server.recorded()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        reads,
        [format!("GET /api/v1/users/{}", dev.0)],
        "one targeted read, once"
    );
    let events = received(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["details"]["type"], "user.lifecycle.deactivate");
    assert_eq!(events[0]["target"], json!(dev.0));
}

#[tokio::test]
async fn a_graph_notification_with_a_wrong_client_state_is_refused_and_a_right_one_rereads() {
    let org = graph_org().await;
    // Graph calls the service back at its public URL: known before it starts.
    let (app, base) = entra_app(&org, Mode::All, None).await;
    let dev = org.people.dev.clone();
    chart_has(
        &app,
        "Dev, an engineer",
        |p| p.title.as_deref() == Some("Engineer"),
        &dev,
    )
    .await;
    // At start the service subscribes to users and groups; Graph validated the URL first.
    let subscribed = eventually(Duration::from_secs(20), || async {
        let subscriptions = org.server.vendor().subscriptions.clone();
        (subscriptions.len() == 2).then_some(subscriptions)
    })
    .await
    .expect("two subscriptions");
    let mut resources: Vec<&str> = subscribed.values().map(|s| s.resource.as_str()).collect();
    resources.sort_unstable();
    assert_eq!(resources, ["groups", "users"]);
    for subscription in subscribed.values() {
        assert_eq!(subscription.notification_url, format!("{base}/hooks/graph"));
        assert_eq!(subscription.client_state.as_deref(), Some("client-state-7"));
        assert!(subscription.expires > chrono::Utc::now() + chrono::TimeDelta::days(27));
    }
    let http = reqwest::Client::new();
    let hook = app.url("/hooks/graph");

    // The subscription's validation: the token comes back as plain text.
    let validated = http
        .post(format!(
            "{hook}?validationToken=Validation%3A%20Testing%20client%20application"
        ))
        .send()
        .await
        .expect("sent");
    assert_eq!(validated.status(), StatusCode::OK);
    assert_eq!(
        validated.headers()[header::CONTENT_TYPE].to_str().ok(),
        Some("text/plain")
    );
    assert_eq!(
        validated.text().await.expect("text"),
        "Validation: Testing client application"
    );

    let notification = |state: &str| {
        json!({"value": [{
            "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
            "subscriptionExpirationDateTime": "2026-12-30T18:23:45.935Z",
            "changeType": "updated",
            "resource": format!("Users/{}", dev.0),
            "resourceData": {"@odata.type": "#Microsoft.Graph.User", "@odata.id": format!("Users/{}", dev.0), "id": dev.0},
            "clientState": state,
            "tenantId": TENANT,
        }]})
    };
    let forged = http
        .post(&hook)
        .json(&notification("guessed"))
        .send()
        .await
        .expect("sent");
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let malformed = http.post(&hook).body("[]").send().await.expect("sent");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert!(
        received(&app).await.is_empty(),
        "nothing of a refused delivery is stored"
    );

    org.server
        .vendor()
        .update_user(&dev.0, |u| u.job_title = Some("Staff Engineer".into()));
    let before = org.server.recorded().len();
    let accepted = http
        .post(&hook)
        .json(&notification("client-state-7"))
        .send()
        .await
        .expect("sent");
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    chart_has(
        &app,
        "Dev's new title",
        |p| p.title.as_deref() == Some("Staff Engineer"),
        &dev,
    )
    .await;
    let reads: Vec<String> = org.server.recorded()[before..]
        .iter()
        .filter(|r| r.path.starts_with("/v1.0/"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        reads,
        [format!("GET /v1.0/users/{}", dev.0)],
        "one targeted read"
    );
    assert_eq!(received(&app).await.len(), 1);
}

#[tokio::test]
async fn hooks_are_closed_unless_configured() {
    let app = support::spawn_app().await;
    let http = reqwest::Client::new();
    let okta = http
        .post(app.url("/hooks/okta"))
        .header(header::AUTHORIZATION, "anything")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(okta.status(), StatusCode::NOT_FOUND);
    let graph = http
        .post(app.url("/hooks/graph?validationToken=x"))
        .send()
        .await
        .expect("sent");
    assert_eq!(graph.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn graph_subscriptions_are_renewed_before_they_end_and_made_again_when_dropped() {
    let org = graph_org().await;
    let (app, _) = entra_app(&org, Mode::All, None).await;
    let store = &app.state.store;
    let held = eventually(Duration::from_secs(20), || async {
        let held = tollgate::store::idp_events::subscriptions(store)
            .await
            .ok()?;
        (held.len() == 2).then_some(held)
    })
    .await
    .expect("both subscribed");
    // Nothing to do while they have long to live.
    let before = org.server.recorded().len();
    tollgate::engine::org_change::keep_subscriptions(&app.state)
        .await
        .expect("kept");
    assert!(
        !org.server.recorded()[before..]
            .iter()
            .any(|r| r.path.contains("subscriptions")),
        "no call while both live long"
    );
    // Both end tomorrow; Graph dropped the groups' one.
    let soon = chrono::Utc::now() + chrono::TimeDelta::days(1);
    for subscription in &held {
        let mut ending = subscription.clone();
        ending.expires_at = soon;
        tollgate::store::idp_events::save_subscription(store, &ending, soon)
            .await
            .expect("saved");
    }
    let groups = held
        .iter()
        .find(|s| s.resource == "groups")
        .expect("groups");
    let users = held.iter().find(|s| s.resource == "users").expect("users");
    org.server.vendor().subscriptions.remove(&groups.id);
    tollgate::engine::org_change::keep_subscriptions(&app.state)
        .await
        .expect("kept");
    let now = tollgate::store::idp_events::subscriptions(store)
        .await
        .expect("read");
    let users_now = now.iter().find(|s| s.resource == "users").expect("users");
    let groups_now = now.iter().find(|s| s.resource == "groups").expect("groups");
    assert_eq!(users_now.id, users.id, "renewed in place");
    assert!(users_now.expires_at > chrono::Utc::now() + chrono::TimeDelta::days(27));
    assert_ne!(groups_now.id, groups.id, "made again");
    let fake = org.server.vendor().subscriptions.clone();
    assert_eq!(fake.len(), 2);
    assert!(fake.contains_key(&groups_now.id));
    assert!(fake[&users.id].expires > chrono::Utc::now() + chrono::TimeDelta::days(27));
}

#[tokio::test]
async fn a_subscription_graph_cannot_validate_is_not_made() {
    let org = graph_org().await;
    // The public URL names a port nobody answers on: Graph's validation call fails.
    let (app, _) = entra_app(&org, Mode::WebOnly, Some("http://127.0.0.1:9")).await;
    let refused = tollgate::engine::org_change::keep_subscriptions(&app.state).await;
    let error = refused
        .expect_err("Graph could not validate the URL")
        .to_string();
    assert!(error.contains("validation"), "{error}");
    assert!(org.server.vendor().subscriptions.is_empty());
    assert!(
        tollgate::store::idp_events::subscriptions(&app.state.store)
            .await
            .expect("read")
            .is_empty()
    );
}
