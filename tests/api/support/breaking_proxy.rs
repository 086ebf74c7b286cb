//! A small HTTP proxy in front of a real server that breaks one answer on its way: the answer
//! to the first request whose path and query match is replaced by a broken page (cut off,
//! HTML, or JSON of the wrong shape). Everything else passes through unchanged.

use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use tollgate_fakes::harness::Broken;

struct Plan {
    upstream: String,
    path: String,
    query_has: String,
    /// What to break with, and how many more answers to break.
    broken: Mutex<(Broken, usize)>,
    http: reqwest::Client,
}

pub struct BreakingProxy {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BreakingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BreakingProxy {
    /// Breaks the next `times` matching answers.
    pub async fn start(
        upstream: &str,
        path: &str,
        query_has: &str,
        broken: Broken,
        times: usize,
    ) -> Self {
        let plan = Arc::new(Plan {
            upstream: upstream.trim_end_matches('/').to_string(),
            path: path.to_string(),
            query_has: query_has.to_string(),
            broken: Mutex::new((broken, times)),
            http: reqwest::Client::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new().fallback(forward).with_state(plan);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, task }
    }
}

async fn forward(State(plan): State<Arc<Plan>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let bytes = to_bytes(body, 10 * 1024 * 1024).await.unwrap_or_default();
    let mut upstream = plan
        .http
        .request(
            parts.method.clone(),
            format!("{}{}", plan.upstream, parts.uri),
        )
        .body(bytes.to_vec());
    for name in ["authorization", "accept", "content-type", "if-match"] {
        if let Some(value) = parts.headers.get(name) {
            upstream = upstream.header(name, value.clone());
        }
    }
    let answer = upstream.send().await.expect("the upstream answers");
    let status = answer.status();
    let mut response = Response::builder().status(status.as_u16());
    for name in ["content-type", "etag", "location"] {
        if let Some(value) = answer.headers().get(name) {
            response = response.header(name, value.clone());
        }
    }
    let text = answer.text().await.unwrap_or_default();
    let breaking = path == plan.path && query.contains(&plan.query_has);
    let broken = breaking
        .then(|| {
            let mut plan = plan.broken.lock().ok()?;
            (plan.1 > 0).then(|| {
                plan.1 -= 1;
                plan.0.clone()
            })
        })
        .flatten();
    let body = match broken {
        None => text,
        // The real page, cut off in the middle.
        Some(Broken::Truncated) => text[..text.len() / 2].to_string(),
        Some(Broken::Html) => "<html><body><h1>502 Bad Gateway</h1></body></html>".into(),
        Some(Broken::Shape(value)) => value.to_string(),
    };
    response.body(Body::from(body)).unwrap_or_default()
}
