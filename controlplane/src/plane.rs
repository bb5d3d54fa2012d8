//! The control plane's core: the store, the container pool, the execution backend and the push
//! hub tied together. Every change to actions, identities, namespaces or containers goes through
//! here so that it is persisted, reflected in the pool and pushed to every router exactly once.
//! This is the one `impl Plane`. Cold starts are driven from `coldstart.rs` through it; garbage
//! collection decides in `gc.rs` and is applied here.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;

use serde_json::Value;
use whisk_vocab::ContainerToken;

use crate::backend::{Backend, BackendEvent, UnitSpec};
use crate::config::Config;
use crate::gc::{self, GcReport};
use crate::metrics::{ControlPlaneMetrics, StateSnapshot};
use crate::model::{ActionDoc, IdentityDoc, NamespaceDoc, PackageDoc, digest_key};
use crate::pool::{Assigned, Container, Pool, State, new_container_id};
use crate::push::{Delta, PushHub};
use crate::starts::StartGate;
use crate::store::{Store, StoreError};
use whisk_proto::controlplane::v1 as pb;

/// The `path` annotation of a stored record: the action's `ns/[pkg/]name`.
fn record_path(record: &Value) -> Option<&str> {
    record
        .get("annotations")?
        .as_array()?
        .iter()
        .find(|kv| kv.get("key").and_then(Value::as_str) == Some("path"))?
        .get("value")?
        .as_str()
}

/// OpenWhisk's well-known guest credentials (compat §3).
pub const GUEST_UUID: &str = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502";
pub const GUEST_KEY: &str = "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

/// Errors of the core operations.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid activation record: {0}")]
    BadRecord(String),
    /// A report without the container's token (or for a container that does not exist).
    #[error("{0}")]
    Unauthenticated(String),
    /// A report from a container about something it does not hold.
    #[error("{0}")]
    PermissionDenied(String),
}

/// The control plane's shared state.
pub struct Plane {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub hub: Arc<PushHub>,
    pub backend: Arc<dyn Backend>,
    /// Prometheus metrics (served at `/metrics`).
    pub metrics: ControlPlaneMetrics,
    pool: Mutex<Pool>,
    /// Cold starts in flight, and the bound on concurrent starts.
    pub(crate) starts: StartGate,
    controlplane_url: OnceLock<String>,
    /// The routers' last usage reports: how each namespace's limits are shared among them.
    pub quotas: crate::quotas::Quotas,
}

impl Plane {
    /// A router's usage report; the answer is its share of every active namespace's limits.
    pub fn report_usage(&self, report: pb::UsageReport) -> pb::UsageShares {
        let used = report
            .namespaces
            .into_iter()
            .map(|n| {
                let u = crate::quotas::Used {
                    admitted_last_minute: n.admitted_last_minute,
                    wanted: n.wanted,
                    in_flight: n.in_flight,
                };
                (n.namespace, u)
            })
            .collect();
        let d = self.config.default_limits;
        let limits = |ns: &str| {
            let own = self.hub.namespace_limits(ns).unwrap_or_default();
            (
                own.invocations_per_minute
                    .unwrap_or(d.invocations_per_minute),
                own.concurrent_invocations
                    .unwrap_or(d.concurrent_invocations),
            )
        };
        let namespaces = self
            .quotas
            .report(&report.router_id, used, limits, self.hub.routers())
            .into_iter()
            .map(|(namespace, s)| pb::NamespaceShare {
                namespace,
                invocations_per_minute: s.invocations_per_minute,
                concurrent_invocations: s.concurrent_invocations,
            })
            .collect();
        pb::UsageShares {
            namespaces,
            valid_for_ms: crate::quotas::VALID_FOR.as_millis() as u64,
        }
    }

    pub fn new(config: Config, store: Arc<dyn Store>, backend: Arc<dyn Backend>) -> Arc<Self> {
        let hub = PushHub::new(config.push_buffer);
        let d = config.default_limits;
        hub.set_default_limits(pb::NamespaceLimits {
            invocations_per_minute: Some(d.invocations_per_minute),
            concurrent_invocations: Some(d.concurrent_invocations),
            max_payload_bytes: Some(d.max_payload_bytes),
        });
        let pool = Pool::new(config.max_containers, config.max_memory_mb);
        let starts = StartGate::new(config.max_concurrent_starts);
        Arc::new(Self {
            config,
            store,
            hub,
            backend,
            metrics: ControlPlaneMetrics::new(),
            pool: Mutex::new(pool),
            starts,
            controlplane_url: OnceLock::new(),
            quotas: Default::default(),
        })
    }

