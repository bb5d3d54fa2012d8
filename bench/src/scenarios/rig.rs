//! The set-ups of the edge scenarios: Envoy in front of the bench's upstream, with nothing (a),
//! the no-op ext_proc (b) or the real router fed by the control-plane stand-in (c, f, g, h, j).
//!
//! A [`Rig`] owns every process it started (dropped = killed) and knows which process is which
//! component, so a step can charge each one's CPU time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;
use whisk_proto::controlplane::v1 as pb;
use whisk_stack::child::{Child, spawn_announcing};
use whisk_stack::envoy::{self, EnvoySpec, RouterLink};

use super::{ScenarioError, Tools, wait_for, wait_revision};
use crate::loadgen::Target;
use crate::procstat::Component;
use crate::standin::{self, ServeHandle, StandIn};
use crate::{envoy_min, noop_extproc, upstream};

/// OpenWhisk's well-known guest credentials.
pub use whisk_testkit::{GUEST_KEY, GUEST_UUID};
/// The action every edge request invokes.
pub const ACTION: &str = "guest/bench";
pub const INVOKE_PATH: &str = "/api/v1/namespaces/_/actions/bench?blocking=true&result=true";
/// The parameters every request sends.
pub const BODY: &str = r#"{"name":"bench","n":1}"#;

const START_TIMEOUT: Duration = Duration::from_secs(30);

pub fn guest() -> String {
    format!("{GUEST_UUID}:{GUEST_KEY}")
}

/// What sits between Envoy and the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// Scenario a: the floor Envoy config, no ext_proc.
    Floor,
    /// Scenario b: the gateway template with the no-op ext_proc as `router_grpc`.
    Noop,
    /// Scenario c (TCP) or h (Unix socket): the real router. `keep_bodies: true` (scenario k)
    /// runs it with `--replay always`: every forwarded invoke keeps its body for a replay after
    /// a 429 (the default, `auto`, keeps none while the router is alone).
    Router { sidecar: bool, keep_bodies: bool },
}

/// A running set-up.
pub struct Rig {
    pub envoy_listen: SocketAddr,
    pub upstream: SocketAddr,
    pub components: Vec<Component>,
    pub router_admin: Option<SocketAddr>,
    pub standin: Option<StandIn>,
    pub http: reqwest::Client,
    // Owned processes and servers (killed / stopped on drop), in no particular order.
    _upstream: Child,
    _front: Option<Child>,
    _envoy: EnvoyProcess,
    _standin_server: Option<ServeHandle>,
}

enum EnvoyProcess {
    Floor(envoy::Envoy),
    Template(envoy::Envoy),
}

impl EnvoyProcess {
    fn pid(&self) -> Option<u32> {
        match self {
            EnvoyProcess::Floor(e) => e.process.id(),
            EnvoyProcess::Template(e) => e.process.id(),
        }
    }
}

impl Rig {
    /// The request every edge step sends: the guest's invoke of `guest/bench`.
    pub fn target(&self) -> Target {
        Target::post_json(self.envoy_listen, INVOKE_PATH, Some(&guest()), BODY)
    }

    /// The guest's `POST` of [`BODY`] to another path (e.g. another action).
    pub fn target_path(&self, path: &str) -> Target {
        Target::post_json(self.envoy_listen, path, Some(&guest()), BODY)
    }

    /// The same invoke with other credentials.
    pub fn target_as(&self, credentials: &str) -> Target {
        Target::post_json(self.envoy_listen, INVOKE_PATH, Some(credentials), BODY)
    }

    /// How many requests the upstream has served (its own count, asked directly).
    pub async fn upstream_requests(&self) -> Result<u64, ScenarioError> {
        let text = self
            .http
            .get(format!("http://{}{}", self.upstream, upstream::COUNT_PATH))
            .send()
            .await?
            .text()
            .await?;
        text.trim()
            .parse()
            .map_err(|_| ScenarioError::Unexpected(format!("upstream count {text:?}")))
    }

    /// Pushes a delta through the stand-in and waits until the router has applied it.
    pub async fn apply(&self, u: pb::TableUpdate) -> Result<u64, ScenarioError> {
        let (Some(s), Some(admin)) = (&self.standin, self.router_admin) else {
            return Err(ScenarioError::Unexpected("this rig has no router".into()));
        };
        let revision = s.push(u);
        wait_revision(&self.http, admin, revision, Duration::from_secs(10)).await?;
        Ok(revision)
    }
}

/// The router's tables for the edge scenarios: the guest (limits far above any load here), the
/// action `guest/bench`, and one endpoint with room for every connection: the upstream.
pub fn base_tables(upstream: SocketAddr) -> pb::TableUpdate {
    pb::TableUpdate {
        namespaces_upsert: vec![standin::namespace("guest", 1_000_000_000, 100_000)],
        identities_upsert: vec![standin::identity(GUEST_UUID, "guest", GUEST_KEY)],
        actions_upsert: vec![standin::action(ACTION, 100_000)],
        endpoints_upsert: vec![standin::endpoint("bench-c0", ACTION, upstream, 100_000)],
        ..Default::default()
    }
}

pub async fn start_upstream(
    tools: &Tools,
    dir: &Path,
    mode: upstream::Mode,
) -> Result<Child, ScenarioError> {
    let mut cmd = Command::new(&tools.bench);
    cmd.args(["upstream", "--listen", "127.0.0.1:0", "--mode", mode.arg()]);
    spawn_announcing(
        cmd,
        upstream::MARKER,
        &dir.join("upstream.log"),
        START_TIMEOUT,
    )
    .await
    .map_err(|source| ScenarioError::Child {
        what: "upstream",
        source,
    })
}

