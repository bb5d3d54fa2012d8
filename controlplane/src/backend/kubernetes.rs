//! The Kubernetes backend: every container is a pod in one namespace, holding the unmodified
//! OpenWhisk runtime image and our container proxy as a sidecar that speaks to it over
//! `localhost:8080` (`--executor http`). It exists so the control plane can run actions on a
//! cluster operators already have, with the same [`Backend`] contract as local processes.
//!
//! - **start**: create a hardened pod (no service-account token, non-root, no privilege
//!   escalation, seccomp `RuntimeDefault`, all capabilities dropped, memory from the action),
//!   then wait, through one watch over the stack's pods, until it is Ready with an IP; the unit's
//!   address is `podIP:<proxy port>`. A pod that fails, cannot pull its image or stays pending
//!   past the start deadline is deleted and the start fails with a clear [`StartError`].
//! - **events**: the same watch turns a handed-out pod that fails, is evicted or is deleted
//!   behind our back into [`BackendEvent::Exited`]; after a re-list (410 Gone on a stale watch),
//!   units missing from the list are reported too.
//! - **stop** deletes the pod (with a grace period); **shutdown** deletes every pod of the stack
//!   and waits for them to be gone.
//! - **restart without loss**: `init` records the action (name, revision, memory) in the pod's
//!   annotations; a control plane that starts again lists the stack's pods and adopts the ready
//!   ones ([`Backend::adopt`]): stem cells stay stem cells, warm pods stay warm. Pods it cannot
//!   account for (not ready, not ours in shape) are deleted, so none is orphaned. The stack label
//!   must therefore be unique per control plane in a namespace.
//!
//! API errors (403 quota or admission, 409, 422, 5xx, unreachable server) become start errors
//! that say what happened; every API call has a deadline, so nothing hangs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, Pod,
    PodSecurityContext, PodSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use whisk_vocab::ContainerToken;
use whisk_vocab::token::CONTAINER_TOKEN_ENV;

use super::{AdoptedUnit, Backend, BackendEvent, InitError, StartError, Unit, UnitSpec};

/// Label every pod of a stack carries; its value is the stack name.
pub const STACK_LABEL: &str = "whisk.apache.org/stack";
/// Label with the container id (as the control plane knows it).
pub const CONTAINER_LABEL: &str = "whisk.apache.org/container-id";
/// Label with the runtime kind (`nodejs-20`: `:` is not allowed in label values).
pub const KIND_LABEL: &str = "whisk.apache.org/kind";
/// Annotation with the exact container id and kind.
pub const CONTAINER_ANNOTATION: &str = "whisk.apache.org/container-id";
pub const KIND_ANNOTATION: &str = "whisk.apache.org/kind";
/// Memory limit (MB) the pod was created with.
pub const MEMORY_ANNOTATION: &str = "whisk.apache.org/memory-mb";
/// The action a pod was initialised with (its fully qualified name) and its revision.
pub const ACTION_ANNOTATION: &str = "whisk.apache.org/action";
pub const REVISION_ANNOTATION: &str = "whisk.apache.org/action-revision";
/// The namespace whose invokes a pod serves (one caller namespace per container).
pub const INVOKER_ANNOTATION: &str = "whisk.apache.org/invoking-namespace";
/// Label with the action (`namespace.package.name`, sanitised), for operators' selectors.
pub const ACTION_LABEL: &str = "whisk.apache.org/action";
/// Label with the action revision the pod serves.
pub const REVISION_LABEL: &str = "whisk.apache.org/action-revision";
/// Set only by the test stand-in (all its pods share 127.0.0.1): `containerPort=hostPort,...`.
/// A real kubelet never sets it, and the proxy is at `podIP:<proxy port>`.
pub const PORT_MAP_ANNOTATION: &str = "standin.whisk.apache.org/port-map";
/// Name of the proxy's container port (the readiness probe refers to it).
const PROXY_PORT_NAME: &str = "proxy";
/// The OpenWhisk runtime protocol's port.
const RUNTIME_PORT: i32 = 8080;
/// Memory of the proxy sidecar, in MiB.
const PROXY_MEMORY_MIB: u32 = 64;
/// Container waiting reasons that will not resolve by waiting.
const FATAL_WAITING: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
];

