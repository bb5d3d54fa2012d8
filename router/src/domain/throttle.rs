//! Whether a namespace is over its limits: invocations per minute and concurrent invocations.
//!
//! The rate is a sliding minute ([`MinuteWindow`], `minute_window.rs`): no 60-second window admits
//! more than the limit, and a refusal's `Retry-After` is when a retry would pass. OpenWhisk
//! reports a count in the clock minute (refused requests included), so a fixed-window counter
//! beside it feeds the message text. Concurrency is an atomic counter taken
//! at admission and given back when the [`ConcurrencyGuard`] drops, whatever ends the request
//! (response, abort, reset, router error): a leaked slot would be a bug, so only `Drop` releases.
//! Its `Retry-After` is the namespace's recent activation time.
//!
//! With several routers, each namespace's limits are shared (`control/usage.rs`): a router admits
//! up to the [`Share`] the control plane gave it for the namespace, while that share is valid;
//! without one (a namespace idle everywhere, or the control plane unreachable for longer than a
//! share lasts) it admits up to the limits divided by the number of routers, OpenWhisk's rule.
//! A namespace's 429 texts keep its real limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use whisk_vocab::now_ms;

use super::minute_window::MinuteWindow;
use super::rejection::Rejection;

/// OpenWhisk's defaults (ansible `limits:`), used until the control plane pushes the system's own
/// (`TableUpdate.default_limits`).
pub const DEFAULT_INVOCATIONS_PER_MINUTE: u32 = 60;
pub const DEFAULT_CONCURRENT_INVOCATIONS: u32 = 30;
pub const DEFAULT_MAX_PAYLOAD_BYTES: u64 = 1024 * 1024;

/// The effective limits of one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceLimits {
    pub invocations_per_minute: u32,
    pub concurrent_invocations: u32,
    pub max_payload_bytes: u64,
}

impl Default for NamespaceLimits {
    fn default() -> Self {
        Self {
            invocations_per_minute: DEFAULT_INVOCATIONS_PER_MINUTE,
            concurrent_invocations: DEFAULT_CONCURRENT_INVOCATIONS,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }
}

/// What one namespace sets of its limits; the rest are the system defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    pub invocations_per_minute: Option<u32>,
    pub concurrent_invocations: Option<u32>,
    pub max_payload_bytes: Option<u64>,
}

impl LimitOverrides {
    /// The effective limits under `defaults`.
    pub fn resolve(&self, defaults: &NamespaceLimits) -> NamespaceLimits {
        NamespaceLimits {
            invocations_per_minute: self
                .invocations_per_minute
                .unwrap_or(defaults.invocations_per_minute),
            concurrent_invocations: self
                .concurrent_invocations
                .unwrap_or(defaults.concurrent_invocations),
            max_payload_bytes: self.max_payload_bytes.unwrap_or(defaults.max_payload_bytes),
        }
    }
}

/// This router's share of a namespace's limits, valid until `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub invocations_per_minute: u32,
    pub concurrent_invocations: u32,
    pub until_ms: u64,
}

/// What this router used of a namespace, for its usage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub admitted_last_minute: u32,
    /// Admitted or refused since the previous report.
    pub wanted: u32,
    pub in_flight: u32,
}

/// Limits plus live counters of one namespace.
pub struct NamespaceState {
    /// This router's share of the limits (several routers), if the control plane gave one.
    share: arc_swap::ArcSwapOption<Share>,
    /// Admissions asked for since the last usage report.
    wanted: AtomicU32,
    limits: ArcSwap<NamespaceLimits>,
    /// Admissions over the last minute.
    rate: MinuteWindow,
    /// Clock minute in the high 32 bits, requests seen in it in the low 32.
    window: AtomicU64,
    in_flight: AtomicU32,
    /// Exponentially weighted mean time an admitted request held its slot, in microseconds.
    mean_hold_us: AtomicU64,
}

