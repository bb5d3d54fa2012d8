//! The activations this container is running, so the router can learn when one ends.
//!
//! The router holds a namespace's concurrency and this container's slot for exactly as long as an
//! activation runs. When it stops waiting for the answer — the client went away, or a blocking
//! caller's wait expired and it answered 202 — the activation still runs here (it is a task of its
//! own). `GET /_whisk/activations/{id}/end` lets the router wait for that end: each running
//! activation holds a [`RunningGuard`] that ends its entry when the task finishes, however it
//! finishes.
//!
//! The router may ask before the invoke itself has arrived (a client that aborts right after its
//! request was forwarded: Envoy's hop to this proxy and the router's question race). So an id that
//! is neither running nor among the recently ended ones is waited for a short while
//! ([`ARRIVAL_GRACE`]) before it counts as never coming; only then is the slot released.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::watch;

/// How long an id the router asks about may take to arrive.
pub const ARRIVAL_GRACE: Duration = Duration::from_secs(2);

/// How many ended ids are remembered (so asking about one answers at once).
const REMEMBERED_ENDS: usize = 4096;

/// The running activations, by id.
#[derive(Clone)]
pub struct Running {
    by_id: Arc<DashMap<String, watch::Receiver<()>>>,
    ended: Arc<Mutex<Ended>>,
    /// Bumped whenever an activation starts, so a waiter for one not yet arrived wakes.
    arrivals: Arc<watch::Sender<u64>>,
}

impl Default for Running {
    fn default() -> Self {
        Self {
            by_id: Arc::default(),
            ended: Arc::default(),
            arrivals: Arc::new(watch::channel(0).0),
        }
    }
}

/// The most recent ended ids, oldest first.
#[derive(Default)]
struct Ended {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl Ended {
    fn push(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
        }
        while self.order.len() > REMEMBERED_ENDS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

/// Held by a running activation; dropping it marks the activation ended.
pub struct RunningGuard {
    by_id: Arc<DashMap<String, watch::Receiver<()>>>,
    ended: Arc<Mutex<Ended>>,
    id: String,
    _ended_on_drop: watch::Sender<()>,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Ok(mut ended) = self.ended.lock() {
            ended.push(self.id.clone());
        }
        self.by_id.remove(&self.id);
    }
}

impl Running {
    /// Registers activation `id` as running until the guard is dropped.
    pub fn start(&self, id: &str) -> RunningGuard {
        let (tx, rx) = watch::channel(());
        self.by_id.insert(id.to_owned(), rx);
        self.arrivals.send_modify(|n| *n = n.wrapping_add(1));
        RunningGuard {
            by_id: self.by_id.clone(),
            ended: self.ended.clone(),
            id: id.to_owned(),
            _ended_on_drop: tx,
        }
    }

    /// Waits up to `bound` for activation `id` to end; true once it has (or never came: not
    /// arrived within [`ARRIVAL_GRACE`], or `bound` if shorter), false if it still runs.
    pub async fn wait_end(&self, id: &str, bound: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        let mut arrivals = self.arrivals.subscribe();
        let arrival_deadline = tokio::time::Instant::now() + bound.min(ARRIVAL_GRACE);
        let mut rx = loop {
            if let Some(rx) = self.by_id.get(id).map(|r| r.clone()) {
                break rx;
            }
            let ended = self
                .ended
                .lock()
                .map(|e| e.set.contains(id))
                .unwrap_or(true);
            if ended {
                return true;
            }
            // Not (yet) here: wait for the next arrival, or give up on it.
            match tokio::time::timeout_at(arrival_deadline, arrivals.changed()).await {
                Ok(Ok(())) => continue,
                _ => return true,
            }
        };
        // The sender is dropped when the activation ends: `changed` then fails.
        tokio::time::timeout_at(deadline, async { while rx.changed().await.is_ok() {} })
            .await
            .is_ok()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_activation_ends_when_its_guard_drops() {
        let running = Running::default();
        let guard = running.start("a1");
        assert!(!running.wait_end("a1", Duration::from_millis(20)).await);
        let waiter = {
            let running = running.clone();
            tokio::spawn(async move { running.wait_end("a1", Duration::from_secs(10)).await })
        };
        drop(guard);
        assert!(waiter.await.unwrap());
        assert!(running.is_empty());
        // Ended and remembered: answered at once, whatever the bound.
        assert!(running.wait_end("a1", Duration::from_secs(60)).await);
    }

    /// The router may ask before the invoke arrives: the wait covers its arrival and its run.
    #[tokio::test]
    async fn an_activation_asked_about_before_it_arrives_is_waited_for() {
        let running = Running::default();
        let waiter = {
            let running = running.clone();
            tokio::spawn(async move { running.wait_end("late", Duration::from_secs(10)).await })
        };
        tokio::task::yield_now().await;
        let guard = running.start("late");
        assert!(!waiter.is_finished(), "it is running now");
        drop(guard);
        assert!(waiter.await.unwrap());
    }

    /// An id that never comes counts as ended once the arrival grace (or a shorter bound) passed.
    #[tokio::test]
    async fn an_activation_that_never_arrives_counts_as_ended_after_the_grace() {
        let running = Running::default();
        let started = std::time::Instant::now();
        assert!(running.wait_end("never", Duration::from_secs(60)).await);
        let waited = started.elapsed();
        assert!(
            waited >= ARRIVAL_GRACE,
            "waited {waited:?} for it to arrive"
        );
        assert!(waited < Duration::from_secs(60), "not the whole bound");
        let started = std::time::Instant::now();
        assert!(running.wait_end("never", Duration::from_millis(10)).await);
        assert!(started.elapsed() < ARRIVAL_GRACE, "a shorter bound wins");
    }
}
