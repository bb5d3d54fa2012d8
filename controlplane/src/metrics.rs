//! The control plane's Prometheus metrics, served at `/metrics` on its HTTP port (next to
//! `/healthz` and `/readyz`; Envoy routes only `/api/v1...` there, so they are not public).
//!
//! Event counters (cold starts, GC marks / unmarks / sweeps, push resyncs, activations recorded)
//! are incremented where the event happens; gauges that mirror state (containers by state, stem
//! cells, subscribers, push backlog, store size) are set just before each scrape from a
//! [`StateSnapshot`] the owner of that state supplies. This module knows only labels and
//! numbers, not the plane, its pool or its errors. Labels are bounded: state, kind, outcome,
//! source — never a container or activation id.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use whisk_telemetry::{HistogramBuckets, Metrics};

/// Cold starts take seconds: 10 ms … 2 min.
const COLD_START_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// `outcome` and `source` of a cold start.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ColdStartLabels {
    /// `success`, `unknown_action`, `start_failed`, `capacity_exhausted`, `deadline_exceeded`,
    /// `init_failed`.
    pub outcome: &'static str,
    /// `stem_cell` (a warm stem cell was initialised), `new_container`, or `none` (failed before
    /// a container was chosen).
    pub source: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: &'static str,
}

/// Every container state label, so that a state with no containers still reads 0.
const STATES: [&str; 4] = ["starting", "stem", "ready", "marked"];

/// The live state the gauges mirror, read by its owner just before a scrape.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StateSnapshot {
    /// Containers by state label (`starting`, `stem`, `ready`, `marked`).
    pub containers: BTreeMap<&'static str, u64>,
    /// Stem cells available by runtime kind (every prewarmed kind, even at 0).
    pub stem_cells: BTreeMap<String, u64>,
    /// Routers subscribed to table pushes.
    pub subscribers: u64,
    /// Deltas the slowest subscriber has not received yet.
    pub push_backlog: u64,
    /// Revision of the last table update pushed.
    pub push_revision: u64,
    /// Activation records stored, when the store could count them.
    pub activations_stored: Option<u64>,
    /// Bytes the store holds in memory (its bounded page cache).
    pub store_cache_bytes: u64,
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Every metric of the control plane.
#[derive(Debug, Clone)]
pub struct ControlPlaneMetrics {
    pub registry: Metrics,
    /// `whisk_controlplane_cold_starts_total{outcome,source}`: container starts for an action.
    pub cold_starts: Family<ColdStartLabels, Counter>,
    /// `whisk_controlplane_cold_start_duration_seconds{source}`: successful starts, request to
    /// initialised container.
    pub cold_start_duration: Family<SourceLabel, Histogram, HistogramBuckets>,
    /// `whisk_controlplane_gc_marks_total`.
    pub gc_marks: Counter,
    /// `whisk_controlplane_gc_unmarks_total`: marked containers that got traffic again.
    pub gc_unmarks: Counter,
    /// `whisk_controlplane_gc_sweeps_total`: marked containers removed.
    pub gc_sweeps: Counter,
    /// `whisk_controlplane_activations_recorded_total`.
    pub activations_recorded: Counter,
    gauges: StateGauges,
}

/// The gauges set from live state at scrape time (kept apart so the scrape hook holds only
/// them, not the registry that holds the hook).
#[derive(Debug, Clone)]
struct StateGauges {
    containers: Family<StateLabel, Gauge>,
    stem_cells: Family<KindLabel, Gauge>,
    subscribers: Gauge,
    push_backlog: Gauge,
    push_revision: Gauge,
    activations_stored: Gauge,
    store_cache_bytes: Gauge,
}