impl NamespaceState {
    pub fn new(limits: NamespaceLimits) -> Self {
        Self {
            share: arc_swap::ArcSwapOption::empty(),
            wanted: AtomicU32::new(0),
            rate: MinuteWindow::default(),
            limits: ArcSwap::from_pointee(limits),
            window: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            mean_hold_us: AtomicU64::new(1_000_000),
        }
    }

    pub fn limits(&self) -> NamespaceLimits {
        **self.limits.load()
    }

    /// Changes the limits in place, keeping the in-flight count.
    pub fn set_limits(&self, limits: NamespaceLimits) {
        // A new rate starts afresh.
        if self.limits().invocations_per_minute != limits.invocations_per_minute {
            self.rate.reset();
        }
        self.limits.store(Arc::new(limits));
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Counts this request in the current clock minute (rejected ones count too, as in
    /// OpenWhisk) and returns the count.
    fn count_in_window(&self) -> u64 {
        let minute = now_ms() / 60_000;
        let mut cur = self.window.load(Ordering::Relaxed);
        loop {
            let (m, c) = (cur >> 32, cur & 0xffff_ffff);
            let next = if m == minute & 0xffff_ffff {
                (m << 32) | (c + 1).min(0xffff_ffff)
            } else {
                ((minute & 0xffff_ffff) << 32) | 1
            };
            match self
                .window
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return next & 0xffff_ffff,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Sets (or with `None` clears) this router's share of the limits.
    pub fn set_share(&self, share: Option<Share>) {
        self.share.store(share.map(Arc::new));
    }

    pub fn share(&self) -> Option<Share> {
        self.share.load().as_deref().copied()
    }

    /// What this router may admit now (rate, concurrency), one of `routers`: its valid share,
    /// else an equal part of the limits.
    fn allowance(&self, limits: &NamespaceLimits, routers: u32, now: u64) -> (u32, u32) {
        match self.share() {
            Some(s) if s.until_ms > now => (
                s.invocations_per_minute.min(limits.invocations_per_minute),
                s.concurrent_invocations.min(limits.concurrent_invocations),
            ),
            _ => {
                let part = |v: u32| v.div_ceil(routers.max(1));
                (
                    part(limits.invocations_per_minute),
                    part(limits.concurrent_invocations),
                )
            }
        }
    }

    /// This router's use of the namespace since the last call (which resets `wanted`); `None`
    /// when it is idle here.
    pub fn usage(&self) -> Option<Usage> {
        let u = Usage {
            admitted_last_minute: self.rate.count(now_ms()),
            wanted: self.wanted.swap(0, Ordering::AcqRel),
            in_flight: self.in_flight(),
        };
        (u.admitted_last_minute > 0 || u.wanted > 0 || u.in_flight > 0).then_some(u)
    }

    /// Charges one invocation: the rate first, then a concurrency slot. `routers`: how many
    /// routers share the namespace's limits.
    pub fn admit(self: &Arc<Self>, routers: u32) -> Result<ConcurrencyGuard, Rejection> {
        let limits = self.limits();
        let count = self.count_in_window();
        self.wanted.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        let (rate, concurrency) = self.allowance(&limits, routers, now);
        if let Err(retry_after) = self.rate.try_admit(now, rate) {
            return Err(Rejection::TooManyRequests {
                count,
                allowed: limits.invocations_per_minute,
                retry_after,
            });
        }
        let allowed = limits.concurrent_invocations;
        let prev = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if prev >= concurrency {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Rejection::TooManyConcurrent {
                count: prev,
                allowed,
                retry_after: Duration::from_micros(self.mean_hold_us.load(Ordering::Relaxed)),
            });
        }
        Ok(ConcurrencyGuard {
            ns: self.clone(),
            since: Instant::now(),
        })
    }
}

/// One concurrent invocation of a namespace, released on drop.
pub struct ConcurrencyGuard {
    ns: Arc<NamespaceState>,
    since: Instant,
}

impl Drop for ConcurrencyGuard {
    fn drop(&mut self) {
        self.ns.in_flight.fetch_sub(1, Ordering::AcqRel);
        let held = self.since.elapsed().as_micros().min(u64::MAX as u128) as u64;
        let old = self.ns.mean_hold_us.load(Ordering::Relaxed);
        // EWMA with weight 1/8; races only lose a sample.
        let new = old - old / 8 + held / 8;
        self.ns.mean_hold_us.store(new.max(1), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(rate: u32, conc: u32) -> Arc<NamespaceState> {
        Arc::new(NamespaceState::new(NamespaceLimits {
            invocations_per_minute: rate,
            concurrent_invocations: conc,
            max_payload_bytes: 1024,
        }))
    }

    #[test]
    fn rate_limit_rejects_past_the_allowance_with_retry_after() {
        let n = ns(3, 100);
        let guards: Vec<_> = (0..3).map(|_| n.admit(1).unwrap()).collect();
        drop(guards);
        match n.admit(1) {
            Err(Rejection::TooManyRequests {
                count,
                allowed,
                retry_after,
            }) => {
                assert_eq!(allowed, 3);
                assert!(count >= 4 || count == 1, "count {count}");
                assert!(retry_after > Duration::ZERO);
            }
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => panic!("fourth call admitted"),
        }
    }

    #[test]
    fn concurrency_limit_and_release_on_drop() {
        let n = ns(1000, 2);
        let a = n.admit(1).unwrap();
        let b = n.admit(1).unwrap();
        assert_eq!(n.in_flight(), 2);
        let r = n.admit(1);
        assert!(matches!(
            r,
            Err(Rejection::TooManyConcurrent {
                count: 2,
                allowed: 2,
                ..
            })
        ));
        assert_eq!(n.in_flight(), 2);
        drop(a);
        assert_eq!(n.in_flight(), 1);
        let c = n.admit(1).unwrap();
        drop((b, c));
        assert_eq!(n.in_flight(), 0);
    }

    #[test]
    fn zero_blocks_the_namespace() {
        let n = ns(0, 10);
        assert!(matches!(n.admit(1), Err(Rejection::TooManyRequests { .. })));
        let m = ns(10, 0);
        assert!(matches!(
            m.admit(1),
            Err(Rejection::TooManyConcurrent { .. })
        ));
        assert_eq!(m.in_flight(), 0);
    }

    #[test]
    fn limits_change_in_place() {
        let n = ns(1000, 1);
        let g = n.admit(1).unwrap();
        n.set_limits(NamespaceLimits {
            invocations_per_minute: 1000,
            concurrent_invocations: 2,
            max_payload_bytes: 1,
        });
        assert_eq!(n.in_flight(), 1);
        let h = n.admit(1).unwrap();
        drop((g, h));
        assert_eq!(n.in_flight(), 0);
    }

    #[test]
    fn a_router_admits_its_share_or_an_equal_part_without_one() {
        let n = ns(100, 4);
        // Three routers, no share yet: an equal part (rounded up).
        let taken: Vec<_> = (0..4).map(|_| n.admit(3)).collect();
        assert!(taken[..2].iter().all(Result::is_ok));
        assert!(matches!(
            taken[2],
            Err(Rejection::TooManyConcurrent { allowed: 4, .. })
        ));
        drop(taken);
        // A share from the control plane: exactly that, while it is valid.
        n.set_share(Some(Share {
            invocations_per_minute: 100,
            concurrent_invocations: 1,
            until_ms: now_ms() + 60_000,
        }));
        let first = n.admit(3).unwrap();
        assert!(matches!(
            n.admit(3),
            Err(Rejection::TooManyConcurrent { .. })
        ));
        drop(first);
        // Every call passed the rate (the refusals were for concurrency).
        let u = n.usage().unwrap();
        assert_eq!((u.admitted_last_minute, u.wanted, u.in_flight), (6, 6, 0));
        assert_eq!(
            n.usage().unwrap().wanted,
            0,
            "wanted counts since the last report"
        );
        // An expired share falls back to the equal part.
        n.set_share(Some(Share {
            invocations_per_minute: 0,
            concurrent_invocations: 0,
            until_ms: now_ms() - 1,
        }));
        assert!(n.admit(3).is_ok());
    }
}
