//! Test bench for the router: real Envoy, the real router binary, an in-test control plane
//! (a tonic server the test drives) and in-test upstream containers on loopback.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::Stream;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tonic::{Request, Response, Status};
use whisk_proto::controlplane::v1::{self as pb, control_plane_server::ControlPlaneServer};

pub const GUEST_UUID: &str = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502";
pub const GUEST_KEY: &str = "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";
pub const OTHER_UUID: &str = "789c46b1-71f6-4ed5-8c54-816aa4f8c502";
pub const OTHER_KEY: &str = "abczO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

pub fn basic(uuid: &str, key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{uuid}:{key}"))
    )
}

pub fn guest_auth() -> String {
    basic(GUEST_UUID, GUEST_KEY)
}

/// Waits for `cond` with a deadline (never a bare sleep as synchronisation).
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------- control plane

#[derive(Default)]
struct Model {
    revision: u64,
    namespaces: HashMap<String, pb::Namespace>,
    identities: HashMap<String, pb::Identity>,
    actions: HashMap<String, pb::Action>,
    endpoints: HashMap<String, pb::Endpoint>,
}

impl Model {
    fn apply(&mut self, u: &pb::TableUpdate) {
        for n in &u.namespaces_upsert {
            self.namespaces.insert(n.name.clone(), n.clone());
        }
        for n in &u.namespaces_removed {
            self.namespaces.remove(n);
        }
        for i in &u.identities_upsert {
            self.identities.insert(i.uuid.clone(), i.clone());
        }
        for i in &u.identities_removed {
            self.identities.remove(i);
        }
        for a in &u.actions_upsert {
            self.actions.insert(a.fqn.clone(), a.clone());
        }
        for a in &u.actions_removed {
            self.actions.remove(a);
        }
        for e in &u.endpoints_upsert {
            self.endpoints.insert(e.container_id.clone(), e.clone());
        }
        for e in &u.endpoints_removed {
            self.endpoints.remove(e);
        }
    }

    fn snapshot(&self) -> pb::TableUpdate {
        pb::TableUpdate {
            revision: self.revision,
            snapshot: true,
            namespaces_upsert: self.namespaces.values().cloned().collect(),
            identities_upsert: self.identities.values().cloned().collect(),
            actions_upsert: self.actions.values().cloned().collect(),
            endpoints_upsert: self.endpoints.values().cloned().collect(),
            ..Default::default()
        }
    }
}

/// What `ColdStart` does for an action: after `delay`, answer with this endpoint (also pushed).
#[derive(Clone)]
pub struct ColdPlan {
    pub delay: Duration,
    pub endpoint: pb::Endpoint,
}

#[derive(Clone)]
pub struct FakeControlPlane {
    model: Arc<Mutex<Model>>,
    tx: broadcast::Sender<pb::TableUpdate>,
    pub cold_starts: Arc<AtomicU32>,
    pub subscribes: Arc<AtomicU32>,
    plans: Arc<Mutex<HashMap<String, ColdPlan>>>,
    pub traffic: Arc<Mutex<Vec<String>>>,
    pub unusable: Arc<Mutex<Vec<String>>>,
    /// Activation records reported (by the router, for what it ran itself).
    pub records: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl FakeControlPlane {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self {
            model: Default::default(),
            tx,
            cold_starts: Default::default(),
            subscribes: Default::default(),
            plans: Default::default(),
            traffic: Default::default(),
            unusable: Default::default(),
            records: Default::default(),
        }
    }

    /// Applies a delta and pushes it to every subscriber.
    pub fn push(&self, mut u: pb::TableUpdate) -> u64 {
        let mut m = self.model.lock().unwrap();
        m.revision += 1;
        u.revision = m.revision;
        u.snapshot = false;
        m.apply(&u);
        let _ = self.tx.send(u);
        m.revision
    }

    pub fn plan_cold_start(&self, fqn: &str, plan: ColdPlan) {
        self.plans.lock().unwrap().insert(fqn.to_owned(), plan);
    }

