//! A control plane in the test's own process: the `whisk.controlplane.v1.ControlPlane` gRPC
//! service, holding exactly the tables the test pushes. `Subscribe` sends a snapshot and then
//! every delta; `ColdStart` follows a plan per action (after a delay, this endpoint — also
//! pushed) or answers "capacity exhausted"; reports are recorded for the test to assert on.
//! Like the real one it can demand the router token ([`FakeControlPlane::require_token`]); by
//! default it admits every caller.
//!
//! It stands in for our own control plane so the router can be tested alone; everything around
//! it (Envoy, the router binary, sockets) is real.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tonic::{Request, Response, Status};
use whisk_proto::controlplane::v1::{self as pb, control_plane_server::ControlPlaneServer};

use crate::tables::TableModel;

/// A poisoned lock only means another test thread panicked; the data is still what it was.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What `ColdStart` does for an action: after `delay`, answer with this endpoint (also pushed).
#[derive(Clone)]
pub struct ColdPlan {
    pub delay: Duration,
    pub endpoint: pb::Endpoint,
}

/// The fake control plane; clones share everything.
#[derive(Clone)]
pub struct FakeControlPlane {
    model: Arc<Mutex<TableModel>>,
    tx: broadcast::Sender<pb::TableUpdate>,
    pub cold_starts: Arc<AtomicU32>,
    pub subscribes: Arc<AtomicU32>,
    plans: Arc<Mutex<HashMap<String, ColdPlan>>>,
    /// Actions whose cold start fails with this error (checked before `plans`).
    failures: Arc<Mutex<HashMap<String, pb::ColdStartError>>>,
    pub traffic: Arc<Mutex<Vec<String>>>,
    pub unusable: Arc<Mutex<Vec<String>>>,
    /// Activation records reported (by the router, for what it ran itself).
    pub records: Arc<Mutex<Vec<serde_json::Value>>>,
    /// The running server, so a test can stop it (a control plane that went away) and start it
    /// again on the same address.
    server: Arc<Mutex<Option<Server>>>,
    /// True while stopped: open `Subscribe` streams end.
    stopped: Arc<tokio::sync::watch::Sender<bool>>,
    /// Where it served last, to serve there again.
    last_addr: Arc<Mutex<Option<std::net::SocketAddr>>>,
    /// The token router calls must present (`authorization: Bearer`); `None` admits everyone.
    token: Arc<Mutex<Option<String>>>,
    /// Router calls refused for a missing or wrong token.
    pub refused: Arc<AtomicU32>,
    /// Usage reports received (`ReportUsage`).
    pub usage: Arc<Mutex<Vec<pb::UsageReport>>>,
    /// The shares `ReportUsage` answers with, per namespace (rate, concurrency); none by default.
    pub shares: Arc<Mutex<HashMap<String, (u32, u32)>>>,
}

