//! `whisk-router`: serves Envoy's ext_proc and ext_authz, following a control plane.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use whisk_router::domain::coldstart::WaitPolicy;
use whisk_router::domain::pipeline::PipelineConfig;
use whisk_router::domain::replay::ReplayPolicy;
use whisk_router::server::{ServerConfig, start};

#[derive(Debug, Parser)]
#[command(
    name = "whisk-router",
    about = "Decides every OpenWhisk invoke behind Envoy"
)]
struct Args {
    /// TCP address for Envoy's gRPC calls (gateway flavour). Port 0 picks a free one.
    #[arg(long, env = "WHISK_ROUTER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Unix domain socket for Envoy's gRPC calls (sidecar flavour).
    #[arg(long, env = "WHISK_ROUTER_UDS")]
    uds: Option<PathBuf>,
    /// HTTP address for /healthz and /readyz. Port 0 picks a free one.
    #[arg(long, env = "WHISK_ROUTER_ADMIN", default_value = "127.0.0.1:0")]
    admin: SocketAddr,
    /// The control plane's gRPC URL, e.g. http://127.0.0.1:7001.
    #[arg(long, env = "WHISK_CONTROLPLANE")]
    controlplane: String,
    /// Name of this router, unique per process (default: router-<pid>-<random>).
    #[arg(long, env = "WHISK_ROUTER_ID")]
    router_id: Option<String>,
    /// With every container busy, how long to wait for a slot before asking for another one (ms).
    #[arg(long, default_value_t = 100)]
    busy_wait_ms: u64,
    /// The longest a request waits for a cold start (ms).
    #[arg(long, default_value_t = 60_000)]
    max_cold_wait_ms: u64,
    /// When a forwarded blocking invoke keeps its body, so that a container's 429 can be
    /// replayed elsewhere: `auto` (while other routers share the containers, or the action was
    /// refused in the last minute), `always` or `never`. Keeping a body costs one more ext_proc
    /// message each way.
    #[arg(long, env = "WHISK_ROUTER_REPLAY", default_value = "auto")]
    replay: ReplayPolicy,
    /// Logs and traces (`--log-json`, `--otlp-endpoint`, `--trace-sample-ratio`).
    #[command(flatten)]
    telemetry: whisk_telemetry::TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = whisk_telemetry::init_tracing(
        "whisk-router",
        args.telemetry.log_json,
        args.telemetry.otlp(),
    )
    .context("setting up logs and traces")?;
    let listen = match (args.listen, &args.uds) {
        (None, None) => Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        (l, _) => l,
    };
    let mut handle = start(ServerConfig {
        listen,
        uds: args.uds.clone(),
        admin: Some(args.admin),
        controlplane_url: args.controlplane.clone(),
        router_id: args.router_id.clone().unwrap_or_else(|| {
            format!(
                "router-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            )
        }),
        pipeline: PipelineConfig {
            wait: WaitPolicy {
                busy_wait: Duration::from_millis(args.busy_wait_ms),
            },
            max_cold_wait: Duration::from_millis(args.max_cold_wait_ms),
            replay: args.replay,
        },
    })
    .await
    .context("starting the router")?;
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
