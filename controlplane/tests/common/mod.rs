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
                return Err(InitError::Developer(
                    "Initialization has failed due to: SyntaxError".into(),
                ));
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

/// HTTP client for the management API as a given caller (ext_authz headers).
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    pub namespace: Option<String>,
}

impl Api {
    pub fn new(handle: &ControlPlaneHandle, namespace: Option<&str>) -> Self {
        Self {
            base: handle.http_url(),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            namespace: namespace.map(str::to_string),
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

    /// A request as Envoy forwards it after ext_authz: a transaction id, and the caller's
    /// identity headers when the client has a namespace.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .header("x-request-id", "tid-123");
        match &self.namespace {
            Some(ns) => req
                .header("x-whisk-auth-namespace", ns)
                .header("x-whisk-auth-uuid", format!("uuid-{ns}"))
                .header("x-whisk-auth-subject", ns),
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

pub async fn grpc(handle: &ControlPlaneHandle) -> ControlPlaneClient<tonic::transport::Channel> {
    ControlPlaneClient::connect(handle.grpc_url())
        .await
        .expect("grpc connects")
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