struct Server {
    addr: std::net::SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Default for FakeControlPlane {
    fn default() -> Self {
        Self::new()
    }
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
            failures: Default::default(),
            traffic: Default::default(),
            unusable: Default::default(),
            records: Default::default(),
            server: Default::default(),
            stopped: Arc::new(tokio::sync::watch::channel(false).0),
            last_addr: Default::default(),
            token: Default::default(),
            refused: Default::default(),
            usage: Default::default(),
            shares: Default::default(),
        }
    }

    /// From now on, router calls (`Subscribe`, `ColdStart`, `Acknowledge`, `ReportTraffic`) need
    /// `authorization: Bearer <token>`, as on the real control plane (else `UNAUTHENTICATED`).
    pub fn require_token(&self, token: &str) {
        *lock(&self.token) = Some(token.to_owned());
    }

    fn admit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(token) = lock(&self.token).clone() else {
            return Ok(());
        };
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if presented == Some(format!("Bearer {token}").as_str()) {
            Ok(())
        } else {
            self.refused.fetch_add(1, Ordering::SeqCst);
            Err(Status::unauthenticated("router token missing or wrong"))
        }
    }

    /// Applies a delta and pushes it to every subscriber.
    pub fn push(&self, mut u: pb::TableUpdate) -> u64 {
        let mut m = lock(&self.model);
        m.revision += 1;
        u.revision = m.revision;
        u.snapshot = false;
        m.apply(&u);
        let _ = self.tx.send(u);
        m.revision
    }

    pub fn plan_cold_start(&self, fqn: &str, plan: ColdPlan) {
        lock(&self.plans).insert(fqn.to_owned(), plan);
    }

    /// From now on, `ColdStart` for `fqn` answers `error` (an init failure with its logs, say).
    pub fn fail_cold_start(&self, fqn: &str, error: pb::ColdStartError) {
        lock(&self.failures).insert(fqn.to_owned(), error);
    }

    /// Serves on a free port; returns the URL.
    pub async fn serve(&self) -> String {
        let addr = self
            .serve_at("127.0.0.1:0".parse().expect("an address"))
            .await;
        format!("http://{addr}")
    }

    async fn serve_at(&self, addr: std::net::SocketAddr) -> std::net::SocketAddr {
        let listener = TcpListener::bind(addr).await.expect("a free loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let svc = ControlPlaneServer::new(self.clone());
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stop.await;
                    },
                )
                .await;
        });
        *lock(&self.server) = Some(Server {
            addr,
            shutdown,
            task,
        });
        addr
    }

    /// Stops serving, as a control plane that went away: open subscriptions end, new calls fail.
    pub async fn stop(&self) {
        self.stopped.send_replace(true);
        let server = lock(&self.server).take();
        if let Some(server) = server {
            *lock(&self.last_addr) = Some(server.addr);
            let _ = server.shutdown.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), server.task).await;
        }
    }

    /// Serves again on the address it had (after [`Self::stop`]).
    pub async fn restart(&self) {
        let addr = lock(&self.last_addr).expect("stopped after serving");
        self.stopped.send_replace(false);
        self.serve_at(addr).await;
    }
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<pb::TableUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl pb::control_plane_server::ControlPlane for FakeControlPlane {
    type SubscribeStream = UpdateStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<UpdateStream>, Status> {
        self.admit(&request)?;
        self.subscribes.fetch_add(1, Ordering::SeqCst);
        let (snapshot, mut rx) = {
            let m = lock(&self.model);
            (m.snapshot(), self.tx.subscribe())
        };
        let (out_tx, out_rx) = tokio::sync::mpsc::channel(1024);
        let mut stopped = self.stopped.subscribe();
        tokio::spawn(async move {
            if out_tx.send(Ok(snapshot)).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    u = rx.recv() => {
                        let Ok(u) = u else { return };
                        if out_tx.send(Ok(u)).await.is_err() {
                            return;
                        }
                    }
                    // Stopped: the stream ends (the router sees its control plane go away).
                    _ = async {
                        while !*stopped.borrow_and_update() {
                            if stopped.changed().await.is_err() {
                                break;
                            }
                        }
                    } => return,
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
        self.admit(&request)?;
        self.cold_starts.fetch_add(1, Ordering::SeqCst);
        let fqn = request.into_inner().action_fqn;
        let plan = lock(&self.plans).get(&fqn).cloned();
        let failure = lock(&self.failures).get(&fqn).cloned();
        let outcome = match (failure, plan) {
            (Some(failure), _) => pb::cold_start_response::Outcome::Error(failure),
            (None, Some(plan)) => {
                tokio::time::sleep(plan.delay).await;
                self.push(pb::TableUpdate {
                    endpoints_upsert: vec![plan.endpoint.clone()],
                    ..Default::default()
                });
                pb::cold_start_response::Outcome::Endpoint(plan.endpoint)
            }
            (None, None) => pb::cold_start_response::Outcome::Error(pb::ColdStartError {
                code: pb::cold_start_error::Code::CapacityExhausted as i32,
                message: "no plan".into(),
                retry_after_ms: 2000,
                ..Default::default()
            }),
        };
        Ok(Response::new(pb::ColdStartResponse {
            outcome: Some(outcome),
        }))
    }

    async fn acknowledge(
        &self,
        request: Request<pb::AcknowledgeRequest>,
    ) -> Result<Response<pb::AcknowledgeResponse>, Status> {
        self.admit(&request)?;
        Ok(Response::new(Default::default()))
    }

    async fn report_traffic(
        &self,
        request: Request<pb::ReportTrafficRequest>,
    ) -> Result<Response<pb::ReportTrafficResponse>, Status> {
        self.admit(&request)?;
        lock(&self.traffic).push(request.into_inner().container_id);
        Ok(Response::new(Default::default()))
    }

    async fn report_activation(
        &self,
        request: Request<pb::ReportActivationRequest>,
    ) -> Result<Response<pb::ReportActivationResponse>, Status> {
        let json = request.into_inner().activation_json;
        if let Ok(v) = serde_json::from_str(&json) {
            lock(&self.records).push(v);
        }
        Ok(Response::new(Default::default()))
    }

    async fn report_unusable(
        &self,
        request: Request<pb::ReportUnusableRequest>,
    ) -> Result<Response<pb::ReportUnusableResponse>, Status> {
        lock(&self.unusable).push(request.into_inner().container_id);
        Ok(Response::new(Default::default()))
    }

    async fn report_usage(
        &self,
        request: Request<pb::UsageReport>,
    ) -> Result<Response<pb::UsageShares>, Status> {
        self.admit(&request)?;
        lock(&self.usage).push(request.into_inner());
        let namespaces = lock(&self.shares)
            .iter()
            .map(|(ns, (rate, conc))| pb::NamespaceShare {
                namespace: ns.clone(),
                invocations_per_minute: *rate,
                concurrent_invocations: *conc,
            })
            .collect();
        Ok(Response::new(pb::UsageShares {
            namespaces,
            valid_for_ms: 5_000,
        }))
    }
}
