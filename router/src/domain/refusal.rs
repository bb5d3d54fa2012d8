//! What happens on a 429: a container proxy refused an invoke because its concurrency limit and
//! its overflow queue are both full.
//!
//! Two things follow, in this order, and both are decided here:
//! 1. **The breaker** ([`Slot::refused`], in `breaker.rs`): the container is out of rotation
//!    until its `Retry-After`, so later requests go to other containers or a cold start.
//! 2. **The request that met the refusal** moves to another container or a cold start within its
//!    deadline — if the router still has what it takes to send it again (its body). Requests the
//!    router runs itself (non-blocking invokes, sequence components) always have it; a forwarded
//!    blocking invoke without a body has nothing to keep; one with a body has it only when the
//!    router kept it, which [`keeps_body`] decides from the operator's [`ReplayPolicy`]. The replay
//!    itself is run by `upstream::invoke::replay`; without the body the container's 429 (with its
//!    `Retry-After`) goes on to the client.
//!
//! A single router never overfills a container: its slots mirror the proxy's limit and are
//! released after the proxy's. Several routers sharing containers can, and so can traffic that
//! bypasses the router. Keeping a body costs one more ext_proc message each way (bench scenario k:
//! about 0.1 ms of p50 and 0.1 ms of Envoy CPU per request on 2 vCPUs), so the policies are:
//! - `auto` (the default): keep bodies while the control plane reports more than one router, and
//!   for an action refused in the last [`REFUSAL_MEMORY`] (traffic from elsewhere);
//! - `always`: keep every body;
//! - `never`: a forwarded blocking invoke with a body passes the container's 429 on.

use std::time::Duration;

use super::endpoints::Slot;
use crate::config::{DEFAULT_RETRY_AFTER, MAX_KEPT_BODY, REFUSAL_MEMORY, ReplayPolicy};

/// What becomes of a request its container refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The router has the request: send it elsewhere.
    Replay,
    /// The router does not have it: the 429 goes on to the client.
    PassOn,
}

/// A container answered 429 to the request holding `slot`: open its breaker, then say whether
/// the request moves on (`kept`: the router can send it again).
pub fn refused(slot: &Slot, retry_after: Option<Duration>, kept: bool) -> Refusal {
    slot.refused(retry_after.unwrap_or(DEFAULT_RETRY_AFTER));
    if kept {
        Refusal::Replay
    } else {
        Refusal::PassOn
    }
}

/// Whether to keep the body of a forwarded blocking invoke of `body_len` bytes, given whether
/// other routers share the containers and when a container of the action last refused (epoch ms,
/// 0 for never).
pub fn keeps_body(
    policy: ReplayPolicy,
    body_len: Option<u64>,
    shared: bool,
    last_refusal_ms: u64,
    now_ms: u64,
) -> bool {
    if body_len.is_none_or(|len| len > MAX_KEPT_BODY) {
        return false;
    }
    match policy {
        ReplayPolicy::Always => true,
        ReplayPolicy::Never => false,
        ReplayPolicy::Auto => {
            shared
                || (last_refusal_ms != 0
                    && now_ms.saturating_sub(last_refusal_ms) < REFUSAL_MEMORY.as_millis() as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Option<u64> = Some(10);

    #[test]
    fn always_and_never_ignore_the_situation() {
        assert!(keeps_body(ReplayPolicy::Always, SMALL, false, 0, 1_000));
        assert!(!keeps_body(ReplayPolicy::Never, SMALL, true, 999, 1_000));
    }

    #[test]
    fn auto_keeps_bodies_when_containers_are_shared() {
        assert!(keeps_body(ReplayPolicy::Auto, SMALL, true, 0, 1_000));
        assert!(!keeps_body(ReplayPolicy::Auto, SMALL, false, 0, 1_000));
    }

    #[test]
    fn auto_remembers_a_refusal_for_a_minute() {
        let now = 10_000_000;
        assert!(keeps_body(
            ReplayPolicy::Auto,
            SMALL,
            false,
            now - 1_000,
            now
        ));
        let long_ago = now - REFUSAL_MEMORY.as_millis() as u64;
        assert!(!keeps_body(ReplayPolicy::Auto, SMALL, false, long_ago, now));
    }

    #[test]
    fn large_or_unsized_bodies_are_never_kept() {
        assert!(!keeps_body(
            ReplayPolicy::Always,
            Some(MAX_KEPT_BODY + 1),
            true,
            0,
            1
        ));
        assert!(!keeps_body(ReplayPolicy::Always, None, true, 0, 1));
        assert!(keeps_body(
            ReplayPolicy::Always,
            Some(MAX_KEPT_BODY),
            true,
            0,
            1
        ));
    }
}
