//! Building and running the service: HTTP server, job worker, or both, from one configuration.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::jobs::{self, WorkerStatus};
use crate::metrics::Metrics;
use crate::secrets::{self, KeySource, SecretError};
use crate::shutdown::Shutdown;
use crate::state::AppState;

/// Concurrent calls to one Atlassian site.
const ATLASSIAN_CONCURRENCY_PER_TENANT: usize = 4;

/// The workflows as `workflows check` sees them; errors are logged and requests wait for a fix.
fn load_workflows(dir: &std::path::Path) -> Option<Arc<crate::workflow::Workflows>> {
    let outcome = crate::workflow::load_dir(dir, None);
    for d in &outcome.diagnostics {
        tracing::warn!(file = %d.file.display(), line = d.pos.line, message = d.message, "workflows");
    }
    match outcome.workflows {
        Some(w) => {
            tracing::info!(version = w.version, dir = %dir.display(), "workflows loaded");
            Some(Arc::new(w))
        }
        None => {
            tracing::error!(dir = %dir.display(), "workflows have errors: access requests wait until they are fixed (`tollgate workflows check`)");
            None
        }
    }
}

/// How often a replica checks for an org chart newer than the one it routes with.
const ORG_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
use crate::store::{Store, StoreError};

/// Which parts this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `serve`: HTTP and an embedded worker.
    All,
    /// `serve --no-worker`: web-only replica.
    WebOnly,
    /// `worker`: jobs only.
    WorkerOnly,
}

impl Mode {
    fn http(self) -> bool {
        self != Mode::WorkerOnly
    }

