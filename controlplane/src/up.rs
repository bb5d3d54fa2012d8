//! `whisk up`: the whole stack in one command, supervised by the product itself.
//!
//! This process is only the supervisor: the control plane (`whisk controlplane`), and each
//! gateway's router and Envoy (`--gateways N`), run as child processes that die with it (see
//! `whisk_stack::child`). Start-up order follows the dependencies: control plane (store, guest
//! key, stem cells), routers (subscribe to it), Envoys (talk to both), and the stack is announced
//! only when the API answers through every Envoy and each router holds its tables. A child that
//! dies is restarted on the same addresses, however often (with a backoff while it keeps dying);
//! Ctrl-C or SIGTERM stops the Envoys first (no new requests), then the routers, then the control
//! plane and every container it started.
//!
//! Data lives in `--data-dir` (default `.whisk/`): `store/` (actions, identities, activations),
//! `logs/` (control plane, routers, access logs, `containers/`), `envoy/` (the rendered config, Envoy's log and its
//! admin socket), `admin-token` and `router-token` (the secrets `whisk admin` and the routers
//! present, owner-only). Starting again
//! with the same directory reuses the data.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use whisk_stack::child::{Child, spawn_announcing};
use whisk_stack::envoy::{self, Envoy, EnvoySpec, RouterLink};

