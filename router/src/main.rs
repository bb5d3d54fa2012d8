//! `whisk-router`: serves Envoy's ext_proc and ext_authz, following a control plane.

use anyhow::Context;
use clap::Parser;
use whisk_router::config::Config;
use whisk_router::server::start;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = whisk_telemetry::init_tracing(
        "whisk-router",
        config.telemetry.log_json,
        config.telemetry.otlp(),
    )
    .context("setting up logs and traces")?;
    let mut handle = start(config).await.context("starting the router")?;
    // One machine-readable line so supervisors and tests learn the bound addresses:
    // `WHISK_ROUTER_LISTENING <grpc> <admin>`, where <grpc> is `ip:port` or `unix:<path>`.
    let grpc = match (&handle.tcp_addr, &handle.uds_path) {
        (Some(addr), _) => addr.to_string(),
        (None, Some(path)) => format!("unix:{}", path.display()),
        (None, None) => String::new(),
    };
    let admin = handle.admin_addr.map(|a| a.to_string()).unwrap_or_default();
    println!("WHISK_ROUTER_LISTENING {grpc} {admin}");
    tracing::info!(tcp = ?handle.tcp_addr, uds = ?handle.uds_path, "router serving");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = handle.wait() => anyhow::bail!("router server stopped"),
    }
    tracing::info!("router stopping");
    handle.shutdown();
    Ok(())
}