/// How the backend talks to the cluster and what its pods look like.
#[derive(Debug, Clone)]
pub struct KubeBackendConfig {
    /// Namespace of the action pods.
    pub namespace: String,
    /// Value of [`STACK_LABEL`]: tells this control plane's pods from others' in the namespace.
    pub stack: String,
    /// Image of the container proxy sidecar.
    pub proxy_image: String,
    /// Port the proxy listens on in the pod.
    pub proxy_port: u16,
    /// Runtime images are `<prefix>/<name>:<tag>` (OpenWhisk's naming).
    pub runtime_image_prefix: String,
    pub runtime_image_tag: String,
    /// Explicit images per kind (`nodejs:20` → image), winning over the naming rule.
    pub runtime_images: HashMap<String, String>,
    /// `__OW_API_HOST` for actions.
    pub api_host: String,
    /// Create → Ready deadline; a pod pending longer is deleted.
    pub start_timeout: Duration,
    /// Grace period of a stopped pod.
    pub stop_grace: Duration,
    /// Deadline of one API call (create, delete, list).
    pub api_timeout: Duration,
    /// User id the containers run as (must not be 0).
    pub run_as_user: i64,
    /// Extra arguments for every proxy (the telemetry flags).
    pub proxy_args: Vec<String>,
}

