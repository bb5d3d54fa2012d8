//! Garbage collection of idle containers, mark-and-sweep: a container idle past the keep-alive is
//! marked (routers stop sending it traffic), and swept after a grace period unless a router
//! reported traffic for it meanwhile (then it is unmarked). Time is passed in (`gc_tick_at`) so
//! tests can move the clock instead of sleeping.

use std::sync::{Arc, Weak};
use std::time::Instant;

use crate::plane::Plane;
use crate::pool::State;
use crate::push::Delta;

/// What one GC pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub marked: Vec<String>,
    pub swept: Vec<String>,
}

impl Plane {
    /// One pass of the collector as of `now`.
    pub fn gc_tick_at(self: &Arc<Self>, now: Instant) -> GcReport {
        let keep_alive = self.config.keep_alive;
        let grace = self.config.sweep_grace;
        let mut report = GcReport::default();
        let mut delta = Delta::default();
        {
            let mut pool = self.pool();
            let ids: Vec<String> = pool.all().map(|c| c.id.clone()).collect();
            for id in ids {
                let Some(c) = pool.get_mut(&id) else { continue };
                match c.state {
                    State::Ready
                        if now.saturating_duration_since(c.last_activity) >= keep_alive =>
                    {
                        c.state = State::Marked { since: now };
                        if let Some(ep) = c.endpoint() {
                            delta.upsert_endpoint(ep);
                        }
                        report.marked.push(id);
                    }
                    State::Marked { since } if now.saturating_duration_since(since) >= grace => {
                        report.swept.push(id);
                    }
                    _ => {}
                }
            }
        }
        self.hub.publish(delta);
        self.metrics.gc_marks.inc_by(report.marked.len() as u64);
        self.metrics.gc_sweeps.inc_by(report.swept.len() as u64);
        for id in &report.swept {
            self.remove_container(id, true);
        }
        if !report.swept.is_empty() {
            self.refill_stems();
        }
        report
    }

    /// One pass as of now.
    pub fn gc_tick(self: &Arc<Self>) -> GcReport {
        self.gc_tick_at(Instant::now())
    }
}

/// Run the collector every `config.gc_interval` (if non-zero) until the plane is dropped.
pub fn spawn_gc_loop(plane: &Arc<Plane>) -> Option<tokio::task::JoinHandle<()>> {
    let every = plane.config.gc_interval;
    if every.is_zero() {
        return None;
    }
    let weak: Weak<Plane> = Arc::downgrade(plane);
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(plane) = weak.upgrade() else { return };
            let report = plane.gc_tick();
            if !report.marked.is_empty() || !report.swept.is_empty() {
                tracing::info!(marked = ?report.marked, swept = ?report.swept, "gc pass");
            }
            plane.refill_stems();
        }
    }))
}
