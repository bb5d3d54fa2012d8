//! Scenario a's Envoy: the floor every other number is compared with.
//!
//! The shipped templates (`envoy/gateway.yaml`, `envoy/sidecar.yaml`) always route invokes
//! through ext_proc, so the floor needs its own config: one listener, one route, one static
//! cluster pointing at the bench's upstream, HTTP/1.1 on both sides, no filters but the router
//! filter and no access log. Envoy is started the way `whisk_stack::envoy::start` starts it (same
//! flags, admin on port 0, its address learnt from `--admin-address-path`, the listener's port
//! from the admin API), and owned by the bench (killed on drop).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use whisk_stack::child::own;

#[derive(Debug, thiserror::Error)]
pub enum MinEnvoyError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("envoy exited during start-up (see {0})")]
    Exited(String),
    #[error("envoy did not become ready within {0:?} (see {1})")]
    Timeout(Duration, String),
}

const TEMPLATE: &str = r#"# whisk-bench scenario a: Envoy alone in front of a static upstream.
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
  - name: openwhisk_api
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench_floor
          route_config:
            name: floor
            virtual_hosts:
            - name: floor
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: upstream, timeout: 30s}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: {{UPSTREAM_ADDRESS}}, port_value: {{UPSTREAM_PORT}}}}}
"#;

/// The floor's config for an upstream.
pub fn render(upstream: SocketAddr) -> String {
    TEMPLATE
        .replace("{{UPSTREAM_ADDRESS}}", &upstream.ip().to_string())
        .replace("{{UPSTREAM_PORT}}", &upstream.port().to_string())
}

/// A running floor Envoy, killed on drop.
pub struct MinEnvoy {
    pub process: Child,
    pub listen: SocketAddr,
}

/// Writes the config into `dir`, starts Envoy, and waits until its listener has a port.
pub async fn start(
    envoy: &Path,
    upstream: SocketAddr,
    dir: &Path,
    timeout: Duration,
) -> Result<MinEnvoy, MinEnvoyError> {
    let config = dir.join("envoy-floor.yaml");
    let admin_path = dir.join("envoy-floor-admin-address");
    let log_path = dir.join("envoy-floor.log");
    std::fs::write(&config, render(upstream))?;
    let log = std::fs::File::create(&log_path)?;
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
    let mut process = cmd.spawn()?;
    let log_name = log_path.display().to_string();
    let deadline = Instant::now() + timeout;
    let http = reqwest::Client::new();
    loop {
        if let Ok(Some(_)) = process.try_wait() {
            return Err(MinEnvoyError::Exited(log_name));
        }
        if let Some(listen) = listener(&http, &admin_path).await {
            return Ok(MinEnvoy { process, listen });
        }
        if Instant::now() > deadline {
            return Err(MinEnvoyError::Timeout(timeout, log_name));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn listener(http: &reqwest::Client, admin_path: &Path) -> Option<SocketAddr> {
    let admin: SocketAddr = std::fs::read_to_string(admin_path)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let v: serde_json::Value = http
        .get(format!("http://{admin}/listeners?format=json"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let sock = &v["listener_statuses"].as_array()?.first()?["local_address"]["socket_address"];
    let port = u16::try_from(sock["port_value"].as_u64()?).ok()?;
    (port != 0).then(|| SocketAddr::from(([127, 0, 0, 1], port)))
}
