//! Calling a container proxy from the router until it answers, instead of letting Envoy forward
//! the request: for activations the router runs itself (`background`, `sequence`) and for a
//! forwarded blocking invoke whose container answered 429, which [`replay`] sends again when the
//! router kept it (see `domain::refusal`).
//!
//! Because the router holds the request here, a container that answers 429 (or refuses the
//! connection) does not fail it: [`call_until_answered`] opens that container's breaker and moves
//! the activation to another container or a cold start, until its deadline.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use whisk_vocab::now_ms;

use super::KeptRequest;
use super::client::{CallError, ProxyAnswer, ProxyClient};
use crate::config::{REPLAY_GRACE, RUN_GRACE};
use crate::domain::endpoints::Slot;
use crate::domain::invocation::Invocation;
use crate::domain::pipeline::{Admission, Router};
use crate::domain::refusal;
use crate::domain::rejection::Rejection;

/// Why an activation the router ran got no answer.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("The action did not produce a response in time.")]
    TimedOut,
    /// No container could take it before its deadline.
    #[error("{0}")]
    NoCapacity(#[from] Rejection),
}

/// How long the router waits for an activation it runs: its time limit plus a grace.
pub(super) fn run_limit(inv: &Invocation) -> Duration {
    Duration::from_millis(inv.action.limits.timeout_ms.max(100) as u64)
}

/// Calls the container behind `slot` and, when it refuses (429, connection failure), opens its
/// breaker and moves to another container or a cold start — until `deadline`.
pub async fn call_until_answered(
    router: &Router,
    client: &ProxyClient,
    slot: &mut Slot,
    inv: &Invocation,
    request: &KeptRequest,
    body: &Bytes,
    deadline: Instant,
) -> Result<ProxyAnswer, InvokeError> {
    let limit = run_limit(inv) + RUN_GRACE + Duration::from_secs(5);
    loop {
        let endpoint = slot.endpoint().clone();
        match client
            .call(&endpoint, inv, request, body.clone(), limit)
            .await
        {
            Ok(a) if a.status == 429 => {
                refusal::refused(slot, a.retry_after, true);
            }
            Ok(a) => return Ok(a),
            Err(CallError::Unreachable(reason)) => {
                slot.unreachable(router.control().as_ref(), reason);
            }
            Err(CallError::Timeout) => return Err(InvokeError::TimedOut),
        }
        *slot = router.reacquire(inv, deadline).await?;
    }
}

/// What became of a replayed request.
#[derive(Debug)]
pub enum ReplayOutcome {
    /// Another container answered.
    Answered(ProxyAnswer),
    /// No container could take it in time: the refusal stands.
    NoCapacity,
    /// A container took it but did not answer before the caller's wait ended.
    WaitExpired,
}

impl ReplayOutcome {
    /// A metric label.
    pub fn label(&self) -> &'static str {
        match self {
            ReplayOutcome::Answered(_) => "answered",
            ReplayOutcome::NoCapacity => "no_capacity",
            ReplayOutcome::WaitExpired => "wait_expired",
        }
    }
}

/// How long a replay of `admission` may take; `None` once the caller stopped waiting. The caller
/// holds Envoy for this plus [`REPLAY_GRACE`].
pub fn replay_wait(admission: &Admission) -> Option<Duration> {
    let left = admission.invocation.deadline_ms.checked_sub(now_ms())?;
    Some(Duration::from_millis(left))
}

/// Sends a refused request to another container or a cold start within `wait`, and returns what
/// that container said.
pub async fn replay(
    router: &Router,
    client: &ProxyClient,
    mut admission: Admission,
    mut request: KeptRequest,
    wait: Duration,
) -> ReplayOutcome {
    let deadline = Instant::now() + wait;
    let body = Bytes::from(std::mem::take(&mut request.body));
    let Admission {
        invocation, slot, ..
    } = &mut admission;
    let outcome = tokio::time::timeout(wait + REPLAY_GRACE - Duration::from_secs(1), async {
        // `slot` still holds the refusing container (its breaker is open): take another.
        *slot = router.reacquire(invocation, deadline).await.ok()?;
        call_until_answered(router, client, slot, invocation, &request, &body, deadline)
            .await
            .ok()
    })
    .await;
    match outcome {
        Ok(Some(answer)) => ReplayOutcome::Answered(answer),
        Ok(None) => ReplayOutcome::NoCapacity,
        Err(_) => ReplayOutcome::WaitExpired,
    }
}
