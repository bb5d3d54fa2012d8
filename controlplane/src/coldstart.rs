//! Cold starts (`ColdStart`): give a router a ready container for an action revision. A warm stem
//! cell of the action's kind is initialised when there is one, otherwise a fresh unit is started.
//! Concurrent requests for the same revision and invoking namespace share one start; starts are
//! bounded; each caller's deadline is honoured without cancelling the start others may still want.
//!
//! A container serves one invoking namespace (the router's authenticated caller): the owner's
//! for its own actions, the caller's for a public action of another namespace, so callers never
//! share a container's process state. A stem cell gets its namespace when it is specialised.
//!
//! Each actual start runs in a `cold_start` span (child of the first caller's span, so of the
//! router's trace when its request carried a `traceparent`) and is counted in the metrics with
//! its outcome, its source (stem cell or new container) and, when it succeeds, its duration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tracing::Instrument;
use tracing::field::Empty;

use crate::backend::{InitError, UnitSpec};
use crate::model::ActionDoc;
use crate::plane::Plane;
use crate::pool::{Assigned, Container, Endpoint, State, new_container_id};
use crate::starts::{ColdStartError, outcome_label};
use whisk_vocab::ContainerToken;

const CAPACITY_RETRY_MS: u32 = 1000;

/// Return a ready endpoint for `fqn` (`ns/[pkg/]name`) serving `invoking_namespace` (empty =
/// the action's own namespace) from `plane`, or why not. `deadline` bounds this caller's wait
/// only.
pub async fn cold_start(
    plane: &Arc<Plane>,
    fqn: &str,
    invoking_namespace: &str,
    deadline: Option<Instant>,
) -> Result<Endpoint, ColdStartError> {
    if deadline.is_some_and(|d| d <= Instant::now()) {
        return Err(ColdStartError::DeadlineExceeded);
    }
    let action = match crate::bindings::resolve(&*plane.store, fqn) {
        Ok(Some(a)) => a,
        Ok(None) => {
            let err = ColdStartError::UnknownAction(format!(
                "The requested resource '{fqn}' does not exist."
            ));
            plane.metrics.cold_start_finished(err.label(), "none", None);
            return Err(err);
        }
        Err(e) => return Err(ColdStartError::StartFailed(e.to_string())),
    };
    if let Some(r) = crate::runtimes::lookup(&action.exec.kind)
        && r.deprecated
    {
        let err = ColdStartError::KindDeprecated(
            crate::runtimes::KindError::Deprecated(r.kind.to_string()).to_string(),
        );
        plane.metrics.cold_start_finished(err.label(), "none", None);
        return Err(err);
    }
    if action.exec.is_sequence() {
        let err = ColdStartError::UnknownAction(format!(
            "'{fqn}' is a sequence: its components are started, not the sequence"
        ));
        plane.metrics.cold_start_finished(err.label(), "none", None);
        return Err(err);
    }
    let invoker = if invoking_namespace.is_empty() {
        action.namespace.clone()
    } else {
        invoking_namespace.to_string()
    };
    // Only the owner, or anybody for a public action: never a container for a namespace that
    // could not invoke it.
    if invoker != action.namespace && !plane.is_public(&action) {
        let err = ColdStartError::UnknownAction(format!(
            "The requested resource '{fqn}' does not exist."
        ));
        plane.metrics.cold_start_finished(err.label(), "none", None);
        return Err(err);
    }
    let key = format!("{fqn}#{}#{invoker}", action.revision);
    let shared = plane.starts.join_or_begin(&key, || {
        let task_plane = plane.clone();
        let task_key = key.clone();
        let span = tracing::info_span!(
            "cold_start",
            faas.name = %fqn,
            faas.version = %action.version,
            whisk.invoking_namespace = %invoker,
            faas.coldstart = true,
            whisk.action_revision = action.revision,
            whisk.kind = %action.exec.kind,
            whisk.container_id = Empty,
            whisk.source = Empty,
            whisk.outcome = Empty,
        );
        let handle = tokio::spawn(
            async move {
                let result = start_for(task_plane.clone(), action, invoker).await;
                task_plane.starts.finished(&task_key);
                result
            }
            .instrument(span),
        );
        let fut: BoxFuture<'static, Result<Endpoint, ColdStartError>> = async move {
            handle.await.unwrap_or_else(|e| {
                Err(ColdStartError::StartFailed(format!(
                    "start task failed: {e}"
                )))
            })
        }
        .boxed();
        fut.shared()
    });
    match deadline {
        Some(d) => tokio::time::timeout_at(d.into(), shared)
            .await
            .unwrap_or(Err(ColdStartError::DeadlineExceeded)),
        None => shared.await,
    }
}

