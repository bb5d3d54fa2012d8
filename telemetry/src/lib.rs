//! `whisk-telemetry`: the observability every whisk component shares, so the router, the control
//! plane and the container proxy expose the same flags, log format, metrics endpoint and trace
//! propagation.
//!
//! * [`init_tracing`] installs `tracing` (plain or JSON lines on stderr, filtered by `RUST_LOG`)
//!   and, when an OTLP endpoint is given, exports sampled spans over OTLP/gRPC; the W3C trace
//!   context propagator is always installed. [`TelemetryArgs`] are the matching CLI flags.
//! * [`Metrics`] wraps a `prometheus-client` registry: register counters, gauges and histograms
//!   (optionally labelled), render the text format.
//! * [`admin_routes`] is the axum fragment with `/metrics`, `/healthz` and `/readyz`.
//! * [`propagation`] turns a `traceparent` header into a parent context and a span back into a
//!   `traceparent`.
//!
//! A component wires it like this (the router's metrics, for instance):
//!
//! ```
//! use std::sync::Arc;
//! use whisk_telemetry::prometheus_client::encoding::EncodeLabelSet;
//! use whisk_telemetry::{DURATION_BUCKETS, Metrics, admin_routes};
//!
//! #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
//! struct Outcome {
//!     outcome: &'static str,
//! }
//! #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
//! struct Namespace {
//!     namespace: String,
//! }
//!
//! let metrics = Metrics::new();
//! let decisions = metrics.counter_family::<Outcome>("whisk_router_decisions", "Invoke decisions.");
//! let latency = metrics.histogram("whisk_router_decision_duration_seconds", "Decision time.", DURATION_BUCKETS);
//! let in_flight = metrics.gauge_family::<Namespace>("whisk_router_in_flight", "Invokes in flight.");
//! decisions.get_or_create(&Outcome { outcome: "warm" }).inc();
//! latency.observe(0.0004);
//! in_flight.get_or_create(&Namespace { namespace: "guest".into() }).inc();
//! assert!(metrics.render().contains("whisk_router_decisions_total{outcome=\"warm\"} 1"));
//! let _routes: axum::Router = admin_routes(metrics.clone(), Arc::new(|| Ok(())));
//! ```

mod admin;
mod args;
mod init;
mod metrics;
pub mod propagation;
#[cfg(feature = "test-receiver")]
pub mod testing;

pub use admin::{Readiness, admin_routes};
pub use args::TelemetryArgs;
pub use init::{Guard, OtlpConfig, TelemetryError, init_tracing};
pub use metrics::{DURATION_BUCKETS, HistogramBuckets, Metrics};
pub use propagation::{
    current_traceparent, parent_context, record_child_span, set_parent_from_traceparent,
    trace_id_of, traceparent_of,
};

/// Re-exported for span attributes ([`record_child_span`]) and contexts.
pub use opentelemetry;
/// Re-exported so components can derive label sets (`#[derive(EncodeLabelSet)]` needs the crate
/// under this name in their own `Cargo.toml` too) and name metric types.
pub use prometheus_client;
