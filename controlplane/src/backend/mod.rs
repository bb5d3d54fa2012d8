//! Execution backends: where containers (units) run. Shaped for Kubernetes as well as local
//! processes: a unit is created asynchronously and its address is known only once it is up; a
//! unit that dies on its own is reported through an event stream; initialisation is one HTTP call
//! to the unit's container proxy (Contract 3), overridable for tests. Two implementations:
//! [`LocalBackend`] (child processes) and [`KubernetesBackend`] (pods).

pub mod kubernetes;
pub mod local;

use std::sync::OnceLock;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;
use whisk_vocab::ContainerToken;
use whisk_vocab::token::CONTAINER_TOKEN_HEADER;

pub use self::kubernetes::{KubeBackendConfig, KubernetesBackend};
pub use self::local::LocalBackend;

/// What to start.
#[derive(Debug, Clone)]
pub struct UnitSpec {
    pub container_id: String,
    pub kind: String,
    pub memory_mb: u32,
    /// `http://host:port` of the control plane's gRPC server, for the proxy's reports.
    pub controlplane_url: String,
    pub env: Vec<(String, String)>,
    /// A blackbox action's own image, run instead of the kind's runtime (backends that run
    /// images; see [`Backend::check_image`]).
    pub image: Option<String>,
    /// The container's secret: handed to its proxy only (environment `WHISK_CONTAINER_TOKEN`),
    /// never to the action's runtime.
    pub token: ContainerToken,
}

/// OpenWhisk's skeleton image: what `--native` actions carry. Their code (an executable `exec`,
/// or a script) is all there is to run, so the local backend can run them without the image.
pub const SKELETON_IMAGE: &str = "openwhisk/dockerskeleton";

/// Whether `image` is the skeleton (any tag).
pub fn is_skeleton(image: &str) -> bool {
    image == SKELETON_IMAGE
        || image
            .strip_prefix(SKELETON_IMAGE)
            .is_some_and(|tag| tag.starts_with(':'))
}

/// A started unit.
#[derive(Debug, Clone)]
pub struct Unit {
    pub container_id: String,
    /// `ip:port` of its container proxy.
    pub address: String,
}

/// A unit found running when the control plane starts, left by its previous run (a restart or
/// an upgrade), that the backend hands back instead of deleting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptedUnit {
    pub container_id: String,
    pub kind: String,
    pub memory_mb: u32,
    pub address: String,
    /// The action (fully qualified name, revision) it was initialised with; `None` = stem cell.
    pub action: Option<(String, u64)>,
    /// The namespace whose invokes it served, when the backend recorded it.
    pub invoking_namespace: Option<String>,
    /// The secret its proxy was started with, when the backend can read it back. A unit without
    /// one cannot be adopted (nobody could reach it).
    pub token: Option<ContainerToken>,
}

/// Something that happened to a unit without the control plane asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendEvent {
    Exited {
        container_id: String,
        reason: String,
    },
}

/// A unit could not be started.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// `POST /_whisk/init` failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InitError {
    /// The action's code did not initialise (developer error): OpenWhisk's text, and the lines
    /// the action printed while it initialised (the proxy's `logs`).
    #[error("{message}")]
    Developer { message: String, logs: Vec<String> },
    /// The proxy could not be reached or answered unexpectedly.
    #[error("{0}")]
    Failed(String),
}

/// An execution backend.
pub trait Backend: Send + Sync + 'static {
    /// Start a unit (a container proxy, as a stem cell: no action yet).
    fn start(&self, spec: UnitSpec) -> BoxFuture<'_, Result<Unit, StartError>>;

    /// Initialise a started unit with an action (`{"action":…, "env":…}`), presenting the
    /// unit's token.
    fn init(
        &self,
        address: String,
        token: ContainerToken,
        payload: Value,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), InitError>> {
        Box::pin(http_init(address, token, payload, timeout))
    }

    /// Units left by a previous run that can be taken back; whatever else of ours the backend
    /// finds it deletes. Called once, before any start. Default: nothing survives a restart.
    fn adopt(&self) -> BoxFuture<'_, Vec<AdoptedUnit>> {
        Box::pin(async { Vec::new() })
    }

    /// Whether a unit's memory limit is set when it starts and cannot change (a pod's), so a
    /// stem cell can only take actions that fit in it. Default: no (local processes).
    fn memory_fixed_at_start(&self) -> bool {
        false
    }

    /// Whether a blackbox action with this `image` (and code or not) can run here; the error is
    /// the 400's text at create and update. Default (processes on this machine, no container
    /// engine): only the skeleton image, with code to run.
    fn check_image(&self, image: &str, has_code: bool) -> Result<(), String> {
        if !is_skeleton(image) {
            return Err(format!(
                "The image '{image}' cannot be run: this stack's backend runs no container images. \
                 Use the Kubernetes backend, or a native action (image '{SKELETON_IMAGE}' with an \
                 executable 'exec' as its code)."
            ));
        }
        if !has_code {
            return Err(format!(
                "exec malformed: a '{SKELETON_IMAGE}' action needs code (an executable 'exec', or a \
                 zip holding one) on this stack's backend."
            ));
        }
        Ok(())
    }

    /// Stop a unit; no-op if unknown.
    fn stop(&self, container_id: String) -> BoxFuture<'_, ()>;

    /// The stream of unsolicited events; `Some` only on the first call.
    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<BackendEvent>>;

    /// Stop every unit and wait for them to be gone.
    fn shutdown(&self) -> BoxFuture<'_, ()>;

    /// Synchronous last resort (used on drop): kill everything now without waiting.
    fn kill_all_now(&self) {}
}

fn http_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default()
    })
}

/// Contract 3's `POST /_whisk/init`.
pub async fn http_init(
    address: String,
    token: ContainerToken,
    payload: Value,
    timeout: Duration,
) -> Result<(), InitError> {
    let url = format!("http://{address}/_whisk/init");
    let resp = http_client()
        .post(&url)
        .header(CONTAINER_TOKEN_HEADER, token.expose())
        .json(&payload)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| InitError::Failed(format!("init request to {address} failed: {e}")))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    let parsed = serde_json::from_str::<Value>(&body).ok();
    let text = parsed
        .as_ref()
        .and_then(|v| {
            v.get("error").map(|e| {
                e.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string())
            })
        })
        .unwrap_or(body);
    if status.as_u16() == 502 {
        let logs = parsed
            .as_ref()
            .and_then(|v| v.get("logs"))
            .and_then(Value::as_array)
            .map(|lines| {
                lines
                    .iter()
                    .filter_map(|l| l.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Err(InitError::Developer {
            message: text,
            logs,
        })
    } else {
        Err(InitError::Failed(format!("init answered {status}: {text}")))
    }
}