    /// Serves on a free port; returns the URL.
    pub async fn serve(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let svc = ControlPlaneServer::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        format!("http://{addr}")
    }
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<pb::TableUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl pb::control_plane_server::ControlPlane for FakeControlPlane {
    type SubscribeStream = UpdateStream;

    async fn subscribe(
        &self,
        _: Request<pb::SubscribeRequest>,
    ) -> Result<Response<UpdateStream>, Status> {
        self.subscribes.fetch_add(1, Ordering::SeqCst);
        let (snapshot, mut rx) = {
            let m = self.model.lock().unwrap();
            (m.snapshot(), self.tx.subscribe())
        };
        let (out_tx, out_rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            if out_tx.send(Ok(snapshot)).await.is_err() {
                return;
            }
            while let Ok(u) = rx.recv().await {
                if out_tx.send(Ok(u)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out_rx),
        )))
    }

    async fn cold_start(
        &self,
        request: Request<pb::ColdStartRequest>,
    ) -> Result<Response<pb::ColdStartResponse>, Status> {
        self.cold_starts.fetch_add(1, Ordering::SeqCst);
        let fqn = request.into_inner().action_fqn;
        let plan = self.plans.lock().unwrap().get(&fqn).cloned();
        let outcome = match plan {
            Some(plan) => {
                tokio::time::sleep(plan.delay).await;
                self.push(pb::TableUpdate {
                    endpoints_upsert: vec![plan.endpoint.clone()],
                    ..Default::default()
                });
                pb::cold_start_response::Outcome::Endpoint(plan.endpoint)
            }
            None => pb::cold_start_response::Outcome::Error(pb::ColdStartError {
                code: pb::cold_start_error::Code::CapacityExhausted as i32,
                message: "no plan".into(),
                retry_after_ms: 2000,
            }),
        };
        Ok(Response::new(pb::ColdStartResponse {
            outcome: Some(outcome),
        }))
    }

    async fn acknowledge(
        &self,
        _: Request<pb::AcknowledgeRequest>,
    ) -> Result<Response<pb::AcknowledgeResponse>, Status> {
        Ok(Response::new(Default::default()))
    }

    async fn report_traffic(
        &self,
        request: Request<pb::ReportTrafficRequest>,
    ) -> Result<Response<pb::ReportTrafficResponse>, Status> {
        self.traffic
            .lock()
            .unwrap()
            .push(request.into_inner().container_id);
        Ok(Response::new(Default::default()))
    }

    async fn report_activation(
        &self,
        request: Request<pb::ReportActivationRequest>,
    ) -> Result<Response<pb::ReportActivationResponse>, Status> {
        let json = request.into_inner().activation_json;
        if let Ok(v) = serde_json::from_str(&json) {
            self.records.lock().unwrap().push(v);
        }
        Ok(Response::new(Default::default()))
    }

    async fn report_unusable(
        &self,
        request: Request<pb::ReportUnusableRequest>,
    ) -> Result<Response<pb::ReportUnusableResponse>, Status> {
        self.unusable
            .lock()
            .unwrap()
            .push(request.into_inner().container_id);
        Ok(Response::new(Default::default()))
    }
}

// ---------------------------------------------------------------- tables

pub fn identity(uuid: &str, ns: &str, key: &str) -> pb::Identity {
    pb::Identity {
        uuid: uuid.into(),
        namespace: ns.into(),
        subject: ns.into(),
        key_sha256: Sha256::digest(key.as_bytes()).to_vec(),
    }
}

pub fn namespace(name: &str, per_minute: u32, concurrent: u32) -> pb::Namespace {
    pb::Namespace {
        name: name.into(),
        limits: Some(pb::NamespaceLimits {
            invocations_per_minute: Some(per_minute),
            concurrent_invocations: Some(concurrent),
            max_payload_bytes: Some(1024),
        }),
    }
}

pub fn action(fqn: &str, concurrency: u32) -> pb::Action {
    pb::Action {
        fqn: fqn.into(),
        revision: 1,
        version: "0.0.1".into(),
        kind: "nodejs:20".into(),
        limits: Some(pb::ActionLimits {
            timeout_ms: 60_000,
            memory_mb: 256,
            logs_mb: 10,
            concurrency,
        }),
        ..Default::default()
    }
}

