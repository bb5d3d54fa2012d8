//! Shared helpers for the integration tests: a fake execution backend, a control plane on free
//! ports in a temporary data directory, an authenticated HTTP client and condition waits.
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};
use whisk_controlplane::backend::{Backend, BackendEvent, InitError, StartError, Unit, UnitSpec};
use whisk_controlplane::{Config, ControlPlaneHandle};
use whisk_proto::controlplane::v1 as pb;
use whisk_proto::controlplane::v1::control_plane_client::ControlPlaneClient;

/// A backend whose units are bookkeeping only. Starts can be held at a gate; init fails with a
/// developer error when the code contains `SYNTAX_ERROR`.
pub struct FakeBackend {
    pub starts: AtomicUsize,
    pub inits: AtomicUsize,
    pub live: Mutex<HashSet<String>>,
    pub gate: Semaphore,
    gated: bool,
    events_tx: mpsc::UnboundedSender<BackendEvent>,
    events_rx: Mutex<Option<mpsc::UnboundedReceiver<BackendEvent>>>,
}

impl FakeBackend {
    pub fn new(gated: bool) -> Arc<Self> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Arc::new(Self {
            starts: AtomicUsize::new(0),
            inits: AtomicUsize::new(0),
            live: Mutex::new(HashSet::new()),
            gate: Semaphore::new(0),
            gated,
            events_tx,
            events_rx: Mutex::new(Some(events_rx)),
        })
    }
    /// Let `n` held starts proceed.
    pub fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }
    /// Simulate a unit dying on its own.
    pub fn crash(&self, id: &str) {
        self.live.lock().unwrap().remove(id);
        self.events_tx
            .send(BackendEvent::Exited {
                container_id: id.to_string(),
                reason: "crashed".into(),
            })
            .unwrap();
    }
    pub fn live_count(&self) -> usize {
        self.live.lock().unwrap().len()
    }
    pub fn starts(&self) -> usize {
        self.starts.load(Ordering::SeqCst)
    }
    pub fn inits(&self) -> usize {
        self.inits.load(Ordering::SeqCst)
    }
}

impl Backend for FakeBackend {
    fn start(&self, spec: UnitSpec) -> BoxFuture<'_, Result<Unit, StartError>> {
        Box::pin(async move {
            if self.gated {
                self.gate
                    .acquire()
                    .await
                    .map_err(|e| StartError(e.to_string()))?
                    .forget();
            }
            let n = self.starts.fetch_add(1, Ordering::SeqCst);
            self.live.lock().unwrap().insert(spec.container_id.clone());
            Ok(Unit {
                container_id: spec.container_id,
                address: format!("127.0.0.1:{}", 20000 + n),
            })
        })
    }
    fn init(
        &self,
        _address: String,
        _token: whisk_vocab::ContainerToken,
        payload: Value,
        _t: Duration,
    ) -> BoxFuture<'_, Result<(), InitError>> {
        Box::pin(async move {
            self.inits.fetch_add(1, Ordering::SeqCst);
            let code = payload["action"]["exec"]["code"]
                .as_str()
                .unwrap_or_default();
            if code.contains("SYNTAX_ERROR") {
                return Err(InitError::Developer {
                    message: "Initialization has failed due to: SyntaxError".into(),
                    logs: vec!["booting".into()],
                });
            }
            Ok(())
        })
    }
    fn stop(&self, container_id: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.live.lock().unwrap().remove(&container_id);
        })
    }
    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<BackendEvent>> {
        self.events_rx.lock().unwrap().take()
    }
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.live.lock().unwrap().clear();
        })
    }
}

/// A config for tests: free ports, no background GC, no stem cells unless asked.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::new(dir);
    c.prewarm = Vec::new();
    c.gc_interval = Duration::ZERO;
    c
}

pub async fn start_fake(config: Config, backend: Arc<FakeBackend>) -> ControlPlaneHandle {
    whisk_controlplane::start_with_backend(config, backend)
        .await
        .expect("control plane starts")
}

/// Wait for `cond` up to `timeout`, polling; panics with `what` on timeout.
pub async fn wait_for<F: FnMut() -> bool>(what: &str, timeout: Duration, mut cond: F) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// HTTP client for the management API as a given caller: a key of that namespace (registered on
/// first use), presented as Basic credentials.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    pub namespace: Option<String>,
    /// `Basic ...` of the caller's key, when there is a caller.
    pub authorization: Option<String>,
}

