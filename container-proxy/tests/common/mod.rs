//! Test harness: the real proxy binary as a child process (killed on drop, even on panic), an
//! in-test gRPC control plane receiving reports, and helpers to init and invoke.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tonic::{Request, Response, Status};
use whisk_proto::controlplane::v1::control_plane_server::{ControlPlane, ControlPlaneServer};
use whisk_proto::controlplane::v1::*;

pub const WAIT: Duration = Duration::from_secs(30);

/// The container token every test proxy is started with (its client presents it).
pub const TOKEN: &str = "7e57000000000000000000000000000000000000000000000000000000000001";

// ---------------------------------------------------------------------------------------------
// Control plane stub

#[derive(Default)]
struct Received {
    activations: Vec<(String, Value)>,
    unusable: Vec<(String, String)>,
}

#[derive(Clone)]
struct Svc {
    received: Arc<Mutex<Received>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Svc {
    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

type UpdateStream =
    Pin<Box<dyn futures::Stream<Item = Result<TableUpdate, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ControlPlane for Svc {
    type SubscribeStream = UpdateStream;

    async fn subscribe(
        &self,
        _: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(Status::unimplemented("stub"))
    }
    async fn cold_start(
        &self,
        _: Request<ColdStartRequest>,
    ) -> Result<Response<ColdStartResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
    async fn acknowledge(
        &self,
        _: Request<whisk_proto::controlplane::v1::AcknowledgeRequest>,
    ) -> Result<Response<whisk_proto::controlplane::v1::AcknowledgeResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
    async fn report_traffic(
        &self,
        _: Request<ReportTrafficRequest>,
    ) -> Result<Response<ReportTrafficResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
    async fn report_activation(
        &self,
        req: Request<ReportActivationRequest>,
    ) -> Result<Response<ReportActivationResponse>, Status> {
        let req = req.into_inner();
        let record: Value = serde_json::from_str(&req.activation_json)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.received
            .lock()
            .unwrap()
            .activations
            .push((req.container_id, record));
        self.bump();
        Ok(Response::new(ReportActivationResponse {}))
    }
    async fn report_unusable(
        &self,
        req: Request<ReportUnusableRequest>,
    ) -> Result<Response<ReportUnusableResponse>, Status> {
        let req = req.into_inner();
        self.received
            .lock()
            .unwrap()
            .unusable
            .push((req.container_id, req.reason));
        self.bump();
        Ok(Response::new(ReportUnusableResponse {}))
    }

    /// Routers' business; proxies never call it.
    async fn report_usage(&self, _: Request<UsageReport>) -> Result<Response<UsageShares>, Status> {
        Err(Status::unimplemented("not a router"))
    }
}

/// A gRPC control plane on port 0 that records what proxies report.
pub struct ControlPlaneStub {
    pub addr: SocketAddr,
    svc: Svc,
    _stop: oneshot::Sender<()>,
}

impl ControlPlaneStub {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        Self::serve(listener).await
    }

    async fn serve(listener: tokio::net::TcpListener) -> Self {
        let addr = listener.local_addr().unwrap();
        let svc = Svc {
            received: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(ControlPlaneServer::new(svc.clone()))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            );
        tokio::spawn(server);
        ControlPlaneStub {
            addr,
            svc,
            _stop: stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn wait_for<T>(&self, what: &str, mut check: impl FnMut(&Received) -> Option<T>) -> T {
        let mut rx = self.svc.changed.subscribe();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(found) = check(&self.svc.received.lock().unwrap()) {
                return found;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// Waits for the record of `activation_id`; returns (container id, record).
    pub async fn record(&self, activation_id: &str) -> (String, Value) {
        self.wait_for(&format!("record {activation_id}"), |r| {
            r.activations
                .iter()
                .find(|(_, rec)| rec["activationId"] == activation_id)
                .cloned()
        })
        .await
    }

    /// Waits until every id of `activation_ids` has a record; returns how many records each has.
    pub async fn records_of_all(&self, activation_ids: &[String]) -> Vec<usize> {
        self.wait_for("records of every activation", |r| {
            let counts: Vec<usize> = activation_ids
                .iter()
                .map(|id| {
                    r.activations
                        .iter()
                        .filter(|(_, rec)| rec["activationId"] == id.as_str())
                        .count()
                })
                .collect();
            counts.iter().all(|&n| n > 0).then_some(counts)
        })
        .await
    }

    pub fn records(&self) -> Vec<Value> {
        self.svc
            .received
            .lock()
            .unwrap()
            .activations
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    pub async fn unusable(&self) -> (String, String) {
        self.wait_for("an unusable report", |r| r.unusable.first().cloned())
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy binary

/// The real `whisk-container-proxy` binary, killed on drop.
pub struct ProxyProcess {
    child: Child,
    pub addr: SocketAddr,
    client: reqwest::Client,
}

impl Drop for ProxyProcess {
    /// SIGTERM first (so the proxy removes its temporary files), SIGKILL if it does not exit.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            unsafe {
                libc::kill(self.child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ProxyProcess {
    /// Starts a proxy with `args` (after `--listen 127.0.0.1:0`) and extra environment.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn_with_stderr(args, env, Stdio::inherit())
    }

    /// [`Self::spawn`] with the proxy's stderr (its log) sent to `stderr`.
    pub fn spawn_with_stderr(args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_whisk-container-proxy"));
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .args(args)
            .env("RUST_LOG", "info")
            .env("WHISK_CONTAINER_TOKEN", TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the proxy binary");
        let stdout = child.stdout.take().expect("proxy stdout");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("WHISK_PROXY_LISTENING ") {
                    let _ = tx.send(addr.to_string());
                    break;
                }
            }
            // Keep draining so the proxy never blocks on stdout.
            for _ in lines {}
        });
        let addr = match rx.recv_timeout(WAIT) {
            Ok(a) => a.parse().expect("listening address"),
            Err(_) => {
                let _ = child.kill();
                panic!("the proxy did not print WHISK_PROXY_LISTENING");
            }
        };
        let mut vouched = reqwest::header::HeaderMap::new();
        vouched.insert("x-whisk-container-token", TOKEN.parse().unwrap());
        let client = reqwest::Client::builder()
            .no_proxy()
            .default_headers(vouched)
            .build()
            .unwrap();
        ProxyProcess {
            child,
            addr,
            client,
        }
    }

    /// A stem cell of `kind` reporting to `cp`.
    pub fn stem(kind: &str, cp: &ControlPlaneStub) -> Self {
        Self::spawn(
            &[
                "--kind",
                kind,
                "--container-id",
                "c-test",
                "--controlplane",
                &cp.url(),
            ],
            &[],
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the proxy and waits for it to exit.
    pub fn signal_and_wait(&mut self, sig: i32) -> std::process::ExitStatus {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "proxy did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn init(&self, action: Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url("/_whisk/init"))
            .json(&json!({"action": action, "env": {}}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// `/_whisk/init` presenting `token` instead of the default [`TOKEN`].
    pub async fn init_with_token(&self, token: &str, action: Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url("/_whisk/init"))
            .header("x-whisk-container-token", token)
            .json(&json!({"action": action, "env": {}}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    pub async fn health(&self) -> Value {
        self.client
            .get(self.url("/_whisk/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Sends an invoke with the given context headers and raw body.
    pub async fn invoke_raw(&self, headers: &[(String, String)], body: &str) -> Reply {
        let mut req = self
            .client
            .post(self.url("/api/v1/namespaces/guest/actions/hello?blocking=true"))
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn invoke(&self, inv: &Invoke, body: Value) -> Reply {
        self.invoke_raw(&inv.headers(), &body.to_string()).await
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Every invoke answer is JSON with the activation id header.
    pub fn assert_invoke_headers(&self, activation_id: &str) {
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            self.header("x-openwhisk-activation-id").as_deref(),
            Some(activation_id)
        );
    }
}

pub use whisk_vocab::{new_activation_id, now_ms};

/// The Contract 2 headers of one invoke.
#[derive(Clone)]
pub struct Invoke {
    pub activation_id: String,
    pub namespace: String,
    pub action: String,
    pub blocking: bool,
    pub result: bool,
    pub deadline_ms: u64,
    pub received_at_ms: u64,
    pub extra: Vec<(String, String)>,
}

impl Invoke {
    pub fn blocking(action: &str) -> Self {
        let now = now_ms();
        Invoke {
            activation_id: new_activation_id(),
            namespace: "caller".into(),
            action: action.into(),
            blocking: true,
            result: false,
            deadline_ms: now + 60_000,
            received_at_ms: now,
            extra: Vec::new(),
        }
    }

    pub fn non_blocking(action: &str) -> Self {
        Invoke {
            blocking: false,
            ..Self::blocking(action)
        }
    }

    pub fn headers(&self) -> Vec<(String, String)> {
        let mut h = vec![
            ("x-whisk-activation-id".into(), self.activation_id.clone()),
            (
                "x-whisk-transaction-id".into(),
                format!("tid-{}", self.activation_id),
            ),
            ("x-whisk-namespace".into(), self.namespace.clone()),
            ("x-whisk-subject".into(), "caller-subject".into()),
            ("x-whisk-action".into(), self.action.clone()),
            ("x-whisk-action-revision".into(), "1".into()),
            ("x-whisk-blocking".into(), self.blocking.to_string()),
            ("x-whisk-result".into(), self.result.to_string()),
            ("x-whisk-deadline".into(), self.deadline_ms.to_string()),
            (
                "x-whisk-received-at".into(),
                self.received_at_ms.to_string(),
            ),
            ("content-type".into(), "application/json".into()),
        ];
        h.extend(self.extra.iter().cloned());
        h
    }
}

/// The `action` object of `/_whisk/init` for `guest/<name>`.
pub fn action(name: &str, kind: &str, code: &str) -> Value {
    json!({
        "namespace": "guest",
        "package": null,
        "name": name,
        "fqn": format!("guest/{name}"),
        "revision": 1,
        "version": "0.0.1",
        "kind": kind,
        "exec": {"code": code, "main": "main", "binary": false},
        "parameters": [],
        "annotations": [],
        "limits": {"timeout": 10000, "memory": 256, "logs": 10, "concurrency": 1},
    })
}

/// The annotation `key` of a record.
pub fn annotation(record: &Value, key: &str) -> Option<Value> {
    record["annotations"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| a["value"].clone())
}

/// A stem cell of `kind` initialised with `action`.
pub async fn ready_proxy(cp: &ControlPlaneStub, kind: &str, action: Value) -> ProxyProcess {
    let proxy = ProxyProcess::stem(kind, cp);
    let (status, body) = proxy.init(action).await;
    assert_eq!(status, 200, "init failed: {body}");
    proxy
}

/// Base64 of a zip holding `files`.
pub fn zip_base64(files: &[(&str, &str)]) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        for (name, content) in files {
            let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
            w.start_file(*name, opts).unwrap();
            w.write_all(content.as_bytes()).unwrap();
        }
        w.finish().unwrap();
    }
    base64::engine::general_purpose::STANDARD.encode(buf.into_inner())
}

/// The `logs` array of an answer (an init failure or an activation record), as strings.
pub fn log_lines(body: &serde_json::Value) -> Vec<String> {
    body["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .map(|l| l.as_str().expect("a log line").to_string())
        .collect()
}
