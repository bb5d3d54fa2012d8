//! Garbage collection of idle containers, mark-and-sweep: a container idle past the keep-alive is
//! marked (routers stop sending it traffic), and swept after a grace period unless a router
//! reported traffic for it meanwhile (then it is unmarked). A pass is a pure decision over the
//! pool; the plane applies it (pushes the marks, removes what is swept). Time is passed in so
//! tests can move the clock instead of sleeping.

use std::time::{Duration, Instant};

use crate::pool::{Endpoint, Pool, State};

/// What one GC pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub marked: Vec<String>,
    pub swept: Vec<String>,
}

/// One pass as of `now`: marks ready containers idle for `keep_alive` (returning their endpoints,
/// now marked, to push) and names the marked ones whose `grace` is over, to sweep.
pub fn pass(
    pool: &mut Pool,
    now: Instant,
    keep_alive: Duration,
    grace: Duration,
) -> (GcReport, Vec<Endpoint>) {
    let mut report = GcReport::default();
    let mut marked = Vec::new();
    let ids: Vec<String> = pool.all().map(|c| c.id.clone()).collect();
    for id in ids {
        let Some(c) = pool.get_mut(&id) else { continue };
        match c.state {
            State::Ready if now.saturating_duration_since(c.last_activity) >= keep_alive => {
                c.state = State::Marked { since: now };
                if let Some(ep) = c.endpoint() {
                    marked.push(ep);
                }
                report.marked.push(id);
            }
            State::Marked { since } if now.saturating_duration_since(since) >= grace => {
                report.swept.push(id);
            }
            _ => {}
        }
    }
    (report, marked)
}