    fn worker(self) -> bool {
        self != Mode::WebOnly
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("cannot listen on {addr} (TOLLGATE_BIND): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("job worker failed: {0}")]
    Worker(String),
}

pub struct Application {
    state: AppState,
    /// What the doors keep (their keys, descriptors, tenant cache).
    connect: Arc<crate::connect::Connect>,
    forge: Option<Arc<crate::forge::Forge>>,
    listener: Option<TcpListener>,
    mode: Mode,
    shutdown: Shutdown,
}

impl Application {
    /// Connects and migrates the database, resolves the secret key and binds the listener, so
    /// every start-up failure surfaces here, before anything runs.
    pub async fn build(config: Config, mode: Mode) -> Result<Self, StartError> {
        Self::build_with_clock(config, mode, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        config: Config,
        mode: Mode,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let (secret_key, source) =
            secrets::resolve_key(config.secret_key.as_ref(), config.database.url.key_home())?;
        match source {
            KeySource::GeneratedFile(path) => tracing::warn!(
                path = %path.display(),
                "TOLLGATE_SECRET_KEY is not set: generated one beside the SQLite database; back this file up with the database"
            ),
            KeySource::Ephemeral => tracing::warn!(
                "TOLLGATE_SECRET_KEY is not set and the database is in memory: using a throwaway key"
            ),
            KeySource::Configured | KeySource::ExistingFile(_) => {}
        }

        let store = Store::connect(&config.database).await?;
        store.migrate().await?;

        let listener = if mode.http() {
            let addr = config.server.bind;
            Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            )
        } else {
            None
        };

        let config_atlassian = config.atlassian.clone();
        let job_wake = Arc::new(jobs::WakeSignal::default());
        let workflows = load_workflows(&config.workflows_dir);
        let connect = Arc::new(crate::connect::Connect::new(&config));
        let forge = crate::forge::Forge::new(&config.forge).map(Arc::new);
        let state = AppState {
            ingress: crate::ingress::Writer::start(
                store.dedicated_writer().await?,
                job_wake.clone(),
            ),
            job_wake,
            config: Arc::new(config),
            store,
            clock,
            metrics: Metrics::new(),
            secret_key: Arc::new(secret_key),
            worker_enabled: mode.worker(),
            worker_status: Arc::new(WorkerStatus::default()),
            org: Arc::new(crate::people::cache::OrgCache::new()),
            atlassian: crate::atlassian::Atlassian::new(
                Arc::new(crate::atlassian::client::AtlassianClient::new(
                    crate::outbound::retry::RetryPolicy::default(),
                    ATLASSIAN_CONCURRENCY_PER_TENANT,
                )),
                crate::atlassian::Credentials::from_config(&config_atlassian),
            ),
            workflows,
        };
        // The newest org chart, if any sync ever ran; a broken one must not stop the start.
        if let Err(e) = state.org.refresh(&state.store).await {
            tracing::error!(error = %e, "cannot load the stored org chart");
        }
        crate::grants::people_migration::run(
            &state.store,
            state.config.atlassian.org_id.as_deref(),
            state.clock.now(),
        )
        .await?;
        Ok(Self {
            state,
            connect,
            forge,
            listener,
            mode,
            shutdown: Shutdown::new(),
        })
    }

    /// The bound address (port 0 in the configuration becomes the real port here).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The Connect door's own state (descriptors, install keys, tenant cache).
    pub fn connect(&self) -> Arc<crate::connect::Connect> {
        self.connect.clone()
    }

    /// A handle that stops the application gracefully when triggered.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Runs until the shutdown handle fires, then finishes in-flight requests and jobs, waiting
    /// at most `server.shutdown_timeout` for them.
    pub async fn run_until_stopped(self) -> Result<(), StartError> {
        let Application {
            state,
            connect,
            forge,
            listener,
            mode,
            shutdown,
        } = self;
        let grace = state.config.server.shutdown_timeout;

        let worker = mode.worker().then(|| {
            let state = state.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = crate::worker::schedule_periodic(&state).await {
                    tracing::error!(error = %e, "cannot schedule the periodic jobs");
                }
                crate::worker::run_worker(state, shutdown).await
            })
        });
        // Every replica notices a snapshot written by any other.
        let org_poller = {
            let state = state.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(ORG_POLL_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = shutdown.wait() => break,
                        _ = tick.tick() => {
                            match state.org.refresh(&state.store).await {
                                // A snapshot written elsewhere (the CLI, another replica):
                                // its leavers and re-routing are applied once, by a worker.
                                Ok(true) => {
                                    let why = format!("snapshot:{}", state.org.version().unwrap_or(0));
                                    if let Err(e) = jobs::queue_org_apply(&state.store, &why).await {
                                        tracing::warn!(error = %e, "cannot queue the org chart's application");
                                    }
                                }
                                Ok(false) => {}
                                Err(e) => {
                                    tracing::warn!(error = %e, "checking for a newer org chart failed");
                                }
                            }
                        }
                    }
                }
            })
        };

        let addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let server = listener.map(|listener| {
            let app = crate::http::router(crate::http::Web {
                app: state.clone(),
                connect,
                forge,
            });
            let shutdown = shutdown.clone();
            let limits = state.config.server.connections;
            tokio::spawn(crate::http::serve::serve(listener, app, limits, shutdown))
        });
        tracing::info!(
            ?mode,
            addr = ?addr,
            backend = state.store.backend().as_str(),
            "tollgate running"
        );

        let mut result = Ok(());
        if let Some(mut server) = server {
            let finished = tokio::select! {
                outcome = &mut server => Some(outcome),
                () = shutdown.wait() => None,
            };
            let outcome = match finished {
                Some(outcome) => outcome,
                // Shutting down: in-flight requests get the grace period, then are cut off.
                None => match tokio::time::timeout(grace, &mut server).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        tracing::warn!("requests still running after the shutdown timeout");
                        server.abort();
                        Ok(Ok(()))
                    }
                },
            };
            // The server only returns on shutdown or a fatal error; either way stop the worker.
            shutdown.trigger();
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(StartError::Serve(e)),
                Err(e) => result = Err(StartError::Serve(std::io::Error::other(e))),
            }
        } else {
            shutdown.wait().await;
        }
        if let Some(worker) = worker {
            match tokio::time::timeout(grace + std::time::Duration::from_secs(1), worker).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => result = result.and(Err(StartError::Worker(e.to_string()))),
                Ok(Err(e)) => result = result.and(Err(StartError::Worker(e.to_string()))),
                Err(_) => tracing::warn!("job worker did not stop within the shutdown timeout"),
            }
        }
        let _ = org_poller.await;
        state.store.close().await;
        tracing::info!("tollgate stopped");
        result
    }
}
