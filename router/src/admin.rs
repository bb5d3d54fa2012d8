//! The router's admin HTTP port: `/metrics`, `/healthz`, `/readyz` (shared with every component
//! through `whisk-telemetry`) and `/tables`, the applied revision and table sizes.
//!
//! Readiness means the router holds a snapshot from the control plane; the revision lets
//! operators (and tests) see whether a pushed change has been applied.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router as Http;
use axum::extract::State;
use axum::response::Json;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::domain::tables::Tables;
use crate::metrics::RouterMetrics;

/// Binds the admin port and serves it in the background.
pub async fn start(
    addr: SocketAddr,
    tables: Arc<Tables>,
    metrics: &RouterMetrics,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let ready_tables = tables.clone();
    let ops = whisk_telemetry::admin_routes(
        metrics.registry.clone(),
        Arc::new(move || {
            if ready_tables.is_ready() {
                Ok(())
            } else {
                Err("no snapshot from the control plane yet".to_owned())
            }
        }),
    );
    let app = Http::new()
        .route("/tables", get(tables_info))
        .with_state(tables)
        .merge(ops);
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    Ok((bound, task))
}

async fn tables_info(State(tables): State<Arc<Tables>>) -> Json<serde_json::Value> {
    let (namespaces, identities, actions, endpoints) = tables.counts();
    Json(serde_json::json!({
        "ready": tables.is_ready(),
        "revision": tables.revision(),
        "routers": tables.routers(),
        "namespaces": namespaces,
        "identities": identities,
        "actions": actions,
        "endpoints": endpoints,
    }))
}
