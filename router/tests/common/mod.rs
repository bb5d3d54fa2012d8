//! Test bench for the router: real Envoy, the real router binary, an in-test control plane
//! (a tonic server the test drives) and in-test upstream containers on loopback.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use whisk_proto::controlplane::v1 as pb;

#[allow(unused_imports)]
pub use whisk_testkit::{
    ColdPlan, FakeControlPlane, GUEST_KEY, GUEST_UUID, OTHER_KEY, OTHER_UUID, action, basic,
    endpoint, eventually, guest_auth, identity,
};

/// The router's tests give namespaces a 1 KiB payload limit, so a 413 is cheap to provoke.
pub fn namespace(name: &str, per_minute: u32, concurrent: u32) -> pb::Namespace {
    whisk_testkit::namespace_with_payload(name, per_minute, concurrent, 1024)
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

    /// A container proxy running `f` whose answers say `Cache-Control: <value>`.
    pub async fn caching_action(
        name: &str,
        cache_control: &str,
        f: fn(serde_json::Value) -> serde_json::Value,
    ) -> Upstream {
        Self::start_full(
            name,
            Behaviour {
                action: Some(f),
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
    /// The activations running here (by id), for `GET /_whisk/activations/{id}/end`.
    running: Arc<Mutex<std::collections::HashSet<String>>>,
}

/// Marks an activation ended (for `/_whisk/activations/{id}/end`) when dropped.
struct RunningGuard(Arc<Mutex<std::collections::HashSet<String>>>, String);
impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.lock().unwrap().remove(&self.1);
    }
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
        running,
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
        // Like a container proxy: the router may wait here for an activation to end.
        if let Some(rest) = request_line
            .strip_prefix("GET /_whisk/activations/")
            .and_then(|r| r.split_once("/end"))
        {
            let id = rest.0.to_owned();
            let wait_ms: u64 = rest
                .1
                .split_once("wait_ms=")
                .and_then(|(_, v)| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let until = std::time::Instant::now() + Duration::from_millis(wait_ms);
            let ended = loop {
                if !running.lock().unwrap().contains(&id) {
                    break true;
                }
                if std::time::Instant::now() >= until {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            let status = if ended {
                "204 No Content"
            } else {
                "202 Accepted"
            };
            let resp = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            reader.get_mut().write_all(resp.as_bytes()).await?;
            continue;
        }
        *last.lock().unwrap() = serde_json::json!({
            "headers": headers.clone(),
            "body": serde_json::from_slice::<serde_json::Value>(&body).ok(),
        });
        requests.fetch_add(1, Ordering::SeqCst);
        active.fetch_add(1, Ordering::SeqCst);
        let _guard = ActiveGuard(active.clone());
        let get = |k: &str| headers.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let activation = get("x-whisk-activation-id");
        // `x-test-runs-ms`: answer 202 at once (the wait expired) while the activation goes on.
        if let Some(ms) = get("x-test-runs-ms").and_then(|v| v.parse::<u64>().ok()) {
            if let Some(id) = &activation {
                let (running, id) = (running.clone(), id.clone());
                running.lock().unwrap().insert(id.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    running.lock().unwrap().remove(&id);
                });
            }
            let body = format!(
                r#"{{"activationId":"{}"}}"#,
                activation.clone().unwrap_or_default()
            );
            let resp = format!(
                "HTTP/1.1 202 X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-openwhisk-activation-id: {}\r\n\r\n{body}",
                body.len(),
                activation.clone().unwrap_or_default()
            );
            reader.get_mut().write_all(resp.as_bytes()).await?;
            continue;
        }
        let _running = activation.as_ref().map(|id| {
            running.lock().unwrap().insert(id.clone());
            RunningGuard(running.clone(), id.clone())
        });
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

/// The router token the bench's control plane demands and its routers present.
pub const BENCH_TOKEN: &str = "bench-router-token";

/// How long the bench's Envoy waits for a whole request (408 after that).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The token the bench's Envoy presents to its router.
pub const INGRESS_TOKEN: &str = "bench-ingress-token-0123456789abcdef";

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
        Self::start_flavour(false, &[], false).await
    }

    /// Gateway flavour, with these extra router arguments.
    pub async fn start_with_router_args(args: &[&str]) -> Bench {
        Self::start_flavour(false, args, false).await
    }

    /// Sidecar flavour: Envoy reaches the router over a Unix domain socket.
    pub async fn start_sidecar() -> Bench {
        Self::start_flavour(true, &[], false).await
    }

    /// Gateway flavour whose management upstream (the control plane's HTTP API) is down: nothing
    /// listens at the address Envoy is given.
    pub async fn start_with_management_down() -> Bench {
        Self::start_flavour(false, &[], true).await
    }

    /// Guest and "other" namespaces (1000/min, 100 concurrent, 1 KiB payloads), no actions yet.
    async fn start_flavour(sidecar: bool, router_args: &[&str], management_down: bool) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        // The fake checks the router token, as the real control plane does.
        let token_file = dir.path().join("controlplane-token");
        std::fs::write(&token_file, BENCH_TOKEN).unwrap();
        let mut router_args: Vec<String> = router_args.iter().map(|a| a.to_string()).collect();
        router_args.push("--controlplane-token-file".into());
        router_args.push(token_file.display().to_string());
        // Envoy proves itself to the router, as in `whisk up`.
        let ingress_file = dir.path().join("ingress-token");
        std::fs::write(&ingress_file, INGRESS_TOKEN).unwrap();
        router_args.push("--ingress-token-file".into());
        router_args.push(ingress_file.display().to_string());
        let cp = FakeControlPlane::new();
        cp.require_token(BENCH_TOKEN);
        cp.push(pb::TableUpdate {
            namespaces_upsert: vec![namespace("guest", 1000, 100), namespace("other", 1000, 100)],
            identities_upsert: vec![
                identity(GUEST_UUID, "guest", GUEST_KEY),
                identity(OTHER_UUID, "other", OTHER_KEY),
            ],
            ..Default::default()
        });
        let cp_url = cp.serve().await;
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
                controlplane_api: if management_down {
                    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                    gone.local_addr().unwrap()
                } else {
                    management.addr
                },
                access_log: dir.path().join("access.log"),
                ingress_token: Some(INGRESS_TOKEN.into()),
                // Short, so a test can watch a slow upload time out.
                request_timeout: Some(REQUEST_TIMEOUT),
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
    /// Action `guest/<name>` on one container of capacity 5, in a guest namespace that allows
    /// one invocation at a time; returns the container.
    pub async fn one_at_a_time(&self, name: &str) -> Upstream {
        let u = Upstream::start(name).await;
        let fqn = format!("guest/{name}");
        self.apply(pb::TableUpdate {
            namespaces_upsert: vec![namespace("guest", 1000, 1)],
            actions_upsert: vec![action(&fqn, 5)],
            endpoints_upsert: vec![endpoint(&format!("c-{name}"), &fqn, u.addr, 5)],
            ..Default::default()
        })
        .await;
        u
    }

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
