//! Shared limits, the control plane's half: a namespace's limits hold across every gateway, not
//! per router (OpenWhisk divides them by the number of controllers, which is wrong whenever load
//! is uneven; three routers enforcing the whole limit each let a namespace through at three
//! times it).
//!
//! Every router reports about once a second what it used of each active namespace
//! (`ReportUsage`); the answer is its share of every namespace active anywhere. A namespace's
//! shares sum to its limits: each router keeps what it already holds (admissions in its last
//! minute, invokes in flight) and the rest is divided by demand (what each asked for since its
//! last report, plus one so an idle router keeps a foothold). Each router enforces its share on
//! its own (`router/src/domain/throttle.rs`), so no request waits on the control plane.
//!
//! The bound: the gateways together admit at most the limit, plus what routers admit between
//! two reports beyond the shares computed from their previous report (at most one report
//! interval of traffic), plus an equal part of the limit on a router that sees a namespace
//! before its first report about it. A router silent for [`LIVE_FOR`] holds nothing.

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
    namespaces: HashMap<String, Used>,
}

/// Every live router's last report.
#[derive(Debug, Default)]
pub struct Quotas {
    routers: Mutex<HashMap<String, RouterUsage>>,
}

impl Quotas {
    /// Records `router`'s report and returns its share of every namespace active on any live
    /// router. `limits` gives a namespace's (invocations per minute, concurrent invocations).
    pub fn report(
        &self,
        router: &str,
        used: HashMap<String, Used>,
        limits: impl Fn(&str) -> (u32, u32),
    ) -> Vec<(String, Share)> {
        let mut routers = self.routers.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        routers.insert(
            router.to_owned(),
            RouterUsage {
                at: now,
                namespaces: used,
            },
        );
        routers.retain(|_, r| now.duration_since(r.at) < LIVE_FOR);
        let mut active: Vec<&String> = routers.values().flat_map(|r| r.namespaces.keys()).collect();
        active.sort_unstable();
        active.dedup();
        active
            .into_iter()
            .map(|ns| {
                let usage: Vec<(&str, Used)> = routers
                    .iter()
                    .map(|(id, r)| {
                        (
                            id.as_str(),
                            r.namespaces.get(ns).copied().unwrap_or_default(),
                        )
                    })
                    .collect();
                let (rate, concurrency) = limits(ns);
                (ns.clone(), share_of(router, &usage, rate, concurrency))
            })
            .collect()
    }
}

/// `router`'s share of limits (`rate`, `concurrency`) given every live router's use.
fn share_of(router: &str, usage: &[(&str, Used)], rate: u32, concurrency: u32) -> Share {
    let weight = |u: &Used| u64::from(u.wanted) + 1;
    let total_weight: u64 = usage.iter().map(|(_, u)| weight(u)).sum();
    let mine = usage
        .iter()
        .find(|(id, _)| *id == router)
        .map(|(_, u)| *u)
        .unwrap_or_default();
    let split = |limit: u32, held: &dyn Fn(&Used) -> u32| {
        let all_held: u64 = usage.iter().map(|(_, u)| u64::from(held(u))).sum();
        let free = u64::from(limit).saturating_sub(all_held);
        let part = free * weight(&mine) / total_weight.max(1);
        (u64::from(held(&mine)) + part).min(u64::from(u32::MAX)) as u32
    };
    Share {
        invocations_per_minute: split(rate, &|u| u.admitted_last_minute),
        concurrent_invocations: split(concurrency, &|u| u.in_flight),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(admitted: u32, wanted: u32, in_flight: u32) -> Used {
        Used {
            admitted_last_minute: admitted,
            wanted,
            in_flight,
        }
    }

    fn shares(usage: &[(&str, Used)], rate: u32, conc: u32) -> Vec<Share> {
        usage
            .iter()
            .map(|(id, _)| share_of(id, usage, rate, conc))
            .collect()
    }

    #[test]
    fn shares_never_sum_past_the_limits() {
        for usage in [
            vec![
                ("a", used(0, 0, 0)),
                ("b", used(0, 0, 0)),
                ("c", used(0, 0, 0)),
            ],
            vec![
                ("a", used(50, 30, 3)),
                ("b", used(5, 1, 0)),
                ("c", used(0, 0, 0)),
            ],
            vec![("a", used(90, 100, 10)), ("b", used(20, 50, 5))],
            vec![("a", used(7, 3, 1))],
        ] {
            let s = shares(&usage, 100, 10);
            let rate: u32 = s.iter().map(|s| s.invocations_per_minute).sum();
            let conc: u32 = s.iter().map(|s| s.concurrent_invocations).sum();
            let held: u32 = usage.iter().map(|(_, u)| u.admitted_last_minute).sum();
            assert!(rate <= 100.max(held), "{usage:?}: {rate}");
            let in_flight: u32 = usage.iter().map(|(_, u)| u.in_flight).sum();
            assert!(conc <= 10.max(in_flight), "{usage:?}: {conc}");
            // Each keeps at least what it holds.
            for (share, (_, u)) in s.iter().zip(&usage) {
                assert!(share.invocations_per_minute >= u.admitted_last_minute);
                assert!(share.concurrent_invocations >= u.in_flight);
            }
        }
    }

    #[test]
    fn the_busy_router_gets_almost_all_of_it() {
        let usage = [
            ("busy", used(10, 200, 4)),
            ("idle1", used(0, 0, 0)),
            ("idle2", used(0, 0, 0)),
        ];
        let s = shares(&usage, 100, 30);
        assert!(s[0].invocations_per_minute >= 98, "{s:?}");
        assert!(s[0].concurrent_invocations >= 29, "{s:?}");
    }

    #[test]
    fn routers_that_stop_reporting_hold_nothing() {
        let q = Quotas::default();
        let limits = |_: &str| (60, 6);
        let both = |a, b| HashMap::from([("ns".to_owned(), used(a, b, 0))]);
        q.report("a", both(30, 10), limits);
        let s = q.report("b", both(0, 10), limits);
        assert_eq!(
            s[0].1.invocations_per_minute, 15,
            "half of what a left free"
        );
        // a goes silent.
        q.routers.lock().unwrap().get_mut("a").unwrap().at -= LIVE_FOR;
        let s = q.report("b", both(0, 10), limits);
        assert_eq!(
            s[0].1.invocations_per_minute, 60,
            "all of it once a is gone"
        );
        // A namespace idle everywhere is not listed (equal parts apply).
        let s = q.report("b", HashMap::new(), limits);
        assert!(s.is_empty());
    }
}