use crate::config::parse_prewarm;

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
    /// How many gateways (an Envoy and a router each) serve the API: the first on `--port`, the
    /// others on the next ports (free ones with `--port 0`). They share one control plane and
    /// every namespace's limits.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub gateways: u16,
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
    /// The default namespace limits.
    #[command(flatten)]
    pub limits: crate::cli::DefaultLimitArgs,
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
    #[error("control plane: {0}")]
    ControlPlaneProcess(whisk_stack::child::ChildError),
    #[error("router: {0}")]
    Router(#[from] whisk_stack::child::ChildError),
    #[error("envoy: {0}")]
    Envoy(#[from] whisk_stack::envoy::EnvoyError),
    #[error("the stack did not become ready within {0:?}; see the logs in {1}")]
    NotReady(Duration, PathBuf),
}

/// One gateway of a running stack: its router and its Envoy, supervised by this process.
struct Gateway {
    /// Its number: names its log files, Envoy directory and socket.
    index: usize,
    router: Child,
    router_link: RouterLink,
    router_admin: SocketAddr,
    envoy: Envoy,
    /// Envoy's configuration (its listener, its router).
    spec: EnvoySpec,
    router_backoff: Backoff,
    envoy_backoff: Backoff,
}

impl Gateway {
    /// `logs/router.log` for the first gateway, `logs/router-<i>.log` for the others.
    fn router_log(logs: &Path, index: usize) -> PathBuf {
        match index {
            0 => logs.join("router.log"),
            i => logs.join(format!("router-{i}.log")),
        }
    }

    /// `envoy/` for the first gateway, `envoy/gateway-<i>/` for the others.
    fn envoy_dir(envoy_dir: &Path, index: usize) -> PathBuf {
        match index {
            0 => envoy_dir.to_path_buf(),
            i => envoy_dir.join(format!("gateway-{i}")),
        }
    }
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

    // Fail early on what the control plane would refuse.
    parse_prewarm(&args.prewarm).map_err(UpError::Config)?;
    args.backend
        .clone()
        .kube_settings()
        .map_err(|e| UpError::Config(e.to_string()))?;
    let free_port = || {
        std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| UpError::DataDir(data.clone(), e))
    };
    let mut controlplane = ControlPlane {
        grpc: free_port()?,
        http: free_port()?,
        log: logs.join("controlplane.log"),
        args: Vec::new(),
        child: None,
        backoff: Backoff::default(),
    };
    controlplane.args = controlplane_args(&args, &data, &logs, &controlplane, listen);
    controlplane.start().await?;
    tracing::info!(grpc = %controlplane.grpc, http = %controlplane.http, "control plane up");

    let router_bin = sibling("whisk-router");
    let telemetry = args.telemetry.to_args();
    // The router's credentials: the control plane's router token, and the ingress token Envoy
    // presents to the router (made on the first start, owner-only, in the data dir).
    let ingress_file = data.join(INGRESS_TOKEN_FILE);
    let ingress_token = crate::admin::load_or_create_token(&ingress_file)
        .map_err(|e| UpError::DataDir(ingress_file.clone(), e))?;
    let cp_token = RouterTokens {
        controlplane: data.join(crate::config::ROUTER_TOKEN_FILE),
        ingress: ingress_file,
    };
    let cp_grpc = format!("http://{}", controlplane.grpc);
    let launch = Launch {
        router_bin: &router_bin,
        envoy_bin: &envoy_bin,
        cp_grpc: &cp_grpc,
        cp_token: &cp_token,
        logs: &logs,
        envoy_dir: &envoy_dir,
        telemetry: &telemetry,
    };
    let mut gateways = Vec::new();
    for index in 0..usize::from(args.gateways) {
        let listen = match index {
            0 => listen,
            // The next consecutive port when it is free, else any free port on the same host.
            _ => {
                let next = listen
                    .port()
                    .checked_add(index as u16)
                    .filter(|_| args.port != 0);
                next.and_then(|p| std::net::TcpListener::bind(SocketAddr::new(args.host, p)).ok())
                    .map_or_else(
                        || std::net::TcpListener::bind(SocketAddr::new(args.host, 0)),
                        Ok,
                    )
                    .and_then(|l| l.local_addr())
                    .map_err(|e| UpError::DataDir(data.clone(), e))?
            }
        };
        let uds = match args.flavour {
            Flavour::Gateway => None,
            Flavour::Sidecar if index == 0 => Some(data.join("router.sock")),
            Flavour::Sidecar => Some(data.join(format!("router-{index}.sock"))),
        };
        let router = launch.router(index, "127.0.0.1:0", uds.as_deref()).await?;
        let (router_link, router_admin) = router_addresses(&router, uds.as_deref());
        let spec = EnvoySpec {
            listen,
            router: router_link.clone(),
            controlplane_api: controlplane.http,
            access_log: match index {
                0 => logs.join("envoy-access.log"),
                i => logs.join(format!("envoy-access-{i}.log")),
            },
            ingress_token: Some(ingress_token.clone()),
            request_timeout: None,
        };
        let envoy = launch.envoy(index, &spec).await?;
        wait_ready(&envoy.url(), router_admin, &logs).await?;
        // Restarts use the port Envoy got.
        let spec = EnvoySpec {
            listen: envoy.listen,
            ..spec
        };
        gateways.push(Gateway {
            index,
            router,
            router_link,
            router_admin,
            envoy,
            spec,
            router_backoff: Backoff::default(),
            envoy_backoff: Backoff::default(),
        });
    }
    let apihost = gateways[0].envoy.url();
    let all: Vec<String> = gateways.iter().map(|g| g.envoy.url()).collect();

    let admin_url = format!("http://{}", controlplane.http);
    let _ = std::fs::write(data.join("admin-url"), &admin_url);
    // A web action to try, as `whisk up` prints it.
    const WEB_EXAMPLE: &str = r#"{"exec":{"kind":"nodejs:default","code":"const main = (p) => ({ body: `<h1>hi ${p.name}</h1>` })"},"annotations":[{"key":"web-export","value":true}]}"#;
    println!(
        "WHISK_UP_READY apihost={apihost} admin={admin_url} gateways={}",
        all.join(",")
    );
    println!();
    // OpenWhisk's well-known guest key, created on first start.
    let guest_auth = format!("{GUEST_UUID}:{GUEST_KEY}");
    println!("  OpenWhisk API   {apihost}");
    if all.len() > 1 {
        println!("  gateways        {}", all.join(" "));
    }
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

    let outcome = supervise(&mut controlplane, &mut gateways, &launch).await;

    tracing::info!("stopping");
    for g in gateways {
        stop_envoy(g.envoy).await;
        g.router.stop(Duration::from_secs(5)).await;
    }
    // The control plane stops every container it started.
    if let Some(child) = controlplane.child.take() {
        child.stop(Duration::from_secs(20)).await;
    }
    outcome
}

/// The control plane: its own process (`whisk controlplane`), so its death is a restart on the
/// same addresses — the routers resubscribe, Envoy's management route finds it again — not the
/// end of the stack.
struct ControlPlane {
    grpc: SocketAddr,
    http: SocketAddr,
    log: PathBuf,
    /// `whisk controlplane` arguments.
    args: Vec<std::ffi::OsString>,
    child: Option<Child>,
    backoff: Backoff,
}

