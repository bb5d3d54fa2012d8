//! What a container's 429 does to the request that met it.
//!
//! A container proxy refuses an invoke (429 + `Retry-After`) only when its concurrency limit and
//! its overflow queue are both full. A single router never causes that: its slots mirror the
//! proxy's limit and are released after the proxy's. Several routers sharing containers can, and
//! so can traffic that bypasses the router. The breaker ([`super::endpoints`]) keeps later
//! requests away from the refusing container. The request that met the refusal is moved to
//! another container or a cold start, within its deadline, but only if the router still has its
//! body. This module decides when the router keeps the bodies of forwarded blocking invokes.
//!
//! Keeping a body costs one more ext_proc message each way for every invoke with a body (bench
//! scenario k: about 0.15 ms of p50 and 0.1 ms of Envoy CPU per request on 2 vCPUs). Invokes
//! without a body are always replayable, because there is nothing to keep. The operator chooses
//! with [`ReplayPolicy`]:
//! - `auto` (the default): keep bodies while the control plane reports more than one router
//!   (refusals are possible), and for an action refused in the last [`REFUSAL_MEMORY`] (traffic
//!   from elsewhere). A lone router pays nothing;
//! - `always`: keep every body, so no client sees a 429 while capacity can be found in time,
//!   whatever else sends the containers traffic;
//! - `never`: a forwarded blocking invoke with a body passes the container's 429 on.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long a refusal makes the `auto` policy keep the action's bodies.
pub const REFUSAL_MEMORY: Duration = Duration::from_secs(60);

/// When the router keeps a forwarded blocking invoke's body to replay it after a 429.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplayPolicy {
    #[default]
    Auto,
    Always,
    Never,
}

impl ReplayPolicy {
    /// Whether to keep the body of an invoke, given whether other routers share the containers
    /// and when a container of the action last refused (epoch ms, 0 for never).
    pub fn keeps_body(self, shared: bool, last_refusal_ms: u64, now_ms: u64) -> bool {
        match self {
            ReplayPolicy::Always => true,
            ReplayPolicy::Never => false,
            ReplayPolicy::Auto => {
                shared
                    || (last_refusal_ms != 0
                        && now_ms.saturating_sub(last_refusal_ms)
                            < REFUSAL_MEMORY.as_millis() as u64)
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown replay policy '{0}': expected auto, always or never")]
pub struct UnknownPolicy(String);

impl FromStr for ReplayPolicy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ReplayPolicy::Auto),
            "always" => Ok(ReplayPolicy::Always),
            "never" => Ok(ReplayPolicy::Never),
            other => Err(UnknownPolicy(other.to_owned())),
        }
    }
}

impl fmt::Display for ReplayPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplayPolicy::Auto => "auto",
            ReplayPolicy::Always => "always",
            ReplayPolicy::Never => "never",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_and_never_ignore_the_situation() {
        assert!(ReplayPolicy::Always.keeps_body(false, 0, 1_000));
        assert!(!ReplayPolicy::Never.keeps_body(true, 999, 1_000));
    }

    #[test]
    fn auto_keeps_bodies_when_containers_are_shared() {
        assert!(ReplayPolicy::Auto.keeps_body(true, 0, 1_000));
        assert!(!ReplayPolicy::Auto.keeps_body(false, 0, 1_000));
    }

    #[test]
    fn auto_remembers_a_refusal_for_a_minute() {
        let p = ReplayPolicy::Auto;
        let now = 10_000_000;
        assert!(p.keeps_body(false, now - 1_000, now));
        assert!(!p.keeps_body(false, now - REFUSAL_MEMORY.as_millis() as u64, now));
    }

    #[test]
    fn parses_what_it_prints() {
        for p in [
            ReplayPolicy::Auto,
            ReplayPolicy::Always,
            ReplayPolicy::Never,
        ] {
            assert_eq!(p.to_string().parse::<ReplayPolicy>().unwrap(), p);
        }
        assert!("sometimes".parse::<ReplayPolicy>().is_err());
    }
}
