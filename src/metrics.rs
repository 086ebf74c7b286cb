//! Prometheus metrics: HTTP requests by route and status, jobs by type and outcome.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    r#type: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobTypeLabels {
    r#type: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_latency: HistogramFamily<HttpLabels>,
    jobs: Family<JobLabels, Counter>,
    job_latency: HistogramFamily<JobTypeLabels>,
    alerts: Family<AlertLabels, Counter>,
    alerts_open: Gauge,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("tollgate");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_latency: HistogramFamily<HttpLabels> =
            Family::new_with_constructor(latency_histogram);
        let jobs = Family::<JobLabels, Counter>::default();
        let job_latency: HistogramFamily<JobTypeLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route and status",
            http_latency.clone(),
        );
        registry.register(
            "jobs",
            "Background jobs run, by type and outcome",
            jobs.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Time to run a background job, by type",
            job_latency.clone(),
        );
        let alerts = Family::<AlertLabels, Counter>::default();
        let alerts_open = Gauge::default();
        registry.register(
            "alerts",
            "Alerts raised, by kind (see docs/operations.md)",
            alerts.clone(),
        );
        registry.register(
            "alerts_open",
            "Alerts waiting for a person (removals held by the leaver brake)",
            alerts_open.clone(),
        );
        Arc::new(Self {
            registry,
            http_requests,
            http_latency,
            jobs,
            job_latency,
            alerts,
            alerts_open,
        })
    }

    /// `route` is the matched route template (`/tenants/{id}`), never the raw path, so the
    /// number of series stays bounded whatever URLs clients send.
    pub fn record_http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = HttpLabels {
            method: method.to_string(),
            route: route.to_string(),
            status,
        };
        self.http_requests.get_or_create(&labels).inc();
        self.http_latency.get_or_create(&labels).observe(seconds);
    }

    pub fn record_job(&self, job_type: &str, outcome: &str, seconds: f64) {
        self.jobs
            .get_or_create(&JobLabels {
                r#type: job_type.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.job_latency
            .get_or_create(&JobTypeLabels {
                r#type: job_type.to_string(),
            })
            .observe(seconds);
    }

    pub fn record_alert(&self, kind: &str) {
        self.alerts
            .get_or_create(&AlertLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    pub fn set_open_alerts(&self, open: usize) {
        self.alerts_open
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_recorded_requests_and_jobs() {
        let metrics = Metrics::new();
        metrics.record_http("GET", "/healthz", 200, 0.002);
        metrics.record_http("GET", "/healthz", 200, 0.003);
        metrics.record_job("self_check", "success", 0.01);
        let text = metrics.render();
        assert!(
            text.contains(
                r#"tollgate_http_requests_total{method="GET",route="/healthz",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"tollgate_jobs_total{type="self_check",outcome="success"} 1"#));
        assert!(text.contains("tollgate_http_request_duration_seconds_bucket"));
        assert!(text.ends_with("# EOF\n"));
    }
}
