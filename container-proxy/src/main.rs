//! `whisk-container-proxy`: binds, prints `WHISK_PROXY_LISTENING <ip:port>` on stdout (Contract 3),
//! serves until SIGTERM/SIGINT, then stops its launcher processes. Logs go to stderr.

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
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = Config::parse();
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
    Ok(())
}
