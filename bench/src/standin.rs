//! A control-plane stand-in: the `whisk.controlplane.v1.ControlPlane` service, in the bench
//! process, holding exactly the tables a scenario wants the router to have.
//!
//! The real control plane would bring a store, a backend and containers into scenarios that only
//! measure the router's warm path; this serves `Subscribe` (a snapshot, then every delta pushed
//! with revision + 1) and nothing else of substance (`ColdStart` always answers "capacity
//! exhausted": the edge scenarios never need a container the tables do not already hold).
//!
//! For scale (scenario j) the tables can hold a *synthetic* part — N actions, endpoints and
//! identities generated on the fly while the snapshot is streamed, so the bench never keeps
//! millions of entries in memory — and a snapshot can be sent either whole (one message, as the
//! real control plane does) or split into messages of a bounded number of entries: a snapshot
//! message followed by deltas. Revisions start at [`REVISION_BASE`] so the parts of a split
//! snapshot can be numbered consecutively below the current revision and the last part lands
//! exactly on it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::{Stream, StreamExt};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};
use whisk_proto::controlplane::v1::{self as pb, control_plane_server::ControlPlaneServer};
use whisk_testkit::TableModel;

/// The first revision; see the module comment.
pub const REVISION_BASE: u64 = 1_000_000_000;
/// Namespaces the synthetic identities and actions are spread over.
const SYNTHETIC_NAMESPACES: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    #[error("stand-in: {0}")]
    Io(#[from] std::io::Error),
}

/// How a snapshot goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// One message, whatever its size.
    Whole,
    /// Messages of at most this many entries: a snapshot, then deltas.
    Chunked(usize),
}

/// Generated tables for scale runs.
#[derive(Debug, Clone, Copy)]
pub struct Synthetic {
    pub actions: usize,
    pub endpoints: usize,
    pub identities: usize,
    /// Where every synthetic endpoint points.
    pub dst: SocketAddr,
}

impl Synthetic {
    fn namespaces(&self) -> usize {
        SYNTHETIC_NAMESPACES.min(self.identities.max(self.actions).max(1))
    }

    pub fn entries(&self) -> usize {
        self.namespaces() + self.actions + self.endpoints + self.identities
    }

    fn namespace_name(&self, i: usize) -> String {
        format!("scale-{}", i % self.namespaces())
    }

    fn action_fqn(&self, i: usize) -> String {
        format!("{}/a{i}", self.namespace_name(i))
    }

    /// One synthetic identity's credentials (`uuid:key`), e.g. to call as it.
    pub fn credentials(i: usize) -> (String, String) {
        (
            format!("{:08x}-5ca1-4e00-8000-{:012x}", i as u32, i as u64),
            format!("scalekey{i:056}"),
        )
    }
}

/// The pushed tables, plus the generated part.
#[derive(Default)]
struct Model {
    tables: TableModel,
    synthetic: Option<Synthetic>,
}

/// What a subscriber's snapshot is built from (copied under the lock, built outside it).
struct SnapshotSource {
    revision: u64,
    namespaces: Vec<pb::Namespace>,
    identities: Vec<pb::Identity>,
    actions: Vec<pb::Action>,
    endpoints: Vec<pb::Endpoint>,
    synthetic: Option<Synthetic>,
}

struct Inner {
    model: Mutex<Model>,
    tx: broadcast::Sender<Arc<pb::TableUpdate>>,
    split: Mutex<Split>,
    subscribes: AtomicU32,
    last_subscribe: Mutex<Option<Instant>>,
}

/// The stand-in; clones share the same tables.
#[derive(Clone)]
pub struct StandIn {
    inner: Arc<Inner>,
}