    /// The gRPC URL container proxies report to (set once the server is bound).
    pub fn set_controlplane_url(&self, url: String) {
        let _ = self.controlplane_url.set(url);
    }

    pub(crate) fn controlplane_url(&self) -> String {
        self.controlplane_url.get().cloned().unwrap_or_default()
    }

    pub(crate) fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seed `guest` on an empty store and load every table into the push hub.
    pub fn bootstrap(&self) -> Result<(), PlaneError> {
        if self.config.seed_guest && self.store.list_namespaces()?.is_empty() {
            self.store.put_namespace(&NamespaceDoc {
                name: "guest".into(),
                limits: Default::default(),
            })?;
            self.store.put_identity(&IdentityDoc {
                uuid: GUEST_UUID.into(),
                namespace: "guest".into(),
                subject: "guest".into(),
                key_sha256: digest_key(GUEST_KEY),
            })?;
        }
        let mut d = Delta::default();
        for ns in self.store.list_namespaces()? {
            d.upsert_namespace(&ns);
        }
        for id in self.store.list_identities()? {
            d.upsert_identity(&id);
        }
        let published: std::collections::HashSet<String> = self
            .store
            .list_packages(None)?
            .into_iter()
            .filter(|p| p.publish && p.binding.is_none())
            .map(|p| p.fqn())
            .collect();
        for a in self.store.list_actions(None)? {
            let public = a
                .package
                .as_ref()
                .is_some_and(|p| published.contains(&format!("{}/{}", a.namespace, p)));
            d.upsert_action(&a, public);
        }
        for binding in self.store.list_packages(None)? {
            for a in crate::bindings::exposed(&*self.store, &binding)? {
                d.upsert_action(&a, false);
            }
        }
        self.hub.publish(d);
        self.hub.flush();
        Ok(())
    }

    // ---- entity changes -------------------------------------------------------------------

    /// Whether the action sits in a published package (any namespace may invoke it).
    pub(crate) fn is_public(&self, a: &ActionDoc) -> bool {
        let Some(pkg) = &a.package else { return false };
        matches!(self.store.get_package(&format!("{}/{pkg}", a.namespace)), Ok(Some(p)) if p.publish)
    }

    /// An action was created or updated: push it and retire containers of older revisions.
    pub fn action_written(&self, doc: &ActionDoc) {
        let mut d = Delta::default();
        d.upsert_action(doc, self.is_public(doc));
        self.hub.publish(d);
        self.retire(&doc.fqn(), Some(doc.revision));
        if let Some(pkg) = &doc.package {
            self.bindings_changed(&format!("{}/{pkg}", doc.namespace), false);
        }
    }

    /// An action was deleted: push the removal and retire all its containers.
    pub fn action_deleted(&self, fqn: &str) {
        let mut d = Delta::default();
        d.remove_action(fqn);
        self.hub.publish(d);
        self.retire(fqn, None);
        if let Some((package, _)) = fqn.rsplit_once('/')
            && package.contains('/')
        {
            self.bindings_changed(package, false);
        }
    }

    /// A package or binding was deleted: what bindings exposed through it is withdrawn.
    pub fn package_deleted(&self, pkg: &PackageDoc) {
        self.bindings_changed(&pkg.fqn(), true);
    }

    /// Republishes binding `fqn`, or every binding of package `fqn` (failures are logged: the
    /// next change or a restart republishes them).
    fn bindings_changed(&self, fqn: &str, parameters_changed: bool) {
        let result = match self.store.get_package(fqn) {
            Ok(Some(p)) if p.binding.is_some() => self.republish_binding(fqn, parameters_changed),
            Ok(Some(_)) => self.republish_bindings_to(fqn, parameters_changed),
            // Deleted: if it was a binding, withdraw what it exposed (a deleted package has no
            // actions left under its name); if a bound package, its bindings expose nothing now.
            Ok(None) => self
                .republish_binding(fqn, parameters_changed)
                .and_then(|()| self.republish_bindings_to(fqn, parameters_changed)),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::error!(package = fqn, error = %e, "cannot republish bindings");
        }
    }

