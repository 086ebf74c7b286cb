//! A real app for a bench: its configuration from a few settings, started in this process on
//! port 0 and stopped, and the fake Jira site installed into it.

use std::sync::Arc;

use tollgate::app::{Application, Mode};
use tollgate::clock::SystemClock;
use tollgate::config::Config;
use tollgate_fakes::atlassian::FakeAtlassian;
use tollgate_fakes::atlassian::connect::FakeSite;

/// The bench's database: `BENCH_DATABASE_URL` (an empty PostgreSQL database), else a SQLite
/// file in `dir`; and its name for the report.
pub fn database(dir: &std::path::Path) -> (String, &'static str) {
    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db", dir.display()));
    let backend = if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    (url, backend)
}

/// A fresh `TOLLGATE_SECRET_KEY`.
pub fn secret_key() -> String {
    tollgate::secrets::SecretKey::generate()
        .expect("key")
        .to_base64()
}

/// The configuration of an app on `database`, listening on a free port, logging warnings.
pub fn config(database: &str, extra: &[(&str, String)]) -> Config {
    let mut vars: Vec<(String, String)> = vec![
        ("TOLLGATE_BIND".into(), "127.0.0.1:0".into()),
        ("DATABASE_URL".into(), database.into()),
        ("TOLLGATE_BASE_URL".into(), "https://tollgate.bench".into()),
        ("TOLLGATE_LOG".into(), "warn".into()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    Config::from_sources(None, &lookup).expect("config")
}

pub struct Running {
    pub app_state: tollgate::state::AppState,
    pub url: String,
    shutdown: tollgate::shutdown::Shutdown,
    task: tokio::task::JoinHandle<Result<(), tollgate::app::StartError>>,
}

pub async fn run(config: Config, mode: Mode) -> Running {
    let app = Application::build_with_clock(config, mode, Arc::new(SystemClock))
        .await
        .expect("app");
    let url = format!("http://{}", app.local_addr().expect("addr"));
    let app_state = app.state().clone();
    let shutdown = app.shutdown_handle();
    let task = tokio::spawn(app.run_until_stopped());
    Running {
        app_state,
        url,
        shutdown,
        task,
    }
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.trigger();
        let _ = self.task.await;
    }
}

/// Installs the Jira site into the app at `url` (and the fake cloud).
pub async fn install(url: &str, cloud: &FakeAtlassian) -> FakeSite {
    let site = FakeSite::jira(url, "acme.atlassian.net", "k1").at(&cloud.site_url());
    let descriptor = site.descriptor().await.expect("descriptor");
    cloud.install(site.fake_tenant(&descriptor));
    assert_eq!(site.install().await.expect("install").status(), 204);
    site
}
