//! The router's Prometheus metrics, on its admin port (`/metrics`).
//!
//! Counted by the adapters (the domain stays free of them): decisions by outcome, decision
//! latency, cold-start waits, breaker trips. Gauges that mirror live state — in-flight invokes per
//! namespace, table sizes and revision, open breakers — are read from the tables at scrape time,
//! so the warm path pays nothing for them. Labels are bounded: outcomes and namespaces, never
//! activation or container ids.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use whisk_telemetry::{DURATION_BUCKETS, Metrics};
use whisk_vocab::now_ms;

use crate::domain::tables::Tables;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Namespace {
    pub namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Table {
    pub table: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

/// Handles to every router metric.
#[derive(Clone)]
pub struct RouterMetrics {
    pub registry: Metrics,
    /// `routed`, `cold_start`, `accepted` (non-blocking), `sequence`, or a rejection reason
    /// (`throttled_rate`, `throttled_concurrency`, `unauthenticated`, `forbidden`, `not_found`, …).
    pub decisions: Family<Outcome, Counter>,
    pub decision_seconds: Histogram,
    pub cold_start_wait_seconds: Histogram,
    /// `retry_after` (a container answered 429) or `unreachable`.
    pub breaker_trips: Family<Reason, Counter>,
    /// Refused (429) forwarded invokes the router sent elsewhere: `answered`, `no_capacity`
    /// (the 429 reached the client) or `wait_expired` (202).
    pub replays: Family<Outcome, Counter>,
    /// The queue of the router's own activation records (see `control/records.rs`).
    pub records: crate::control::records::RecordMetrics,
}

impl RouterMetrics {
    pub fn new(tables: Arc<Tables>) -> Self {
        let registry = Metrics::new();
        let decisions = registry
            .counter_family::<Outcome>("whisk_router_decisions", "Invoke decisions by outcome.");
        let decision_seconds = registry.histogram(
            "whisk_router_decision_duration_seconds",
            "Time from request headers to the router's answer (waits included).",
            DURATION_BUCKETS,
        );
        let cold_start_wait_seconds = registry.histogram(
            "whisk_router_cold_start_wait_seconds",
            "How long requests without a free container waited for one.",
            DURATION_BUCKETS,
        );
        let breaker_trips = registry.counter_family::<Reason>(
            "whisk_router_breaker_trips",
            "Containers taken out of rotation, by reason.",
        );
        let replays = registry.counter_family::<Outcome>(
            "whisk_router_replays",
            "Invokes refused by their container (429) that the router sent elsewhere, by outcome.",
        );
        let in_flight = registry.gauge_family::<Namespace>(
            "whisk_router_in_flight",
            "Invokes in flight per namespace (counted against its concurrency limit).",
        );
        let table_size = registry.gauge_family::<Table>(
            "whisk_router_table_entries",
            "Entries in the pushed tables.",
        );
        let revision = registry.gauge(
            "whisk_router_table_revision",
            "Revision of the applied tables.",
        );
        let open = registry.gauge(
            "whisk_router_breakers_open",
            "Containers whose breaker is open.",
        );
        registry.on_scrape(move || {
            for (ns, n) in tables.namespaces_in_flight() {
                in_flight
                    .get_or_create(&Namespace {
                        namespace: ns.to_string(),
                    })
                    .set(n as i64);
            }
            let (namespaces, identities, actions, endpoints) = tables.counts();
            for (table, n) in [
                ("namespaces", namespaces),
                ("identities", identities),
                ("actions", actions),
                ("endpoints", endpoints),
            ] {
                table_size.get_or_create(&Table { table }).set(n as i64);
            }
            revision.set(tables.revision() as i64);
            open.set(tables.endpoints.open_breakers(now_ms()) as i64);
        });
        let records = crate::control::records::RecordMetrics {
            pending: registry.gauge(
                "whisk_router_records_pending",
                "Activation records the router made, not yet acknowledged by the control plane.",
            ),
            dropped: registry.counter(
                "whisk_router_records_dropped",
                "Activation records the router made and dropped because its queue was full.",
            ),
        };
        Self {
            records,
            registry,
            decisions,
            decision_seconds,
            cold_start_wait_seconds,
            breaker_trips,
            replays,
        }
    }

    pub fn decided(&self, outcome: &'static str) {
        self.decisions.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn replayed(&self, outcome: &'static str) {
        self.replays.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn tripped(&self, reason: &'static str) {
        self.breaker_trips.get_or_create(&Reason { reason }).inc();
    }
}
