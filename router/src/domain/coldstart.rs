//! Getting a slot when no warm endpoint has one: wait briefly, or ask the control plane.
//!
//! A request that finds every endpoint busy waits up to `busy_wait` for a slot to free; a request
//! that finds no endpoint (or waited long enough) makes sure a cold start is under way. Cold starts
//! are single-flight per action and caller namespace ([`ColdStarts`], as a container serves one
//! namespace): one `ColdStart` call no matter how many
//! requests wait, run on its own task so that a client that gives up does not cancel it for the
//! others. Everybody waits on the pool's `Notify` (woken by freed slots, pushed endpoints and the
//! end of a cold start) until it gets a slot or its deadline passes; only then is the answer 503
//! with a `Retry-After`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use super::endpoints::{Pick, Pool, Slot};
use super::ports::{ColdStartFailure, ControlPlane};
use super::rejection::Rejection;
use super::tables::{ActionMeta, Tables};

/// One action's cold starts: the one under way, and how the last one ended.
#[derive(Debug, Default)]
struct Flight {
    running: bool,
    /// Number of cold starts begun.
    started: u64,
    /// The last finished cold start: its number and failure, if it failed.
    finished: u64,
    failure: Option<ColdStartFailure>,
}

/// An action's fully qualified name and an invoking namespace.
type FlightKey = (Arc<str>, Arc<str>);

/// Cold starts under way, per action and invoking namespace (touched only on the cold path).
#[derive(Default)]
pub struct ColdStarts {
    flights: DashMap<FlightKey, Arc<Mutex<Flight>>>,
}

impl ColdStarts {
    fn flight(&self, fqn: &Arc<str>, namespace: &Arc<str>) -> Arc<Mutex<Flight>> {
        self.flights
            .entry((fqn.clone(), namespace.clone()))
            .or_default()
            .value()
            .clone()
    }
}

/// What waiting for a slot needs to know.
pub struct Wait<'a> {
    pub tables: &'a Arc<Tables>,
    pub control: &'a Arc<dyn ControlPlane>,
    pub cold: &'a ColdStarts,
    /// With every endpoint busy, how long to wait before asking for another container.
    pub busy_wait: Duration,
}

impl Wait<'_> {
    /// Waits for a slot on `action` for a caller of `namespace`, cold-starting if needed, until
    /// `deadline`.
    pub async fn acquire(
        &self,
        action: &ActionMeta,
        namespace: &Arc<str>,
        deadline: Instant,
        deadline_ms: u64,
    ) -> Result<Slot, Rejection> {
        let pool = self.tables.endpoints.pool_or_create(&action.fqn);
        let flight = self.cold.flight(&action.fqn, namespace);
        let busy_since = Instant::now();
        let mut waiting_for: Option<u64> = None;
        loop {
            let notified = pool.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // The action may have been updated or deleted while we waited.
            let revision = match self.tables.action(&action.fqn) {
                Some(a) => a.revision,
                None => return Err(Rejection::NotFound),
            };
            let mut wake_at = deadline;
            match pool.try_acquire(revision, namespace) {
                Pick::Ready(slot) => return Ok(slot),
                Pick::Marked(slot) => {
                    self.control
                        .report_traffic(slot.endpoint().container_id.clone());
                    return Ok(slot);
                }
                Pick::Busy if busy_since.elapsed() < self.busy_wait => {
                    wake_at = wake_at.min(busy_since + self.busy_wait);
                }
                Pick::Busy | Pick::Empty => {
                    if let Some(n) = waiting_for
                        && let Some(failure) = finished_with_failure(&flight, n)
                    {
                        return Err(failure.into());
                    }
                    waiting_for = Some(self.ensure_cold_start(
                        &flight,
                        &pool,
                        &action.fqn,
                        namespace,
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

    /// Joins the cold start under way, or begins one. Returns its number.
    fn ensure_cold_start(
        &self,
        flight: &Arc<Mutex<Flight>>,
        pool: &Arc<Pool>,
        fqn: &Arc<str>,
        namespace: &Arc<str>,
        deadline_ms: u64,
        waited_for: Option<u64>,
    ) -> u64 {
        let Ok(mut state) = flight.lock() else {
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
        let call = self
            .control
            .cold_start(fqn.clone(), namespace.clone(), deadline_ms);
        let (tables, pool, flight) = (self.tables.clone(), pool.clone(), flight.clone());
        tokio::spawn(async move {
            let failure = match call.await {
                Ok(spec) => {
                    tables.upsert_endpoint(spec);
                    None
                }
                Err(f) => Some(f),
            };
            if let Ok(mut state) = flight.lock() {
                state.running = false;
                state.finished = n;
                state.failure = failure;
            }
            pool.changed.notify_waiters();
        });
        n
    }
}

/// The failure of cold start number `n`, once it has finished.
fn finished_with_failure(flight: &Mutex<Flight>, n: u64) -> Option<ColdStartFailure> {
    let state = flight.lock().ok()?;
    (state.finished >= n)
        .then(|| state.failure.clone())
        .flatten()
}