impl ControlPlane {
    async fn start(&mut self) -> Result<(), UpError> {
        let mut cmd = tokio::process::Command::new(whisk_binary());
        cmd.arg("controlplane").args(&self.args);
        let child = spawn_announcing(
            cmd,
            "WHISK_CONTROLPLANE_GRPC",
            &self.log,
            Duration::from_secs(60),
        )
        .await
        .map_err(UpError::ControlPlaneProcess)?;
        self.child = Some(child);
        Ok(())
    }
}

/// This program, to run `whisk controlplane`.
fn whisk_binary() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| sibling("whisk"))
}

/// `whisk controlplane` flags for `whisk up`'s arguments.
fn controlplane_args(
    args: &UpArgs,
    data: &Path,
    logs: &Path,
    cp: &ControlPlane,
    listen: SocketAddr,
) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    let mut flag = |name: &str, value: std::ffi::OsString| {
        out.push(name.into());
        out.push(value);
    };
    flag("--data-dir", data.join("store").into());
    flag("--logs-dir", logs.join("containers").into());
    flag("--grpc-listen", cp.grpc.to_string().into());
    flag("--http-listen", cp.http.to_string().into());
    // Beside `admin-url`, where `whisk admin --data-dir` looks first.
    flag(
        "--admin-token-file",
        data.join(crate::admin::TOKEN_FILE).into(),
    );
    // The routers' credential for the gRPC port, handed to every router.
    flag(
        "--router-token-file",
        data.join(crate::config::ROUTER_TOKEN_FILE).into(),
    );
    flag("--api-host", format!("http://{listen}").into());
    flag("--prewarm", args.prewarm.clone().into());
    flag("--keep-alive-secs", args.keep_alive_secs.to_string().into());
    flag(
        "--sweep-grace-secs",
        args.sweep_grace_secs.to_string().into(),
    );
    flag(
        "--gc-interval-secs",
        args.gc_interval_secs.to_string().into(),
    );
    flag("--max-containers", args.max_containers.to_string().into());
    flag("--store-cache-mb", args.store_cache_mb.to_string().into());
    out.extend(args.limits.to_args().into_iter().map(Into::into));
    out.extend(args.backend.to_args().into_iter().map(Into::into));
    out.extend(args.telemetry.to_args().into_iter().map(Into::into));
    out
}

/// How to start a gateway's router and Envoy (again).
struct Launch<'a> {
    router_bin: &'a Path,
    envoy_bin: &'a Path,
    cp_grpc: &'a str,
    cp_token: &'a RouterTokens,
    logs: &'a Path,
    envoy_dir: &'a Path,
    telemetry: &'a [String],
}

impl Launch<'_> {
    async fn router(
        &self,
        index: usize,
        listen: &str,
        uds: Option<&Path>,
    ) -> Result<Child, UpError> {
        start_router(
            self.router_bin,
            self.cp_grpc,
            self.cp_token,
            listen,
            uds,
            &Gateway::router_log(self.logs, index),
            self.telemetry,
        )
        .await
    }

    async fn envoy(&self, index: usize, spec: &EnvoySpec) -> Result<Envoy, UpError> {
        let dir = Gateway::envoy_dir(self.envoy_dir, index);
        std::fs::create_dir_all(&dir).map_err(|e| UpError::DataDir(dir.clone(), e))?;
        Ok(envoy::start(self.envoy_bin, spec, &dir, Duration::from_secs(60)).await?)
    }
}

/// Which part of a gateway exited.
#[derive(Debug, Clone, Copy)]
enum Part {
    Router,
    Envoy,
}

