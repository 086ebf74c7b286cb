use tollgate::app::Mode;

use crate::support::{spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_answers_while_the_process_is_up() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ok");
    app.stop().await;
}

#[tokio::test]
async fn readyz_checks_database_migrations_and_worker() {
    let app = spawn_app().await;
    app.wait_until_ready().await;
    let body: serde_json::Value = app.get("/readyz").await.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["migrations"], "ok");
    assert_eq!(body["checks"]["worker"], "ok");
    let expected_backend = if app.db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(body["backend"], expected_backend);
    app.stop().await;
}

#[tokio::test]
async fn a_web_only_replica_is_ready_without_a_worker() {
    let app = spawn_app_with(Mode::WebOnly, &[]).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["checks"]["worker"], "disabled");
    assert!(!app.state.worker_status.is_running());
    app.stop().await;
}

#[tokio::test]
async fn readyz_fails_when_the_database_is_gone() {
    let app = spawn_app_with(Mode::WebOnly, &[]).await;
    app.state.store.close().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["database"], "unreachable");
    app.shutdown.trigger();
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app_with(Mode::WebOnly, &[]).await;
    for _ in 0..3 {
        app.get("/healthz").await;
    }
    app.get("/no/such/page").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(content_type.contains("openmetrics-text"), "{content_type}");
    let text = response.text().await.expect("text");
    assert!(
        text.contains(
            r#"tollgate_http_requests_total{method="GET",route="/healthz",status="200"} 3"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"tollgate_http_requests_total{method="GET",route="unmatched",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("tollgate_http_request_duration_seconds_bucket"));
    app.stop().await;
}

#[tokio::test]
async fn errors_have_one_json_shape() {
    let app = spawn_app_with(Mode::WebOnly, &[]).await;
    let response = app.get("/no/such/page").await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("/no/such/page")
    );

    let response = app
        .client
        .delete(app.url("/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 405);
    assert!(response.headers().contains_key("allow"));
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "bad_request");
    app.stop().await;
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_refused_with_413() {
    let app = spawn_app_with(Mode::WebOnly, &[]).await;
    let big = vec![b'x'; 1024 * 1024 + 1];
    let response = app
        .client
        .post(app.url("/healthz"))
        .body(big)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "payload_too_large");
    app.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = spawn_app_with(Mode::WebOnly, &[]).await;
    let response = app.get("/healthz").await;
    let generated = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");

    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    app.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_stops_serving() {
    let app = spawn_app().await;
    app.wait_until_ready().await;
    let address = app.address;
    app.stop().await;
    let refused = reqwest::Client::new()
        .get(format!("http://{address}/healthz"))
        .send()
        .await;
    assert!(refused.is_err(), "the port is closed after shutdown");
}
