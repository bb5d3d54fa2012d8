//! The API-server half of the stand-in: `/api/v1/namespaces/{ns}/pods[/{name}]` over loopback
//! HTTP, with the semantics a Kubernetes client relies on (defaulting on create, 409/422/404/401
//! `Status` bodies, resource versions, watch streams with bookmarks and a 410 `ERROR` event for a
//! compacted version, graceful deletion that keeps the name taken until the kubelet is done).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::SignedDuration;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::{now, now_ts};
use crate::kubelet::{self, PodStore};
use crate::selector::{FieldSelector, Selector};
use crate::validate::validate_pod;

/// How the stand-in behaves.
#[derive(Debug, Clone)]
pub struct StandinConfig {
    /// Every request must carry `Authorization: Bearer <token>`.
    pub token: String,
    /// Images the kubelet can run, each standing for a local binary (the container proxy image).
    /// Containers with other images are treated as running without a process.
    pub images: HashMap<String, PathBuf>,
    /// Images whose pull fails (`ErrImagePull`, the pod stays Pending).
    pub unpullable: Vec<String>,
    /// How often a watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// Watch events kept; older resource versions answer 410 Gone.
    pub history_limit: usize,
    /// A `ResourceQuota` on the number of pods per namespace: a create beyond it is 403.
    pub pod_quota: Option<usize>,
}

impl StandinConfig {
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            images: HashMap::new(),
            unpullable: Vec::new(),
            bookmark_interval: Duration::from_secs(1),
            history_limit: 1000,
            pod_quota: None,
        }
    }

    /// Let the kubelet run `image` as the local binary `bin`.
    pub fn with_image(mut self, image: impl Into<String>, bin: impl Into<PathBuf>) -> Self {
        self.images.insert(image.into(), bin.into());
        self
    }
}

/// API operations a fault can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Create,
    Get,
    List,
    Watch,
    Delete,
    Patch,
}

/// Answer the next `times` requests of `verb` with `code` (403 reads as an exceeded quota, 503 as
/// an unavailable server, anything else as a generic failure with that code).
#[derive(Debug, Clone)]
pub struct Fault {
    pub verb: Verb,
    pub code: u16,
    pub times: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as a watch delivers it.
#[derive(Debug)]
pub(crate) struct Stored {
    rv: u64,
    kind: EventType,
    ns: String,
    pod: Pod,
}

pub(crate) struct Inner {
    rv: u64,
    pods: BTreeMap<(String, String), Pod>,
    history: VecDeque<Arc<Stored>>,
    /// Changes up to this version may be missing from `history`.
    compacted: u64,
    faults: Vec<Fault>,
    /// Watches answered with 410 Gone.
    gone: usize,
}

/// State shared by the handlers and the kubelet.
pub(crate) struct Shared {
    pub(crate) cfg: StandinConfig,
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<Stored>>,
    watch_gen: watch::Sender<u64>,
    pub(crate) kubelets: Mutex<HashMap<(String, String), kubelet::Handle>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PodStore for Shared {
    fn update_pod_with(&self, ns: &str, name: &str, f: &mut dyn FnMut(&mut Pod)) -> Option<Pod> {
        self.update_pod(ns, name, f)
    }

    fn remove_pod(&self, ns: &str, name: &str) -> Option<Pod> {
        Shared::remove_pod(self, ns, name)
    }

    fn unpullable(&self, image: &str) -> bool {
        self.cfg.unpullable.iter().any(|u| u == image)
    }

    fn image_binary(&self, image: &str) -> Option<PathBuf> {
        self.cfg.images.get(image).cloned()
    }

    fn track(&self, task: JoinHandle<()>) {
        Shared::track(self, task)
    }
}

impl Shared {
    fn commit(&self, inner: &mut Inner, kind: EventType, ns: &str, pod: &mut Pod) {
        inner.rv += 1;
        pod.metadata.resource_version = Some(inner.rv.to_string());
        let stored = Arc::new(Stored {
            rv: inner.rv,
            kind,
            ns: ns.to_string(),
            pod: pod.clone(),
        });
        inner.history.push_back(stored.clone());
        while inner.history.len() > self.cfg.history_limit {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = old.rv;
            }
        }
        let _ = self.events.send(stored);
    }