pub fn endpoint(id: &str, fqn: &str, addr: SocketAddr, capacity: u32) -> pb::Endpoint {
    pb::Endpoint {
        container_id: id.into(),
        action_fqn: fqn.into(),
        action_revision: 1,
        address: addr.to_string(),
        capacity,
        state: pb::EndpointState::Ready as i32,
    }
}

// ---------------------------------------------------------------- upstream containers

/// A minimal HTTP/1.1 container stand-in that tells who it is and what it received.
/// Client headers steer it: `x-test-delay-ms` (answer late; or `delay_ms` in a JSON body), `x-test-reset` (drop the
/// connection without answering), `x-test-status` (answer with that status).
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    pub requests: Arc<AtomicU64>,
    pub active: Arc<AtomicU64>,
    /// The last request seen: `{"headers": {...}, "body": <JSON or null>}`.
    pub last: Arc<Mutex<serde_json::Value>>,
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        Self::start_with(name, None).await
    }

    /// A container that always answers `status` with `Retry-After: retry_after` (e.g. a busy one).
    pub async fn always(name: &str, status: u16, retry_after: &str) -> Upstream {
        Self::start_with(name, Some((status, retry_after.to_owned()))).await
    }

    /// A container that behaves like a container proxy answering a blocking invoke: the
    /// activation record of `f(parameters)` (an `error` field makes it an application error).
    pub async fn action(name: &str, f: fn(serde_json::Value) -> serde_json::Value) -> Upstream {
        Self::start_full(
            name,
            Behaviour {
                action: Some(f),
                ..Default::default()
            },
        )
        .await
    }

    /// A container whose answers say `Cache-Control: <value>` (status from `x-test-status`).
    pub async fn caching(name: &str, cache_control: &str) -> Upstream {
        Self::start_full(
            name,
            Behaviour {
                cache_control: Some(cache_control.to_owned()),
                ..Default::default()
            },
        )
        .await
    }

    async fn start_with(name: &str, forced: Option<(u16, String)>) -> Upstream {
        Self::start_full(
            name,
            Behaviour {
                forced,
                ..Default::default()
            },
        )
        .await
    }

    async fn start_full(name: &str, behaviour: Behaviour) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let active = Arc::new(AtomicU64::new(0));
        let last = Arc::new(Mutex::new(serde_json::Value::Null));
        let (n, r, a, l) = (
            name.to_owned(),
            requests.clone(),
            active.clone(),
            last.clone(),
        );
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (n, r, a, b, l) = (
                    n.clone(),
                    r.clone(),
                    a.clone(),
                    behaviour.clone(),
                    l.clone(),
                );
                tokio::spawn(async move {
                    let _ = serve_conn(sock, &n, &r, &a, b, &l).await;
                });
            }
        });
        Upstream {
            addr,
            name: name.to_owned(),
            requests,
            active,
            last,
        }
    }
}

/// How a test container answers.
#[derive(Clone, Default)]
struct Behaviour {
    /// Always this status, with this `Retry-After`.
    forced: Option<(u16, String)>,
    /// Behave like a container proxy running this function.
    action: Option<fn(serde_json::Value) -> serde_json::Value>,
    /// Send this `Cache-Control`.
    cache_control: Option<String>,
}

