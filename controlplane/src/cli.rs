//! Command-line surfaces of the library: the arguments of `whisk controlplane` (turned into a
//! [`Config`]) and the `whisk admin` client, which talks to `/_whisk/admin/...` over HTTP with the
//! token it finds in the data directory. Kept here so `main.rs` stays a thin dispatcher.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::config::{Config, KubeSettings, parse_prewarm};

/// Where containers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// Child processes on this machine.
    Local,
    /// Pods in a Kubernetes cluster (kubeconfig from KUBECONFIG or ~/.kube/config, else the
    /// in-cluster service account).
    Kubernetes,
}

/// Errors of the command-line surfaces.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("cannot reach the control plane: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Rejected(String),
}

/// The execution backend flags, shared by `whisk controlplane` and `whisk up`.
#[derive(Debug, Clone, Args)]
pub struct BackendArgs {
    /// Execution backend.
    #[arg(long, value_enum, default_value = "local")]
    pub backend: BackendChoice,
    /// Namespace of the action pods (--backend kubernetes).
    #[arg(long, env = "WHISK_KUBE_NAMESPACE", default_value = "whisk-actions")]
    pub kube_namespace: String,
    /// Image of the container proxy sidecar (--backend kubernetes).
    #[arg(long, env = "WHISK_PROXY_IMAGE")]
    pub proxy_image: Option<String>,
    /// Label value that tells this control plane's pods apart (--backend kubernetes).
    #[arg(long, default_value = "whisk")]
    pub kube_stack: String,
    /// Registry prefix of the OpenWhisk runtime images, `<prefix>/<name>:<tag>`
    /// (--backend kubernetes), e.g. a mirror such as registry.example.com/openwhisk.
    #[arg(long, default_value = "openwhisk")]
    pub runtime_image_prefix: String,
    /// Tag of the OpenWhisk runtime images (--backend kubernetes).
    #[arg(long, default_value = "nightly")]
    pub runtime_image_tag: String,
    /// The image of one kind, overriding the naming rule: KIND=IMAGE, repeatable or
    /// comma-separated, e.g. nodejs:20=registry.example.com/node20:1.2 (--backend kubernetes).
    #[arg(long = "runtime-image", value_delimiter = ',')]
    pub runtime_images: Vec<String>,
}

impl BackendArgs {
    /// The same flags, to pass on to another `whisk` command.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--backend".to_owned(),
            match self.backend {
                BackendChoice::Local => "local",
                BackendChoice::Kubernetes => "kubernetes",
            }
            .to_owned(),
            "--kube-namespace".to_owned(),
            self.kube_namespace.clone(),
            "--kube-stack".to_owned(),
            self.kube_stack.clone(),
            "--runtime-image-prefix".to_owned(),
            self.runtime_image_prefix.clone(),
            "--runtime-image-tag".to_owned(),
            self.runtime_image_tag.clone(),
        ];
        if let Some(image) = &self.proxy_image {
            args.extend(["--proxy-image".to_owned(), image.clone()]);
        }
        for image in &self.runtime_images {
            args.extend(["--runtime-image".to_owned(), image.clone()]);
        }
        args
    }

    /// `Some` for `--backend kubernetes` (which needs `--proxy-image`).
    pub fn kube_settings(self) -> Result<Option<KubeSettings>, CliError> {
        if self.backend != BackendChoice::Kubernetes {
            return Ok(None);
        }
        let proxy_image = self
            .proxy_image
            .filter(|i| !i.is_empty())
            .ok_or_else(|| CliError::Invalid("--backend kubernetes needs --proxy-image".into()))?;
        let mut runtime_images = Vec::new();
        for pair in self.runtime_images.iter().filter(|p| !p.trim().is_empty()) {
            let (kind, image) = pair
                .split_once('=')
                .map(|(k, i)| (k.trim(), i.trim()))
                .filter(|(k, i)| !k.is_empty() && !i.is_empty())
                .ok_or_else(|| {
                    CliError::Invalid(format!("--runtime-image {pair}: expected KIND=IMAGE"))
                })?;
            runtime_images.push((kind.to_owned(), image.to_owned()));
        }
        Ok(Some(KubeSettings {
            namespace: self.kube_namespace,
            proxy_image,
            stack: self.kube_stack,
            runtime_image_prefix: self.runtime_image_prefix,
            runtime_image_tag: self.runtime_image_tag,
            runtime_images,
        }))
    }
}

