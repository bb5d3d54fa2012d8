//! Shared limits, the control plane's half: a namespace's limits hold across every gateway, not
//! per router (OpenWhisk divides them by the number of controllers, which is wrong whenever load
//! is uneven; three routers enforcing the whole limit each let a namespace through at three
//! times it).
//!
//! Every router reports about once a second what it used of each active namespace
//! (`ReportUsage`); the answer is its share of every namespace active anywhere. Shares are
//! granted so that they never sum past a namespace's limits: when a router reports, every other
//! router is taken to hold the larger of what it used (admissions in its last minute, invokes in
//! flight) and the share it was last granted — or, if it has none yet for the namespace, the
//! equal part it falls back to (the limits divided by the number of routers), as does every
//! subscribed router that has not reported yet. The reporter keeps what it used and gets a part
//! of what is left, in proportion to its demand (asked for since its last report, plus one so an
//! idle router keeps a foothold); the rest waits for the others' reports. Each router enforces
//! its share on its own (`router/src/domain/throttle.rs`), so no request waits on this.
//!
//! The bound: the gateways together admit at most the limit. Beyond it only while a router
//! cannot report (its share lapses after [`VALID_FOR`] into the equal part, and it stops counting
//! here after [`LIVE_FOR`]): by at most that equal part per silent router.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A router that has not reported for this long is gone: its usage no longer counts.
pub const LIVE_FOR: Duration = Duration::from_secs(3);
/// How long a router may keep applying its shares without a newer answer.
pub const VALID_FOR: Duration = Duration::from_secs(5);

/// What one router used of one namespace, as of its last report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Used {
    pub admitted_last_minute: u32,
    pub wanted: u32,
    pub in_flight: u32,
}

/// One router's share of one namespace's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub invocations_per_minute: u32,
    pub concurrent_invocations: u32,
}

#[derive(Debug)]
struct RouterUsage {
    at: Instant,
    used: HashMap<String, Used>,
    /// The shares last granted to it.
    granted: HashMap<String, Share>,
}

/// What the routers told and were granted.
#[derive(Debug, Default)]
pub struct Quotas {
    routers: Mutex<HashMap<String, RouterUsage>>,
}

/// Everything [`share_of`] needs to know about one namespace.
struct Namespace<'a> {
    /// Every live router's use and last grant.
    routers: Vec<(&'a str, Used, Option<Share>)>,
    /// Subscribed routers that have not reported yet (they admit an equal part).
    unknown: u32,
    /// How many routers there are (the equal part's divisor).
    count: u32,
    rate: u32,
    concurrency: u32,
}

impl Quotas {
    /// Records `router`'s report and returns its share of every namespace active on any live
    /// router. `limits` gives a namespace's (invocations per minute, concurrent invocations);
    /// `subscribed` is how many routers are subscribed.
    pub fn report(
        &self,
        router: &str,
        used: HashMap<String, Used>,
        limits: impl Fn(&str) -> (u32, u32),
        subscribed: u32,
    ) -> Vec<(String, Share)> {
        let mut routers = self.routers.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let granted = routers
            .remove(router)
            .map(|r| r.granted)
            .unwrap_or_default();
        routers.retain(|_, r| now.duration_since(r.at) < LIVE_FOR);
        routers.insert(
            router.to_owned(),
            RouterUsage {
                at: now,
                used,
                granted,
            },
        );
        let mut active: Vec<String> = routers
            .values()
            .flat_map(|r| r.used.keys().cloned())
            .collect();
        active.sort_unstable();
        active.dedup();
        let live = routers.len() as u32;
        let count = subscribed.max(live).max(1);
        let mut shares = Vec::with_capacity(active.len());
        for ns in active {
            let (rate, concurrency) = limits(&ns);
            let view = Namespace {
                routers: routers
                    .iter()
                    .map(|(id, r)| {
                        let used = r.used.get(&ns).copied().unwrap_or_default();
                        (id.as_str(), used, r.granted.get(&ns).copied())
                    })
                    .collect(),
                unknown: count - live,
                count,
                rate,
                concurrency,
            };
            let share = share_of(router, &view);
            shares.push((ns, share));
        }
        if let Some(r) = routers.get_mut(router) {
            r.granted = shares.iter().cloned().collect();
        }
        shares
    }
}

