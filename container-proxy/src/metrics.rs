//! The container proxy's Prometheus metrics, registered once on a [`whisk_telemetry::Metrics`]
//! and updated from the invoke path; served on the proxy's own port at `/metrics`.
//!
//! Labels stay bounded: the activation status (four values) — never an activation id. The proxy
//! serves one action, so the action and its namespace are target labels for the scraper to add,
//! not per-sample labels.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use whisk_telemetry::{DURATION_BUCKETS, Metrics};
use whisk_vocab::ActivationStatus;

/// `status` of `whisk_proxy_activations_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

/// Every metric of the proxy.
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    pub registry: Metrics,
    /// `whisk_proxy_activations_total{status}`: finished activations.
    pub activations: Family<StatusLabel, Counter>,
    /// `whisk_proxy_run_duration_seconds`: time the action ran (`/run`).
    pub run_duration: Histogram,
    /// `whisk_proxy_init_duration_seconds`: time to initialise the action (`/init`).
    pub init_duration: Histogram,
    /// `whisk_proxy_queue_wait_duration_seconds`: time admitted activations waited for a slot.
    pub queue_wait: Histogram,
    /// `whisk_proxy_too_many_requests_total`: invokes refused with 429.
    pub too_many_requests: Counter,
    /// `whisk_proxy_queue_length`: admitted activations waiting for a slot (set at scrape).
    pub queue_length: Gauge,
    /// `whisk_proxy_in_flight`: activations running (set at scrape).
    pub in_flight: Gauge,
    /// `whisk_proxy_capacity`: the concurrency limit (set at scrape).
    pub capacity: Gauge,
    /// `whisk_proxy_spooled_records` / `whisk_proxy_spooled_bytes`: reports waiting on disk for
    /// the control plane's acknowledgement.
    pub spool: crate::spool::SpoolGauges,
    /// `whisk_proxy_refused_records_total`: records refused because the spool was full.
    pub refused_records: Counter,
}

impl ProxyMetrics {
    pub fn new() -> Self {
        let m = Metrics::new();
        ProxyMetrics {
            activations: m.counter_family(
                "whisk_proxy_activations",
                "Finished activations by status (success, application_error, developer_error, internal_error).",
            ),
            run_duration: m.histogram(
                "whisk_proxy_run_duration_seconds",
                "How long the action ran, per activation.",
                DURATION_BUCKETS,
            ),
            init_duration: m.histogram(
                "whisk_proxy_init_duration_seconds",
                "How long initialising the action took.",
                DURATION_BUCKETS,
            ),
            queue_wait: m.histogram(
                "whisk_proxy_queue_wait_duration_seconds",
                "How long admitted activations waited for a free slot.",
                DURATION_BUCKETS,
            ),
            too_many_requests: m.counter(
                "whisk_proxy_too_many_requests",
                "Invokes refused with 429 (concurrency limit and queue full).",
            ),
            queue_length: m.gauge(
                "whisk_proxy_queue_length",
                "Admitted activations waiting for a slot.",
            ),
            in_flight: m.gauge("whisk_proxy_in_flight", "Activations running now."),
            capacity: m.gauge(
                "whisk_proxy_capacity",
                "Activations that may run at once (the action's concurrency limit).",
            ),
            spool: crate::spool::SpoolGauges {
                records: m.gauge(
                    "whisk_proxy_spooled_records",
                    "Reports spooled to disk, not yet acknowledged by the control plane.",
                ),
                bytes: m.gauge(
                    "whisk_proxy_spooled_bytes",
                    "Size of the report spool file.",
                ),
            },
            refused_records: m.counter(
                "whisk_proxy_refused_records",
                "Activation records refused because the report spool was at its bound.",
            ),
            registry: m,
        }
    }

    /// Counts one finished activation.
    pub fn activation_finished(&self, status: ActivationStatus, run: Duration) {
        self.activations
            .get_or_create(&StatusLabel {
                status: status.label(),
            })
            .inc();
        self.run_duration.observe(run.as_secs_f64());
    }
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self::new()
    }
}
