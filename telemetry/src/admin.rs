//! The operational HTTP endpoints every component mounts next to its own routes (merge the
//! returned [`axum::Router`]): `/metrics` (Prometheus scrape), `/healthz` (liveness: the process
//! serves HTTP) and `/readyz` (readiness: the component's own check says it can take work).
//!
//! Kept framework-level and stateless apart from the two handles given, so the router, the
//! control plane and the container proxy expose identical semantics.

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;

/// The readiness check: `Ok(())` when ready, `Err(reason)` otherwise (answered 503 with the
/// reason as text).
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Content type of the OpenMetrics text format that `prometheus-client` produces.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `/metrics`, `/healthz`, `/readyz`.
pub fn admin_routes(metrics: Metrics, readiness: Readiness) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { ([(header::CONTENT_TYPE, OPENMETRICS)], metrics.render()) }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move { ready_answer(readiness()) }
            }),
        )
}

fn ready_answer(check: Result<(), String>) -> Response {
    match check {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn call(router: Router, path: &str) -> (StatusCode, String) {
        let resp = router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn health_readiness_and_metrics() {
        let m = Metrics::new();
        m.counter("t_things", "things").inc();
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ready.clone();
        let routes = admin_routes(
            m,
            Arc::new(move || {
                if flag.load(std::sync::atomic::Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err("warming up".into())
                }
            }),
        );
        assert_eq!(call(routes.clone(), "/healthz").await.0, StatusCode::OK);
        let (status, body) = call(routes.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("warming up"));
        ready.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(call(routes.clone(), "/readyz").await.0, StatusCode::OK);
        let (status, body) = call(routes, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("t_things_total 1"), "{body}");
    }
}