/// The system's default namespace limits (`whisk controlplane` and `whisk up`).
#[derive(Debug, Clone, Args)]
pub struct DefaultLimitArgs {
    /// Invocations per minute of a namespace that sets no limit of its own (pushed to every router).
    #[arg(long, default_value_t = 60)]
    pub default_invocations_per_minute: u32,
    /// Concurrent invocations of a namespace that sets no limit of its own.
    #[arg(long, default_value_t = 30)]
    pub default_concurrent_invocations: u32,
    /// Largest invoke payload, in bytes, of a namespace that sets no limit of its own.
    #[arg(long, default_value_t = 1_048_576)]
    pub default_max_payload_bytes: u64,
}

impl DefaultLimitArgs {
    /// The same flags, to pass on to another `whisk` command.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--default-invocations-per-minute".into(),
            self.default_invocations_per_minute.to_string(),
            "--default-concurrent-invocations".into(),
            self.default_concurrent_invocations.to_string(),
            "--default-max-payload-bytes".into(),
            self.default_max_payload_bytes.to_string(),
        ]
    }

    pub fn to_limits(&self) -> crate::config::SystemLimits {
        crate::config::SystemLimits {
            invocations_per_minute: self.default_invocations_per_minute,
            concurrent_invocations: self.default_concurrent_invocations,
            max_payload_bytes: self.default_max_payload_bytes,
        }
    }
}

/// `whisk controlplane`.
#[derive(Debug, Clone, Args)]
pub struct ControlPlaneArgs {
    /// Data directory (store and container logs).
    #[arg(long, env = "WHISK_DATA_DIR", default_value = ".whisk")]
    pub data_dir: PathBuf,
    /// Where container logs go (default: `<data-dir>/logs`).
    #[arg(long)]
    pub logs_dir: Option<PathBuf>,
    /// gRPC listen address (routers, container proxies).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub grpc_listen: SocketAddr,
    /// gRPC URL given to container proxies, e.g. a Service's http://whisk-controlplane:7001
    /// (default: http:// + the gRPC listen address).
    #[arg(long, env = "WHISK_GRPC_ADVERTISE")]
    pub grpc_advertise: Option<String>,
    /// The admin API's token file (default: `admin-token` in the data directory, created on first
    /// start). In a cluster, a mounted Secret the admin jobs mount too.
    #[arg(long, env = "WHISK_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// The token routers must present on the gRPC port (default: `router-token` in the data
    /// directory, created on first start). In a cluster, a mounted Secret the routers mount too.
    #[arg(long, env = "WHISK_ROUTER_TOKEN_FILE")]
    pub router_token_file: Option<PathBuf>,
    /// HTTP listen address (management API, /_whisk/admin).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub http_listen: SocketAddr,
    /// Container proxy binary (default: whisk-container-proxy next to this executable).
    #[arg(long)]
    pub proxy_bin: Option<PathBuf>,
    /// __OW_API_HOST given to actions.
    #[arg(long, default_value = "http://127.0.0.1:3233")]
    pub api_host: String,
    /// Stem cells per kind, e.g. nodejs:20=1,python:3=0.
    #[arg(long, default_value = "nodejs:20=1")]
    pub prewarm: String,
    /// Seconds without activity before a container is marked for removal.
    #[arg(long, default_value_t = 600)]
    pub keep_alive_secs: u64,
    /// Seconds a marked container is kept before it is swept.
    #[arg(long, default_value_t = 30)]
    pub sweep_grace_secs: u64,
    /// Seconds between garbage-collector passes (0 = off).
    #[arg(long, default_value_t = 5)]
    pub gc_interval_secs: u64,
    /// Maximum number of containers.
    #[arg(long, default_value_t = 64)]
    pub max_containers: usize,
    /// Maximum memory of all containers, in MB.
    #[arg(long, default_value_t = 16384)]
    pub max_memory_mb: u64,
    /// Maximum concurrent container starts.
    #[arg(long, default_value_t = 8)]
    pub max_concurrent_starts: usize,
    /// Activation records kept per namespace.
    #[arg(long, default_value_t = 10000)]
    pub activations_per_namespace: usize,
    /// The store's in-memory page cache, in MiB: bounds the control plane's memory for the store
    /// whatever the number of activations.
    #[arg(long, env = "WHISK_STORE_CACHE_MB", default_value_t = 16)]
    pub store_cache_mb: usize,
    /// Highest limits.concurrency an action may set.
    #[arg(long, default_value_t = 1)]
    pub max_action_concurrency: u32,
    /// The default namespace limits.
    #[command(flatten)]
    pub limits: DefaultLimitArgs,
    /// Where containers run.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Seconds a container may take to become ready.
    #[arg(long, default_value_t = 30)]
    pub start_timeout_secs: u64,
    /// Logs and traces; passed on to every container proxy started.
    #[command(flatten)]
    pub telemetry: whisk_telemetry::TelemetryArgs,
}

