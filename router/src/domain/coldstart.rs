//! Getting a slot when no warm endpoint has one: wait briefly, or ask the control plane.
//!
//! A request that finds every endpoint busy waits up to `busy_wait` for a slot to free; a request
//! that finds no endpoint (or waited long enough) makes sure a cold start is under way. Cold starts
//! are single-flight per action: one `ColdStart` call no matter how many requests wait, run on
//! its own task so that a client that gives up does not cancel it for the others. Everybody waits
//! on the pool's `Notify` (woken by freed slots, pushed endpoints and the end of a cold start)
//! until it gets a slot or its deadline passes; only then is the answer 503 with a `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use super::endpoints::{EndpointSpec, Pick, Pool, Slot};
use super::rejection::Rejection;
use super::tables::{ActionMeta, Tables};

/// Why the control plane could not give us a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColdStartFailure {
    UnknownAction,
    /// The action's code failed to initialise (OpenWhisk's developer-error text).
    InitFailed(String),
    /// Start failed, capacity exhausted, deadline passed or control plane unreachable.
    Unavailable {
        retry_after: Duration,
    },
}

impl From<ColdStartFailure> for Rejection {
    fn from(f: ColdStartFailure) -> Self {
        match f {
            ColdStartFailure::UnknownAction => Rejection::NotFound,
            ColdStartFailure::InitFailed(msg) => Rejection::InitFailed(msg),
            ColdStartFailure::Unavailable { retry_after } => Rejection::Unavailable { retry_after },
        }
    }
}

/// The router's side of the control plane, as the domain needs it.
pub trait ControlPlane: Send + Sync + 'static {
    /// Asks for a ready container of the action.
    fn cold_start(
        &self,
        fqn: Arc<str>,
        deadline_ms: u64,
    ) -> BoxFuture<'static, Result<EndpointSpec, ColdStartFailure>>;
    /// A container marked for removal got a request (fire and forget).
    fn report_traffic(&self, container_id: Arc<str>);
    /// A container failed to accept a connection (fire and forget).
    fn report_unusable(&self, container_id: Arc<str>, reason: String);
    /// An activation record the router produced itself (fire and forget).
    fn report_activation(&self, record_json: String);
}

/// Per-action cold-start state, behind the pool's mutex (cold path only).
#[derive(Debug, Default)]
pub struct ColdState {
    running: bool,
    /// Number of cold starts begun.
    started: u64,
    /// The last finished cold start: its number and failure, if it failed.
    finished: u64,
    failure: Option<ColdStartFailure>,
}

/// How long requests wait for capacity.
#[derive(Debug, Clone, Copy)]
pub struct WaitPolicy {
    /// With every endpoint busy, how long to wait for a slot before asking for another container.
    pub busy_wait: Duration,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        Self {
            busy_wait: Duration::from_millis(100),
        }
    }
}

/// Waits for a slot on `action`, cold-starting if needed, until `deadline`.
pub async fn acquire(
    tables: &Arc<Tables>,
    control: &Arc<dyn ControlPlane>,
    action: &ActionMeta,
    deadline: Instant,
    deadline_ms: u64,
    policy: WaitPolicy,
) -> Result<Slot, Rejection> {
    let pool = tables.endpoints.pool_or_create(&action.fqn);
    let busy_since = Instant::now();
    let mut waiting_for: Option<u64> = None;
    loop {
        let notified = pool.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // The action may have been updated or deleted while we waited.
        let revision = match tables.action(&action.fqn) {
            Some(a) => a.revision,
            None => return Err(Rejection::NotFound),
        };
        let pick = pool.try_acquire(revision);
        let mut wake_at = deadline;
        match pick {
            Pick::Ready(slot) => return Ok(slot),
            Pick::Marked(slot) => {
                control.report_traffic(slot.endpoint().container_id.clone());
                return Ok(slot);
            }
            Pick::Busy if busy_since.elapsed() < policy.busy_wait => {
                wake_at = wake_at.min(busy_since + policy.busy_wait);
            }
            Pick::Busy | Pick::Empty => {
                if let Some(n) = waiting_for
                    && let Some(failure) = finished_with_failure(&pool, n)
                {
                    return Err(failure.into());
                }
                waiting_for = Some(ensure_cold_start(
                    tables,
                    control,
                    &pool,
                    &action.fqn,
                    deadline_ms,
                    waiting_for,
                ));
            }
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(wake_at) => {
                if Instant::now() >= deadline {
                    return Err(Rejection::Unavailable { retry_after: Duration::from_secs(1) });
                }
            }
        }
    }
}

/// The failure of cold start number `n`, once it has finished.
fn finished_with_failure(pool: &Pool, n: u64) -> Option<ColdStartFailure> {
    let state = pool.cold.lock().ok()?;
    (state.finished >= n)
        .then(|| state.failure.clone())
        .flatten()
}

/// Joins the cold start under way, or begins one. Returns its number.
fn ensure_cold_start(
    tables: &Arc<Tables>,
    control: &Arc<dyn ControlPlane>,
    pool: &Arc<Pool>,
    fqn: &Arc<str>,
    deadline_ms: u64,
    waited_for: Option<u64>,
) -> u64 {
    let Ok(mut state) = pool.cold.lock() else {
        return 0;
    };
    // Join the one under way, or the one we already waited for if it has not finished yet.
    if state.running || waited_for.is_some_and(|n| n > state.finished) {
        return state.started;
    }
    state.running = true;
    state.started += 1;
    let n = state.started;
    drop(state);
    let call = control.cold_start(fqn.clone(), deadline_ms);
    let (tables, pool) = (tables.clone(), pool.clone());
    tokio::spawn(async move {
        let result = call.await;
        let failure = match result {
            Ok(spec) => {
                tables.endpoints.upsert(spec);
                None
            }
            Err(f) => Some(f),
        };
        if let Ok(mut state) = pool.cold.lock() {
            state.running = false;
            state.finished = n;
            state.failure = failure;
        }
        pool.changed.notify_waiters();
    });
    n
}
