//! The activations this container is running, so the router can learn when one ends.
//!
//! The router holds a namespace's concurrency and this container's slot for exactly as long as an
//! activation runs. When it stops waiting for the answer — the client went away, or a blocking
//! caller's wait expired and it answered 202 — the activation still runs here (it is a task of its
//! own). `GET /_whisk/activations/{id}/end` lets the router wait for that end: each running
//! activation holds a [`RunningGuard`] that ends its entry when the task finishes, however it
//! finishes.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::watch;

/// The running activations, by id.
#[derive(Default, Clone)]
pub struct Running {
    by_id: Arc<DashMap<String, watch::Receiver<()>>>,
}

/// Held by a running activation; dropping it marks the activation ended.
pub struct RunningGuard {
    by_id: Arc<DashMap<String, watch::Receiver<()>>>,
    id: String,
    _ended_on_drop: watch::Sender<()>,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.by_id.remove(&self.id);
    }
}

impl Running {
    /// Registers activation `id` as running until the guard is dropped.
    pub fn start(&self, id: &str) -> RunningGuard {
        let (tx, rx) = watch::channel(());
        self.by_id.insert(id.to_owned(), rx);
        RunningGuard {
            by_id: self.by_id.clone(),
            id: id.to_owned(),
            _ended_on_drop: tx,
        }
    }

    /// Waits up to `bound` for activation `id` to end; true once it has (or was never running
    /// here), false if it still runs.
    pub async fn wait_end(&self, id: &str, bound: Duration) -> bool {
        let Some(mut rx) = self.by_id.get(id).map(|r| r.clone()) else {
            return true;
        };
        // The sender is dropped when the activation ends: `changed` then fails.
        matches!(
            tokio::time::timeout(bound, async { while rx.changed().await.is_ok() {} }).await,
            Ok(())
        )
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
        assert!(
            running.wait_end("a1", Duration::ZERO).await,
            "unknown: ended"
        );
        let guard = running.start("a1");
        assert!(!running.wait_end("a1", Duration::from_millis(20)).await);
        let waiter = {
            let running = running.clone();
            tokio::spawn(async move { running.wait_end("a1", Duration::from_secs(10)).await })
        };
        drop(guard);
        assert!(waiter.await.unwrap());
        assert!(running.is_empty());
    }
}