impl ControlPlaneArgs {
    pub fn into_config(self) -> Result<Config, CliError> {
        let mut c = Config::new(self.data_dir);
        c.grpc_listen = self.grpc_listen;
        c.logs_dir = self.logs_dir;
        c.grpc_advertise = self.grpc_advertise.filter(|u| !u.is_empty());
        c.admin_token_file = self.admin_token_file;
        c.router_token_file = self.router_token_file;
        c.http_listen = self.http_listen;
        c.proxy_bin = self.proxy_bin;
        c.api_host = self.api_host;
        c.prewarm = parse_prewarm(&self.prewarm).map_err(CliError::Invalid)?;
        c.keep_alive = Duration::from_secs(self.keep_alive_secs);
        c.sweep_grace = Duration::from_secs(self.sweep_grace_secs);
        c.gc_interval = Duration::from_secs(self.gc_interval_secs);
        c.max_containers = self.max_containers;
        c.max_memory_mb = self.max_memory_mb;
        c.max_concurrent_starts = self.max_concurrent_starts;
        c.activations_per_namespace = self.activations_per_namespace;
        c.store_cache_bytes = self.store_cache_mb.saturating_mul(1024 * 1024);
        c.max_action_concurrency = self.max_action_concurrency;
        c.default_limits = self.limits.to_limits();
        c.proxy_args = self.telemetry.to_args();
        c.start_timeout = Duration::from_secs(self.start_timeout_secs);
        c.kubernetes = self.backend.kube_settings()?;
        Ok(c)
    }
}