/// Restarts a part that died, on the address it had, for as long as the user has not asked the
/// stack to stop: never a permanent give-up. Restarts of one part back off ([`Backoff`]) while it
/// keeps dying, so a crash loop costs little; a restart that fails is retried the same way.
async fn supervise(
    cp: &mut ControlPlane,
    gateways: &mut [Gateway],
    l: &Launch<'_>,
) -> Result<(), UpError> {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            return Ok(());
        }
    };
    loop {
        let exited = {
            let waits = gateways.iter_mut().flat_map(|g| {
                let index = g.index;
                let Gateway { router, envoy, .. } = g;
                let r: std::pin::Pin<
                    Box<dyn std::future::Future<Output = (usize, Part)> + Send + '_>,
                > = Box::pin(async move {
                    let _ = router.process.wait().await;
                    (index, Part::Router)
                });
                let e: std::pin::Pin<
                    Box<dyn std::future::Future<Output = (usize, Part)> + Send + '_>,
                > = Box::pin(async move {
                    let _ = envoy.process.wait().await;
                    (index, Part::Envoy)
                });
                [r, e]
            });
            let any = futures::future::select_all(waits);
            let cp_exit = async {
                match cp.child.as_mut() {
                    Some(c) => {
                        let _ = c.process.wait().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            // Signals first: a Ctrl-C reaches the whole process group, and the control plane
            // stopping because of it is no reason to start it again.
            tokio::select! {
                biased;
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = term.recv() => return Ok(()),
                _ = cp_exit => None,
                ((index, part), _, _) = any => Some((index, part)),
            }
        };
        let Some(exited) = exited else {
            tracing::error!(log = %cp.log.display(), "the control plane exited; restarting it");
            loop {
                if cp.backoff.wait_or_stop(&mut term).await {
                    return Ok(());
                }
                match cp.start().await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "the control plane did not start; trying again")
                    }
                }
            }
            continue;
        };
        let (index, part) = exited;
        let Some(g) = gateways.iter_mut().find(|g| g.index == index) else {
            continue;
        };
        match part {
            Part::Router => {
                tracing::error!(gateway = index, log = %Gateway::router_log(l.logs, index).display(), "router exited; restarting it");
                let (listen, uds) = match &g.router_link {
                    RouterLink::Tcp(addr) => (addr.to_string(), None),
                    RouterLink::Unix(path) => (String::new(), Some(path.clone())),
                };
                loop {
                    if g.router_backoff.wait_or_stop(&mut term).await {
                        return Ok(());
                    }
                    match l.router(index, &listen, uds.as_deref()).await {
                        Ok(router) => {
                            g.router_admin = router_addresses(&router, uds.as_deref()).1;
                            g.router = router;
                            break;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "the router did not start; trying again")
                        }
                    }
                }
            }
            Part::Envoy => {
                tracing::error!(gateway = index, log = %Gateway::envoy_dir(l.envoy_dir, index).join("envoy.log").display(), "envoy exited; restarting it");
                loop {
                    if g.envoy_backoff.wait_or_stop(&mut term).await {
                        return Ok(());
                    }
                    match l.envoy(index, &g.spec).await {
                        Ok(envoy) => {
                            g.envoy = envoy;
                            break;
                        }
                        Err(e) => tracing::error!(error = %e, "envoy did not start; trying again"),
                    }
                }
            }
        }
    }
}

/// How long to wait before restarting a part: nothing for a part that ran a while, then doubling
/// from [`Backoff::FIRST`] up to [`Backoff::MAX`] while it keeps dying.
#[derive(Debug, Default)]
struct Backoff {
    /// The next delay (zero: restart at once).
    next: Duration,
    /// When the part was last (re)started.
    started: Option<Instant>,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);
    /// A part that ran this long is healthy again: its next restart is immediate.
    const STABLE: Duration = Duration::from_secs(30);

    /// The delay before this restart.
    fn delay(&mut self) -> Duration {
        if self.started.is_some_and(|t| t.elapsed() >= Self::STABLE) {
            self.next = Duration::ZERO;
        }
        let delay = self.next;
        self.next = (delay * 2).clamp(Self::FIRST, Self::MAX);
        self.started = Some(Instant::now());
        delay
    }

    /// Waits out the delay; true when the user asked the stack to stop meanwhile.
    async fn wait_or_stop(&mut self, term: &mut tokio::signal::unix::Signal) -> bool {
        let delay = self.delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => false,
            _ = tokio::signal::ctrl_c() => true,
            _ = term.recv() => true,
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
    log: &Path,
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
    Ok(spawn_announcing(cmd, "WHISK_ROUTER_LISTENING", log, Duration::from_secs(30)).await?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_while_a_part_keeps_dying_and_never_stop() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..10).map(|_| b.delay()).collect();
        assert_eq!(delays[0], Duration::ZERO, "the first restart is immediate");
        assert_eq!(delays[1], Backoff::FIRST);
        assert_eq!(delays[2], Backoff::FIRST * 2);
        assert!(delays.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(delays[9], Backoff::MAX, "capped, and still restarting");
        // A part that then ran for a while restarts at once again.
        b.started = Some(Instant::now() - Backoff::STABLE);
        assert_eq!(b.delay(), Duration::ZERO);
    }
}
