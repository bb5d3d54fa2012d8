//! `whisk up`: the whole stack in one command, supervised by the product itself.
//!
//! The control plane runs in this process; the router and Envoy run as child processes that die
//! with it (see `whisk_stack::child`). Start-up order follows the dependencies: control plane
//! (store, guest key, stem cells), router (subscribes to it), Envoy (talks to both), and the stack
//! is announced only when the API answers through Envoy and the router holds its tables. A child
//! that dies is restarted on the same address; Ctrl-C or SIGTERM stops Envoy first (no new
//! requests), then the router, then the control plane and every container it started.
//!
//! Data lives in `--data-dir` (default `.whisk/`): `store/` (actions, identities, activations),
//! `logs/` (router, access log, `containers/`), `envoy/` (the rendered config, Envoy's log and its
//! admin socket), `admin-token` and `router-token` (the secrets `whisk admin` and the routers
//! present, owner-only). Starting again
//! with the same directory reuses the data.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use whisk_stack::child::{Child, spawn_announcing};
use whisk_stack::envoy::{self, Envoy, EnvoySpec, RouterLink};

use crate::config::{Config, parse_prewarm};

/// The token Envoy presents to the router (`<data-dir>/router-ingress-token`).
const INGRESS_TOKEN_FILE: &str = "router-ingress-token";
use crate::plane::{GUEST_KEY, GUEST_UUID};

/// How Envoy reaches the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Flavour {
    /// The router as its own service over TCP.
    Gateway,
    /// The router beside Envoy over a Unix domain socket.
    Sidecar,
}

