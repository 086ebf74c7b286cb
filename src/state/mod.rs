//! What every handler and job can reach. Cheap to clone: everything inside is shared.

use std::sync::Arc;

mod site;

use crate::clock::Clock;
use crate::config::Config;
use crate::jobs::WorkerStatus;
use crate::metrics::Metrics;
use crate::secrets::SecretKey;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub secret_key: Arc<SecretKey>,
    /// Whether this process runs a job worker (`serve` without `--no-worker`, or `worker`).
    pub worker_enabled: bool,
    pub worker_status: Arc<WorkerStatus>,
    pub ingress: crate::ingress::Writer,
    /// The org chart routing uses, refreshed from the newest stored snapshot.
    pub org: Arc<crate::people::cache::OrgCache>,
    /// Outbound calls to Atlassian with this deployment's credentials.
    pub atlassian: crate::atlassian::Atlassian,
    /// The workflows loaded at start (`None` when they have errors: requests wait).
    pub workflows: Option<Arc<crate::workflow::Workflows>>,
    /// Wakes this process's job worker when work was just committed.
    pub job_wake: Arc<crate::jobs::WakeSignal>,
}

impl AppState {
    pub fn workflows(&self) -> Option<Arc<crate::workflow::Workflows>> {
        self.workflows.clone()
    }
}
