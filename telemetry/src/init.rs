//! Process-wide `tracing` set-up: one call at the start of `main` gives every component the same
//! log format (text or JSON lines on stderr, `RUST_LOG` filter) and, only when asked, OTLP span
//! export with a parent-based ratio sampler. The W3C trace-context propagator is always installed
//! so `traceparent` headers are understood whether or not spans are exported.

use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// Where and how much to trace.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
    /// Share of new traces sampled (0.0–1.0); an incoming sampled parent is always followed.
    pub sample_ratio: f64,
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP exporter for {endpoint}: {message}")]
    Exporter { endpoint: String, message: String },
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Keeps span export alive; dropping it flushes and stops the exporter (hold it in `main`).
#[must_use = "dropping the guard stops trace export"]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Guard {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports every finished span now.
    pub fn flush(&self) {
        if let Some(p) = &self.provider
            && let Err(e) = p.force_flush()
        {
            tracing::warn!(error = %e, "flushing spans failed");
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown_with_timeout(Duration::from_secs(5))
        {
            eprintln!("stopping the span exporter failed: {e}");
        }
    }
}

/// `RUST_LOG`, or `info` when unset or invalid.
fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Which spans become OpenTelemetry spans: ours at info and above, never the transport's own
/// (the exporter's gRPC calls would otherwise trace themselves).
fn otel_filter() -> EnvFilter {
    EnvFilter::new(
        "info,h2=off,hyper=off,hyper_util=off,tonic=off,tower=off,reqwest=off,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off",
    )
}

fn tracer_provider(
    service_name: &str,
    otlp: &OtlpConfig,
) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(otlp.endpoint.clone())
        .build()
        .map_err(|e| TelemetryError::Exporter {
            endpoint: otlp.endpoint.clone(),
            message: e.to_string(),
        })?;
    let ratio = otlp.sample_ratio.clamp(0.0, 1.0);
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_string())
                .build(),
        )
        .build())
}

/// Installs the global subscriber: logs on stderr (JSON lines when `json`), and OTLP span export
/// when `otlp` is set (call it inside a Tokio runtime then: the gRPC exporter needs one).
///
/// In JSON, each line carries the fields of the current span and its parents (`span`, `spans`),
/// so a line logged inside an activation span carries its activation id, namespace and action.
pub fn init_tracing(
    service_name: &str,
    json: bool,
    otlp: Option<OtlpConfig>,
) -> Result<Guard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = otlp
        .as_ref()
        .map(|o| tracer_provider(service_name, o))
        .transpose()?;
    let fmt_layer = if json {
        fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .with_span_list(true)
            .flatten_event(true)
            .with_filter(env_filter())
            .boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(env_filter())
            .boxed()
    };
    let otel_layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service_name.to_string()))
            .with_filter(otel_filter())
    });
    if let Some(p) = &provider {
        opentelemetry::global::set_tracer_provider(p.clone());
    }
    tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    Ok(Guard { provider })
}
