//! Envoy as a child process, configured from the shipped templates.
//!
//! `envoy/gateway.yaml` (router over TCP) and `envoy/sidecar.yaml` (router over a Unix domain
//! socket) hold `{{NAME}}` placeholders; [`render`] fills them. Envoy binds port 0 when asked and
//! reports the port its listener bound through the admin API, so nothing here assumes a port is
//! free.
//!
//! Envoy's admin interface has no authentication (`POST /quitquitquit` stops the stack,
//! `/config_dump` shows its configuration), so it never listens on TCP, where action code could
//! reach it: every config's admin address is a Unix domain socket, mode 0600, that [`start_config`]
//! places in the stack's directory (the `{{ADMIN_SOCKET}}` placeholder). [`Envoy::admin_get`]
//! talks to it.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::child::own;

pub const GATEWAY_TEMPLATE: &str = include_str!("../../envoy/gateway.yaml");
pub const SIDECAR_TEMPLATE: &str = include_str!("../../envoy/sidecar.yaml");
/// The placeholder of the admin socket's path; every config [`start_config`] runs must have it.
pub const ADMIN_SOCKET: &str = "{{ADMIN_SOCKET}}";
/// The longest path a Unix domain socket can have (`sun_path`, less its NUL).
const MAX_SOCKET_PATH: usize = 107;

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
    #[error("the config has no {ADMIN_SOCKET} placeholder for its admin socket")]
    NoAdminSocket,
    #[error(
        "the admin socket path {0} is longer than a Unix socket path can be; use a shorter directory"
    )]
    SocketPathTooLong(String),
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
    /// The token Envoy presents to a router over TCP (`x-whisk-ingress-token`; the router's
    /// `--ingress-token-file`). `None` sends an empty one, which only an ungated router accepts.
    pub ingress_token: Option<String>,
    /// How long a client may take to send a whole request (408 after that); `None`: the default,
    /// [`REQUEST_TIMEOUT`].
    pub request_timeout: Option<std::time::Duration>,
}

/// How long a client may take to send a whole request by default (nginx, OpenWhisk's front door,
/// allows 60 s between two reads of a body; the bound here is on the whole request).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Fills the template of the spec's flavour; the admin socket ([`ADMIN_SOCKET`]) is left for
/// [`start_config`] to fill.
pub fn render(spec: &EnvoySpec) -> String {
    let template = match spec.router {
        RouterLink::Tcp(_) => GATEWAY_TEMPLATE,
        RouterLink::Unix(_) => SIDECAR_TEMPLATE,
    };
    let mut out = template
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
        .replace("{{ACCESS_LOG}}", &spec.access_log.display().to_string())
        .replace(
            "{{REQUEST_TIMEOUT}}",
            &format!(
                "{}s",
                spec.request_timeout
                    .unwrap_or(REQUEST_TIMEOUT)
                    .as_secs()
                    .max(1)
            ),
        );
    match &spec.router {
        RouterLink::Tcp(addr) => {
            out = out
                .replace("{{ROUTER_ADDRESS}}", &addr.ip().to_string())
                .replace("{{ROUTER_PORT}}", &addr.port().to_string())
                .replace(
                    "{{INGRESS_TOKEN}}",
                    spec.ingress_token.as_deref().unwrap_or_default(),
                );
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
    /// The admin interface's Unix domain socket (mode 0600).
    pub admin_socket: PathBuf,
}

impl Envoy {
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// `GET <path>` (e.g. `/ready`, `/stats?filter=...`) on the admin interface: status and body.
    pub async fn admin_get(&self, path: &str) -> Result<(u16, String), reqwest::Error> {
        admin_get(&admin_client(&self.admin_socket)?, path).await
    }
}

/// An HTTP client whose every connection goes to the admin socket.
fn admin_client(socket: &Path) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder().unix_socket(socket).build()
}

async fn admin_get(client: &reqwest::Client, path: &str) -> Result<(u16, String), reqwest::Error> {
    let resp = client
        .get(format!("http://envoy-admin{path}"))
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
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
/// floor) and whose admin address is the [`ADMIN_SOCKET`] pipe, as `<dir>/<name>.yaml`, its admin
/// socket `<dir>/<name>-admin.sock`, logging to `<dir>/<name>.log`.
pub async fn start_config(
    envoy: &Path,
    config_text: &str,
    name: &str,
    dir: &Path,
    timeout: Duration,
) -> Result<Envoy, EnvoyError> {
    if !config_text.contains(ADMIN_SOCKET) {
        return Err(EnvoyError::NoAdminSocket);
    }
    let config = dir.join(format!("{name}.yaml"));
    let admin_socket = dir.join(format!("{name}-admin.sock"));
    let log_path = dir.join(format!("{name}.log"));
    if admin_socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(EnvoyError::SocketPathTooLong(
            admin_socket.display().to_string(),
        ));
    }
    // A socket left by an Envoy that died would make this one fail to bind.
    let _ = std::fs::remove_file(&admin_socket);
    let config_text = config_text.replace(ADMIN_SOCKET, &admin_socket.display().to_string());
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
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log));
    own(&mut cmd);
    let mut process = cmd.spawn().map_err(EnvoyError::Spawn)?;
    let log_name = log_path.display().to_string();
    let deadline = Instant::now() + timeout;
    let client =
        admin_client(&admin_socket).map_err(|e| EnvoyError::Io(std::io::Error::other(e)))?;
    loop {
        if let Ok(Some(_)) = process.try_wait() {
            return Err(EnvoyError::Exited(log_name));
        }
        if admin_socket.exists()
            && let Some(listen) = listener_address(&client).await
        {
            return Ok(Envoy {
                process,
                listen,
                admin_socket,
            });
        }
        if Instant::now() > deadline {
            return Err(EnvoyError::Timeout(timeout, log_name));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The bound address of the API listener, once Envoy reports it.
async fn listener_address(client: &reqwest::Client) -> Option<SocketAddr> {
    let (_, body) = admin_get(client, "/listeners?format=json").await.ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
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
