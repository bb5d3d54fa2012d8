//! Admission control: at most `concurrency` activations run at once, a small bounded queue waits
//! behind them, and everything beyond is refused with 429 and a `Retry-After` estimated from
//! observed run times (an EWMA of durations × (queue length + 1) / concurrency).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Weight of the newest duration in the moving average.
const EWMA_ALPHA: f64 = 0.3;
/// Estimate used before any activation has finished.
const INITIAL_ESTIMATE_MS: f64 = 1000.0;

#[derive(Debug)]
struct Counters {
    /// Admitted and not finished (running + waiting).
    admitted: usize,
    running: usize,
    ewma_ms: f64,
    observed: bool,
}

/// A request that was refused: retry after this many whole seconds (≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub retry_after_secs: u64,
}

/// Concurrency limit + overflow queue of one action.
#[derive(Debug)]
pub struct Admission {
    capacity: usize,
    max_queue: usize,
    slots: Arc<Semaphore>,
    counters: Arc<Mutex<Counters>>,
}

/// A place in line: wait on it for a [`Permit`].
#[derive(Debug)]
pub struct Ticket {
    slots: Arc<Semaphore>,
    counters: Arc<Mutex<Counters>>,
    /// Still counted in `admitted` until turned into a permit or dropped.
    armed: bool,
}

/// The right to run one activation; give it back with [`Permit::finish`] (or drop it).
#[derive(Debug)]
pub struct Permit {
    _slot: OwnedSemaphorePermit,
    counters: Arc<Mutex<Counters>>,
    duration: Option<Duration>,
}

fn lock(m: &Mutex<Counters>) -> MutexGuard<'_, Counters> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Admission {
    /// `concurrency` running at once, `max(2, concurrency)` waiting.
    pub fn new(concurrency: u32) -> Self {
        let capacity = concurrency.max(1) as usize;
        Self::with_queue(capacity, capacity.max(2))
    }

    /// Explicit queue length (tests).
    pub fn with_queue(capacity: usize, max_queue: usize) -> Self {
        Admission {
            capacity,
            max_queue,
            slots: Arc::new(Semaphore::new(capacity)),
            counters: Arc::new(Mutex::new(Counters {
                admitted: 0,
                running: 0,
                ewma_ms: INITIAL_ESTIMATE_MS,
                observed: false,
            })),
        }
    }

    /// Takes a place (running or queued) or refuses with a retry estimate.
    pub fn try_admit(&self) -> Result<Ticket, Rejected> {
        let mut c = lock(&self.counters);
        if c.admitted >= self.capacity + self.max_queue {
            let queued = c.admitted.saturating_sub(c.running);
            return Err(Rejected {
                retry_after_secs: retry_after_secs(c.ewma_ms, queued, self.capacity),
            });
        }
        c.admitted += 1;
        Ok(Ticket {
            slots: self.slots.clone(),
            counters: self.counters.clone(),
            armed: true,
        })
    }

    /// Activations running now.
    pub fn in_flight(&self) -> usize {
        lock(&self.counters).running
    }

    /// Activations waiting for a slot.
    pub fn queued(&self) -> usize {
        let c = lock(&self.counters);
        c.admitted.saturating_sub(c.running)
    }

    /// How many may be admitted at once (running + waiting).
    pub fn limit(&self) -> usize {
        self.capacity + self.max_queue
    }

    /// The concurrency limit.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The current run-time estimate in ms.
    pub fn estimate_ms(&self) -> f64 {
        lock(&self.counters).ewma_ms
    }
}

/// `ceil(ewma × (queued + 1) / capacity)` in seconds, at least 1.
pub fn retry_after_secs(ewma_ms: f64, queued: usize, capacity: usize) -> u64 {
    let ms = ewma_ms.max(0.0) * (queued as f64 + 1.0) / capacity.max(1) as f64;
    ((ms / 1000.0).ceil() as u64).max(1)
}

impl Ticket {
    /// Waits for a free slot.
    pub async fn wait(mut self) -> Permit {
        let slot = match self.slots.clone().acquire_owned().await {
            Ok(slot) => slot,
            // The semaphore is never closed; an unlimited permit would be wrong, so queue forever.
            Err(_) => std::future::pending().await,
        };
        self.armed = false;
        lock(&self.counters).running += 1;
        Permit {
            _slot: slot,
            counters: self.counters.clone(),
            duration: None,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.armed {
            let mut c = lock(&self.counters);
            c.admitted = c.admitted.saturating_sub(1);
        }
    }
}

impl Permit {
    /// Releases the slot and feeds the run time into the estimate.
    pub fn finish(mut self, duration: Duration) {
        self.duration = Some(duration);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = lock(&self.counters);
        c.admitted = c.admitted.saturating_sub(1);
        c.running = c.running.saturating_sub(1);
        if let Some(d) = self.duration {
            let ms = d.as_secs_f64() * 1000.0;
            c.ewma_ms = if c.observed {
                EWMA_ALPHA * ms + (1.0 - EWMA_ALPHA) * c.ewma_ms
            } else {
                ms
            };
            c.observed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_grows_with_queue_and_duration() {
        assert_eq!(retry_after_secs(100.0, 0, 1), 1);
        assert_eq!(retry_after_secs(1500.0, 0, 1), 2);
        assert_eq!(retry_after_secs(1500.0, 3, 1), 6);
        assert_eq!(retry_after_secs(1500.0, 3, 2), 3);
    }

    #[tokio::test]
    async fn admits_capacity_plus_queue_then_refuses() {
        let adm = Admission::with_queue(1, 2);
        let t1 = adm.try_admit().unwrap();
        let p1 = t1.wait().await;
        let _t2 = adm.try_admit().unwrap();
        let _t3 = adm.try_admit().unwrap();
        assert_eq!(adm.in_flight(), 1);
        assert_eq!(adm.queued(), 2);
        let r = adm.try_admit().unwrap_err();
        assert!(r.retry_after_secs >= 1);
        p1.finish(Duration::from_millis(4000));
        assert_eq!(adm.in_flight(), 0);
        assert_eq!(adm.estimate_ms(), 4000.0);
        let _t4 = adm.try_admit().unwrap();
        // 3 admitted and waiting again: full; estimate 4 s × (3 waiting + 1) / 1.
        assert_eq!(adm.try_admit().unwrap_err().retry_after_secs, 16);
    }

    #[tokio::test]
    async fn dropped_tickets_free_their_place() {
        let adm = Admission::with_queue(1, 0);
        let t = adm.try_admit().unwrap();
        assert!(adm.try_admit().is_err());
        drop(t);
        assert!(adm.try_admit().is_ok());
    }
}
