//! The per-container circuit breaker: what a container's refusal or failure does to the requests
//! after it.
//!
//! A 429 opens the container until its `Retry-After` (and marks the action as refused, which the
//! replay policy in [`super::refusal`] remembers); a connection the container never answered opens
//! it for [`CONNECT_FAILURE_BACKOFF`] and tells the control plane, which removes it. Picking
//! ([`super::endpoints`]) skips open containers; when every container of an action is open a
//! cold start is asked for; after the deadline the next pick is the half-open probe, and its
//! answer opens the breaker again or leaves it closed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use whisk_vocab::now_ms;

use super::endpoints::{Endpoint, Slot};
use super::ports::ControlPlane;
use crate::config::CONNECT_FAILURE_BACKOFF;

impl Endpoint {
    /// Opens the breaker until `now + for_` (never shortening an open one).
    pub fn open_for(&self, for_: Duration) {
        let until = now_ms() + for_.as_millis() as u64;
        self.open_until_ms.fetch_max(until, Ordering::AcqRel);
    }
}

impl Slot {
    /// The container answered 429: its breaker opens for `retry_after`, and the action is
    /// remembered as refused.
    pub fn refused(&self, retry_after: Duration) {
        self.endpoint().open_for(retry_after);
        self.pool()
            .last_refusal_ms
            .fetch_max(now_ms(), Ordering::Relaxed);
    }

    /// The container did not answer at all (refused connection, reset before a response): out of
    /// rotation for a while, and the control plane hears of it.
    pub fn unreachable(&self, control: &dyn ControlPlane, reason: String) {
        let endpoint = self.endpoint();
        endpoint.open_for(CONNECT_FAILURE_BACKOFF);
        control.report_unusable(endpoint.container_id.clone(), reason);
    }
}