/// `whisk up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Address the OpenWhisk API listens on.
    #[arg(long, env = "WHISK_HOST", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port of the OpenWhisk API (0 picks a free one).
    #[arg(long, env = "WHISK_PORT", default_value_t = 3233)]
    pub port: u16,
    /// Where data and logs live.
    #[arg(long, env = "WHISK_DATA_DIR", default_value = ".whisk")]
    pub data_dir: PathBuf,
    /// Gateway (router over TCP) or sidecar (router over a Unix domain socket).
    #[arg(long, value_enum, default_value_t = Flavour::Gateway)]
    pub flavour: Flavour,
    /// Envoy binary (default: $WHISK_ENVOY, ./.venv/bin/envoy, or envoy on the PATH).
    #[arg(long)]
    pub envoy: Option<PathBuf>,
    /// Stem cells per kind, e.g. nodejs:20=1,python:3=1.
    #[arg(long, env = "WHISK_PREWARM", default_value = "nodejs:20=1,python:3=1")]
    pub prewarm: String,
    /// Seconds without activity before an idle container is marked for removal.
    #[arg(long, default_value_t = 600)]
    pub keep_alive_secs: u64,
    /// Seconds a marked container is kept before it is swept.
    #[arg(long, default_value_t = 30)]
    pub sweep_grace_secs: u64,
    /// Seconds between garbage-collector passes.
    #[arg(long, default_value_t = 5)]
    pub gc_interval_secs: u64,
    /// Maximum number of containers.
    #[arg(long, default_value_t = 64)]
    pub max_containers: usize,
    /// The store's in-memory page cache, in MiB (bounds the control plane's memory for the
    /// store whatever the number of activations).
    #[arg(long, env = "WHISK_STORE_CACHE_MB", default_value_t = 16)]
    pub store_cache_mb: usize,
    /// Where containers run: local processes (the default) or pods in a Kubernetes cluster.
    #[command(flatten)]
    pub backend: crate::cli::BackendArgs,
    /// Logs and traces (`--log-json`, `--otlp-endpoint`, `--trace-sample-ratio`), passed on to the
    /// control plane's container proxies.
    #[command(flatten)]
    pub telemetry: whisk_telemetry::TelemetryArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(
        "port {0} is already in use; choose another with --port (or UP_ARGS='--port N' for make up)"
    )]
    PortInUse(SocketAddr),
    #[error("data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error("control plane: {0}")]
    ControlPlane(#[from] crate::StartError),
    #[error("router: {0}")]
    Router(#[from] whisk_stack::child::ChildError),
    #[error("envoy: {0}")]
    Envoy(#[from] whisk_stack::envoy::EnvoyError),
    #[error("the stack did not become ready within {0:?}; see the logs in {1}")]
    NotReady(Duration, PathBuf),
    #[error("{0} keeps failing; see {1}")]
    Crashing(&'static str, PathBuf),
}

/// The parts of a running stack that this process supervises.
struct Parts {
    router: Child,
    router_link: RouterLink,
    router_admin: SocketAddr,
    envoy: Envoy,
}

/// Brings the stack up, announces it, and supervises it until Ctrl-C or SIGTERM.
pub async fn run(args: UpArgs) -> Result<(), UpError> {
    let data = absolute(&args.data_dir);
    let logs = data.join("logs");
    let envoy_dir = data.join("envoy");
    for dir in [&data, &logs, &envoy_dir] {
        std::fs::create_dir_all(dir).map_err(|e| UpError::DataDir(dir.clone(), e))?;
    }
    crate::restrict_to_owner(&data);
    let mut listen = SocketAddr::new(args.host, args.port);
    match std::net::TcpListener::bind(listen) {
        // Port 0: take a free port now, so actions learn the real API host (`__OW_API_HOST`).
        Ok(probe) if args.port == 0 => {
            listen = probe
                .local_addr()
                .map_err(|e| UpError::DataDir(data.clone(), e))?;
        }
        Ok(_) => {}
        Err(_) => return Err(UpError::PortInUse(listen)),
    }
    let envoy_bin = match &args.envoy {
        Some(p) => p.clone(),
        None => envoy::find_envoy()?,
    };

    let mut config = Config::new(data.join("store"));
    config.logs_dir = Some(logs.join("containers"));
    // Beside `admin-url`, where `whisk admin --data-dir` looks first.
    config.admin_token_file = Some(data.join(crate::admin::TOKEN_FILE));
    // The routers' credential for the gRPC port, handed to every router started below.
    config.router_token_file = Some(data.join(crate::config::ROUTER_TOKEN_FILE));
    config.prewarm = parse_prewarm(&args.prewarm).map_err(UpError::Config)?;
    config.keep_alive = Duration::from_secs(args.keep_alive_secs);
    config.sweep_grace = Duration::from_secs(args.sweep_grace_secs);
    config.gc_interval = Duration::from_secs(args.gc_interval_secs);
    config.max_containers = args.max_containers;
    config.store_cache_bytes = args.store_cache_mb.saturating_mul(1024 * 1024);
    config.api_host = format!("http://{listen}");
    config.proxy_args = args.telemetry.to_args();
    config.kubernetes = args
        .backend
        .clone()
        .kube_settings()
        .map_err(|e| UpError::Config(e.to_string()))?;
    let controlplane = crate::start(config).await?;
    tracing::info!(grpc = %controlplane.grpc_addr(), http = %controlplane.http_addr(), "control plane up");

    let router_bin = sibling("whisk-router");
    let router_link_wanted = match args.flavour {
        Flavour::Gateway => None,
        Flavour::Sidecar => Some(data.join("router.sock")),
    };
    let telemetry = args.telemetry.to_args();
    // The router's credentials: the control plane's router token, and the ingress token Envoy
    // presents to the router (made on the first start, owner-only, in the data dir).
    let ingress_file = data.join(INGRESS_TOKEN_FILE);
    let ingress_token = crate::admin::load_or_create_token(&ingress_file)
        .map_err(|e| UpError::DataDir(ingress_file.clone(), e))?;
    let cp_token = RouterTokens {
        controlplane: controlplane.router_token_file().to_path_buf(),
        ingress: ingress_file,
    };
    let router = start_router(
        &router_bin,
        &controlplane.grpc_url(),
        &cp_token,
        "127.0.0.1:0",
        router_link_wanted.as_deref(),
        &logs,
        &telemetry,
    )
    .await?;
    let (router_link, router_admin) = router_addresses(&router, router_link_wanted.as_deref());
    let spec = EnvoySpec {
        listen,
        router: router_link.clone(),
        controlplane_api: controlplane.http_addr(),
        access_log: logs.join("envoy-access.log"),
        ingress_token: Some(ingress_token),
        request_timeout: None,
    };
    let envoy = envoy::start(&envoy_bin, &spec, &envoy_dir, Duration::from_secs(60)).await?;
    let apihost = envoy.url();
    wait_ready(&apihost, router_admin, &logs).await?;

    let admin_url = controlplane.http_url();
    let _ = std::fs::write(data.join("admin-url"), &admin_url);
    // A web action to try, as `whisk up` prints it.
    const WEB_EXAMPLE: &str = r#"{"exec":{"kind":"nodejs:default","code":"const main = (p) => ({ body: `<h1>hi ${p.name}</h1>` })"},"annotations":[{"key":"web-export","value":true}]}"#;
    println!("WHISK_UP_READY apihost={apihost} admin={admin_url}");
    println!();
    // OpenWhisk's well-known guest key, created on first start.
    let guest_auth = format!("{GUEST_UUID}:{GUEST_KEY}");
    println!("  OpenWhisk API   {apihost}");
    println!("  guest key       {guest_auth}");
    println!("  data and logs   {}", data.display());
    println!(
        "  admin token     {} (whisk admin --data-dir {})",
        data.join(crate::admin::TOKEN_FILE).display(),
        data.display()
    );
    println!();
    println!("  try:  curl -u {guest_auth} {apihost}/api/v1/namespaces/_/actions");
    println!("  web:  curl -u {guest_auth} -X PUT -H 'content-type: application/json' \\");
    println!("          -d '{WEB_EXAMPLE}' \\");
    println!("          {apihost}/api/v1/namespaces/_/actions/hi");
    println!("        then open {apihost}/api/v1/web/guest/default/hi?name=you (no credentials)");
    println!("  Ctrl-C stops everything.");

    let mut parts = Parts {
        router,
        router_link,
        router_admin,
        envoy,
    };
    let spec = EnvoySpec {
        listen: parts.envoy.listen,
        ..spec
    };
    let launch = Launch {
        router_bin: &router_bin,
        envoy_bin: &envoy_bin,
        spec: &spec,
        cp_grpc: &controlplane.grpc_url(),
        cp_token: &cp_token,
        logs: &logs,
        envoy_dir: &envoy_dir,
        telemetry: &telemetry,
    };
    let outcome = supervise(&mut parts, &launch).await;

    tracing::info!("stopping");
    let Parts { router, envoy, .. } = parts;
    stop_envoy(envoy).await;
    router.stop(Duration::from_secs(5)).await;
    controlplane.shutdown().await;
    outcome
}

/// How to start the router and Envoy again.
struct Launch<'a> {
    router_bin: &'a Path,
    envoy_bin: &'a Path,
    spec: &'a EnvoySpec,
    cp_grpc: &'a str,
    cp_token: &'a RouterTokens,
    logs: &'a Path,
    envoy_dir: &'a Path,
    telemetry: &'a [String],
}

/// Restarts a part that died, on the address it had, a few times at most.
async fn supervise(parts: &mut Parts, l: &Launch<'_>) -> Result<(), UpError> {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            return Ok(());
        }
    };
    let mut restarts: Vec<Instant> = Vec::new();
    let mut may_restart = |what: &'static str, log: PathBuf| {
        restarts.retain(|t| t.elapsed() < Duration::from_secs(60));
        restarts.push(Instant::now());
        if restarts.len() > 5 {
            Err(UpError::Crashing(what, log))
        } else {
            Ok(())
        }
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
            status = parts.router.process.wait() => {
                tracing::error!(?status, "router exited; restarting it");
                may_restart("the router", l.logs.join("router.log"))?;
                let (listen, uds) = match &parts.router_link {
                    RouterLink::Tcp(addr) => (addr.to_string(), None),
                    RouterLink::Unix(path) => (String::new(), Some(path.as_path())),
                };
                parts.router =
                    start_router(
                    l.router_bin,
                    l.cp_grpc,
                    l.cp_token,
                    &listen,
                    uds,
                    l.logs,
                    l.telemetry,
                )
                .await?;
                parts.router_admin = router_addresses(&parts.router, uds).1;
            }
            status = parts.envoy.process.wait() => {
                tracing::error!(?status, "envoy exited; restarting it");
                may_restart("envoy", l.envoy_dir.join("envoy.log"))?;
                parts.envoy = envoy::start(l.envoy_bin, l.spec, l.envoy_dir, Duration::from_secs(60)).await?;
            }
        }
    }
}