fn parse_addr(what: &str, text: &str) -> Result<SocketAddr, ScenarioError> {
    text.split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| ScenarioError::Unexpected(format!("{what} announced {text:?}")))
}

/// Starts a router against `controlplane`; returns it, its gRPC link and its admin address.
pub async fn start_router(
    tools: &Tools,
    controlplane: &str,
    dir: &Path,
    sidecar: bool,
    keep_bodies: bool,
) -> Result<(Child, RouterLink, SocketAddr, PathBuf), ScenarioError> {
    let log = dir.join("router.log");
    let socket = dir.join("router.sock");
    let mut cmd = Command::new(&tools.router);
    cmd.args(["--admin", "127.0.0.1:0", "--controlplane", controlplane])
        // Per-request logging is not part of what is measured.
        .env("RUST_LOG", "warn");
    if keep_bodies {
        cmd.args(["--replay", "always"]);
    }
    if sidecar {
        cmd.arg("--uds").arg(&socket);
    } else {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    let child = spawn_announcing(cmd, "WHISK_ROUTER_LISTENING", &log, START_TIMEOUT)
        .await
        .map_err(|source| ScenarioError::Child {
            what: "router",
            source,
        })?;
    let mut words = child.address.split_whitespace();
    let grpc = words.next().unwrap_or_default().to_owned();
    let admin = parse_addr("router admin", words.next().unwrap_or_default())?;
    let link = if sidecar {
        RouterLink::Unix(socket)
    } else {
        RouterLink::Tcp(parse_addr("router", &grpc)?)
    };
    Ok((child, link, admin, log))
}

/// Brings a set-up up and waits until an invoke through Envoy answers 200.
pub async fn start(tools: &Tools, front: Front, name: &str) -> Result<Rig, ScenarioError> {
    start_with(tools, front, name, upstream::Mode::Plain).await
}

/// As [`start`], with the upstream answering in `mode`.
pub async fn start_with(
    tools: &Tools,
    front: Front,
    name: &str,
    mode: upstream::Mode,
) -> Result<Rig, ScenarioError> {
    let dir = tools.work.join(name);
    std::fs::create_dir_all(&dir)?;
    let up = start_upstream(tools, &dir, mode).await?;
    let upstream_addr = parse_addr("upstream", &up.address)?;
    let mut components = vec![Component::new("upstream", up.pid().unwrap_or(0))];
    let mut front_child = None;
    let mut router_admin = None;
    let mut standin = None;
    let mut standin_server = None;
    let envoy = match front {
        Front::Floor => EnvoyProcess::Floor(
            envoy_min::start(&tools.envoy, upstream_addr, &dir, START_TIMEOUT).await?,
        ),
        Front::Noop | Front::Router { .. } => {
            let link = if front == Front::Noop {
                let mut cmd = Command::new(&tools.bench);
                cmd.args(["noop-extproc", "--listen", "127.0.0.1:0", "--dst"])
                    .arg(upstream_addr.to_string());
                let child = spawn_announcing(
                    cmd,
                    noop_extproc::MARKER,
                    &dir.join("noop-extproc.log"),
                    START_TIMEOUT,
                )
                .await
                .map_err(|source| ScenarioError::Child {
                    what: "no-op ext_proc",
                    source,
                })?;
                let addr = parse_addr("no-op ext_proc", &child.address)?;
                components.push(Component::new("noop-extproc", child.pid().unwrap_or(0)));
                front_child = Some(child);
                RouterLink::Tcp(addr)
            } else {
                let (sidecar, keep_bodies) = match front {
                    Front::Router {
                        sidecar,
                        keep_bodies,
                    } => (sidecar, keep_bodies),
                    _ => (false, false),
                };
                let s = StandIn::new();
                let revision = s.push(base_tables(upstream_addr));
                let (url, server) = s.serve().await?;
                let (child, link, admin, _log) =
                    start_router(tools, &url, &dir, sidecar, keep_bodies).await?;
                components.push(Component::new("router", child.pid().unwrap_or(0)));
                wait_revision(&reqwest::Client::new(), admin, revision, START_TIMEOUT).await?;
                front_child = Some(child);
                router_admin = Some(admin);
                standin = Some(s);
                standin_server = Some(server);
                link
            };
            let spec = EnvoySpec {
                listen: "127.0.0.1:0"
                    .parse()
                    .map_err(|_| ScenarioError::Unexpected("loopback address".into()))?,
                router: link,
                // Management calls are never made here; point them at the upstream.
                controlplane_api: upstream_addr,
                access_log: dir.join("envoy-access.log"),
                ingress_token: None,
                request_timeout: None,
            };
            EnvoyProcess::Template(envoy::start(&tools.envoy, &spec, &dir, START_TIMEOUT).await?)
        }
    };
    components.insert(0, Component::new("envoy", envoy.pid().unwrap_or(0)));
    components.push(Component::new("loadgen", std::process::id()));
    let envoy_listen = match &envoy {
        EnvoyProcess::Floor(e) => e.listen,
        EnvoyProcess::Template(e) => e.listen,
    };
    let rig = Rig {
        envoy_listen,
        upstream: upstream_addr,
        components,
        router_admin,
        standin,
        http: reqwest::Client::new(),
        _upstream: up,
        _front: front_child,
        _envoy: envoy,
        _standin_server: standin_server,
    };
    let url = format!("http://{}{INVOKE_PATH}", rig.envoy_listen);
    let http = rig.http.clone();
    wait_for("a 200 through Envoy", START_TIMEOUT, || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.post(&url)
                .basic_auth(GUEST_UUID, Some(GUEST_KEY))
                .header("content-type", "application/json")
                .body(BODY)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await?;
    Ok(rig)
}
