//! The control plane's Prometheus metrics, served at `/metrics` on its HTTP port (next to
//! `/healthz` and `/readyz`; Envoy routes only `/api/v1...` there, so they are not public).
//!
//! Event counters (cold starts, GC marks / unmarks / sweeps, push resyncs, activations recorded)
//! are incremented where the event happens; gauges that mirror state (containers by state, stem
//! cells, subscribers, push backlog, store size) are set from the live state just before each
//! scrape. Labels are bounded: state, kind, outcome, source — never a container or activation id.

use std::sync::{Arc, Weak};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use whisk_telemetry::{HistogramBuckets, Metrics};

use crate::coldstart::ColdStartError;
use crate::plane::Plane;
use crate::pool::State;

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

/// The label of a cold start's outcome.
pub fn outcome_label(result: &Result<(), &ColdStartError>) -> &'static str {
    match result {
        Ok(()) => "success",
        Err(ColdStartError::UnknownAction(_)) => "unknown_action",
        Err(ColdStartError::StartFailed(_)) => "start_failed",
        Err(ColdStartError::CapacityExhausted { .. }) => "capacity_exhausted",
        Err(ColdStartError::DeadlineExceeded) => "deadline_exceeded",
        Err(ColdStartError::InitFailed(_)) => "init_failed",
    }
}

fn state_label(s: &State) -> &'static str {
    match s {
        State::Starting => "starting",
        State::Stem => "stem",
        State::Ready => "ready",
        State::Marked { .. } => "marked",
    }
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
            },
            registry: m,
        }
    }

    /// Counts one finished start (and its duration when it succeeded).
    pub fn cold_start_finished(
        &self,
        result: Result<(), &ColdStartError>,
        source: &'static str,
        took: Duration,
    ) {
        let outcome = outcome_label(&result);
        self.cold_starts
            .get_or_create(&ColdStartLabels { outcome, source })
            .inc();
        if result.is_ok() {
            self.cold_start_duration
                .get_or_create(&SourceLabel { source })
                .observe(took.as_secs_f64());
        }
    }

    /// Refreshes the gauges from `plane` before every scrape (holds it weakly), and registers
    /// the push hub's resync counter.
    pub fn watch(&self, plane: &Arc<Plane>) {
        self.registry.register(
            "whisk_controlplane_push_resyncs",
            "Subscribers that lagged past the push buffer and were sent a fresh snapshot.",
            plane.hub.resyncs.clone(),
        );
        let weak: Weak<Plane> = Arc::downgrade(plane);
        let gauges = self.gauges.clone();
        self.registry.on_scrape(move || {
            if let Some(p) = weak.upgrade() {
                gauges.refresh(&p);
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
    /// Sets every state gauge from `plane` (before a scrape).
    fn refresh(&self, plane: &Plane) {
        let mut by_state = [("starting", 0u64), ("stem", 0), ("ready", 0), ("marked", 0)];
        let mut stems: std::collections::BTreeMap<String, u64> = plane
            .config
            .prewarm
            .iter()
            .map(|(k, _)| (k.clone(), 0))
            .collect();
        for c in plane.pool().all() {
            let label = state_label(&c.state);
            if let Some(slot) = by_state.iter_mut().find(|(l, _)| *l == label) {
                slot.1 += 1;
            }
            if c.state == State::Stem {
                *stems.entry(c.kind.clone()).or_default() += 1;
            }
        }
        for (state, n) in by_state {
            self.containers
                .get_or_create(&StateLabel { state })
                .set(gauge_value(n));
        }
        for (kind, n) in stems {
            self.stem_cells
                .get_or_create(&KindLabel { kind })
                .set(gauge_value(n));
        }
        self.subscribers
            .set(gauge_value(plane.hub.subscriber_count() as u64));
        self.push_backlog
            .set(gauge_value(plane.hub.backlog() as u64));
        self.push_revision.set(gauge_value(plane.hub.revision()));
        match plane.store.activation_count() {
            Ok(n) => {
                self.activations_stored.set(gauge_value(n));
            }
            Err(e) => tracing::debug!(error = %e, "cannot count stored activations"),
        }
    }
}