/// Reserve room for `c` (evicting idle containers if needed) and register it as starting.
fn reserve(plane: &Plane, c: Container, replacing_mb: u32) -> Result<(), ColdStartError> {
    let mut evicted = Vec::new();
    let result = {
        let mut pool = plane.pool();
        loop {
            if pool.has_room(c.memory_mb, replacing_mb) {
                pool.insert(c);
                break Ok(());
            }
            match pool.eviction_victim(Instant::now(), plane.config.evict_min_idle, &c.kind) {
                Some(victim) => {
                    if let Some(v) = pool.remove(&victim) {
                        evicted.push(v);
                    }
                }
                None => {
                    break Err(ColdStartError::CapacityExhausted {
                        message: format!(
                            "no room for another container ({} containers, {} MB max) and none idle to evict",
                            pool.max_containers, pool.max_memory_mb
                        ),
                        retry_after_ms: CAPACITY_RETRY_MS,
                    });
                }
            }
        }
    };
    for v in evicted {
        tracing::info!(container_id = %v.id, "evicting least recently used container to make room");
        // Re-insert so remove_container pushes the removal and stops the unit.
        let id = v.id.clone();
        plane.pool().insert(v);
        plane.remove_container(&id, true);
    }
    result
}

/// One start, measured: counted by outcome and source, timed when it succeeds, and its
/// outcome recorded on the current (`cold_start`) span.
async fn start_for(
    plane: Arc<Plane>,
    action: ActionDoc,
    invoker: String,
) -> Result<Endpoint, ColdStartError> {
    let began = Instant::now();
    let mut source = "none";
    let result = start_for_inner(plane.clone(), action, invoker, &mut source).await;
    let took = began.elapsed();
    let outcome = outcome_label(&result);
    plane
        .metrics
        .cold_start_finished(outcome, source, result.is_ok().then_some(took));
    let span = tracing::Span::current();
    span.record("whisk.source", source);
    span.record("whisk.outcome", outcome);
    match &result {
        Ok(ep) => {
            span.record("whisk.container_id", ep.container_id.as_str());
            tracing::info!(
                container_id = %ep.container_id,
                source,
                duration_ms = took.as_millis() as u64,
                "cold start ready"
            );
        }
        Err(e) => tracing::warn!(source, error = %e, "cold start failed"),
    }
    result
}