/// The test identity of a namespace: a uuid and key derived from its name, so every client of
/// one namespace (and every restart of a control plane on the same data dir) uses the same key.
pub fn test_identity(namespace: &str) -> (String, String) {
    use sha2::Digest;
    let seed: [u8; 32] = sha2::Sha256::digest(format!("uuid:{namespace}")).into();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&seed[..16]);
    let uuid = whisk_vocab::credentials::uuid_v4(bytes);
    let key = hex::encode(sha2::Sha256::digest(format!("key:{namespace}")));
    (uuid, key)
}

impl Api {
    pub fn new(handle: &ControlPlaneHandle, namespace: Option<&str>) -> Self {
        let authorization = namespace.map(|ns| {
            let (uuid, key) = test_identity(ns);
            let plane = handle.plane();
            if plane.store.get_identity(&uuid).unwrap().is_none() {
                let doc = whisk_controlplane::model::IdentityDoc {
                    uuid: uuid.clone(),
                    namespace: ns.to_string(),
                    subject: ns.to_string(),
                    key_sha256: whisk_controlplane::model::digest_key(&key),
                };
                plane.store.put_identity(&doc).unwrap();
                plane.identity_written(&doc);
            }
            whisk_testkit::creds::basic(&uuid, &key)
        });
        Self {
            base: handle.http_url(),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            namespace: namespace.map(str::to_string),
            authorization,
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        assert_eq!(
            resp.headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok()),
            Some("tid-123")
        );
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &'static str,
    ) -> (u16, Value) {
        self.raw_owned(method, path, body.to_string()).await
    }

