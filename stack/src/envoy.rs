//! Envoy as a child process, configured from the shipped templates.
//!
//! `envoy/gateway.yaml` (router over TCP) and `envoy/sidecar.yaml` (router over a Unix domain
//! socket) hold `{{NAME}}` placeholders; [`render`] fills them. Envoy binds port 0 when asked,
//! writes its admin address to a file (`--admin-address-path`), and reports the port its
//! listener bound through the admin API, so nothing here assumes a port is free.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::child::own;

pub const GATEWAY_TEMPLATE: &str = include_str!("../../envoy/gateway.yaml");
pub const SIDECAR_TEMPLATE: &str = include_str!("../../envoy/sidecar.yaml");

#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    #[error(
        "envoy not found: run `make envoy` (installs it into .venv), or set WHISK_ENVOY to its path"
    )]
    NotFound,
    #[error("could not start envoy: {0}")]
    Spawn(std::io::Error),
    #[error("envoy rejected its configuration:\n{0}")]
    Invalid(String),
    #[error("envoy exited during start-up (see {0})")]
    Exited(String),
    #[error("envoy did not become ready within {0:?} (see {1})")]
    Timeout(Duration, String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Where Envoy sends the router's gRPC calls.
#[derive(Debug, Clone)]
pub enum RouterLink {
    /// Gateway flavour: the router is its own service on TCP.
    Tcp(SocketAddr),
    /// Sidecar flavour: the router beside Envoy on a Unix domain socket.
    Unix(PathBuf),
}

/// Everything a config needs.
#[derive(Debug, Clone)]
pub struct EnvoySpec {
    pub listen: SocketAddr,
    pub router: RouterLink,
    pub controlplane_api: SocketAddr,
    pub access_log: PathBuf,
}

/// Fills the template of the spec's flavour.
pub fn render(spec: &EnvoySpec) -> String {
    let template = match spec.router {
        RouterLink::Tcp(_) => GATEWAY_TEMPLATE,
        RouterLink::Unix(_) => SIDECAR_TEMPLATE,
    };
    let mut out = template
        .replace("{{ADMIN_PORT}}", "0")
        .replace("{{LISTEN_ADDRESS}}", &spec.listen.ip().to_string())
        .replace("{{LISTEN_PORT}}", &spec.listen.port().to_string())
        .replace(
            "{{CONTROLPLANE_ADDRESS}}",
            &spec.controlplane_api.ip().to_string(),
        )
        .replace(
            "{{CONTROLPLANE_PORT}}",
            &spec.controlplane_api.port().to_string(),
        )
        .replace("{{ACCESS_LOG}}", &spec.access_log.display().to_string());
    match &spec.router {
        RouterLink::Tcp(addr) => {
            out = out
                .replace("{{ROUTER_ADDRESS}}", &addr.ip().to_string())
                .replace("{{ROUTER_PORT}}", &addr.port().to_string());
        }
        RouterLink::Unix(path) => {
            out = out.replace("{{ROUTER_SOCKET}}", &path.display().to_string());
        }
    }
    out
}

/// Envoy's binary: `$WHISK_ENVOY`, the project's `.venv/bin/envoy`, or `envoy` on the PATH.
pub fn find_envoy() -> Result<PathBuf, EnvoyError> {
    if let Some(p) = std::env::var_os("WHISK_ENVOY") {
        return Ok(PathBuf::from(p));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = repo.join(".venv/bin/envoy");
    if venv.is_file() {
        return Ok(venv);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("envoy"))
        .find(|p| p.is_file())
        .ok_or(EnvoyError::NotFound)
}

/// `envoy --mode validate -c <config>`.
pub async fn validate(envoy: &Path, config: &Path) -> Result<(), EnvoyError> {
    let out = Command::new(envoy)
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(EnvoyError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Err(EnvoyError::Invalid(text))
    }
}

/// A running Envoy, killed on drop.
#[derive(Debug)]
pub struct Envoy {
    pub process: tokio::process::Child,
    /// Where clients connect.
    pub listen: SocketAddr,
    pub admin: SocketAddr,
}

impl Envoy {
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }
}

/// Writes the config to `dir`, starts Envoy and waits until its listener is up.
pub async fn start(
    envoy: &Path,
    spec: &EnvoySpec,
    dir: &Path,
    timeout: Duration,
) -> Result<Envoy, EnvoyError> {
    start_config(envoy, &render(spec), "envoy", dir, timeout).await
}

/// Starts Envoy with any config whose API listener is named `openwhisk_api` (e.g. the bench's
/// floor), as `<dir>/<name>.yaml`, logging to `<dir>/<name>.log`.
pub async fn start_config(
    envoy: &Path,
    config_text: &str,
    name: &str,
    dir: &Path,
    timeout: Duration,
) -> Result<Envoy, EnvoyError> {
    let config = dir.join(format!("{name}.yaml"));
    let admin_path = dir.join(format!("{name}-admin-address"));
    let log_path = dir.join(format!("{name}.log"));
    let _ = std::fs::remove_file(&admin_path);
    std::fs::write(&config, config_text)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut cmd = Command::new(envoy);
    cmd.arg("-c")
        .arg(&config)
        .args([
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "--log-level",
            "warn",
        ])
        .arg("--admin-address-path")
        .arg(&admin_path)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log));
    own(&mut cmd);
    let mut process = cmd.spawn().map_err(EnvoyError::Spawn)?;
    let log_name = log_path.display().to_string();
    let deadline = Instant::now() + timeout;
    let client = reqwest::Client::new();
    loop {
        if let Ok(Some(_)) = process.try_wait() {
            return Err(EnvoyError::Exited(log_name));
        }
        if let Some(admin) = read_admin(&admin_path)
            && let Some(listen) = listener_address(&client, admin).await
        {
            return Ok(Envoy {
                process,
                listen,
                admin,
            });
        }
        if Instant::now() > deadline {
            return Err(EnvoyError::Timeout(timeout, log_name));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn read_admin(path: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The bound address of the API listener, once Envoy reports it.
async fn listener_address(client: &reqwest::Client, admin: SocketAddr) -> Option<SocketAddr> {
    let url = format!("http://{admin}/listeners?format=json");
    let v: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
    let sock = v["listener_statuses"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == "openwhisk_api")?["local_address"]["socket_address"]
        .clone();
    let ip = sock["address"].as_str()?;
    let port = sock["port_value"].as_u64()?;
    if port == 0 {
        return None;
    }
    format!("{ip}:{port}").parse().ok()
}