impl KubeBackendConfig {
    pub fn new(namespace: impl Into<String>, proxy_image: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            stack: "whisk".into(),
            proxy_image: proxy_image.into(),
            proxy_port: 8085,
            runtime_image_prefix: "openwhisk".into(),
            runtime_image_tag: "nightly".into(),
            runtime_images: HashMap::new(),
            api_host: "http://127.0.0.1:3233".into(),
            start_timeout: Duration::from_secs(60),
            stop_grace: Duration::from_secs(5),
            api_timeout: Duration::from_secs(10),
            run_as_user: 1000,
            proxy_args: Vec::new(),
        }
    }

    /// The runtime image of a kind (OpenWhisk's runtime manifest naming), `None` if unknown.
    pub fn runtime_image(&self, kind: &str) -> Option<String> {
        if let Some(i) = self.runtime_images.get(kind) {
            return Some(i.clone());
        }
        let (family, version) = kind.split_once(':').unwrap_or((kind, ""));
        let name = match (family, version) {
            ("blackbox", _) => "dockerskeleton".to_string(),
            ("nodejs", v) if !v.is_empty() => format!("action-nodejs-v{v}"),
            ("python", "3") => "action-python-v3.11".to_string(),
            ("python", v) if !v.is_empty() => format!("action-python-v{v}"),
            ("go", v) if !v.is_empty() => format!("action-golang-v{v}"),
            ("java", "8") => "java8action".to_string(),
            ("php", v) if !v.is_empty() => format!("action-php-v{v}"),
            ("ruby", v) if !v.is_empty() => format!("action-ruby-v{v}"),
            ("swift", v) if !v.is_empty() => format!("action-swift-v{v}"),
            ("dotnet", v) if !v.is_empty() => format!("action-dotnet-v{v}"),
            ("rust", v) if !v.is_empty() => format!("action-rust-v{v}"),
            _ => return None,
        };
        Some(format!(
            "{}/{name}:{}",
            self.runtime_image_prefix, self.runtime_image_tag
        ))
    }

    /// The label selector of this stack's pods.
    pub fn selector(&self) -> String {
        format!("{STACK_LABEL}={}", label_value(&self.stack))
    }

    /// The pod name of a container: `<stack>-<container id>`, a DNS label.
    pub fn pod_name(&self, container_id: &str) -> String {
        let raw = format!("{}-{}", self.stack, container_id).to_ascii_lowercase();
        let mut name: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .take(63)
            .collect();
        while name.ends_with('-') {
            name.pop();
        }
        name
    }

    /// The pod of a unit.
    pub fn pod(&self, spec: &UnitSpec) -> Result<Pod, StartError> {
        let runtime_image = spec
            .image
            .clone()
            .or_else(|| self.runtime_image(&spec.kind));
        let runtime_image = runtime_image.ok_or_else(|| {
            StartError(format!(
                "no runtime image is known for kind '{}'",
                spec.kind
            ))
        })?;
        let labels: BTreeMap<String, String> = [
            ("app.kubernetes.io/name", "whisk-action".to_string()),
            ("app.kubernetes.io/component", "action".to_string()),
            (
                "app.kubernetes.io/managed-by",
                "whisk-controlplane".to_string(),
            ),
            (STACK_LABEL, label_value(&self.stack)),
            (CONTAINER_LABEL, label_value(&spec.container_id)),
            (KIND_LABEL, label_value(&spec.kind)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let annotations: BTreeMap<String, String> = [
            (CONTAINER_ANNOTATION, spec.container_id.clone()),
            (KIND_ANNOTATION, spec.kind.clone()),
            (MEMORY_ANNOTATION, spec.memory_mb.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let hardened = |read_only_root: bool| SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            run_as_non_root: Some(true),
            run_as_user: Some(self.run_as_user),
            read_only_root_filesystem: Some(read_only_root),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..Default::default()
        };
        let memory = |mib: u32| {
            let q: BTreeMap<String, Quantity> =
                [("memory".to_string(), Quantity(format!("{mib}Mi")))]
                    .into_iter()
                    .collect();
            ResourceRequirements {
                requests: Some(q.clone()),
                limits: Some(q),
                ..Default::default()
            }
        };
        let env = |extra: &[(String, String)]| {
            let mut v = vec![EnvVar {
                name: "__OW_API_HOST".into(),
                value: Some(self.api_host.clone()),
                value_from: None,
            }];
            v.extend(extra.iter().map(|(k, val)| EnvVar {
                name: k.clone(),
                value: Some(val.clone()),
                value_from: None,
            }));
            v
        };
        // The token goes to the proxy sidecar only, never to the runtime holding the action.
        let mut proxy_env = spec.env.clone();
        proxy_env.push((
            CONTAINER_TOKEN_ENV.to_string(),
            spec.token.expose().to_string(),
        ));
        let runtime = Container {
            name: "runtime".into(),
            image: Some(runtime_image),
            ports: Some(vec![ContainerPort {
                name: Some("action".into()),
                container_port: RUNTIME_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            env: Some(env(&[])),
            resources: Some(memory(spec.memory_mb.max(1))),
            // Runtime images write their action under their working directory.
            security_context: Some(hardened(false)),
            ..Default::default()
        };
        let mut args = vec![
            "--listen".to_string(),
            format!("0.0.0.0:{}", self.proxy_port),
            "--container-id".into(),
            spec.container_id.clone(),
            "--kind".into(),
            spec.kind.clone(),
            "--controlplane".into(),
            spec.controlplane_url.clone(),
            "--api-host".into(),
            self.api_host.clone(),
            "--executor".into(),
            "http".into(),
            "--runtime-url".into(),
            format!("http://127.0.0.1:{RUNTIME_PORT}"),
        ];
        args.extend(self.proxy_args.iter().cloned());
        let proxy = Container {
            name: "proxy".into(),
            image: Some(self.proxy_image.clone()),
            args: Some(args),
            ports: Some(vec![ContainerPort {
                name: Some(PROXY_PORT_NAME.into()),
                container_port: i32::from(self.proxy_port),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            env: Some(env(&proxy_env)),
            resources: Some(memory(PROXY_MEMORY_MIB)),
            readiness_probe: Some(Probe {
                http_get: Some(HTTPGetAction {
                    path: Some("/_whisk/health".into()),
                    port: IntOrString::String(PROXY_PORT_NAME.into()),
                    ..Default::default()
                }),
                period_seconds: Some(1),
                failure_threshold: Some(3),
                ..Default::default()
            }),
            security_context: Some(hardened(true)),
            volume_mounts: Some(vec![VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        Ok(Pod {
            metadata: ObjectMeta {
                name: Some(self.pod_name(&spec.container_id)),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                annotations: Some(annotations),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![runtime, proxy],
                // A dead container is a dead unit: the control plane starts another.
                restart_policy: Some("Never".into()),
                automount_service_account_token: Some(false),
                enable_service_links: Some(false),
                termination_grace_period_seconds: Some(
                    i64::try_from(self.stop_grace.as_secs()).unwrap_or(5),
                ),
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(self.run_as_user),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".into(),
                        localhost_profile: None,
                    }),
                    ..Default::default()
                }),
                volumes: Some(vec![Volume {
                    name: "tmp".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        })
    }
}

/// The token a pod's proxy sidecar was started with (read back to adopt the pod).
fn proxy_token(pod: &Pod) -> Option<ContainerToken> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "proxy")?
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == CONTAINER_TOKEN_ENV)?
        .value
        .as_deref()
        .and_then(ContainerToken::from_wire)
}

/// A label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn label_value(s: &str) -> String {
    let mut v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    while v.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        v.pop();
    }
    while v.starts_with(|c: char| !c.is_ascii_alphanumeric()) {
        v.remove(0);
    }
    v
}

/// Where a pod is on its way to serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Pending(String),
    Ready(String),
    Failed(String),
}

/// Read a pod's state: ready (with the proxy's address), failed (why), or still pending.
pub fn assess(pod: &Pod, proxy_port: u16) -> Progress {
    if pod.metadata.deletion_timestamp.is_some() {
        return Progress::Failed("the pod is being deleted".into());
    }
    let Some(status) = pod.status.as_ref() else {
        return Progress::Pending("no status yet".into());
    };
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let statuses = status.container_statuses.iter().flatten();
    if matches!(phase, "Failed" | "Succeeded") {
        let why: Vec<String> = statuses
            .filter_map(|c| {
                let t = c.state.as_ref()?.terminated.as_ref()?;
                Some(format!(
                    "container {} terminated ({}, exit code {})",
                    c.name,
                    t.reason.as_deref().unwrap_or("unknown reason"),
                    t.exit_code
                ))
            })
            .collect();
        let mut text = format!("the pod {}", phase.to_ascii_lowercase());
        if let Some(r) = status.reason.as_deref() {
            text.push_str(&format!(" ({r})"));
        }
        if let Some(m) = status.message.as_deref() {
            text.push_str(&format!(": {m}"));
        }
        if !why.is_empty() {
            text.push_str(&format!(": {}", why.join("; ")));
        }
        return Progress::Failed(text);
    }
    for c in status.container_statuses.iter().flatten() {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(reason) = w.reason.as_deref()
            && FATAL_WAITING.contains(&reason)
        {
            return Progress::Failed(format!(
                "container {} cannot start: {reason}{}",
                c.name,
                w.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
    }
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    match (ready, status.pod_ip.as_deref()) {
        (true, Some(ip)) if !ip.is_empty() => Progress::Ready(address(pod, ip, proxy_port)),
        _ => Progress::Pending(format!("phase {phase}, not ready")),
    }
}

/// `podIP:<proxy port>`, unless the stand-in published a port mapping.
fn address(pod: &Pod, ip: &str, proxy_port: u16) -> String {
    let port = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PORT_MAP_ANNOTATION))
        .and_then(|map| {
            map.split(',').find_map(|pair| {
                let (c, h) = pair.split_once('=')?;
                (c.trim().parse::<u16>().ok()? == proxy_port)
                    .then(|| h.trim().parse::<u16>().ok())
                    .flatten()
            })
        })
        .unwrap_or(proxy_port);
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Turn a failed API call into the text of a start error.
pub fn api_error_text(what: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let msg = &s.message;
            match s.code {
                401 => format!(
                    "cannot {what}: the Kubernetes API server refused our credentials (401 Unauthorized): {msg}"
                ),
                403 => format!(
                    "cannot {what}: the Kubernetes API server forbade it (403 Forbidden: quota exceeded or not allowed): {msg}"
                ),
                404 => format!("cannot {what}: not found (404): {msg}"),
                409 => format!(
                    "cannot {what}: a pod of that name already exists (409 {}): {msg}",
                    s.reason
                ),
                410 => format!("cannot {what}: the resource version is too old (410 Gone): {msg}"),
                422 => format!(
                    "cannot {what}: the pod spec was rejected as invalid (422 Invalid): {msg}"
                ),
                429 => format!(
                    "cannot {what}: the Kubernetes API server is throttling us (429): {msg}"
                ),
                c @ 500..=599 => format!(
                    "cannot {what}: the Kubernetes API server is unavailable ({c} {}): {msg}",
                    s.reason
                ),
                c => format!(
                    "cannot {what}: the Kubernetes API server answered {c} {}: {msg}",
                    s.reason
                ),
            }
        }
        other => format!("cannot {what}: the Kubernetes API server cannot be reached: {other}"),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A start waiting for its pod.
struct Waiter {
    container_id: String,
    progress: watch::Sender<Option<Progress>>,
}

/// What the watch task and the backend share.
struct Tracked {
    /// Pod name → a start waiting for that pod.
    waiters: Mutex<HashMap<String, Waiter>>,
    /// Pod name → container id of the units handed out (their death is reported).
    units: Mutex<HashMap<String, String>>,
    /// Unit address → pod name (`init` only knows the address).
    addresses: Mutex<HashMap<String, String>>,
    events_tx: mpsc::UnboundedSender<BackendEvent>,
    proxy_port: u16,
    /// To delete the pods of lost units (a Failed pod stays until deleted).
    api: Api<Pod>,
    /// Set by `shutdown`: no new starts, and the pods going away are not news.
    closing: AtomicBool,
}

impl Tracked {
    fn on_apply(&self, pod: &Pod) {
        let Some(name) = pod.metadata.name.clone() else {
            return;
        };
        let progress = assess(pod, self.proxy_port);
        {
            let waiters = lock(&self.waiters);
            if let Some(w) = waiters.get(&name) {
                // Handed out the moment the watch sees it ready, so a death right after is
                // not missed.
                if let Progress::Ready(address) = &progress {
                    lock(&self.units).insert(name.clone(), w.container_id.clone());
                    lock(&self.addresses).insert(address.clone(), name.clone());
                }
                w.progress.send_replace(Some(progress.clone()));
            }
        }
        // Reported only if it was handed out (or is about to be: ready, then failed at once).
        if let Progress::Failed(reason) = progress {
            self.lost(&name, reason);
        }
    }

    fn on_delete(&self, name: &str) {
        if let Some(w) = lock(&self.waiters).get(name) {
            w.progress
                .send_replace(Some(Progress::Failed("the pod was deleted".into())));
        }
        self.lost(name, "the pod was deleted".into());
    }

    fn delete_in_background(&self, pod: String) {
        let api = self.api.clone();
        tokio::spawn(async move {
            let dp = DeleteParams::default().grace_period(0);
            let _ = tokio::time::timeout(Duration::from_secs(10), api.delete(&pod, &dp)).await;
        });
    }

    fn lost(&self, name: &str, reason: String) {
        lock(&self.addresses).retain(|_, n| n != name);
        let id = lock(&self.units).remove(name);
        if self.closing.load(Ordering::SeqCst) {
            return;
        }
        if let Some(container_id) = id {
            tracing::warn!(pod = name, %container_id, %reason, "action pod lost");
            self.delete_in_background(name.to_string());
            let _ = self.events_tx.send(BackendEvent::Exited {
                container_id,
                reason: format!("pod {name}: {reason}"),
            });
        }
    }
}

/// Pods in a Kubernetes namespace.
pub struct KubernetesBackend {
    api: Api<Pod>,
    cfg: KubeBackendConfig,
    tracked: Arc<Tracked>,
    watch_task: JoinHandle<()>,
    events_rx: Mutex<Option<mpsc::UnboundedReceiver<BackendEvent>>>,
}

impl KubernetesBackend {
    /// A backend using `client`; starts watching the stack's pods at once. Needs a Tokio runtime.
    pub fn new(client: kube::Client, cfg: KubeBackendConfig) -> Self {
        let api: Api<Pod> = Api::namespaced(client, &cfg.namespace);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let tracked = Arc::new(Tracked {
            waiters: Mutex::new(HashMap::new()),
            units: Mutex::new(HashMap::new()),
            addresses: Mutex::new(HashMap::new()),
            events_tx,
            proxy_port: cfg.proxy_port,
            api: api.clone(),
            closing: AtomicBool::new(false),
        });
        let watch_task = tokio::spawn(watch_pods(api.clone(), cfg.selector(), tracked.clone()));
        Self {
            api,
            cfg,
            tracked,
            watch_task,
            events_rx: Mutex::new(Some(events_rx)),
        }
    }

    /// A backend for the cluster `kube::Config::infer` finds (kubeconfig, else in-cluster).
    pub async fn infer(cfg: KubeBackendConfig) -> Result<Self, KubeSetupError> {
        let mut config = kube::Config::infer()
            .await
            .map_err(|e| KubeSetupError(format!("no Kubernetes configuration: {e}")))?;
        // A 503 or 429 fails the cold start at once with a clear error (its caller retries);
        // kube's own retries (up to 15, growing to minutes) would outlast the start deadline.
        config.default_retry = false;
        let client = kube::Client::try_from(config)
            .map_err(|e| KubeSetupError(format!("cannot build a Kubernetes client: {e}")))?;
        Ok(Self::new(client, cfg))
    }

    pub fn config(&self) -> &KubeBackendConfig {
        &self.cfg
    }

    async fn start_unit(&self, spec: UnitSpec) -> Result<Unit, StartError> {
        if self.tracked.closing.load(Ordering::SeqCst) {
            return Err(StartError("the Kubernetes backend is shutting down".into()));
        }
        let pod = self.cfg.pod(&spec)?;
        let name = self.cfg.pod_name(&spec.container_id);
        let deadline = Instant::now() + self.cfg.start_timeout;
        let (tx, mut rx) = watch::channel(None);
        lock(&self.tracked.waiters).insert(
            name.clone(),
            Waiter {
                container_id: spec.container_id.clone(),
                progress: tx,
            },
        );
        let created = tokio::time::timeout(
            self.cfg.api_timeout.min(self.cfg.start_timeout),
            self.api.create(&PostParams::default(), &pod),
        )
        .await;
        match created {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                // A pod of that name that is not ours (409) must not count as this unit.
                self.forget(&name);
                return Err(StartError(api_error_text(
                    &format!("create pod {name}"),
                    &e,
                )));
            }
            Err(_) => {
                self.forget(&name);
                // It may have been created after all.
                self.delete_now(&name).await;
                return Err(StartError(format!(
                    "cannot create pod {name}: the Kubernetes API server did not answer within {:?}",
                    self.cfg.api_timeout
                )));
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let outcome = tokio::time::timeout(remaining, async {
            rx.wait_for(|p| matches!(p, Some(Progress::Ready(_) | Progress::Failed(_))))
                .await
                .map(|_| ())
        })
        .await;
        let last = rx.borrow().clone();
        lock(&self.tracked.waiters).remove(&name);
        let result = match outcome {
            Ok(Ok(_)) => match last {
                Some(Progress::Ready(address)) => {
                    return Ok(Unit {
                        container_id: spec.container_id,
                        address,
                    });
                }
                Some(Progress::Failed(why)) => format!("pod {name} failed to start: {why}"),
                _ => format!("pod {name}: no progress"),
            },
            Ok(Err(_)) => format!("pod {name}: the watch ended"),
            Err(_) => format!(
                "pod {name} was not ready within {:?} ({}); deleted",
                self.cfg.start_timeout,
                match last {
                    Some(Progress::Pending(p)) => p,
                    _ => "never seen by the watch".into(),
                }
            ),
        };
        self.forget(&name);
        self.delete_now(&name).await;
        Err(StartError(result))
    }

    /// Stop tracking a pod (waiter, unit, address) without deleting it.
    fn forget(&self, name: &str) {
        lock(&self.tracked.waiters).remove(name);
        lock(&self.tracked.units).remove(name);
        lock(&self.tracked.addresses).retain(|_, n| n != name);
    }

    /// Delete with grace 0, ignoring "not found"; logs other failures.
    async fn delete_now(&self, name: &str) {
        self.delete(name, 0).await;
    }

    async fn delete(&self, name: &str, grace: u32) {
        let dp = DeleteParams::default().grace_period(grace);
        match tokio::time::timeout(self.cfg.api_timeout, self.api.delete(name, &dp)).await {
            Ok(Ok(_)) => {}
            Ok(Err(kube::Error::Api(s))) if s.code == 404 => {}
            Ok(Err(e)) => {
                tracing::warn!(pod = name, error = %api_error_text("delete pod", &e), "pod not deleted");
            }
            Err(_) => tracing::warn!(pod = name, "pod delete timed out"),
        }
    }

    async fn stop_unit(&self, container_id: String) {
        let name = self.cfg.pod_name(&container_id);
        self.forget(&name);
        let grace = u32::try_from(self.cfg.stop_grace.as_secs()).unwrap_or(5);
        self.delete(&name, grace).await;
    }

    /// `POST /_whisk/init` to the proxy, then record the action in the pod's annotations (and
    /// label) so a restarted control plane can adopt the pod as a warm container.
    async fn init_unit(
        &self,
        address: String,
        token: ContainerToken,
        payload: Value,
        timeout: Duration,
    ) -> Result<(), InitError> {
        super::http_init(address.clone(), token, payload.clone(), timeout).await?;
        let name = lock(&self.tracked.addresses).get(&address).cloned();
        let action = &payload["action"];
        let (Some(name), Some(fqn), Some(revision)) =
            (name, action["fqn"].as_str(), action["revision"].as_u64())
        else {
            return Ok(());
        };
        let mut annotations = serde_json::Map::new();
        annotations.insert(ACTION_ANNOTATION.into(), fqn.into());
        annotations.insert(REVISION_ANNOTATION.into(), revision.to_string().into());
        if let Some(ns) = payload["invoking_namespace"].as_str() {
            annotations.insert(INVOKER_ANNOTATION.into(), ns.into());
        }
        let patch = json!({
            "metadata": {
                "annotations": annotations,
                "labels": {
                    ACTION_LABEL: label_value(&fqn.replace('/', ".")),
                    REVISION_LABEL: revision.to_string(),
                },
            }
        });
        let patched = tokio::time::timeout(
            self.cfg.api_timeout,
            self.api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await;
        match patched {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(pod = %name, error = %api_error_text("annotate pod", &e), "the pod will not be adoptable")
            }
            Err(_) => {
                tracing::warn!(pod = %name, "annotating the pod timed out; it will not be adoptable")
            }
        }
        Ok(())
    }

    /// List the stack's pods: ready ones become [`AdoptedUnit`]s (and are watched as units),
    /// the others are deleted.
    async fn adopt_units(&self) -> Vec<AdoptedUnit> {
        let pods = match self.list_pods().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the stack's pods to adopt them");
                return Vec::new();
            }
        };
        let mut adopted = Vec::new();
        for pod in pods {
            let Some(name) = pod.metadata.name.clone() else {
                continue;
            };
            let ann = pod.metadata.annotations.clone().unwrap_or_default();
            let unit = match (
                assess(&pod, self.cfg.proxy_port),
                ann.get(CONTAINER_ANNOTATION),
                ann.get(KIND_ANNOTATION),
            ) {
                (Progress::Ready(address), Some(id), Some(kind))
                    if self.cfg.pod_name(id) == name =>
                {
                    let action = match (ann.get(ACTION_ANNOTATION), ann.get(REVISION_ANNOTATION)) {
                        (Some(f), Some(r)) => r.parse::<u64>().ok().map(|r| (f.clone(), r)),
                        _ => None,
                    };
                    Some(AdoptedUnit {
                        container_id: id.clone(),
                        kind: kind.clone(),
                        memory_mb: ann
                            .get(MEMORY_ANNOTATION)
                            .and_then(|m| m.parse().ok())
                            .unwrap_or(256),
                        address,
                        action,
                        invoking_namespace: ann.get(INVOKER_ANNOTATION).cloned(),
                        token: proxy_token(&pod),
                    })
                }
                _ => None,
            };
            match unit {
                Some(u) => {
                    lock(&self.tracked.units).insert(name.clone(), u.container_id.clone());
                    lock(&self.tracked.addresses).insert(u.address.clone(), name);
                    adopted.push(u);
                }
                None => {
                    tracing::info!(pod = %name, "deleting an action pod that cannot be adopted");
                    self.delete_now(&name).await;
                }
            }
        }
        adopted
    }

    /// Names of the stack's pods now.
    pub async fn list_pods(&self) -> Result<Vec<Pod>, String> {
        let lp = ListParams::default().labels(&self.cfg.selector());
        match tokio::time::timeout(self.cfg.api_timeout, self.api.list(&lp)).await {
            Ok(Ok(list)) => Ok(list.items),
            Ok(Err(e)) => Err(api_error_text("list pods", &e)),
            Err(_) => Err("cannot list pods: timed out".into()),
        }
    }

    async fn stop_all(&self) {
        self.tracked.closing.store(true, Ordering::SeqCst);
        lock(&self.tracked.units).clear();
        let grace = u32::try_from(self.cfg.stop_grace.as_secs()).unwrap_or(5);
        let deadline = Instant::now() + self.cfg.stop_grace + self.cfg.api_timeout;
        let mut deleted: HashSet<String> = HashSet::new();
        loop {
            let pods = match self.list_pods().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the stack's pods at shutdown");
                    break;
                }
            };
            if pods.is_empty() {
                break;
            }
            let fresh: Vec<String> = pods
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .filter(|n| !deleted.contains(n))
                .collect();
            futures::future::join_all(fresh.iter().map(|n| self.delete(n, grace))).await;
            deleted.extend(fresh);
            if Instant::now() >= deadline {
                tracing::warn!(
                    left = pods.len(),
                    "action pods still terminating at shutdown"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.watch_task.abort();
    }
}

impl Drop for KubernetesBackend {
    fn drop(&mut self) {
        self.watch_task.abort();
    }
}

/// The backend could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KubeSetupError(pub String);

/// One watch over the stack's pods for the backend's lifetime (re-listing after 410 Gone, with
/// back-off on errors).
async fn watch_pods(api: Api<Pod>, selector: String, tracked: Arc<Tracked>) {
    let config = watcher::Config::default().labels(&selector);
    let mut stream = std::pin::pin!(watcher(api, config).default_backoff());
    let mut listed: HashSet<String> = HashSet::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(pod)) => {
                if let Some(n) = pod.metadata.name.clone() {
                    listed.insert(n);
                }
                tracked.on_apply(&pod);
            }
            Ok(watcher::Event::InitDone) => {
                // Units whose pods vanished while the watch was down.
                let gone: Vec<String> = lock(&tracked.units)
                    .keys()
                    .filter(|n| !listed.contains(*n))
                    .cloned()
                    .collect();
                for n in gone {
                    tracked.on_delete(&n);
                }
            }
            Ok(watcher::Event::Apply(pod)) => tracked.on_apply(&pod),
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(n) = pod.metadata.name.as_deref() {
                    tracked.on_delete(n);
                }
            }
            Err(e) => tracing::warn!(error = %e, "watch of action pods failed; retrying"),
        }
    }
}

impl Backend for KubernetesBackend {
    /// Any image: the pod runs it as the runtime container (it must speak OpenWhisk's `/init` +
    /// `/run`, as every blackbox image does), beside the proxy sidecar.
    fn check_image(&self, image: &str, _has_code: bool) -> Result<(), String> {
        if image.chars().any(char::is_whitespace) {
            return Err(format!(
                "The image '{image}' is not a valid image reference."
            ));
        }
        Ok(())
    }

    fn start(&self, spec: UnitSpec) -> BoxFuture<'_, Result<Unit, StartError>> {
        Box::pin(self.start_unit(spec))
    }

    fn init(
        &self,
        address: String,
        token: ContainerToken,
        payload: Value,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), InitError>> {
        Box::pin(self.init_unit(address, token, payload, timeout))
    }

    fn adopt(&self) -> BoxFuture<'_, Vec<AdoptedUnit>> {
        Box::pin(self.adopt_units())
    }

    fn memory_fixed_at_start(&self) -> bool {
        true
    }

    fn stop(&self, container_id: String) -> BoxFuture<'_, ()> {
        Box::pin(self.stop_unit(container_id))
    }

    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<BackendEvent>> {
        lock(&self.events_rx).take()
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.stop_all())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> UnitSpec {
        UnitSpec {
            container_id: "wsk-0123abcd".into(),
            kind: "nodejs:20".into(),
            memory_mb: 256,
            controlplane_url: "http://10.0.0.1:9000".into(),
            env: vec![("A".into(), "b".into())],
            image: None,
            token: ContainerToken::generate(),
        }
    }

    #[test]
    fn the_pod_is_hardened_and_labelled() {
        let cfg = KubeBackendConfig::new("actions", "whisk/proxy:1");
        let pod = cfg.pod(&spec()).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("whisk-wsk-0123abcd"));
        let labels = pod.metadata.labels.clone().unwrap();
        assert_eq!(labels[STACK_LABEL], "whisk");
        assert_eq!(labels[CONTAINER_LABEL], "wsk-0123abcd");
        assert_eq!(labels[KIND_LABEL], "nodejs-20");
        let ps = pod.spec.unwrap();
        assert_eq!(ps.automount_service_account_token, Some(false));
        let psc = ps.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(ps.containers.len(), 2);
        for c in &ps.containers {
            let sc = c.security_context.clone().unwrap();
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            assert_eq!(sc.capabilities.unwrap().drop.unwrap(), vec!["ALL"]);
            assert_ne!(sc.run_as_user, Some(0));
        }
        assert_eq!(
            ps.containers[0].image.as_deref(),
            Some("openwhisk/action-nodejs-v20:nightly")
        );
        let mem = &ps.containers[0].resources.clone().unwrap().limits.unwrap()["memory"];
        assert_eq!(mem.0, "256Mi");
        // The token is in the proxy sidecar's environment only, never the runtime's.
        let has_token = |c: &Container| {
            c.env
                .iter()
                .flatten()
                .any(|e| e.name == CONTAINER_TOKEN_ENV && e.value.is_some())
        };
        assert!(!has_token(&ps.containers[0]));
        assert!(has_token(&ps.containers[1]));
        let pod = cfg.pod(&spec()).unwrap();
        assert!(proxy_token(&pod).is_some());
    }

    #[test]
    fn a_blackbox_image_is_the_runtime_container() {
        let cfg = KubeBackendConfig::new("actions", "whisk/proxy:1");
        let mut s = spec();
        s.kind = "blackbox".into();
        s.image = Some("registry.example/team/action:7".into());
        let ps = cfg.pod(&s).unwrap().spec.unwrap();
        assert_eq!(
            ps.containers[0].image.as_deref(),
            Some("registry.example/team/action:7")
        );
        assert_eq!(ps.containers[1].image.as_deref(), Some("whisk/proxy:1"));
    }

    #[test]
    fn unknown_kinds_have_no_image() {
        let cfg = KubeBackendConfig::new("actions", "p");
        let mut s = spec();
        s.kind = "cobol:1".into();
        assert!(cfg.pod(&s).is_err());
        assert_eq!(
            cfg.runtime_image("blackbox").as_deref(),
            Some("openwhisk/dockerskeleton:nightly")
        );
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("nodejs:20"), "nodejs-20");
        assert_eq!(label_value("-a b-"), "a-b");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
    }
}