impl ControlPlaneMetrics {
    pub fn new() -> Self {
        let m = Metrics::new();
        ControlPlaneMetrics {
            cold_starts: m.counter_family(
                "whisk_controlplane_cold_starts",
                "Container starts for an action, by outcome and by source (stem_cell, new_container, none).",
            ),
            cold_start_duration: m.histogram_family(
                "whisk_controlplane_cold_start_duration_seconds",
                "Time from a cold-start request to an initialised container, successful starts only.",
                COLD_START_BUCKETS,
            ),
            gc_marks: m.counter(
                "whisk_controlplane_gc_marks",
                "Idle containers marked for removal.",
            ),
            gc_unmarks: m.counter(
                "whisk_controlplane_gc_unmarks",
                "Marked containers unmarked because a router reported traffic.",
            ),
            gc_sweeps: m.counter(
                "whisk_controlplane_gc_sweeps",
                "Marked containers removed by the garbage collector.",
            ),
            activations_recorded: m.counter(
                "whisk_controlplane_activations_recorded",
                "Activation records received from container proxies and stored.",
            ),
            gauges: StateGauges {
            containers: m.gauge_family(
                "whisk_controlplane_containers",
                "Containers by state (starting, stem, ready, marked).",
            ),
            stem_cells: m.gauge_family(
                "whisk_controlplane_stem_cells",
                "Stem cells available (started, waiting for code), by runtime kind.",
            ),
            subscribers: m.gauge(
                "whisk_controlplane_subscribers",
                "Routers subscribed to table pushes.",
            ),
            push_backlog: m.gauge(
                "whisk_controlplane_push_lag_deltas",
                "Deltas the slowest subscriber has not received yet (a subscriber lagging past the buffer is resynchronised).",
            ),
            push_revision: m.gauge(
                "whisk_controlplane_push_revision",
                "Revision of the last table update pushed.",
            ),
            activations_stored: m.gauge(
                "whisk_controlplane_activations_stored",
                "Activation records in the store, over all namespaces.",
            ),
            store_cache_bytes: m.gauge(
                "whisk_controlplane_store_cache_bytes",
                "Bytes the store holds in memory (its page cache, bounded by --store-cache-mb).",
            ),
            },
            registry: m,
        }
    }

    /// Counts one finished start by `outcome` and `source`, and times it when it succeeded
    /// (`took` is given for successful starts only).
    pub fn cold_start_finished(
        &self,
        outcome: &'static str,
        source: &'static str,
        took: Option<Duration>,
    ) {
        self.cold_starts
            .get_or_create(&ColdStartLabels { outcome, source })
            .inc();
        if let Some(took) = took {
            self.cold_start_duration
                .get_or_create(&SourceLabel { source })
                .observe(took.as_secs_f64());
        }
    }

    /// Refreshes the gauges from `snapshot` before every scrape (`None`: leave them as they
    /// are, e.g. while shutting down), and registers the push hub's resync counter.
    pub fn watch(
        &self,
        resyncs: Counter,
        snapshot: impl Fn() -> Option<StateSnapshot> + Send + Sync + 'static,
    ) {
        self.registry.register(
            "whisk_controlplane_push_resyncs",
            "Subscribers that lagged past the push buffer and were sent a fresh snapshot.",
            resyncs,
        );
        let gauges = self.gauges.clone();
        self.registry.on_scrape(move || {
            if let Some(s) = snapshot() {
                gauges.refresh(&s);
            }
        });
    }
}

impl Default for ControlPlaneMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl StateGauges {
    /// Sets every state gauge from `s` (before a scrape).
    fn refresh(&self, s: &StateSnapshot) {
        for state in STATES {
            let n = s.containers.get(state).copied().unwrap_or(0);
            self.containers
                .get_or_create(&StateLabel { state })
                .set(gauge_value(n));
        }
        for (kind, n) in &s.stem_cells {
            self.stem_cells
                .get_or_create(&KindLabel { kind: kind.clone() })
                .set(gauge_value(*n));
        }
        self.subscribers.set(gauge_value(s.subscribers));
        self.push_backlog.set(gauge_value(s.push_backlog));
        self.push_revision.set(gauge_value(s.push_revision));
        if let Some(n) = s.activations_stored {
            self.activations_stored.set(gauge_value(n));
        }
        self.store_cache_bytes.set(gauge_value(s.store_cache_bytes));
    }
}