/// `whisk admin`.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// HTTP URL of the control plane, e.g. http://127.0.0.1:3234 (default: the `admin-url` file
    /// `whisk up` writes in the data directory).
    #[arg(long, env = "WHISK_CONTROLPLANE")]
    pub controlplane: Option<String>,
    /// Data directory of the stack (`whisk up --data-dir`) or control plane (`whisk controlplane
    /// --data-dir`), where the admin token is.
    #[arg(long, env = "WHISK_DATA_DIR", default_value = ".whisk")]
    pub data_dir: PathBuf,
    /// The admin token file (default: `admin-token` in the data directory, or in its `store/`).
    #[arg(long, env = "WHISK_ADMIN_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Identities (uuid:key) of namespaces.
    #[command(subcommand)]
    User(UserCommand),
    /// Per-namespace throttles.
    #[command(subcommand)]
    Limits(LimitsCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Create an identity for a namespace (created if new); prints uuid:key, the only time the
    /// key is ever shown (only its digest is stored).
    Create {
        namespace: String,
        #[arg(long)]
        uuid: Option<String>,
        /// The key to use (for automation); a random one by default.
        #[arg(long)]
        key: Option<String>,
        /// Subject (default: the namespace).
        #[arg(long)]
        subject: Option<String>,
    },
    /// Delete an identity.
    Delete { uuid: String },
    /// Show an identity as `uuid namespace subject` (keys cannot be shown again).
    Get { uuid: String },
    /// List a namespace's identities, one `uuid namespace subject` a line.
    List { namespace: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum LimitsCommand {
    /// Set limits of a namespace (unset flags stay as they are).
    Set {
        namespace: String,
        #[arg(long)]
        invocations_per_minute: Option<u32>,
        #[arg(long)]
        concurrent_invocations: Option<u32>,
        #[arg(long)]
        max_payload_bytes: Option<u64>,
    },
    /// Show a namespace's limits.
    Get { namespace: String },
    /// Back to the system defaults.
    Delete { namespace: String },
}

/// The admin token: `--token-file`, else `admin-token` in the data directory (`whisk controlplane`,
/// `whisk up`) or in its `store/` (a `whisk up` directory of an older layout).
fn read_token(args: &AdminArgs) -> Result<String, CliError> {
    let candidates = match &args.token_file {
        Some(f) => vec![f.clone()],
        None => vec![
            args.data_dir.join(crate::admin::TOKEN_FILE),
            args.data_dir.join("store").join(crate::admin::TOKEN_FILE),
        ],
    };
    for path in &candidates {
        if let Ok(t) = std::fs::read_to_string(path)
            && !t.trim().is_empty()
        {
            return Ok(t.trim().to_string());
        }
    }
    Err(CliError::Invalid(format!(
        "no admin token in {}; pass the control plane's --data-dir (or --token-file)",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    )))
}

fn controlplane_url(args: &AdminArgs) -> Result<String, CliError> {
    if let Some(url) = &args.controlplane {
        return Ok(url.clone());
    }
    let file = args.data_dir.join("admin-url");
    std::fs::read_to_string(&file)
        .map(|u| u.trim().to_string())
        .map_err(|_| {
            CliError::Invalid(format!(
                "no --controlplane given and no {} to read it from",
                file.display()
            ))
        })
}

async fn call_with(
    token: &str,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Result<Value, CliError> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let mut req = client.request(method, &url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        let msg = value
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        return Err(CliError::Rejected(format!("{status}: {msg}")));
    }
    Ok(value)
}

fn creds(v: &Value) -> String {
    format!(
        "{}:{}",
        v["uuid"].as_str().unwrap_or_default(),
        v["key"].as_str().unwrap_or_default()
    )
}

/// An identity without its key (which only `user create` ever shows): `uuid namespace subject`.
fn identity_line(v: &Value) -> String {
    format!(
        "{} {} {}",
        v["uuid"].as_str().unwrap_or_default(),
        v["namespace"].as_str().unwrap_or_default(),
        v["subject"].as_str().unwrap_or_default()
    )
}

/// Run one admin command; returns what to print.
pub async fn run_admin(args: AdminArgs) -> Result<String, CliError> {
    use reqwest::Method;
    let token = read_token(&args)?;
    let base = format!(
        "{}/_whisk/admin",
        controlplane_url(&args)?.trim_end_matches('/')
    );
    let call = |method: Method, url: String, body: Option<Value>| {
        let token = token.clone();
        async move { call_with(&token, method, url, body).await }
    };
    match args.command {
        AdminCommand::User(UserCommand::Create {
            namespace,
            uuid,
            key,
            subject,
        }) => {
            let body =
                json!({ "namespace": namespace, "uuid": uuid, "key": key, "subject": subject });
            Ok(creds(
                &call(Method::POST, format!("{base}/users"), Some(body)).await?,
            ))
        }
        AdminCommand::User(UserCommand::Delete { uuid }) => {
            call(Method::DELETE, format!("{base}/users/{uuid}"), None).await?;
            Ok("ok: deleted identity".to_string())
        }
        AdminCommand::User(UserCommand::Get { uuid }) => Ok(identity_line(
            &call(Method::GET, format!("{base}/users/{uuid}"), None).await?,
        )),
        AdminCommand::User(UserCommand::List { namespace }) => {
            let v = call(
                Method::GET,
                format!("{base}/namespaces/{namespace}/users"),
                None,
            )
            .await?;
            Ok(v.as_array()
                .map(|a| a.iter().map(identity_line).collect::<Vec<_>>().join("\n"))
                .unwrap_or_default())
        }
        AdminCommand::Limits(LimitsCommand::Set {
            namespace,
            invocations_per_minute,
            concurrent_invocations,
            max_payload_bytes,
        }) => {
            let body = json!({
                "invocationsPerMinute": invocations_per_minute,
                "concurrentInvocations": concurrent_invocations,
                "maxPayloadSize": max_payload_bytes,
            });
            let v = call(
                Method::PUT,
                format!("{base}/namespaces/{namespace}/limits"),
                Some(body),
            )
            .await?;
            Ok(v.to_string())
        }
        AdminCommand::Limits(LimitsCommand::Get { namespace }) => Ok(call(
            Method::GET,
            format!("{base}/namespaces/{namespace}/limits"),
            None,
        )
        .await?
        .to_string()),
        AdminCommand::Limits(LimitsCommand::Delete { namespace }) => Ok(call(
            Method::DELETE,
            format!("{base}/namespaces/{namespace}/limits"),
            None,
        )
        .await?
        .to_string()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        args: super::ControlPlaneArgs,
    }

    #[test]
    fn the_kubernetes_backend_is_selected_by_flag() {
        let local = Cmd::parse_from(["whisk"]).args.into_config().unwrap();
        assert!(local.kubernetes.is_none());
        let k = Cmd::parse_from([
            "whisk",
            "--backend",
            "kubernetes",
            "--kube-namespace",
            "actions",
            "--proxy-image",
            "registry/whisk-proxy:1",
        ])
        .args
        .into_config()
        .unwrap()
        .kubernetes
        .unwrap();
        assert_eq!(k.namespace, "actions");
        assert_eq!(k.proxy_image, "registry/whisk-proxy:1");
        assert_eq!(k.stack, "whisk");
        assert!(
            Cmd::parse_from(["whisk", "--backend", "kubernetes"])
                .args
                .into_config()
                .is_err(),
            "a proxy image is required"
        );
    }

    #[test]
    fn runtime_images_are_configurable_per_registry_tag_and_kind() {
        let config = Cmd::parse_from([
            "whisk",
            "--backend",
            "kubernetes",
            "--proxy-image",
            "p",
            "--runtime-image-prefix",
            "mirror.example.com/openwhisk",
            "--runtime-image-tag",
            "1.2.3",
            "--runtime-image",
            "python:3=mirror.example.com/py:311,go:1.21=mirror.example.com/go:1.21",
        ])
        .args
        .into_config()
        .unwrap();
        let k = config.kubernetes.clone().unwrap();
        let kc = crate::kube_backend_config(&config, k);
        assert_eq!(
            kc.runtime_image("nodejs:20").as_deref(),
            Some("mirror.example.com/openwhisk/action-nodejs-v20:1.2.3")
        );
        assert_eq!(
            kc.runtime_image("python:3").as_deref(),
            Some("mirror.example.com/py:311")
        );
        assert_eq!(
            kc.runtime_image("go:1.21").as_deref(),
            Some("mirror.example.com/go:1.21")
        );
        let bad = Cmd::parse_from([
            "whisk",
            "--backend",
            "kubernetes",
            "--proxy-image",
            "p",
            "--runtime-image",
            "nodejs:20",
        ]);
        assert!(bad.args.into_config().is_err(), "KIND=IMAGE is required");
    }

    #[test]
    fn the_grpc_url_given_to_proxies_can_be_a_service() {
        let default = Cmd::parse_from(["whisk"]).args.into_config().unwrap();
        assert_eq!(default.grpc_advertise, None, "default: the bound address");
        let c = Cmd::parse_from([
            "whisk",
            "--grpc-listen",
            "0.0.0.0:7001",
            "--grpc-advertise",
            "http://whisk-controlplane.whisk.svc.cluster.local:7001",
        ])
        .args
        .into_config()
        .unwrap();
        assert_eq!(
            c.grpc_advertise.as_deref(),
            Some("http://whisk-controlplane.whisk.svc.cluster.local:7001")
        );
        let empty = Cmd::parse_from(["whisk", "--grpc-advertise", ""]);
        assert_eq!(empty.args.into_config().unwrap().grpc_advertise, None);
    }
}