struct ActiveGuard(Arc<AtomicU64>);
impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve_conn(
    sock: tokio::net::TcpStream,
    name: &str,
    requests: &AtomicU64,
    active: &Arc<AtomicU64>,
    behaviour: Behaviour,
    last: &Mutex<serde_json::Value>,
) -> std::io::Result<()> {
    let Behaviour {
        forced,
        action,
        cache_control,
    } = behaviour;
    let mut reader = BufReader::new(sock);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let request_line = line.trim_end().to_owned();
        let mut headers = serde_json::Map::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().into());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.as_str())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).await?;
        *last.lock().unwrap() = serde_json::json!({
            "headers": headers.clone(),
            "body": serde_json::from_slice::<serde_json::Value>(&body).ok(),
        });
        requests.fetch_add(1, Ordering::SeqCst);
        active.fetch_add(1, Ordering::SeqCst);
        let _guard = ActiveGuard(active.clone());
        let get = |k: &str| headers.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        // The delay may also come in the body (`{"delay_ms": N}`): requests the router makes
        // itself carry the client's body but not its headers.
        let body_delay = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["delay_ms"].as_u64());
        if let Some(ms) = get("x-test-delay-ms")
            .and_then(|v| v.parse::<u64>().ok())
            .or(body_delay)
        {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if get("x-test-reset").is_some() {
            return Ok(());
        }
        let mut status: u16 = get("x-test-status")
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        let mut extra = String::new();
        if let Some((forced_status, retry_after)) = &forced {
            status = *forced_status;
            extra.push_str(&format!("retry-after: {retry_after}\r\n"));
        }
        // Like a container proxy: every answer names its activation.
        if let Some(id) = get("x-whisk-activation-id") {
            extra.push_str(&format!("x-openwhisk-activation-id: {id}\r\n"));
        }
        if let Some(cc) = &cache_control {
            extra.push_str(&format!("cache-control: {cc}\r\n"));
        }
        let pad = get("x-test-pad")
            .and_then(|v| v.parse::<usize>().ok())
            .map(|n| "x".repeat(n));
        let body = match action {
            Some(f) => {
                let input = serde_json::from_slice(&body).unwrap_or(serde_json::json!({}));
                let result = f(input);
                let failed = result.get("error").is_some();
                if failed {
                    status = 502;
                }
                serde_json::json!({
                    "activationId": headers.get("x-whisk-activation-id"),
                    "cause": headers.get("x-whisk-cause"),
                    "duration": 2,
                    "response": {
                        "status": if failed { "application error" } else { "success" },
                        "success": !failed,
                        "result": result,
                    },
                })
            }
            None => serde_json::json!({
                "upstream": name,
                "request": request_line,
                "headers": headers,
                "body": serde_json::from_slice::<serde_json::Value>(&body).ok(),
                "pad": pad,
            }),
        }
        .to_string();
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
            body.len()
        );
        reader.get_mut().write_all(resp.as_bytes()).await?;
    }
}

// ---------------------------------------------------------------- the stack under test

pub struct Bench {
    pub cp: FakeControlPlane,
    pub router: Option<whisk_stack::child::Child>,
    pub router_addr: SocketAddr,
    pub router_admin: SocketAddr,
    pub envoy: whisk_stack::envoy::Envoy,
    pub management: Upstream,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    cp_url: String,
    router_args: Vec<String>,
}

/// The gRPC and admin addresses a router announced.
pub fn addresses(router: &whisk_stack::child::Child) -> (SocketAddr, SocketAddr) {
    let mut parts = router.address.split_whitespace();
    let grpc = parts.next().unwrap().parse().unwrap();
    let admin = parts.next().unwrap().parse().unwrap();
    (grpc, admin)
}

pub async fn start_router(
    cp_url: &str,
    listen: &str,
    dir: &std::path::Path,
    uds: Option<&std::path::Path>,
    extra_args: &[String],
) -> whisk_stack::child::Child {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_whisk-router"));
    cmd.args(["--listen", listen, "--controlplane", cp_url])
        .args(extra_args)
        .env("RUST_LOG", "whisk_router=debug,info");
    if let Some(path) = uds {
        cmd.arg("--uds").arg(path);
    }
    whisk_stack::child::spawn_announcing(
        cmd,
        "WHISK_ROUTER_LISTENING",
        &dir.join("router.log"),
        Duration::from_secs(20),
    )
    .await
    .expect("router starts")
}

impl Bench {
    /// Gateway flavour: Envoy reaches the router over TCP.
    pub async fn start() -> Bench {
        Self::start_flavour(false, &[]).await
    }

    /// Gateway flavour, with these extra router arguments.
    pub async fn start_with_router_args(args: &[&str]) -> Bench {
        Self::start_flavour(false, args).await
    }

    /// Sidecar flavour: Envoy reaches the router over a Unix domain socket.
    pub async fn start_sidecar() -> Bench {
        Self::start_flavour(true, &[]).await
    }