    /// Change a pod (status, annotations) as the kubelet does; `None` if it is gone.
    pub(crate) fn update_pod(&self, ns: &str, name: &str, f: impl FnOnce(&mut Pod)) -> Option<Pod> {
        let mut inner = lock(&self.inner);
        let mut pod = inner.pods.get(&(ns.to_string(), name.to_string()))?.clone();
        f(&mut pod);
        self.commit(&mut inner, EventType::Modified, ns, &mut pod);
        inner
            .pods
            .insert((ns.to_string(), name.to_string()), pod.clone());
        Some(pod)
    }

    /// Remove a pod for good (DELETED carries the final object).
    pub(crate) fn remove_pod(&self, ns: &str, name: &str) -> Option<Pod> {
        let mut inner = lock(&self.inner);
        let mut pod = inner.pods.remove(&(ns.to_string(), name.to_string()))?;
        self.commit(&mut inner, EventType::Deleted, ns, &mut pod);
        drop(inner);
        lock(&self.kubelets).remove(&(ns.to_string(), name.to_string()));
        Some(pod)
    }

    pub(crate) fn get_pod(&self, ns: &str, name: &str) -> Option<Pod> {
        lock(&self.inner)
            .pods
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    fn take_fault(&self, verb: Verb) -> Option<u16> {
        let mut inner = lock(&self.inner);
        let i = inner
            .faults
            .iter()
            .position(|f| f.verb == verb && f.times > 0)?;
        inner.faults[i].times -= 1;
        let code = inner.faults[i].code;
        if inner.faults[i].times == 0 {
            inner.faults.remove(i);
        }
        Some(code)
    }

    pub(crate) fn track(&self, task: JoinHandle<()>) {
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }
}

/// A running stand-in; everything it started stops on drop.
pub struct KubeStandin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl KubeStandin {
    /// Bind 127.0.0.1:0 and serve.
    pub async fn start(cfg: StandinConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (events, _) = broadcast::channel(4096);
        let (watch_gen, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            cfg,
            inner: Mutex::new(Inner {
                rv: 1000,
                pods: BTreeMap::new(),
                history: VecDeque::new(),
                compacted: 0,
                faults: Vec::new(),
                gone: 0,
            }),
            events,
            watch_gen,
            kubelets: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route(
                "/api/v1/namespaces/{ns}/pods",
                get(list_or_watch).post(create),
            )
            .route(
                "/api/v1/namespaces/{ns}/pods/{name}",
                get(get_one).delete(delete).patch(patch),
            )
            .fallback(not_found_route)
            .layer(middleware::from_fn_with_state(shared.clone(), auth))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`, the cluster URL for a client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for this stand-in (its URL, token, and `namespace` as the default), so a
    /// program finds it the way it finds a real cluster (`KUBECONFIG`).
    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {url}\nusers:\n- name: standin\n  user:\n    token: {token}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: standin\n    namespace: {namespace}\ncurrent-context: standin\n",
            url = self.url(),
            token = self.shared.cfg.token,
        )
    }

    /// The bearer token the stand-in accepts.
    pub fn token(&self) -> &str {
        &self.shared.cfg.token
    }

    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.inner).faults.push(fault);
    }

    /// The pods of a namespace.
    pub fn pods(&self, ns: &str) -> Vec<Pod> {
        lock(&self.shared.inner)
            .pods
            .iter()
            .filter(|((n, _), _)| n == ns)
            .map(|(_, p)| p.clone())
            .collect()
    }

    pub fn pod(&self, ns: &str, name: &str) -> Option<Pod> {
        self.shared.get_pod(ns, name)
    }

    /// Process id of the pod's running container process, if any.
    pub fn pid(&self, ns: &str, name: &str) -> Option<u32> {
        lock(&self.shared.kubelets)
            .get(&(ns.to_string(), name.to_string()))
            .and_then(|h| *lock(&h.pid))
    }

    /// Kill the pod's container process (a crash, an OOM kill): the pod turns Failed.
    pub fn kill_process(&self, ns: &str, name: &str) -> bool {
        match self.pid(ns, name) {
            Some(pid) => {
                // SAFETY: kill(2) on a child process the kubelet started and has not reaped.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) == 0 }
            }
            None => false,
        }
    }

    /// Forget the watch history (as etcd compaction does): watching from any version seen so far
    /// answers 410 Gone.
    pub fn expire_history(&self) {
        let mut inner = lock(&self.shared.inner);
        inner.history.clear();
        inner.rv += 1;
        inner.compacted = inner.rv;
    }

    /// End every open watch (a server restart or a load balancer cutting connections).
    pub fn drop_watches(&self) {
        self.shared.watch_gen.send_modify(|g| *g += 1);
    }

    /// How many watches were answered with 410 Gone.
    pub fn gone_answers(&self) -> usize {
        lock(&self.shared.inner).gone
    }

    /// Evict a pod as the kubelet does under node pressure: its containers are killed and it
    /// turns Failed with reason `Evicted` (it stays until deleted).
    pub fn evict(&self, ns: &str, name: &str) -> bool {
        let evicted = self
            .shared
            .update_pod(ns, name, |p| {
                let st = p.status.get_or_insert_with(Default::default);
                st.phase = Some("Failed".into());
                st.reason = Some("Evicted".into());
                st.message = Some("The node was low on resource: memory.".into());
                if let Some(conds) = st.conditions.as_mut() {
                    for c in conds
                        .iter_mut()
                        .filter(|c| c.type_ == "Ready" || c.type_ == "ContainersReady")
                    {
                        c.status = "False".into();
                    }
                }
            })
            .is_some();
        self.kill_process(ns, name);
        evicted
    }

    /// Pid of every container process still running.
    pub fn pids(&self) -> Vec<u32> {
        lock(&self.shared.kubelets)
            .values()
            .filter_map(|h| *lock(&h.pid))
            .collect()
    }
}

impl Drop for KubeStandin {
    fn drop(&mut self) {
        for pid in self.pids() {
            // SAFETY: kill(2) on children the kubelet started and has not reaped.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        self.server.abort();
        self.shared.watch_gen.send_modify(|g| *g += 1);
        for t in lock(&self.shared.tasks).drain(..) {
            t.abort();
        }
    }
}

/// A `kind: Status` failure body.
pub(crate) fn status(code: u16, reason: &str, message: String, details: Value) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason,
        "details": details, "code": code,
    });
    let sc = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        sc,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn fault_response(code: u16, name: Option<&str>) -> Response {
    let n = name.unwrap_or("");
    match code {
        403 => status(
            403,
            "Forbidden",
            format!(
                "pods \"{n}\" is forbidden: exceeded quota: whisk-quota, requested: pods=1, used: pods=10, limited: pods=10"
            ),
            json!({ "name": n, "kind": "pods" }),
        ),
        503 => status(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request".into(),
            json!({}),
        ),
        410 => status(
            410,
            "Expired",
            "The resourceVersion for the provided watch is too old.".into(),
            json!({}),
        ),
        c => status(
            c,
            "InternalError",
            format!("injected failure {c}"),
            json!({}),
        ),
    }
}

fn json_response(code: StatusCode, v: &impl serde::Serialize) -> Response {
    match serde_json::to_string(v) {
        Ok(s) => (code, [(header::CONTENT_TYPE, "application/json")], s).into_response(),
        Err(e) => status(500, "InternalError", e.to_string(), json!({})),
    }
}

async fn auth(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == s.cfg.token);
    if !ok {
        return status(401, "Unauthorized", "Unauthorized".into(), json!({}));
    }
    next.run(req).await
}

async fn not_found_route() -> Response {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource".into(),
        json!({}),
    )
}

async fn create(State(s): State<Arc<Shared>>, Path(ns): Path<String>, body: Bytes) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return status(
                400,
                "BadRequest",
                format!("the body of the request was in an unknown format: {e}"),
                json!({}),
            );
        }
    };
    let claimed = value["metadata"]["name"].as_str().map(str::to_string);
    if let Some(code) = s.take_fault(Verb::Create) {
        return fault_response(code, claimed.as_deref());
    }
    let mut pod = match validate_pod(&ns, value) {
        Ok(p) => p,
        Err(causes) => {
            let n = claimed.unwrap_or_default();
            let text: Vec<String> = causes
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect();
            let causes: Vec<Value> = causes
                .iter()
                .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
                .collect();
            return status(
                422,
                "Invalid",
                format!("Pod \"{n}\" is invalid: {}", text.join(", ")),
                json!({ "name": n, "kind": "Pod", "causes": causes }),
            );
        }
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let key = (ns.clone(), name.clone());
    let created = {
        let mut inner = lock(&s.inner);
        if inner.pods.contains_key(&key) {
            return status(
                409,
                "AlreadyExists",
                format!("pods \"{name}\" already exists"),
                json!({ "name": name, "kind": "pods" }),
            );
        }
        let used = inner.pods.keys().filter(|(n, _)| *n == ns).count();
        if let Some(limit) = s.cfg.pod_quota
            && used >= limit
        {
            return status(
                403,
                "Forbidden",
                format!(
                    "pods \"{name}\" is forbidden: exceeded quota: pod-quota, requested: pods=1, used: pods={used}, limited: pods={limit}"
                ),
                json!({ "name": name, "kind": "pods" }),
            );
        }
        default_pod(&ns, &mut pod);
        s.commit(&mut inner, EventType::Added, &ns, &mut pod);
        inner.pods.insert(key.clone(), pod.clone());
        pod
    };
    let handle = kubelet::spawn(s.clone(), ns, name, created.clone());
    lock(&s.kubelets).insert(key, handle);
    json_response(StatusCode::CREATED, &created)
}

/// What the API server fills in on create.
fn default_pod(ns: &str, pod: &mut Pod) {
    let m = &mut pod.metadata;
    m.namespace = Some(ns.to_string());
    m.uid = Some(format!("{:032x}", rand::random::<u128>()));
    m.creation_timestamp = Some(now());
    m.generation = Some(1);
    if let Some(spec) = pod.spec.as_mut() {
        spec.restart_policy.get_or_insert_with(|| "Always".into());
        spec.termination_grace_period_seconds.get_or_insert(30);
        spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
        spec.scheduler_name
            .get_or_insert_with(|| "default-scheduler".into());
        spec.service_account_name
            .get_or_insert_with(|| "default".into());
        for c in &mut spec.containers {
            c.termination_message_path
                .get_or_insert_with(|| "/dev/termination-log".into());
            c.image_pull_policy
                .get_or_insert_with(|| "IfNotPresent".into());
        }
    }
    let guaranteed = pod.spec.as_ref().is_some_and(|s| {
        s.containers.iter().all(|c| {
            c.resources
                .as_ref()
                .is_some_and(|r| r.limits.is_some() && r.requests == r.limits)
        })
    });
    pod.status = Some(PodStatus {
        phase: Some("Pending".into()),
        qos_class: Some(
            if guaranteed {
                "Guaranteed"
            } else {
                "Burstable"
            }
            .into(),
        ),
        ..Default::default()
    });
}

async fn get_one(
    State(s): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    if let Some(code) = s.take_fault(Verb::Get) {
        return fault_response(code, Some(&name));
    }
    match s.get_pod(&ns, &name) {
        Some(p) => json_response(StatusCode::OK, &p),
        None => not_found(&name),
    }
}

fn not_found(name: &str) -> Response {
    status(
        404,
        "NotFound",
        format!("pods \"{name}\" not found"),
        json!({ "name": name, "kind": "pods" }),
    )
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

async fn list_or_watch(
    State(s): State<Arc<Shared>>,
    Path(ns): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let labels = match Selector::parse(q.get("labelSelector").map_or("", String::as_str)) {
        Ok(l) => l,
        Err(e) => return status(400, "BadRequest", e, json!({})),
    };
    let fields = match FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str)) {
        Ok(f) => f,
        Err(e) => return status(400, "BadRequest", e, json!({})),
    };
    if truthy(&q, "watch") {
        if let Some(code) = s.take_fault(Verb::Watch) {
            return fault_response(code, None);
        }
        return watch_pods(s, ns, labels, fields, &q);
    }
    if let Some(code) = s.take_fault(Verb::List) {
        return fault_response(code, None);
    }
    let inner = lock(&s.inner);
    let items: Vec<&Pod> = inner
        .pods
        .iter()
        .filter(|((n, _), p)| {
            *n == ns && labels.matches(p.metadata.labels.as_ref()) && fields.matches(p)
        })
        .map(|(_, p)| p)
        .collect();
    let list = json!({
        "kind": "PodList", "apiVersion": "v1",
        "metadata": { "resourceVersion": inner.rv.to_string() },
        "items": items,
    });
    json_response(StatusCode::OK, &list)
}

fn line(kind: &str, object: &impl serde::Serialize) -> Bytes {
    let mut s = json!({ "type": kind, "object": object }).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn watch_pods(
    s: Arc<Shared>,
    ns: String,
    labels: Selector,
    fields: FieldSelector,
    q: &HashMap<String, String>,
) -> Response {
    let bookmarks = truthy(q, "allowWatchBookmarks");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let since = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(v) => match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return status(
                    400,
                    "BadRequest",
                    format!("invalid resource version: {v}"),
                    json!({}),
                );
            }
        },
    };
    let matches = move |ev_ns: &str, p: &Pod| {
        ev_ns == ns && labels.matches(p.metadata.labels.as_ref()) && fields.matches(p)
    };
    let mut backlog = Vec::new();
    let (mut events, mut last, expired) = {
        let mut inner = lock(&s.inner);
        let expired = since.is_some_and(|r| r < inner.compacted);
        if expired {
            inner.gone += 1;
        }
        if !expired {
            match since {
                Some(r) => backlog.extend(
                    inner
                        .history
                        .iter()
                        .filter(|e| e.rv > r && matches(&e.ns, &e.pod))
                        .map(|e| line(e.kind.as_str(), &e.pod)),
                ),
                None => backlog.extend(
                    inner
                        .pods
                        .iter()
                        .filter(|((n, _), p)| matches(n, p))
                        .map(|(_, p)| line("ADDED", p)),
                ),
            }
        }
        (s.events.subscribe(), inner.rv, expired)
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(256);
    let mut gen_rx = s.watch_gen.subscribe();
    gen_rx.borrow_and_update();
    let interval = s.cfg.bookmark_interval;
    let task = tokio::spawn(async move {
        if expired {
            let gone = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure",
                "message": "The resourceVersion for the provided watch is too old.",
                "reason": "Expired", "code": 410,
            });
            let _ = tx.send(line("ERROR", &gone)).await;
            return;
        }
        for b in backlog {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= last {
                            continue;
                        }
                        last = ev.rv;
                        if matches(&ev.ns, &ev.pod)
                            && tx.send(line(ev.kind.as_str(), &ev.pod)).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                _ = tick.tick(), if bookmarks => {
                    let bm = json!({
                        "kind": "Pod", "apiVersion": "v1",
                        "metadata": { "resourceVersion": last.to_string() },
                    });
                    if tx.send(line("BOOKMARK", &bm)).await.is_err() {
                        return;
                    }
                }
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => return,
                _ = gen_rx.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    s.track(task);
    let stream =
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok::<_, Infallible>)));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    (StatusCode::OK, headers, Body::from_stream(stream)).into_response()
}

async fn delete(
    State(s): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Some(code) = s.take_fault(Verb::Delete) {
        return fault_response(code, Some(&name));
    }
    let opts: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let grace = q
        .get("gracePeriodSeconds")
        .and_then(|g| g.parse::<i64>().ok())
        .or_else(|| opts["gracePeriodSeconds"].as_i64());
    let Some(pod) = s.get_pod(&ns, &name) else {
        return not_found(&name);
    };
    let grace = grace
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|sp| sp.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0);
    let handle = lock(&s.kubelets)
        .get(&(ns.clone(), name.clone()))
        .map(|h| h.ctl.clone());
    if grace == 0 || handle.is_none() {
        if let Some(h) = handle {
            let _ = h.send(kubelet::Ctl::Kill);
        }
        return match s.remove_pod(&ns, &name) {
            Some(p) => json_response(StatusCode::OK, &p),
            None => not_found(&name),
        };
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return json_response(StatusCode::OK, &pod);
    }
    let updated = s.update_pod(&ns, &name, |p| {
        let at = now_ts()
            .checked_add(SignedDuration::from_secs(grace))
            .unwrap_or_else(|_| now_ts());
        p.metadata.deletion_timestamp = Some(Time(at));
        p.metadata.deletion_grace_period_seconds = Some(grace);
    });
    if let Some(h) = handle {
        let _ = h.send(kubelet::Ctl::Terminate(Duration::from_secs(grace as u64)));
    }
    match updated {
        Some(p) => json_response(StatusCode::OK, &p),
        None => not_found(&name),
    }
}

/// A merge patch of a pod's labels and annotations (what a client may change on a running pod
/// without a new spec); anything else is refused with 422.
async fn patch(
    State(s): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(code) = s.take_fault(Verb::Patch) {
        return fault_response(code, Some(&name));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !matches!(
        ct,
        "application/merge-patch+json" | "application/strategic-merge-patch+json"
    ) {
        return status(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format: {ct}"),
            json!({}),
        );
    }
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return status(400, "BadRequest", e.to_string(), json!({})),
    };
    let metadata_only = patch.as_object().is_some_and(|o| {
        o.keys().all(|k| k == "metadata")
            && o.get("metadata")
                .and_then(Value::as_object)
                .is_none_or(|m| m.keys().all(|k| k == "labels" || k == "annotations"))
    });
    if !metadata_only {
        return status(
            422,
            "Invalid",
            format!(
                "Pod \"{name}\" is invalid: spec: Forbidden: the stand-in only patches metadata.labels and metadata.annotations"
            ),
            json!({ "name": name, "kind": "Pod" }),
        );
    }
    let merge = |target: &mut Option<BTreeMap<String, String>>, part: &Value| {
        let Some(part) = part.as_object() else {
            return;
        };
        let map = target.get_or_insert_with(BTreeMap::new);
        for (k, v) in part {
            match v.as_str() {
                Some(v) => {
                    map.insert(k.clone(), v.to_string());
                }
                None => {
                    map.remove(k);
                }
            }
        }
    };
    let updated = s.update_pod(&ns, &name, |p| {
        merge(&mut p.metadata.labels, &patch["metadata"]["labels"]);
        merge(
            &mut p.metadata.annotations,
            &patch["metadata"]["annotations"],
        );
    });
    match updated {
        Some(p) => json_response(StatusCode::OK, &p),
        None => not_found(&name),
    }
}