async fn start_for_inner(
    plane: Arc<Plane>,
    action: ActionDoc,
    invoker: String,
    source: &mut &'static str,
) -> Result<Endpoint, ColdStartError> {
    let _permit = plane
        .starts
        .permit()
        .await
        .ok_or_else(|| ColdStartError::StartFailed("shutting down".into()))?;
    let fqn = action.fqn();
    let assigned = Assigned {
        fqn: fqn.clone(),
        revision: action.revision,
        capacity: action.limits.concurrency.max(1),
        namespace: invoker.clone(),
    };
    let memory = action.limits.memory;

    // A stem cell of this kind, if one is warm.
    // A stem cell whose memory is fixed at start (a pod's limit) must be big enough.
    let fixed = plane.backend.memory_fixed_at_start();
    let needed = if fixed { memory } else { 0 };
    // An action with an image of its own starts its own unit.
    let image = own_image(&action);
    let stem = if image.is_some() {
        None
    } else {
        plane
            .pool()
            .take_stem_of_at_least(&action.exec.kind, needed)
    };
    let (id, address, token) = match stem {
        Some(stem) => {
            *source = "stem_cell";
            let mut c = stem.clone();
            c.action = Some(assigned.clone());
            // A pod keeps its limit: account for what it really holds.
            c.memory_mb = if fixed {
                stem.memory_mb.max(memory)
            } else {
                memory
            };
            c.state = State::Starting;
            if let Err(e) = reserve(&plane, c, stem.memory_mb) {
                plane.pool().remove(&stem.id);
                plane.backend.stop(stem.id.clone()).await;
                return Err(e);
            }
            plane.refill_stems();
            (
                stem.id.clone(),
                stem.address.clone().unwrap_or_default(),
                stem.token.clone(),
            )
        }
        None => {
            *source = "new_container";
            let id = new_container_id();
            let token = ContainerToken::generate();
            reserve(
                &plane,
                Container {
                    id: id.clone(),
                    kind: action.exec.kind.clone(),
                    address: None,
                    action: Some(assigned.clone()),
                    memory_mb: memory,
                    state: State::Starting,
                    last_activity: Instant::now(),
                    token: token.clone(),
                },
                0,
            )?;
            let spec = UnitSpec {
                container_id: id.clone(),
                kind: action.exec.kind.clone(),
                memory_mb: memory,
                controlplane_url: plane.controlplane_url(),
                env: Vec::new(),
                image,
                token: token.clone(),
            };
            match plane.backend.start(spec).await {
                Ok(unit) => {
                    if let Some(c) = plane.pool().get_mut(&id) {
                        c.address = Some(unit.address.clone());
                    }
                    (id, unit.address, token)
                }
                Err(e) => {
                    plane.pool().remove(&id);
                    return Err(ColdStartError::StartFailed(e.to_string()));
                }
            }
        }
    };

    let payload = init_payload(&plane, &action, &invoker);
    let timeout = Duration::from_millis(action.limits.timeout as u64) + Duration::from_secs(5);
    let init_started = Instant::now();
    if let Err(e) = plane
        .backend
        .init(address.clone(), token, payload, timeout)
        .await
    {
        plane.remove_container(&id, true);
        return Err(match e {
            InitError::Developer { message, logs } => ColdStartError::InitFailed {
                message,
                logs,
                duration_ms: init_started.elapsed().as_millis() as u64,
            },
            InitError::Failed(text) => ColdStartError::StartFailed(text),
        });
    }

    let registered = {
        let mut pool = plane.pool();
        pool.get_mut(&id).map(|c| {
            c.state = State::Ready;
            c.last_activity = Instant::now();
            c.clone()
        })
    };
    let Some(registered) = registered else {
        plane.backend.stop(id).await;
        return Err(ColdStartError::StartFailed(
            "the container was removed while starting".into(),
        ));
    };
    let endpoint = registered
        .endpoint()
        .ok_or_else(|| ColdStartError::StartFailed("container has no endpoint".into()))?;
    plane.put_container(registered);

    // The action may have changed while we were starting: never hand out a stale revision.
    match crate::bindings::resolve(&*plane.store, &fqn) {
        Ok(Some(current)) if current.revision == action.revision => Ok(endpoint),
        _ => {
            plane.remove_container(&id, true);
            Err(ColdStartError::UnknownAction(format!(
                "The requested resource '{fqn}' changed while its container was starting."
            )))
        }
    }
}

/// The image a blackbox action brings, unless it is the skeleton (which any unit of the kind
/// runs).
fn own_image(action: &ActionDoc) -> Option<String> {
    (action.exec.kind == crate::runtimes::BLACKBOX)
        .then(|| action.exec.image.clone())
        .flatten()
        .filter(|i| !crate::backend::is_skeleton(i))
}

/// Contract 3's init body: the action (package parameters merged under its own), env, and the
/// namespace the container serves (backends record it to adopt the unit after a restart).
fn init_payload(plane: &Plane, a: &ActionDoc, invoker: &str) -> Value {
    let parameters = crate::bindings::init_parameters(&*plane.store, a);
    json!({
        "action": {
            "namespace": a.namespace,
            "package": a.package,
            "name": a.name,
            "fqn": a.fqn(),
            // What its records name as `path` (the bound action's, through a binding).
            "path": crate::bindings::bound_path(&*plane.store, &a.fqn()).unwrap_or_else(|| a.fqn()),
            "revision": a.revision,
            "version": a.version,
            "kind": a.exec.kind,
            "exec": {
                "code": a.exec.code.clone().unwrap_or_default(),
                "main": a.exec.main.clone().unwrap_or_else(|| "main".to_string()),
                "binary": a.exec.binary,
            },
            "parameters": parameters,
            "annotations": a.annotations,
            "limits": a.limits,
        },
        "env": { "__OW_API_HOST": plane.config.api_host },
        "invoking_namespace": invoker,
    })
}
