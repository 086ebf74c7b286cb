//! The test harness shared by every integration test.

pub mod breaking_proxy;
pub mod database;
pub mod env;
pub mod oracle;
pub mod process;
pub mod scim_server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tollgate::app::{Application, Mode};
use tollgate::clock::{Clock, SystemClock};
use tollgate::config::Config;
use tollgate::shutdown::Shutdown;
use tollgate::state::AppState;

pub use database::TestDatabase;

pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    /// The Connect door's own state (its descriptors).
    pub connect: std::sync::Arc<tollgate::connect::Connect>,
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<Result<(), tollgate::app::StartError>>,
    // Dropped last: the database outlives the app that uses it.
    pub db: TestDatabase,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request reaches the app")
    }

    /// Stops the app gracefully and waits for it.
    pub async fn stop(self) -> TestDatabase {
        self.shutdown.trigger();
        let result = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("app stops within the timeout")
            .expect("app task did not panic");
        assert!(result.is_ok(), "app stopped with an error: {result:?}");
        self.db
    }

    /// Waits until `/readyz` reports the worker running (it starts asynchronously).
    pub async fn wait_until_ready(&self) {
        for _ in 0..100 {
            let response = self.get("/readyz").await;
            if response.status() == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("app never became ready");
    }
}

/// Settings a test app starts from; `overrides` wins over them.
pub fn test_config(db: &TestDatabase, overrides: &[(&str, &str)]) -> Config {
    let mut vars: Vec<(String, String)> = vec![
        ("TOLLGATE_BIND".into(), "127.0.0.1:0".into()),
        ("DATABASE_URL".into(), db.url().to_string()),
        ("TOLLGATE_SECRET_KEY".into(), test_secret_key()),
        ("TOLLGATE_JOBS_POLL_INTERVAL".into(), "200ms".into()),
        ("TOLLGATE_SERVER_SHUTDOWN_TIMEOUT".into(), "5s".into()),
        ("TOLLGATE_DATABASE_MAX_CONNECTIONS".into(), "5".into()),
        (
            "TOLLGATE_CONNECT_ALLOWED_SITES".into(),
            tollgate_fakes::atlassian::connect::TEST_SITES.into(),
        ),
    ];
    for (k, v) in overrides {
        vars.retain(|(name, _)| name != k);
        vars.push((k.to_string(), v.to_string()));
    }
    let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    Config::from_sources(None, &lookup).expect("test configuration is valid")
}

/// A tenant key a test names (one it made up, or the fake site's client key).
pub fn tenant_key(text: &str) -> tollgate::ids::TenantKey {
    tollgate::ids::TenantKey::parse(text).expect("a test's tenant key")
}

/// A ticket key a test names (`IT-7`).
pub fn ticket_key(text: &str) -> tollgate::ids::TicketKey {
    tollgate::ids::TicketKey::parse(text).expect("a test's ticket key")
}

pub fn test_secret_key() -> String {
    tollgate::secrets::SecretKey::generate()
        .expect("random")
        .to_base64()
}

pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Ok(filter) = std::env::var("TEST_LOG") {
        // TEST_LOG=1 for debug logs, or a filter such as TEST_LOG=apalis_core=trace.
        let filter = if filter == "1" {
            "debug,sqlx=warn".into()
        } else {
            filter
        };
        tollgate::telemetry::init(&tollgate::config::LogConfig {
            filter,
            format: tollgate::config::LogFormat::Pretty,
        });
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Mode::All, &[]).await
}

pub async fn spawn_app_with(mode: Mode, overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_on(
        TestDatabase::create().await,
        mode,
        overrides,
        Arc::new(SystemClock),
    )
    .await
}

pub async fn spawn_app_on(
    db: TestDatabase,
    mode: Mode,
    overrides: &[(&str, &str)],
    clock: Arc<dyn Clock>,
) -> TestApp {
    init();
    let config = test_config(&db, overrides);
    let app = Application::build_with_clock(config, mode, clock)
        .await
        .expect("app builds");
    let address = app.local_addr().expect("listening");
    let state = app.state().clone();
    let connect = app.connect();
    let shutdown = app.shutdown_handle();
    let task = tokio::spawn(app.run_until_stopped());
    TestApp {
        connect,
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        state,
        shutdown,
        task,
        db,
    }
}

/// Another worker on `app`'s database and secret key, built (its caches loaded as a start
/// loads them) and never run: a test calls its jobs by hand, to keep it in a state a running
/// one would leave within seconds (a chart older than the newest, say).
pub async fn idle_replica(
    app: &TestApp,
    overrides: &[(&str, &str)],
    clock: Arc<dyn Clock>,
) -> Application {
    let key = app.state.secret_key.to_base64();
    let mut settings = overrides.to_vec();
    settings.push(("TOLLGATE_SECRET_KEY", &key));
    let config = test_config(&app.db.share(), &settings);
    Application::build_with_clock(config, Mode::WorkerOnly, clock)
        .await
        .expect("the replica builds")
}

/// Stores an event as the intake does, without queueing its job (as if its job were lost, or
/// for a test to process by hand); returns its id.
pub async fn store_event(
    store: &tollgate::store::Store,
    tenant: &str,
    delivery: &str,
    kind: &str,
    body: &serde_json::Value,
    received_at: chrono::DateTime<chrono::Utc>,
) -> uuid::Uuid {
    let d = tollgate::ingress::Delivery {
        tenant: tenant_key(tenant),
        ingress: tollgate::ingress::Door::Connect,
        delivery_id: delivery.into(),
        event_type: kind.into(),
        payload: body.to_string(),
        received_at,
        signed: None,
    };
    let id = uuid::Uuid::now_v7();
    let mut tx = store.begin().await.expect("tx");
    tollgate::store::inbound::insert(&mut tx, id, &d)
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
    id
}

/// The real `tollgate` binary with an empty environment (but for the fakes' sites being allowed
/// to install), run from the repository root.
pub fn binary() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"));
    command.env_clear().current_dir(env!("CARGO_MANIFEST_DIR"));
    // The fakes' sites may install (a test's own setting comes later and wins).
    command.env(
        "TOLLGATE_CONNECT_ALLOWED_SITES",
        tollgate_fakes::atlassian::connect::TEST_SITES,
    );
    command
}

/// Polls `check` until it returns `Some`, for up to `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A migrated store on the test database, for tests that drive the library directly.
pub async fn store(db: &TestDatabase) -> tollgate::store::Store {
    init();
    let config = test_config(db, &[]);
    let store = tollgate::store::Store::connect(&config.database)
        .await
        .expect("store connects");
    store.migrate().await.expect("migrations");
    store
}
