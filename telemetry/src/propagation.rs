//! W3C trace-context glue between HTTP headers and `tracing` spans.
//!
//! Incoming: [`set_parent_from_traceparent`] makes a freshly created span continue the caller's
//! trace. Outgoing: [`traceparent_of`] renders a span's own context as a `traceparent` value to
//! hand on (to an action's `TRACEPARENT`, or an upstream request). Without an OpenTelemetry layer
//! (tracing off) spans have no context and these return `None`, so callers fall back to passing
//! the incoming header through unchanged.
//!
//! [`record_child_span`] records a child span whose timing is known only after the fact (e.g. a
//! container's init, measured before the activation that it served began).

use std::collections::HashMap;
use std::time::SystemTime;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The parent context carried by `traceparent` (and `tracestate`), or an empty context when the
/// header is absent or malformed.
pub fn parent_context(traceparent: Option<&str>, tracestate: Option<&str>) -> Context {
    let mut carrier = HashMap::new();
    if let Some(tp) = traceparent {
        carrier.insert("traceparent".to_string(), tp.trim().to_string());
    }
    if let Some(ts) = tracestate {
        carrier.insert("tracestate".to_string(), ts.trim().to_string());
    }
    TraceContextPropagator::new().extract(&carrier)
}

/// The 32-hex trace id of a `traceparent` value, when it is well formed.
pub fn trace_id_of(traceparent: &str) -> Option<String> {
    let cx = parent_context(Some(traceparent), None);
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// Makes `span` (just created, not yet entered) a child of the context in `traceparent`.
/// Returns whether a valid parent was set; a no-op when tracing is off.
pub fn set_parent_from_traceparent(
    span: &tracing::Span,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> bool {
    let cx = parent_context(traceparent, tracestate);
    if !cx.span().span_context().is_valid() {
        return false;
    }
    span.set_parent(cx).is_ok()
}

/// `traceparent` for `span`'s own context (`00-<trace>-<span>-<flags>`), or `None` when the span
/// has no OpenTelemetry context (tracing off, or the span is disabled).
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let otel_span = cx.span();
    let sc = otel_span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// [`traceparent_of`] the current span.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// Records an already finished child of `parent` named `name`, from `start` to `end`, with
/// `attributes`. A no-op when `parent` has no OpenTelemetry context (tracing off).
pub fn record_child_span(
    parent: &tracing::Span,
    name: &'static str,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<KeyValue>,
) {
    let cx = parent.context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    let tracer = opentelemetry::global::tracer("whisk");
    let mut span = tracer
        .span_builder(name)
        .with_start_time(start)
        .with_attributes(attributes)
        .start_with_context(&tracer, &cx);
    span.end_with_timestamp(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_traceparent() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id_of(tp).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id_of("garbage"), None);
        assert_eq!(
            trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
    }

    #[test]
    fn no_context_without_a_layer() {
        let span = tracing::info_span!("x");
        assert_eq!(traceparent_of(&span), None);
        assert!(!set_parent_from_traceparent(&span, Some("bad"), None));
    }
}
