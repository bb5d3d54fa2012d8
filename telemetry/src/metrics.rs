//! A thin, clonable wrapper over a `prometheus-client` registry: components register their
//! metrics once at start-up through typed helpers, keep the returned handles (cheap `Arc`
//! clones) to update them on the hot path, and [`Metrics::render`] produces the text format.
//!
//! Values that are cheaper to read than to maintain (pool sizes, table sizes) can be refreshed
//! just before each scrape with [`Metrics::on_scrape`].
//!
//! Conventions (checked by reviewers, not by code): snake_case names prefixed by component
//! (`whisk_proxy_…`), durations in seconds with a `_seconds` suffix, counters named without
//! `_total` (the encoder appends it), labels of bounded cardinality only (status, outcome, kind,
//! state, namespace — never an activation id).

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Buckets for request-scale durations in seconds: 1 ms … ~65 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

type ScrapeHook = Box<dyn Fn() + Send + Sync>;

struct Inner {
    registry: Mutex<Registry>,
    hooks: Mutex<Vec<ScrapeHook>>,
}

/// A metrics registry shared by one component (clone it freely).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Builds each labelled histogram of a family with the same buckets.
#[derive(Debug, Clone)]
pub struct HistogramBuckets(Arc<[f64]>);

impl HistogramBuckets {
    pub fn new(buckets: &[f64]) -> Self {
        HistogramBuckets(buckets.into())
    }
}

impl MetricConstructor<Histogram> for HistogramBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// Label sets usable in a [`Family`].
pub trait Labels: EncodeLabelSet + Clone + Hash + Eq + Debug + Send + Sync + 'static {}
impl<T: EncodeLabelSet + Clone + Hash + Eq + Debug + Send + Sync + 'static> Labels for T {}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Metrics {
            inner: Arc::new(Inner {
                registry: Mutex::new(Registry::default()),
                hooks: Mutex::new(Vec::new()),
            }),
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A counter; exposed as `<name>_total`.
    pub fn counter(&self, name: &str, help: &str) -> Counter {
        let c = Counter::default();
        self.registry().register(name, help, c.clone());
        c
    }

    /// A labelled counter family; exposed as `<name>_total{...}`.
    pub fn counter_family<L: Labels>(&self, name: &str, help: &str) -> Family<L, Counter> {
        let f = Family::<L, Counter>::default();
        self.registry().register(name, help, f.clone());
        f
    }

    /// A gauge (integer).
    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        let g = Gauge::default();
        self.registry().register(name, help, g.clone());
        g
    }

    /// A labelled gauge family.
    pub fn gauge_family<L: Labels>(&self, name: &str, help: &str) -> Family<L, Gauge> {
        let f = Family::<L, Gauge>::default();
        self.registry().register(name, help, f.clone());
        f
    }

    /// A histogram with `buckets` (upper bounds; `+Inf` is implied).
    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        let h = Histogram::new(buckets.iter().copied());
        self.registry().register(name, help, h.clone());
        h
    }

    /// A labelled histogram family, every member with `buckets`.
    pub fn histogram_family<L: Labels>(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
    ) -> Family<L, Histogram, HistogramBuckets> {
        let f = Family::new_with_constructor(HistogramBuckets::new(buckets));
        self.registry().register(name, help, f.clone());
        f
    }

    /// Registers a metric built elsewhere (any `prometheus-client` metric type), e.g. one owned
    /// by a component that exists before the registry.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry().register(name, help, metric);
    }

    /// Runs `hook` before every [`render`](Self::render), e.g. to set gauges from current state.
    pub fn on_scrape(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.inner
            .hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(hook));
    }

    /// The OpenMetrics / Prometheus text exposition of every registered metric.
    pub fn render(&self) -> String {
        for hook in self
            .inner
            .hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            hook();
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry()) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct ByStatus {
        status: &'static str,
    }

    #[test]
    fn renders_counters_gauges_histograms() {
        let m = Metrics::new();
        let c = m.counter_family::<ByStatus>("t_activations", "activations");
        c.get_or_create(&ByStatus { status: "success" }).inc_by(3);
        let g = m.gauge("t_queue_length", "queued");
        let g2 = g.clone();
        m.on_scrape(move || {
            g2.set(7);
        });
        let h = m.histogram("t_run_duration_seconds", "run", &[0.1, 1.0]);
        h.observe(0.5);
        let text = m.render();
        assert!(
            text.contains("t_activations_total{status=\"success\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("t_queue_length 7\n"), "{text}");
        assert!(
            text.contains("t_run_duration_seconds_bucket{le=\"1.0\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("t_run_duration_seconds_count 1\n"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
