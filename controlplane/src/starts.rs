//! Cold starts in flight, apart from how one is done: why a start fails ([`ColdStartError`], with
//! its metrics label), the shared future every concurrent caller for one action revision joins
//! ([`Inflight`]), and the gate that bounds concurrent starts and dedupes them ([`StartGate`]).
//!
//! It is a leaf so that the plane (which owns the gate), the cold-start logic (which drives it)
//! and the metrics (which count outcomes) can all name these types without naming each other.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::{BoxFuture, Shared};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::pool::Endpoint;

/// A start shared by every concurrent caller for the same action revision.
pub type Inflight = Shared<BoxFuture<'static, Result<Endpoint, ColdStartError>>>;

/// Why a cold start did not produce an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColdStartError {
    #[error("{0}")]
    UnknownAction(String),
    #[error("{0}")]
    StartFailed(String),
    #[error("{message}")]
    CapacityExhausted {
        message: String,
        retry_after_ms: u32,
    },
    #[error("the deadline passed before a container was ready")]
    DeadlineExceeded,
    /// The action's code failed to initialise: OpenWhisk's developer-error text, the lines it
    /// printed while initialising, and how long the init took.
    #[error("{message}")]
    InitFailed {
        message: String,
        logs: Vec<String>,
        duration_ms: u64,
    },
    /// The action's kind is deprecated: it may be read and deleted, not invoked.
    #[error("{0}")]
    KindDeprecated(String),
}

impl ColdStartError {
    /// The `outcome` label of a failed start.
    pub fn label(&self) -> &'static str {
        match self {
            ColdStartError::UnknownAction(_) => "unknown_action",
            ColdStartError::StartFailed(_) => "start_failed",
            ColdStartError::CapacityExhausted { .. } => "capacity_exhausted",
            ColdStartError::DeadlineExceeded => "deadline_exceeded",
            ColdStartError::InitFailed { .. } => "init_failed",
            ColdStartError::KindDeprecated(_) => "kind_deprecated",
        }
    }
}

/// The `outcome` label of a start: `success` or the error's label.
pub fn outcome_label<T>(result: &Result<T, ColdStartError>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(e) => e.label(),
    }
}

/// Bounds concurrent starts and keeps the one start in flight per key.
pub struct StartGate {
    permits: Semaphore,
    inflight: Mutex<HashMap<String, Inflight>>,
}

impl StartGate {
    /// At most `concurrent` starts at once (at least one).
    pub fn new(concurrent: usize) -> Self {
        Self {
            permits: Semaphore::new(concurrent.max(1)),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a start slot (`None` once the gate is closed).
    pub async fn permit(&self) -> Option<SemaphorePermit<'_>> {
        self.permits.acquire().await.ok()
    }

    /// The start in flight for `key`, or the one `begin` makes (then kept until
    /// [`StartGate::finished`]).
    pub fn join_or_begin(&self, key: &str, begin: impl FnOnce() -> Inflight) -> Inflight {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        match inflight.get(key) {
            Some(f) => f.clone(),
            None => {
                let shared = begin();
                inflight.insert(key.to_string(), shared.clone());
                shared
            }
        }
    }

    /// The start for `key` is over: later callers begin a new one.
    pub fn finished(&self, key: &str) {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn concurrent_callers_share_one_start_until_it_finishes() {
        let gate = StartGate::new(0);
        let mut begun = 0;
        let mut begin = || {
            begun += 1;
            let f: BoxFuture<'static, Result<Endpoint, ColdStartError>> =
                async { Err(ColdStartError::DeadlineExceeded) }.boxed();
            f.shared()
        };
        let a = gate.join_or_begin("k", &mut begin);
        let b = gate.join_or_begin("k", &mut begin);
        assert_eq!(a.await, b.await);
        gate.finished("k");
        drop(gate.join_or_begin("k", &mut begin));
        assert_eq!(begun, 2);
        assert!(gate.permit().await.is_some(), "at least one slot");
        assert_eq!(
            outcome_label::<()>(&Err(ColdStartError::DeadlineExceeded)),
            "deadline_exceeded"
        );
        assert_eq!(outcome_label(&Ok::<(), ColdStartError>(())), "success");
    }
}