    /// Recomputes and pushes what binding `binding_fqn` exposes (it may have been deleted):
    /// removes what it no longer exposes and retires those containers; retires every container
    /// of what it exposes when `parameters_changed`, else only those of older revisions.
    fn republish_binding(
        &self,
        binding_fqn: &str,
        parameters_changed: bool,
    ) -> Result<(), crate::store::StoreError> {
        let now: Vec<ActionDoc> = match self.store.get_package(binding_fqn)? {
            Some(b) => crate::bindings::exposed(&*self.store, &b)?,
            None => Vec::new(),
        };
        let prefix = format!("{binding_fqn}/");
        let current: std::collections::HashSet<String> = now.iter().map(ActionDoc::fqn).collect();
        let stale: Vec<String> = self
            .hub
            .snapshot()
            .actions_upsert
            .into_iter()
            .map(|a| a.fqn)
            .filter(|f| f.starts_with(&prefix) && !current.contains(f))
            .collect();
        let mut d = Delta::default();
        for a in &now {
            d.upsert_action(a, false);
        }
        for f in &stale {
            d.remove_action(f);
        }
        self.hub.publish(d);
        for f in &stale {
            self.retire(f, None);
        }
        for a in &now {
            let keep = (!parameters_changed).then_some(a.revision);
            self.retire(&a.fqn(), keep);
        }
        Ok(())
    }

    /// Republishes every binding of the package `package_fqn` (after it, or one of its actions,
    /// changed).
    fn republish_bindings_to(
        &self,
        package_fqn: &str,
        parameters_changed: bool,
    ) -> Result<(), crate::store::StoreError> {
        for b in crate::bindings::bindings_to(&*self.store, package_fqn)? {
            self.republish_binding(&b, parameters_changed)?;
        }
        Ok(())
    }

    /// A package was written: its actions' `public` flag may have changed, and their containers
    /// were initialised with the old package parameters, so they are retired.
    pub fn package_written(&self, pkg: &PackageDoc) -> Result<(), PlaneError> {
        let mut d = Delta::default();
        let mut fqns = Vec::new();
        for a in self.store.list_actions(Some(&pkg.namespace))? {
            if a.package.as_deref() == Some(pkg.name.as_str()) {
                d.upsert_action(&a, pkg.publish && pkg.binding.is_none());
                fqns.push(a.fqn());
            }
        }
        self.hub.publish(d);
        for fqn in fqns {
            self.retire(&fqn, None);
        }
        self.bindings_changed(&pkg.fqn(), true);
        Ok(())
    }

    pub fn namespace_written(&self, ns: &NamespaceDoc) {
        let mut d = Delta::default();
        d.upsert_namespace(ns);
        self.hub.publish(d);
    }

    pub fn identity_written(&self, id: &IdentityDoc) {
        let mut d = Delta::default();
        d.upsert_identity(id);
        self.hub.publish(d);
    }

    pub fn identity_deleted(&self, uuid: &str) {
        let mut d = Delta::default();
        d.remove_identity(uuid);
        self.hub.publish(d);
    }

    // ---- containers ---------------------------------------------------------------------

    /// Remove containers of `fqn` whose revision is not `keep_revision`.
    fn retire(&self, fqn: &str, keep_revision: Option<u64>) {
        let ids = self.pool().of_action(fqn, keep_revision);
        for id in ids {
            self.remove_container(&id, true);
        }
    }

    /// Forget a container, push its removal, and (if `stop`) stop its unit in the background.
    pub fn remove_container(&self, id: &str, stop: bool) -> bool {
        let removed = self.pool().remove(id);
        let Some(c) = removed else { return false };
        if c.endpoint().is_some() {
            let mut d = Delta::default();
            d.remove_endpoint(id);
            self.hub.publish(d);
        }
        if stop {
            let backend = self.backend.clone();
            let id = id.to_string();
            tokio::spawn(async move { backend.stop(id).await });
        }
        true
    }

