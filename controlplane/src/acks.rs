//! Read your writes: which revision each subscribed router has applied.
//!
//! Routers acknowledge the revisions they apply. A management write (create, update, delete,
//! a new key, new limits) answers only once every connected router has acknowledged the write's
//! revision — or after a short bound, so a stuck router delays writes but never blocks them.
//! Without this, a client that creates an action and invokes it at once could reach a router
//! that does not know the action yet.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// Acknowledged revisions by router id.
#[derive(Default)]
pub struct Acks {
    routers: Mutex<HashMap<String, Entry>>,
    changed: Notify,
}

struct Entry {
    /// Open subscriptions of this router id (a reconnect may briefly overlap the old stream).
    streams: usize,
    revision: u64,
}

impl Acks {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> T) -> T {
        let mut map = self.routers.lock().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut map);
        drop(map);
        self.changed.notify_waiters();
        out
    }

    /// A router opened its subscription.
    pub fn connected(&self, router_id: &str) {
        self.with(|m| {
            m.entry(router_id.to_owned())
                .or_insert(Entry {
                    streams: 0,
                    revision: 0,
                })
                .streams += 1
        });
    }

    /// A router's subscription ended.
    pub fn disconnected(&self, router_id: &str) {
        self.with(|m| {
            if let Some(e) = m.get_mut(router_id) {
                e.streams = e.streams.saturating_sub(1);
                if e.streams == 0 {
                    m.remove(router_id);
                }
            }
        });
    }

    /// A router applied everything up to `revision`.
    pub fn ack(&self, router_id: &str, revision: u64) {
        self.with(|m| {
            if let Some(e) = m.get_mut(router_id) {
                e.revision = e.revision.max(revision);
            }
        });
    }

    fn all_at(&self, revision: u64) -> bool {
        let map = self.routers.lock().unwrap_or_else(|p| p.into_inner());
        map.values().all(|e| e.revision >= revision)
    }

    /// Waits until every connected router acknowledged `revision`, at most `bound`.
    /// Returns whether they all did.
    pub async fn wait_for(&self, revision: u64, bound: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.all_at(revision) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.all_at(revision);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_every_connected_router() {
        let acks = std::sync::Arc::new(Acks::default());
        assert!(
            acks.wait_for(5, Duration::from_millis(1)).await,
            "no routers: nothing to wait for"
        );
        acks.connected("a");
        acks.connected("b");
        acks.ack("a", 5);
        assert!(!acks.wait_for(5, Duration::from_millis(20)).await);
        let waiter = {
            let acks = acks.clone();
            tokio::spawn(async move { acks.wait_for(5, Duration::from_secs(5)).await })
        };
        acks.ack("b", 6);
        assert!(waiter.await.unwrap());
        acks.disconnected("b");
        acks.connected("c");
        assert!(!acks.wait_for(5, Duration::from_millis(20)).await);
        acks.disconnected("c");
        assert!(acks.wait_for(5, Duration::from_millis(20)).await);
    }
}