/// `router`'s share of one namespace (see the module comment).
fn share_of(router: &str, ns: &Namespace<'_>) -> Share {
    let weight = |u: &Used| u64::from(u.wanted) + 1;
    let total_weight: u64 = ns.routers.iter().map(|(_, u, _)| weight(u)).sum();
    let mine = ns
        .routers
        .iter()
        .find(|(id, _, _)| *id == router)
        .map(|(_, u, _)| *u)
        .unwrap_or_default();
    let split = |limit: u32, used: &dyn Fn(&Used) -> u32, granted: &dyn Fn(&Share) -> u32| {
        let equal_part = u64::from(limit.div_ceil(ns.count));
        let others: u64 = ns
            .routers
            .iter()
            .filter(|(id, _, _)| *id != router)
            .map(|(_, u, g)| {
                let held = g.map_or(equal_part, |g| u64::from(granted(&g)));
                held.max(u64::from(used(u)))
            })
            .sum::<u64>()
            + u64::from(ns.unknown) * equal_part;
        let own = u64::from(used(&mine));
        let free = u64::from(limit).saturating_sub(others + own);
        let part = free * weight(&mine) / total_weight.max(1);
        (own + part).min(u64::from(u32::MAX)) as u32
    };
    Share {
        invocations_per_minute: split(ns.rate, &|u| u.admitted_last_minute, &|g| {
            g.invocations_per_minute
        }),
        concurrent_invocations: split(ns.concurrency, &|u| u.in_flight, &|g| {
            g.concurrent_invocations
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(admitted: u32, wanted: u32, in_flight: u32) -> HashMap<String, Used> {
        HashMap::from([(
            "ns".to_owned(),
            Used {
                admitted_last_minute: admitted,
                wanted,
                in_flight,
            },
        )])
    }

    const LIMITS: fn(&str) -> (u32, u32) = |_| (60, 6);

    fn grant(q: &Quotas, router: &str, u: HashMap<String, Used>, subscribed: u32) -> Share {
        q.report(router, u, LIMITS, subscribed)
            .into_iter()
            .find(|(ns, _)| ns == "ns")
            .map(|(_, s)| s)
            .expect("a share of the active namespace")
    }

    fn granted_sum(q: &Quotas) -> (u32, u32) {
        let routers = q.routers.lock().unwrap();
        routers
            .values()
            .filter_map(|r| r.granted.get("ns"))
            .fold((0, 0), |(a, b), s| {
                (a + s.invocations_per_minute, b + s.concurrent_invocations)
            })
    }

    #[test]
    fn grants_never_sum_past_the_limits_whatever_the_order_of_reports() {
        let q = Quotas::default();
        // Three routers; a is busy and reports first, while b and c still admit equal parts.
        let a = grant(&q, "a", used(20, 40, 2), 3);
        assert_eq!(
            a.invocations_per_minute, 20,
            "b and c hold their equal parts (20 each)"
        );
        let b = grant(&q, "b", used(5, 1, 0), 3);
        let c = grant(&q, "c", used(0, 0, 0), 3);
        assert!(b.invocations_per_minute >= 5 && c.invocations_per_minute <= 20);
        for round in 0..5 {
            for (id, u) in [
                ("a", used(20, 40, 2)),
                ("b", used(5, 1, 0)),
                ("c", used(0, 0, 0)),
            ] {
                grant(&q, id, u, 3);
                let (rate, conc) = granted_sum(&q);
                assert!(rate <= 60 && conc <= 6, "round {round}: {rate}/{conc}");
            }
        }
    }

    #[test]
    fn a_router_used_alone_gets_almost_all_of_it() {
        let q = Quotas::default();
        for _ in 0..3 {
            q.report("idle1", HashMap::new(), LIMITS, 3);
            q.report("idle2", HashMap::new(), LIMITS, 3);
            grant(&q, "busy", used(10, 200, 1), 3);
        }
        let busy = grant(&q, "busy", used(10, 200, 1), 3);
        assert!(busy.invocations_per_minute >= 58, "{busy:?}");
        assert!(busy.concurrent_invocations >= 5, "{busy:?}");
    }

    #[test]
    fn routers_that_stop_reporting_hold_nothing() {
        let q = Quotas::default();
        grant(&q, "a", used(30, 10, 0), 2);
        grant(&q, "b", used(0, 10, 0), 2);
        q.routers.lock().unwrap().get_mut("a").unwrap().at -= LIVE_FOR;
        let b = grant(&q, "b", used(0, 10, 0), 1);
        assert_eq!(b.invocations_per_minute, 60, "all of it once a is gone");
        assert!(
            q.report("b", HashMap::new(), LIMITS, 1).is_empty(),
            "idle everywhere"
        );
    }
}