    /// Register a container (replacing any previous record) and push its endpoint.
    pub(crate) fn put_container(&self, c: Container) {
        let ep = c.endpoint();
        self.pool().insert(c);
        if let Some(ep) = ep {
            let mut d = Delta::default();
            d.upsert_endpoint(&ep);
            self.hub.publish(d);
        }
    }

    /// A router saw traffic for a container: it counts as activity and unmarks it.
    pub fn report_traffic(&self, container_id: &str) {
        let ep = {
            let mut pool = self.pool();
            let Some(c) = pool.get_mut(container_id) else {
                return;
            };
            c.last_activity = Instant::now();
            if !matches!(c.state, State::Marked { .. }) {
                return;
            }
            c.state = State::Ready;
            self.metrics.gc_unmarks.inc();
            c.endpoint()
        };
        if let Some(ep) = ep {
            let mut d = Delta::default();
            d.upsert_endpoint(&ep);
            self.hub.publish(d);
        }
    }

    /// A container cannot serve any more. `token` is what a container proxy presented (checked:
    /// only its own container); `None` when a router, already authenticated by its own token at
    /// the gRPC edge, reports a container it could not reach.
    pub fn report_unusable(
        self: &Arc<Self>,
        container_id: &str,
        token: Option<&str>,
        reason: &str,
    ) -> Result<(), PlaneError> {
        if let Some(presented) = token {
            self.check_token(container_id, presented)?;
        }
        tracing::info!(container_id, reason, "container reported unusable");
        if self.remove_container(container_id, true) {
            self.refill_stems();
        }
        Ok(())
    }

    /// Whether `presented` is the token of container `container_id` (constant time).
    fn check_token(&self, container_id: &str, presented: &str) -> Result<(), PlaneError> {
        let pool = self.pool();
        match pool.get(container_id) {
            Some(c) if c.token.matches(presented) => Ok(()),
            _ => Err(PlaneError::Unauthenticated(
                "the report does not carry this container's token".into(),
            )),
        }
    }

