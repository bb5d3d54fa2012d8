//! `whisk-container-proxy`: binds, prints `WHISK_PROXY_LISTENING <ip:port>` on stdout (Contract 3),
//! serves until SIGTERM/SIGINT, then stops its launcher processes. Logs go to stderr (JSON lines
//! with `--log-json`); spans go to an OTLP collector with `--otlp-endpoint`.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use whisk_container_proxy::config::Config;
use whisk_container_proxy::proxy::Proxy;
use whisk_container_proxy::server;

/// How long in-flight requests may take to finish after a stop signal.
const DRAIN: Duration = Duration::from_secs(10);

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let telemetry = whisk_telemetry::init_tracing(
        "whisk-container-proxy",
        config.telemetry.log_json,
        config.telemetry.otlp(),
    )
    .context("setting up logs and traces")?;
    let proxy = Proxy::start(&config, |k| std::env::var(k).ok())
        .await
        .context("starting the proxy")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "WHISK_PROXY_LISTENING {addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, container_id = %config.container_id, "listening");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, proxy.clone(), async {
        let _ = stop_rx.await;
    }));
    stop_signal().await;
    tracing::info!("stopping");
    let _ = stop_tx.send(());
    if tokio::time::timeout(DRAIN, server).await.is_err() {
        tracing::warn!("in-flight requests did not finish in time");
    }
    proxy.shutdown().await;
    // Export the last spans before exiting.
    drop(telemetry);
    Ok(())
}
