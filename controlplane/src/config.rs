//! Everything the control plane can be tuned with, in one plain struct, so the binary (clap), an
//! embedding binary (`whisk up`) and tests build it the same way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The admin API token file, in the data directory.
pub const TOKEN_FILE: &str = "admin-token";
/// The routers' gRPC token file, in the data directory.
pub const ROUTER_TOKEN_FILE: &str = "router-token";

/// Control-plane configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the store lives (and, unless `logs_dir` is set, container logs in `logs/`).
    pub data_dir: PathBuf,
    /// Per-container log files; `None` = `data_dir/logs`.
    pub logs_dir: Option<PathBuf>,
    /// gRPC (routers, container proxies). Port 0 = any free port.
    pub grpc_listen: SocketAddr,
    /// The gRPC URL given to container proxies (`--controlplane`); `None` = `http://` + the bound
    /// address. A Service URL keeps pods reachable back when the control plane moves.
    pub grpc_advertise: Option<String>,
    /// HTTP management API and `/_whisk/admin`. Port 0 = any free port.
    pub http_listen: SocketAddr,
    /// The container proxy binary; `None` = `whisk-container-proxy` next to the current executable.
    pub proxy_bin: Option<PathBuf>,
    /// `__OW_API_HOST` given to actions.
    pub api_host: String,
    /// Stem cells kept warm per kind, e.g. `[("nodejs:20", 1)]`.
    pub prewarm: Vec<(String, usize)>,
    /// A container without activity for this long is marked for removal.
    pub keep_alive: Duration,
    /// A marked container is swept after this long unless it got traffic.
    pub sweep_grace: Duration,
    /// How often the garbage collector runs (0 = never on its own; call `gc_tick`).
    pub gc_interval: Duration,
    /// At most this many containers (stem cells included).
    pub max_containers: usize,
    /// At most this much memory (sum of the containers' memory limits), in MB.
    pub max_memory_mb: u64,
    /// Memory accounted for a stem cell, in MB.
    pub stem_cell_memory_mb: u32,
    /// At most this many container starts at once.
    pub max_concurrent_starts: usize,
    /// Only containers idle at least this long may be evicted to make room.
    pub evict_min_idle: Duration,
    /// How long a container proxy may take to print its listening line.
    pub start_timeout: Duration,
    /// Activation records kept per namespace.
    pub activations_per_namespace: usize,
    /// Bytes of the store's in-memory page cache (the store's memory is bounded by it, however
    /// many activations are recorded).
    pub store_cache_bytes: usize,
    /// How many deltas a router may lag before it gets a fresh snapshot.
    pub push_buffer: usize,
    /// Highest `limits.concurrency` an action may ask for (OpenWhisk's default is 1).
    pub max_action_concurrency: u32,
    /// Create namespace `guest` with OpenWhisk's guest key when the store is empty.
    pub seed_guest: bool,
    /// Extra arguments for every container proxy started (the telemetry flags:
    /// `--log-json`, `--otlp-endpoint`, `--trace-sample-ratio`).
    pub proxy_args: Vec<String>,
    /// Run containers as pods in a Kubernetes cluster instead of local processes.
    pub kubernetes: Option<KubeSettings>,
    /// The admin API's bearer token file (created, mode 0600, on first start); `None` =
    /// `data_dir/admin-token`.
    pub admin_token_file: Option<PathBuf>,
    /// The token routers present on the gRPC service (created, mode 0600, on first start);
    /// `None` = `data_dir/router-token`.
    pub router_token_file: Option<PathBuf>,
    /// The system's default namespace limits: what a namespace does not set itself. Pushed to
    /// every router, so this is their one source.
    pub default_limits: SystemLimits,
}

/// Default namespace limits (OpenWhisk's: 60 invocations a minute, 30 concurrent, 1 MiB payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemLimits {
    pub invocations_per_minute: u32,
    pub concurrent_invocations: u32,
    pub max_payload_bytes: u64,
}

impl Default for SystemLimits {
    fn default() -> Self {
        Self {
            invocations_per_minute: 60,
            concurrent_invocations: 30,
            max_payload_bytes: 1024 * 1024,
        }
    }
}

/// Where action pods go when the Kubernetes backend is selected.
#[derive(Debug, Clone)]
pub struct KubeSettings {
    /// Namespace of the action pods.
    pub namespace: String,
    /// Image of the container proxy sidecar.
    pub proxy_image: String,
    /// Label value telling this control plane's pods from others' in the namespace.
    pub stack: String,
    /// Runtime images are `<prefix>/<name>:<tag>` (OpenWhisk's naming) ...
    pub runtime_image_prefix: String,
    pub runtime_image_tag: String,
    /// ... unless a kind names its own image here.
    pub runtime_images: Vec<(String, String)>,
}

impl Config {
    /// Defaults for everything but the data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            data_dir: data_dir.into(),
            logs_dir: None,
            grpc_listen: loopback,
            grpc_advertise: None,
            http_listen: loopback,
            proxy_bin: None,
            api_host: "http://127.0.0.1:3233".to_string(),
            prewarm: vec![("nodejs:20".to_string(), 1)],
            keep_alive: Duration::from_secs(600),
            sweep_grace: Duration::from_secs(30),
            gc_interval: Duration::from_secs(5),
            max_containers: 64,
            max_memory_mb: 16 * 1024,
            stem_cell_memory_mb: 256,
            max_concurrent_starts: 8,
            evict_min_idle: Duration::from_secs(1),
            start_timeout: Duration::from_secs(30),
            activations_per_namespace: 10_000,
            store_cache_bytes: crate::store::redb::DEFAULT_CACHE_BYTES,
            push_buffer: 1024,
            max_action_concurrency: 1,
            seed_guest: true,
            proxy_args: Vec::new(),
            kubernetes: None,
            admin_token_file: None,
            router_token_file: None,
            default_limits: SystemLimits::default(),
        }
    }

    /// Where the admin API's token lives.
    pub fn resolved_admin_token_file(&self) -> PathBuf {
        self.admin_token_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(TOKEN_FILE))
    }

    /// Where the routers' token lives.
    pub fn resolved_router_token_file(&self) -> PathBuf {
        self.router_token_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(ROUTER_TOKEN_FILE))
    }

    /// Where per-container log files go.
    pub fn resolved_logs_dir(&self) -> PathBuf {
        self.logs_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("logs"))
    }

    /// The container proxy binary to start.
    pub fn resolved_proxy_bin(&self) -> PathBuf {
        if let Some(p) = &self.proxy_bin {
            return p.clone();
        }
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("whisk-container-proxy")))
            .unwrap_or_else(|| PathBuf::from("whisk-container-proxy"))
    }
}

/// Parse `nodejs:20=1,python:3=0`.
pub fn parse_prewarm(spec: &str) -> Result<Vec<(String, usize)>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, n) = part
            .rsplit_once('=')
            .ok_or_else(|| format!("expected KIND=COUNT, got '{part}'"))?;
        let n: usize = n.parse().map_err(|_| format!("bad count in '{part}'"))?;
        out.push((kind.to_string(), n));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn prewarm_spec() {
        assert_eq!(
            super::parse_prewarm("nodejs:20=1, python:3=0").unwrap(),
            vec![("nodejs:20".to_string(), 1), ("python:3".to_string(), 0)]
        );
        assert!(super::parse_prewarm("nodejs").is_err());
        assert!(super::parse_prewarm("").unwrap().is_empty());
    }
}
