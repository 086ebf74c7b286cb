//! The outbound client against a small stand-in server: throttling honoured, typed errors with
//! the vendor's message, the per-tenant concurrency limit, and Connect tokens that Atlassian's
//! own atlassian-jwt accepts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use reqwest::Method;
use serde_json::json;
use tollgate::atlassian::client::{AtlassianClient, Call, Credential};
use tollgate::atlassian::errors::CallError;
use tollgate::outbound::USER_AGENT;
use tollgate::outbound::retry::RetryPolicy;

#[derive(Default)]
struct Seen {
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    tokens: Mutex<Vec<String>>,
    agents: Mutex<Vec<String>>,
}

async fn spaces(State(seen): State<Arc<Seen>>, headers: HeaderMap) -> impl IntoResponse {
    let n = seen.calls.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    seen.tokens
        .lock()
        .expect("lock")
        .push(header("authorization"));
    seen.agents.lock().expect("lock").push(header("user-agent"));
    if n == 0 {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            json!({"message": "Rate limit exceeded"}).to_string(),
        )
            .into_response();
    }
    (
        StatusCode::OK,
        json!({"results": [{"id": "1", "key": "ENG"}]}).to_string(),
    )
        .into_response()
}

async fn missing() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        json!({"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}).to_string(),
    )
}

async fn slow(State(seen): State<Arc<Seen>>) -> StatusCode {
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

async fn start() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/wiki/api/v2/spaces", get(spaces))
        .route("/rest/api/3/issue/{key}", get(missing))
        .route("/slow", get(slow))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

fn client() -> AtlassianClient {
    crate::support::init();
    AtlassianClient::new(
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(5),
        },
        2,
    )
}

fn connect(base: &str, path: &str) -> Call {
    Call {
        method: Method::GET,
        url: format!("{base}{path}"),
        credential: Credential::Connect {
            app_key: "io.tollgate.access.confluence".into(),
            client_key: "confluence-client".into(),
            shared_secret: Arc::new(b"shared-secret".to_vec()),
            base_url: format!("{base}/wiki"),
        },
        body: None,
        limit_key: "confluence-client".into(),
        headers: vec![],
    }
}

#[tokio::test]
async fn throttling_is_waited_out_and_connect_tokens_verify_with_atlassian_jwt() {
    let (base, seen) = start().await;
    let started = Instant::now();
    let call = connect(&base, "/wiki/api/v2/spaces?limit=2&keys=ENG");
    let reply = client().send(&call).await.expect("succeeds after the 429");
    assert_eq!(reply.status, 200);
    assert_eq!(seen.calls.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert!(
        seen.agents
            .lock()
            .expect("lock")
            .iter()
            .all(|a| a == USER_AGENT)
    );

    let tokens = seen.tokens.lock().expect("lock").clone();
    assert_ne!(tokens[0], tokens[1], "each attempt signs a fresh token");
    let token = tokens[1]
        .strip_prefix("JWT ")
        .expect("a Connect JWT")
        .to_string();
    if !crate::support::oracle::available() {
        return;
    }
    let claims = crate::support::oracle::ask(
        &json!({"op": "decode", "token": token, "secret": "shared-secret"}),
    );
    assert_eq!(claims["iss"], "io.tollgate.access.confluence");
    let expected = crate::support::oracle::ask(&json!({"op": "qsh", "cases": [{
        "method": "GET", "url": "/wiki/api/v2/spaces?limit=2&keys=ENG", "baseUrl": format!("{base}/wiki")
    }]}));
    assert_eq!(claims["qsh"], expected[0]);
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        180
    );
}

#[tokio::test]
async fn vendor_errors_come_back_typed_with_their_message() {
    let (base, _) = start().await;
    let mut call = connect(&base, "/rest/api/3/issue/NOPE-1");
    call.credential = Credential::Basic {
        email: "admin@acme.example".into(),
        token: "api-token".into(),
    };
    match client().send(&call).await {
        Err(CallError::NotFound(message)) => assert!(message.contains("Issue does not exist")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!format!("{:?}", call.credential).contains("api-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_for_one_tenant_respect_its_concurrency_limit() {
    let (base, seen) = start().await;
    let client = Arc::new(client());
    let calls = (0..6).map(|_| {
        let client = client.clone();
        let call = connect(&base, "/slow");
        tokio::spawn(async move { client.send(&call).await })
    });
    let calls: Vec<_> = calls.collect();
    for call in calls {
        call.await.expect("joined").expect("succeeds");
    }
    assert_eq!(seen.max_in_flight.load(Ordering::SeqCst), 2);
}
