//! Command-line configuration of the proxy (Contract 3: how the control plane starts it).
//!
//! Kept apart from `main.rs` so the library (and its tests) can build a [`Config`] directly.

use std::net::SocketAddr;

/// Which back side runs the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorKind {
    /// ActionLoop-style launcher processes started by the proxy (the default).
    Local,
    /// An OpenWhisk runtime speaking `/init` + `/run` over HTTP in the same pod.
    Http,
}

/// `whisk-container-proxy` flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "whisk-container-proxy", version, about)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (printed as `WHISK_PROXY_LISTENING`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The container id the control plane knows this proxy by (used in reports).
    #[arg(long, default_value = "")]
    pub container_id: String,
    /// Runtime kind of a stem cell (e.g. `nodejs:20`, `python:3`, `blackbox`): its launcher is
    /// started at once and waits for code.
    #[arg(long)]
    pub kind: Option<String>,
    /// gRPC URL of the control plane (`http://127.0.0.1:PORT`); without it records are only logged.
    #[arg(long)]
    pub controlplane: Option<String>,
    /// Which executor runs the action.
    #[arg(long, value_enum, default_value = "local")]
    pub executor: ExecutorKind,
    /// Base URL of the OpenWhisk runtime for `--executor http`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub runtime_url: String,
    /// Whom action processes run as (local executor): `auto` gives each container a user of its
    /// own when the proxy runs as root, `same` never switches, a number picks that uid.
    #[arg(long, default_value = "auto")]
    pub action_uid: crate::executor::user::ActionUidFlag,
    /// Where reports the control plane has not acknowledged are spooled (created 0700); a
    /// successor proxy with the same directory replays what is left. Default: a private
    /// temporary directory, removed at a clean exit when empty.
    #[arg(long)]
    pub spool_dir: Option<std::path::PathBuf>,
    /// Bound of the spool file; at the bound records are refused and the proxy takes no invokes.
    #[arg(long, default_value_t = crate::report::SPOOL_MAX_BYTES)]
    pub spool_max_bytes: u64,
    /// Size of the in-memory report queue (tests make it small).
    #[arg(long, default_value_t = crate::report::BUFFER, hide = true)]
    pub report_queue: usize,
    /// Exported to actions as `__OW_API_HOST`.
    #[arg(long)]
    pub api_host: Option<String>,
    /// Logs and traces (`--log-json`, `--otlp-endpoint`, `--trace-sample-ratio`).
    #[command(flatten)]
    pub telemetry: whisk_telemetry::TelemetryArgs,
    /// The container's secret (never a flag, which `ps` would show): `main` takes it from the
    /// environment (`WHISK_CONTAINER_TOKEN`) and removes it from there before anything starts.
    #[arg(skip)]
    pub token: whisk_vocab::ContainerToken,
}