    /// Like [`Api::raw`] with an owned body.
    pub async fn raw_owned(
        &self,
        method: reqwest::Method,
        path: &str,
        body: String,
    ) -> (u16, Value) {
        let req = self.request(method, path);
        let resp = req
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A request as a client sends it: a transaction id, and the caller's credentials when the
    /// client has a namespace.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .header("x-request-id", "tid-123");
        match &self.authorization {
            Some(auth) => req.header("authorization", auth),
            None => req,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

/// Assert an OpenWhisk error body.
pub fn assert_error(got: &(u16, Value), status: u16, message: &str) {
    assert_eq!(got.0, status, "body: {}", got.1);
    assert_eq!(
        got.1["error"],
        Value::String(message.to_string()),
        "body: {}",
        got.1
    );
    assert_eq!(got.1["code"], Value::String("tid-123".into()));
}

/// Adds `authorization: Bearer <router token>` to every call, as a router does (or nothing).
#[derive(Clone)]
pub struct RouterToken(Option<tonic::metadata::AsciiMetadataValue>);

impl RouterToken {
    /// The token in the file a control plane (or `whisk up`) wrote.
    pub fn from_file(path: &std::path::Path) -> Self {
        let token = std::fs::read_to_string(path).expect("the router token file");
        Self::new(token.trim())
    }
    pub fn new(token: &str) -> Self {
        Self(Some(
            format!("Bearer {token}").parse().expect("an ASCII token"),
        ))
    }
    /// No header at all.
    pub fn none() -> Self {
        Self(None)
    }
}

impl tonic::service::Interceptor for RouterToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        // A call that carries a credential of its own (a container's report) keeps it.
        if let Some(v) = &self.0
            && !req.metadata().contains_key("authorization")
        {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A gRPC client presenting the router token.
pub type Grpc = ControlPlaneClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, RouterToken>,
>;

/// A client of `url` presenting `token`.
pub async fn grpc_at(url: String, token: RouterToken) -> Grpc {
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("a URL")
        .connect()
        .await
        .expect("grpc connects");
    ControlPlaneClient::with_interceptor(channel, token)
}

/// A client of the control plane, presenting its router token (as a router does).
pub async fn grpc(handle: &ControlPlaneHandle) -> Grpc {
    grpc_at(
        handle.grpc_url(),
        RouterToken::from_file(handle.router_token_file()),
    )
    .await
}

/// Receive the next update of a subscription, with a deadline.
pub async fn next_update(stream: &mut tonic::Streaming<pb::TableUpdate>) -> pb::TableUpdate {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an update within 10 s")
        .expect("stream ok")
        .expect("stream open")
}

/// Receive updates until `pred` holds for one of them; returns it. Checks revision ordering.
pub async fn until_update<F: FnMut(&pb::TableUpdate) -> bool>(
    stream: &mut tonic::Streaming<pb::TableUpdate>,
    last_revision: &mut u64,
    mut pred: F,
) -> pb::TableUpdate {
    loop {
        let u = next_update(stream).await;
        if u.snapshot {
            *last_revision = u.revision;
        } else {
            assert_eq!(
                u.revision,
                *last_revision + 1,
                "deltas must be revision + 1"
            );
            *last_revision = u.revision;
        }
        if pred(&u) {
            return u;
        }
    }
}

pub fn nodejs_action(code: &str) -> Value {
    serde_json::json!({ "exec": { "kind": "nodejs:default", "code": code } })
}

/// `target/debug/whisk-container-proxy`, next to this test's `deps/` directory; built if missing.
pub fn proxy_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .to_path_buf();
    let bin = debug.join("whisk-container-proxy");
    if !bin.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "whisk-container-proxy"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building whisk-container-proxy failed");
    }
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

/// guest's published package `shared` with one action, `shared/count`, which any namespace may
/// invoke.
pub async fn publish_shared_count(guest: &Api) {
    guest
        .put(
            "/api/v1/namespaces/_/packages/shared",
            serde_json::json!({ "publish": true }),
        )
        .await;
    guest
        .put(
            "/api/v1/namespaces/_/actions/shared/count",
            nodejs_action("x"),
        )
        .await;
}

/// `whisk up --port 0` on `dir` with `extra` flags (and the repository's Envoy when there is
/// one); returns the running stack and its API host.
pub async fn whisk_up(
    dir: &std::path::Path,
    extra: &[&str],
) -> (whisk_stack::child::Child, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_whisk"));
    cmd.arg("up")
        .args(["--port", "0"])
        .arg("--data-dir")
        .arg(dir)
        .args(extra);
    let repo_envoy = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/envoy");
    match std::env::var("WHISK_ENVOY") {
        Ok(envoy) => {
            cmd.args(["--envoy", &envoy]);
        }
        Err(_) if std::path::Path::new(repo_envoy).exists() => {
            cmd.args(["--envoy", repo_envoy]);
        }
        Err(_) => {}
    }
    let up = whisk_stack::child::spawn_announcing(
        cmd,
        "WHISK_UP_READY",
        &dir.join("up.log"),
        Duration::from_secs(120),
    )
    .await
    .expect("whisk up starts");
    let apihost = up
        .address
        .split_whitespace()
        .find_map(|w| w.strip_prefix("apihost="))
        .expect("whisk up announces its API host")
        .to_owned();
    (up, apihost)
}

/// The guest key `whisk up` creates.
#[allow(dead_code)]
pub const GUEST: (&str, &str) = (
    whisk_controlplane::plane::GUEST_UUID,
    whisk_controlplane::plane::GUEST_KEY,
);

/// Pids of the live children of `parent` whose command name is `comm`.
pub fn children(parent: u32, comm: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces, so split at the last ')'.
            let Some((head, tail)) = stat.rsplit_once(')') else {
                return false;
            };
            let name = head.split_once('(').map(|(_, n)| n).unwrap_or_default();
            let mut fields = tail.split_whitespace();
            let state = fields.next().unwrap_or("Z");
            let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
            name == comm && ppid == Some(parent) && state != "Z"
        })
        .collect()
}

/// Waits until `whisk up` has a `comm` child other than `old` and the API answers an
/// authenticated call (through Envoy and the router's ext_authz); returns the new pid.
pub async fn healed(up: u32, comm: &str, old: u32, apihost: &str, http: &reqwest::Client) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "{comm} was not restarted");
        if let Some(&pid) = children(up, comm).iter().find(|&&p| p != old) {
            let ok = http
                .get(format!("{apihost}/api/v1/namespaces"))
                .basic_auth(GUEST.0, Some(GUEST.1))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return pid;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