    /// Guest and "other" namespaces (1000/min, 100 concurrent, 1 KiB payloads), no actions yet.
    async fn start_flavour(sidecar: bool, router_args: &[&str]) -> Bench {
        let router_args: Vec<String> = router_args.iter().map(|a| a.to_string()).collect();
        let cp = FakeControlPlane::new();
        cp.push(pb::TableUpdate {
            namespaces_upsert: vec![namespace("guest", 1000, 100), namespace("other", 1000, 100)],
            identities_upsert: vec![
                identity(GUEST_UUID, "guest", GUEST_KEY),
                identity(OTHER_UUID, "other", OTHER_KEY),
            ],
            ..Default::default()
        });
        let cp_url = cp.serve().await;
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("router.sock");
        let router = start_router(
            &cp_url,
            "127.0.0.1:0",
            dir.path(),
            sidecar.then_some(&*socket),
            &router_args,
        )
        .await;
        let (router_addr, router_admin) = addresses(&router);
        let link = if sidecar {
            whisk_stack::envoy::RouterLink::Unix(socket)
        } else {
            whisk_stack::envoy::RouterLink::Tcp(router_addr)
        };
        let management = Upstream::start("management").await;
        let envoy_bin = whisk_stack::envoy::find_envoy().expect("envoy installed (make envoy)");
        let envoy = whisk_stack::envoy::start(
            &envoy_bin,
            &whisk_stack::envoy::EnvoySpec {
                listen: "127.0.0.1:0".parse().unwrap(),
                router: link,
                controlplane_api: management.addr,
                access_log: dir.path().join("access.log"),
            },
            dir.path(),
            Duration::from_secs(30),
        )
        .await
        .expect("envoy starts");
        let bench = Bench {
            cp,
            router: Some(router),
            router_addr,
            router_admin,
            envoy,
            management,
            dir,
            http: reqwest::Client::new(),
            cp_url,
            router_args,
        };
        bench.wait_ready().await;
        bench
    }

    /// Waits until the router has its snapshot (an authenticated call stops being 503).
    pub async fn wait_ready(&self) {
        let url = self.url("/api/v1/namespaces/_/actions/__probe__");
        eventually("router ready", Duration::from_secs(20), || async {
            match self
                .http
                .post(&url)
                .header("authorization", guest_auth())
                .send()
                .await
            {
                Ok(r) => r.status() != 503 && r.status() != 500,
                Err(_) => false,
            }
        })
        .await;
    }

    /// Pushes a delta and waits until the router has applied it.
    pub async fn apply(&self, u: pb::TableUpdate) {
        let revision = self.cp.push(u);
        let url = format!("http://{}/tables", self.router_admin);
        eventually(
            "router applied the push",
            Duration::from_secs(5),
            || async {
                let Ok(r) = self.http.get(&url).send().await else {
                    return false;
                };
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                v["revision"].as_u64().is_some_and(|r| r >= revision)
            },
        )
        .await;
    }

    /// Pushes `guest/<name>` with one container `c<name>` at `upstream`, and waits for it.
    pub async fn one_action(&self, name: &str, upstream: &Upstream, capacity: u32) {
        let fqn = format!("guest/{name}");
        self.apply(pb::TableUpdate {
            actions_upsert: vec![action(&fqn, capacity)],
            endpoints_upsert: vec![endpoint(&format!("c{name}"), &fqn, upstream.addr, capacity)],
            ..Default::default()
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.envoy.url())
    }

    pub fn invoke_url(&self, name: &str) -> String {
        self.url(&format!(
            "/api/v1/namespaces/_/actions/{name}?blocking=true"
        ))
    }

    pub async fn invoke(&self, name: &str) -> reqwest::Response {
        self.http
            .post(self.invoke_url(name))
            .header("authorization", guest_auth())
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap()
    }

    /// The router's Prometheus text.
    pub async fn router_metrics(&self) -> String {
        self.http
            .get(format!("http://{}/metrics", self.router_admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn kill_router(&mut self) {
        if let Some(r) = self.router.take() {
            r.stop(Duration::from_secs(5)).await;
        }
    }

    pub async fn restart_router(&mut self) {
        let r = start_router(
            &self.cp_url,
            &self.router_addr.to_string(),
            self.dir.path(),
            None,
            &self.router_args,
        )
        .await;
        self.router_admin = addresses(&r).1;
        self.router = Some(r);
    }
}