impl Default for StandIn {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StandIn {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            inner: Arc::new(Inner {
                model: Mutex::new(Model {
                    tables: TableModel {
                        revision: REVISION_BASE,
                        ..Default::default()
                    },
                    synthetic: None,
                }),
                tx,
                split: Mutex::new(Split::Whole),
                subscribes: AtomicU32::new(0),
                last_subscribe: Mutex::new(None),
            }),
        }
    }

    /// Applies a delta, pushes it to every subscriber and returns its revision.
    pub fn push(&self, mut u: pb::TableUpdate) -> u64 {
        let m = &mut lock(&self.inner.model).tables;
        m.revision += 1;
        u.revision = m.revision;
        u.snapshot = false;
        m.apply(&u);
        let _ = self.inner.tx.send(Arc::new(u));
        m.revision
    }

    /// Adds generated tables. Only subscribers that arrive later see them (in their snapshot):
    /// call it before starting the router.
    pub fn set_synthetic(&self, s: Synthetic) -> u64 {
        let mut m = lock(&self.inner.model);
        m.tables.revision += 1;
        m.synthetic = Some(s);
        m.tables.revision
    }

    pub fn set_split(&self, split: Split) {
        *lock(&self.inner.split) = split;
    }

    pub fn revision(&self) -> u64 {
        lock(&self.inner.model).tables.revision
    }

    pub fn subscribes(&self) -> u32 {
        self.inner.subscribes.load(Ordering::SeqCst)
    }

    /// When the latest `Subscribe` call arrived.
    pub fn last_subscribe(&self) -> Option<Instant> {
        *lock(&self.inner.last_subscribe)
    }

    /// Serves on a free loopback port until the returned handle is dropped; returns the URL.
    pub async fn serve(&self) -> Result<(String, ServeHandle), StandInError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let svc = ControlPlaneServer::new(self.clone());
        // Small deltas must not wait for Nagle's algorithm (tonic's `tcp_nodelay` setting does
        // not reach sockets accepted from our own listener).
        let incoming = TcpListenerStream::new(listener).map(|s| {
            let s = s?;
            s.set_nodelay(true)?;
            Ok::<_, std::io::Error>(s)
        });
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(incoming)
                .await;
        });
        Ok((format!("http://{addr}"), ServeHandle(task)))
    }

    fn source(&self) -> (SnapshotSource, broadcast::Receiver<Arc<pb::TableUpdate>>) {
        let m = lock(&self.inner.model);
        let t = &m.tables;
        let src = SnapshotSource {
            revision: t.revision,
            namespaces: t.namespaces.values().cloned().collect(),
            identities: t.identities.values().cloned().collect(),
            actions: t.actions.values().cloned().collect(),
            endpoints: t.endpoints.values().cloned().collect(),
            synthetic: m.synthetic,
        };
        (src, self.inner.tx.subscribe())
    }
}

/// Stops the stand-in's server when dropped.
pub struct ServeHandle(tokio::task::JoinHandle<()>);

impl Drop for ServeHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Fills `TableUpdate`s of at most `limit` entries, sending each as it fills up.
struct Chunker<'a> {
    limit: usize,
    current: pb::TableUpdate,
    entries: usize,
    out: &'a mut dyn FnMut(pb::TableUpdate) -> bool,
    open: bool,
    sent: usize,
}

impl Chunker<'_> {
    fn add(&mut self, f: impl FnOnce(&mut pb::TableUpdate)) {
        f(&mut self.current);
        self.entries += 1;
        if self.entries >= self.limit {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.entries > 0 && self.open {
            let u = std::mem::take(&mut self.current);
            self.open = (self.out)(u);
            self.sent += 1;
        }
        self.entries = 0;
    }
}

