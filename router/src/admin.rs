//! The router's admin HTTP port: liveness, and readiness with the table revision it holds.
//!
//! Readiness means the router holds a snapshot from the control plane; the revision lets
//! operators (and tests) see whether a pushed change has been applied.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router as Http;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::domain::tables::Tables;

/// Binds the admin port and serves it in the background.
pub async fn start(
    addr: SocketAddr,
    tables: Arc<Tables>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Http::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(tables);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    Ok((bound, task))
}

async fn readyz(State(tables): State<Arc<Tables>>) -> impl IntoResponse {
    let (namespaces, identities, actions, endpoints) = tables.counts();
    let body = serde_json::json!({
        "ready": tables.is_ready(),
        "revision": tables.revision(),
        "namespaces": namespaces,
        "identities": identities,
        "actions": actions,
        "endpoints": endpoints,
    });
    let status = if tables.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
