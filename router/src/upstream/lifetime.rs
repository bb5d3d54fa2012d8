//! An activation outlives the request that started it when the caller stops waiting: the client
//! went away, or its blocking wait expired and the container answered 202. The activation still
//! runs in its container, so the namespace's concurrency and the container slot must stay counted
//! until it ends — otherwise a caller could exceed its concurrency limit by abandoning requests,
//! and the router would send more work to a container that is still busy.
//!
//! [`hold_until_end`] keeps the request's admission in a task that asks the container proxy when
//! the activation ends (`GET /_whisk/activations/{id}/end`), bounded by the action's time limit
//! plus [`END_GRACE`]. If the proxy cannot tell (it is gone, or the request never reached it),
//! the slots are released at once.

use std::time::Duration;

use super::client::ProxyClient;
use crate::config::END_GRACE;
use crate::domain::pipeline::Admission;

/// Holds `admission` until its activation ends in its container.
pub fn hold_until_end(client: ProxyClient, admission: Admission) {
    let endpoint = admission.slot.endpoint().clone();
    let id = admission.invocation.activation_id.clone();
    let limit = Duration::from_millis(admission.invocation.action.limits.timeout_ms as u64);
    tokio::spawn(async move {
        let ended = client.await_end(&endpoint, &id, limit + END_GRACE).await;
        if !ended {
            tracing::warn!(activation_id = %id, "activation still running past its time limit; its slots are released");
        }
        drop(admission);
    });
}