/// Builds the snapshot of `src` as one or more messages, numbered so the last one carries
/// `src.revision`, and hands each to `out` (which returns false to stop).
fn build_snapshot(src: SnapshotSource, split: Split, out: &mut dyn FnMut(pb::TableUpdate) -> bool) {
    let total = src.namespaces.len()
        + src.identities.len()
        + src.actions.len()
        + src.endpoints.len()
        + src.synthetic.map(|s| s.entries()).unwrap_or(0);
    let limit = match split {
        Split::Whole => usize::MAX,
        Split::Chunked(n) => n.max(1),
    };
    let parts = if limit == usize::MAX {
        1
    } else {
        total.div_ceil(limit).max(1)
    } as u64;
    let first_revision = src.revision + 1 - parts;
    let mut n = 0u64;
    let mut numbered = |mut u: pb::TableUpdate| {
        u.revision = first_revision + n;
        u.snapshot = n == 0;
        n += 1;
        out(u)
    };
    let mut c = Chunker {
        limit,
        current: pb::TableUpdate::default(),
        entries: 0,
        out: &mut numbered,
        open: true,
        sent: 0,
    };
    for x in src.namespaces {
        c.add(|u| u.namespaces_upsert.push(x));
    }
    for x in src.identities {
        c.add(|u| u.identities_upsert.push(x));
    }
    for x in src.actions {
        c.add(|u| u.actions_upsert.push(x));
    }
    for x in src.endpoints {
        c.add(|u| u.endpoints_upsert.push(x));
    }
    if let Some(s) = src.synthetic {
        for i in 0..s.namespaces() {
            let ns = namespace(&format!("scale-{i}"), 1_000_000, 1000);
            c.add(|u| u.namespaces_upsert.push(ns));
        }
        for i in 0..s.identities {
            let (uuid, key) = Synthetic::credentials(i);
            let id = identity(&uuid, &s.namespace_name(i), &key);
            c.add(|u| u.identities_upsert.push(id));
        }
        for i in 0..s.actions {
            let a = action(&s.action_fqn(i), 1);
            c.add(|u| u.actions_upsert.push(a));
        }
        for j in 0..s.endpoints {
            let e = endpoint(
                &format!("scale-c{j}"),
                &s.action_fqn(j % s.actions.max(1)),
                s.dst,
                1,
            );
            c.add(|u| u.endpoints_upsert.push(e));
        }
    }
    c.flush();
    // An empty table set still needs its snapshot message.
    if c.sent == 0 {
        let _ = numbered(pb::TableUpdate::default());
    }
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<pb::TableUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl pb::control_plane_server::ControlPlane for StandIn {
    type SubscribeStream = UpdateStream;

    async fn subscribe(
        &self,
        _: Request<pb::SubscribeRequest>,
    ) -> Result<Response<UpdateStream>, Status> {
        self.inner.subscribes.fetch_add(1, Ordering::SeqCst);
        *lock(&self.inner.last_subscribe) = Some(Instant::now());
        let (src, mut rx) = self.source();
        let split = *lock(&self.inner.split);
        let (out_tx, out_rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let snap_tx = out_tx.clone();
            let built = tokio::task::spawn_blocking(move || {
                build_snapshot(src, split, &mut |u| snap_tx.blocking_send(Ok(u)).is_ok());
            })
            .await;
            if built.is_err() {
                return;
            }
            loop {
                match rx.recv().await {
                    Ok(u) => {
                        if out_tx.send(Ok((*u).clone())).await.is_err() {
                            return;
                        }
                    }
                    // A lagging subscriber is cut off; it resubscribes and gets a snapshot.
                    Err(_) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }

    async fn cold_start(
        &self,
        _: Request<pb::ColdStartRequest>,
    ) -> Result<Response<pb::ColdStartResponse>, Status> {
        let err = pb::ColdStartError {
            code: pb::cold_start_error::Code::CapacityExhausted as i32,
            message: "the bench's control-plane stand-in starts no containers".into(),
            retry_after_ms: 1000,
            ..Default::default()
        };
        Ok(Response::new(pb::ColdStartResponse {
            outcome: Some(pb::cold_start_response::Outcome::Error(err)),
        }))
    }

    async fn acknowledge(
        &self,
        _: tonic::Request<whisk_proto::controlplane::v1::AcknowledgeRequest>,
    ) -> Result<tonic::Response<whisk_proto::controlplane::v1::AcknowledgeResponse>, tonic::Status>
    {
        Ok(tonic::Response::new(Default::default()))
    }

    async fn report_traffic(
        &self,
        _: Request<pb::ReportTrafficRequest>,
    ) -> Result<Response<pb::ReportTrafficResponse>, Status> {
        Ok(Response::new(Default::default()))
    }

    async fn report_activation(
        &self,
        _: Request<pb::ReportActivationRequest>,
    ) -> Result<Response<pb::ReportActivationResponse>, Status> {
        Ok(Response::new(Default::default()))
    }

    async fn report_unusable(
        &self,
        _: Request<pb::ReportUnusableRequest>,
    ) -> Result<Response<pb::ReportUnusableResponse>, Status> {
        Ok(Response::new(Default::default()))
    }

    /// No shares: the bench's single router admits each namespace's whole limits.
    async fn report_usage(
        &self,
        _: Request<pb::UsageReport>,
    ) -> Result<Response<pb::UsageShares>, Status> {
        Ok(Response::new(Default::default()))
    }
}

// The table entries are the test kit's: `standin::action(…)` and friends.
pub use whisk_testkit::tables::{action, endpoint, identity, namespace};

#[cfg(test)]
mod tests {
    use super::*;

    fn src(revision: u64, synthetic: Option<Synthetic>) -> SnapshotSource {
        SnapshotSource {
            revision,
            namespaces: vec![namespace("guest", 10, 10)],
            identities: vec![],
            actions: vec![action("guest/a", 1)],
            endpoints: vec![],
            synthetic,
        }
    }

    #[test]
    fn whole_snapshot_is_one_message_at_the_current_revision() {
        let mut got = Vec::new();
        build_snapshot(src(REVISION_BASE + 3, None), Split::Whole, &mut |u| {
            got.push(u);
            true
        });
        assert_eq!(got.len(), 1);
        assert!(got[0].snapshot);
        assert_eq!(got[0].revision, REVISION_BASE + 3);
        assert_eq!(got[0].actions_upsert.len(), 1);
    }

    #[test]
    fn split_snapshot_is_numbered_consecutively_up_to_the_revision() {
        let s = Synthetic {
            actions: 10,
            endpoints: 25,
            identities: 20,
            dst: "127.0.0.1:9".parse().unwrap(),
        };
        let mut got = Vec::new();
        build_snapshot(
            src(REVISION_BASE + 7, Some(s)),
            Split::Chunked(8),
            &mut |u| {
                got.push(u);
                true
            },
        );
        let entries: usize = got
            .iter()
            .map(|u| {
                u.namespaces_upsert.len()
                    + u.identities_upsert.len()
                    + u.actions_upsert.len()
                    + u.endpoints_upsert.len()
            })
            .sum();
        assert_eq!(entries, 2 + s.entries());
        assert!(got[0].snapshot && got[1..].iter().all(|u| !u.snapshot));
        let last = got.last().unwrap().revision;
        assert_eq!(last, REVISION_BASE + 7);
        // Keys have OpenWhisk's shape (64 alphanumerics), so they could be used to call.
        let (uuid, key) = Synthetic::credentials(123_456);
        assert_eq!(uuid.len(), 36);
        assert!(key.len() == 64 && key.bytes().all(|c| c.is_ascii_alphanumeric()));
        for w in got.windows(2) {
            assert_eq!(w[1].revision, w[0].revision + 1);
        }
    }
}