async fn stop_envoy(mut envoy: Envoy) {
    if let Some(pid) = envoy.process.id() {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(5), envoy.process.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = envoy.process.kill().await;
}

/// The files a router reads its credentials from.
struct RouterTokens {
    /// Presented to the control plane (`--controlplane-token-file`).
    controlplane: PathBuf,
    /// Expected from Envoy (`--ingress-token-file`).
    ingress: PathBuf,
}

async fn start_router(
    bin: &Path,
    cp_grpc: &str,
    cp_token: &RouterTokens,
    listen: &str,
    uds: Option<&Path>,
    logs: &Path,
    telemetry: &[String],
) -> Result<Child, UpError> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(["--controlplane", cp_grpc])
        .arg("--controlplane-token-file")
        .arg(&cp_token.controlplane)
        .arg("--ingress-token-file")
        .arg(&cp_token.ingress)
        .args(telemetry);
    match uds {
        Some(path) => cmd.arg("--uds").arg(path),
        None => cmd.args(["--listen", listen]),
    };
    Ok(spawn_announcing(
        cmd,
        "WHISK_ROUTER_LISTENING",
        &logs.join("router.log"),
        Duration::from_secs(30),
    )
    .await?)
}

/// The router's gRPC link (TCP address, or the socket we asked for) and admin address.
fn router_addresses(router: &Child, uds: Option<&Path>) -> (RouterLink, SocketAddr) {
    let mut words = router.address.split_whitespace();
    let grpc = words.next().and_then(|w| w.parse().ok());
    let admin = words
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let link = match (uds, grpc) {
        (Some(path), _) => RouterLink::Unix(path.to_path_buf()),
        (None, Some(addr)) => RouterLink::Tcp(addr),
        (None, None) => RouterLink::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
    };
    (link, admin)
}

/// Waits until the API answers through Envoy and the router holds its tables.
async fn wait_ready(apihost: &str, router_admin: SocketAddr, logs: &Path) -> Result<(), UpError> {
    let timeout = Duration::from_secs(60);
    let deadline = Instant::now() + timeout;
    let http = reqwest::Client::new();
    loop {
        let api = http.get(format!("{apihost}/api/v1")).send().await;
        let router = http
            .get(format!("http://{router_admin}/readyz"))
            .send()
            .await;
        if matches!((&api, &router), (Ok(a), Ok(r)) if a.status().is_success() && r.status().is_success())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(UpError::NotReady(timeout, logs.to_path_buf()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A binary installed next to this one.
fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}