    /// Store one finished activation record (OpenWhisk's stored form) with bounded retention.
    ///
    /// From a container (`container_id` set) the report must carry that container's `token`,
    /// and the record must be of the action the container holds; it is stored under the
    /// container's invoking namespace, whatever the record claims. Without a container it is a
    /// record the router produced (sequences, cache hits, failures), stored under its own
    /// namespace. Either way an activation id already stored is never overwritten: the answer is
    /// `Ok(false)` and the first record stays.
    pub fn record_activation(
        &self,
        container_id: &str,
        token: Option<&str>,
        activation_json: &str,
    ) -> Result<bool, PlaneError> {
        let assigned_namespace = if container_id.is_empty() {
            None
        } else {
            Some(self.container_reporting(container_id, token)?)
        };
        let mut record: Value = serde_json::from_str(activation_json)
            .map_err(|e| PlaneError::BadRecord(e.to_string()))?;
        let id = record
            .get("activationId")
            .and_then(Value::as_str)
            .ok_or_else(|| PlaneError::BadRecord("missing activationId".into()))?
            .to_string();
        let namespace = match assigned_namespace {
            Some((namespace, fqn)) => {
                let path = record_path(&record);
                if path != Some(fqn.as_str())
                    && path.map(str::to_string) != crate::bindings::bound_path(&*self.store, &fqn)
                {
                    return Err(PlaneError::PermissionDenied(format!(
                        "container {container_id} does not hold the action of this record"
                    )));
                }
                if let Some(obj) = record.as_object_mut() {
                    obj.insert("namespace".into(), Value::String(namespace.clone()));
                }
                namespace
            }
            None => record
                .get("namespace")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| PlaneError::BadRecord("missing namespace".into()))?,
        };
        let start = record.get("start").and_then(Value::as_i64).unwrap_or(0);
        let stored = self.store.put_activation(
            &namespace,
            &id,
            start,
            &record,
            self.config.activations_per_namespace,
        )?;
        if stored {
            self.metrics.activations_recorded.inc();
        } else {
            tracing::info!(activation_id = %id, "activation already recorded; the repeat is ignored");
        }
        Ok(stored)
    }

    /// The (invoking namespace, action) of a container whose token `token` is, counting the
    /// report as activity.
    fn container_reporting(
        &self,
        container_id: &str,
        token: Option<&str>,
    ) -> Result<(String, String), PlaneError> {
        let presented = token.ok_or_else(|| {
            PlaneError::Unauthenticated("a container's report must carry its token".into())
        })?;
        self.check_token(container_id, presented)?;
        let mut pool = self.pool();
        let c = pool
            .get_mut(container_id)
            .ok_or_else(|| PlaneError::Unauthenticated("the container is gone".into()))?;
        c.last_activity = Instant::now();
        let a = c.action.as_ref().ok_or_else(|| {
            PlaneError::PermissionDenied(format!("container {container_id} holds no action"))
        })?;
        Ok((a.namespace.clone(), a.fqn.clone()))
    }

    /// Handle what the backend reports on its own (units that died).
    pub(crate) fn spawn_event_loop(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let mut events = self.backend.take_events()?;
        let weak = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                let Some(plane) = weak.upgrade() else { return };
                match ev {
                    BackendEvent::Exited {
                        container_id,
                        reason,
                    } => {
                        tracing::info!(%container_id, %reason, "container exited on its own");
                        plane.remove_container(&container_id, false);
                        plane.refill_stems();
                    }
                }
            }
        }))
    }

    /// One pass of the garbage collector as of `now`: pushes the marks, removes what is swept.
    pub fn gc_tick_at(self: &Arc<Self>, now: Instant) -> GcReport {
        let (report, marked) = gc::pass(
            &mut self.pool(),
            now,
            self.config.keep_alive,
            self.config.sweep_grace,
        );
        let mut delta = Delta::default();
        for ep in &marked {
            delta.upsert_endpoint(ep);
        }
        self.hub.publish(delta);
        self.metrics.gc_marks.inc_by(report.marked.len() as u64);
        self.metrics.gc_sweeps.inc_by(report.swept.len() as u64);
        for id in &report.swept {
            self.remove_container(id, true);
        }
        if !report.swept.is_empty() {
            self.refill_stems();
        }
        report
    }

    /// One garbage collection pass as of now.
    pub fn gc_tick(self: &Arc<Self>) -> GcReport {
        self.gc_tick_at(Instant::now())
    }

    /// Run the collector every `config.gc_interval` (if non-zero) until the plane is dropped.
    pub(crate) fn spawn_gc_loop(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let every = self.config.gc_interval;
        if every.is_zero() {
            return None;
        }
        let weak: Weak<Plane> = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(plane) = weak.upgrade() else { return };
                let report = plane.gc_tick();
                if !report.marked.is_empty() || !report.swept.is_empty() {
                    tracing::info!(marked = ?report.marked, swept = ?report.swept, "gc pass");
                }
                plane.refill_stems();
            }
        }))
    }

    /// Take back the units the backend kept from a previous run: stem cells as stem cells, warm
    /// containers of an action revision that still exists as warm containers (published to the
    /// routers); the rest, and what does not fit, is stopped.
    /// A unit whose token the backend cannot read back is stopped: nobody could reach it.
    pub async fn adopt_units(self: &Arc<Self>) {
        for u in self.backend.adopt().await {
            let Some(token) = u.token.clone() else {
                tracing::info!(container_id = %u.container_id, "stopping a container left by a previous run: its token is unknown");
                self.backend.stop(u.container_id).await;
                continue;
            };
            let container = match &u.action {
                None => Some(Container {
                    id: u.container_id.clone(),
                    kind: u.kind.clone(),
                    address: Some(u.address.clone()),
                    action: None,
                    memory_mb: u.memory_mb,
                    state: State::Stem,
                    last_activity: Instant::now(),
                    token,
                }),
                Some((fqn, revision)) => match crate::bindings::resolve(&*self.store, fqn) {
                    Ok(Some(a)) if a.revision == *revision => Some(Container {
                        id: u.container_id.clone(),
                        kind: u.kind.clone(),
                        address: Some(u.address.clone()),
                        action: Some(Assigned {
                            fqn: fqn.clone(),
                            revision: *revision,
                            capacity: a.limits.concurrency.max(1),
                            // Units initialised before namespaces were recorded served the owner.
                            namespace: u
                                .invoking_namespace
                                .clone()
                                .unwrap_or_else(|| a.namespace.clone()),
                        }),
                        // The unit's own limit when it has one (a pod's), else the action's.
                        memory_mb: u.memory_mb.max(a.limits.memory),
                        state: State::Ready,
                        last_activity: Instant::now(),
                        token,
                    }),
                    _ => None,
                },
            };
            let fits = container
                .as_ref()
                .is_some_and(|c| self.pool().has_room(c.memory_mb, 0));
            match container {
                Some(c) if fits => {
                    tracing::info!(container_id = %c.id, action = ?u.action, "adopted a running container");
                    self.put_container(c);
                }
                _ => {
                    tracing::info!(container_id = %u.container_id, "stopping a container left by a previous run");
                    self.backend.stop(u.container_id).await;
                }
            }
        }
    }

    /// Start stem cells until every prewarm pool has its configured size (within capacity).
    pub fn refill_stems(self: &Arc<Self>) {
        for (kind, want) in self.config.prewarm.clone() {
            loop {
                let (id, token) = {
                    let mut pool = self.pool();
                    if pool.stem_count(&kind) >= want
                        || !pool.has_room(self.config.stem_cell_memory_mb, 0)
                    {
                        break;
                    }
                    let id = new_container_id();
                    let token = ContainerToken::generate();
                    pool.insert(Container {
                        id: id.clone(),
                        kind: kind.clone(),
                        address: None,
                        action: None,
                        memory_mb: self.config.stem_cell_memory_mb,
                        state: State::Starting,
                        last_activity: Instant::now(),
                        token: token.clone(),
                    });
                    (id, token)
                };
                let plane = self.clone();
                let kind = kind.clone();
                tokio::spawn(async move { plane.start_stem(id, kind, token).await });
            }
        }
    }

    async fn start_stem(self: Arc<Self>, id: String, kind: String, token: ContainerToken) {
        let spec = UnitSpec {
            container_id: id.clone(),
            kind: kind.clone(),
            memory_mb: self.config.stem_cell_memory_mb,
            controlplane_url: self.controlplane_url(),
            env: Vec::new(),
            image: None,
            token,
        };
        let result = {
            let _permit = self.starts.permit().await;
            self.backend.start(spec).await
        };
        match result {
            Ok(unit) => {
                let still_wanted = {
                    let mut pool = self.pool();
                    match pool.get_mut(&id) {
                        Some(c) => {
                            c.address = Some(unit.address);
                            c.state = State::Stem;
                            c.last_activity = Instant::now();
                            true
                        }
                        None => false,
                    }
                };
                if !still_wanted {
                    self.backend.stop(id).await;
                }
            }
            Err(e) => {
                tracing::warn!(%kind, error = %e, "stem cell failed to start");
                self.pool().remove(&id);
            }
        }
    }

    /// Number of containers of each state (diagnostics and tests).
    pub fn container_ids(&self) -> Vec<(String, State, Option<String>)> {
        self.pool()
            .all()
            .map(|c| {
                (
                    c.id.clone(),
                    c.state,
                    c.action.as_ref().map(|a| a.fqn.clone()),
                )
            })
            .collect()
    }

    /// The live state the metrics gauges mirror (read before each scrape).
    pub fn state_snapshot(&self) -> StateSnapshot {
        let mut s = StateSnapshot {
            stem_cells: self
                .config
                .prewarm
                .iter()
                .map(|(k, _)| (k.clone(), 0))
                .collect(),
            subscribers: self.hub.subscriber_count() as u64,
            push_backlog: self.hub.backlog() as u64,
            push_revision: self.hub.revision(),
            store_cache_bytes: self.store.cache_bytes(),
            ..Default::default()
        };
        for c in self.pool().all() {
            *s.containers.entry(c.state.label()).or_default() += 1;
            if c.state == State::Stem {
                *s.stem_cells.entry(c.kind.clone()).or_default() += 1;
            }
        }
        s.activations_stored = match self.store.activation_count() {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::debug!(error = %e, "cannot count stored activations");
                None
            }
        };
        s
    }

    /// Stop every unit and close the store.
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self.pool().all().map(|c| c.id.clone()).collect();
        for id in &ids {
            self.pool().remove(id);
        }
        self.backend.shutdown().await;
        self.hub.close();
        self.store.close();
    }
}
