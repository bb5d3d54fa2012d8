//! Push of the router tables (`Subscribe`): one in-memory copy of every table, changes merged into
//! a pending delta and flushed by one task, so a burst of changes (churn) goes out as few deltas,
//! each with revision + 1. Subscribers get a snapshot first; one that lags behind the bounded
//! broadcast buffer gets a fresh snapshot instead of an unbounded queue. The hub also counts the
//! subscribed routers (`TableUpdate.routers`): routers sharing containers can overfill them, which
//! tells each router to keep forwarded bodies for a replay after a 429.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::Stream;
use tokio::sync::{Notify, broadcast, watch};
use whisk_proto::controlplane::v1 as pb;

use crate::convert::{action_pb, endpoint_pb, identity_pb, namespace_pb};
use crate::model::{ActionDoc, IdentityDoc, NamespaceDoc};
use crate::pool::Endpoint;

/// A set of changes, taken in the control plane's model and kept in the routers' wire form (the
/// conversion is `convert.rs`'s). Later changes to the same key replace earlier ones.
#[derive(Debug, Default, Clone)]
pub struct Delta {
    namespaces: BTreeMap<String, Option<pb::Namespace>>,
    identities: BTreeMap<String, Option<pb::Identity>>,
    actions: BTreeMap<String, Option<pb::Action>>,
    endpoints: BTreeMap<String, Option<pb::Endpoint>>,
    /// The number of subscribed routers, when it changed.
    routers: Option<u32>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.routers.is_none()
            && self.namespaces.is_empty()
            && self.identities.is_empty()
            && self.actions.is_empty()
            && self.endpoints.is_empty()
    }
    pub fn upsert_namespace(&mut self, ns: &NamespaceDoc) -> &mut Self {
        self.namespaces
            .insert(ns.name.clone(), Some(namespace_pb(ns)));
        self
    }
    pub fn remove_namespace(&mut self, name: &str) -> &mut Self {
        self.namespaces.insert(name.to_string(), None);
        self
    }
    /// Only the SHA-256 of the identity's key is pushed.
    pub fn upsert_identity(&mut self, id: &IdentityDoc) -> &mut Self {
        self.identities
            .insert(id.uuid.clone(), Some(identity_pb(id)));
        self
    }
    pub fn remove_identity(&mut self, uuid: &str) -> &mut Self {
        self.identities.insert(uuid.to_string(), None);
        self
    }
    /// `public`: the action is in a published package.
    pub fn upsert_action(&mut self, a: &ActionDoc, public: bool) -> &mut Self {
        self.actions.insert(a.fqn(), Some(action_pb(a, public)));
        self
    }
    pub fn remove_action(&mut self, fqn: &str) -> &mut Self {
        self.actions.insert(fqn.to_string(), None);
        self
    }
    pub fn upsert_endpoint(&mut self, e: &Endpoint) -> &mut Self {
        self.endpoints
            .insert(e.container_id.clone(), Some(endpoint_pb(e)));
        self
    }
    pub fn remove_endpoint(&mut self, container_id: &str) -> &mut Self {
        self.endpoints.insert(container_id.to_string(), None);
        self
    }

    fn merge(&mut self, other: Delta) {
        self.namespaces.extend(other.namespaces);
        self.identities.extend(other.identities);
        self.actions.extend(other.actions);
        self.endpoints.extend(other.endpoints);
        if other.routers.is_some() {
            self.routers = other.routers;
        }
    }

    fn into_update(self, revision: u64) -> pb::TableUpdate {
        let mut u = pb::TableUpdate {
            revision,
            routers: self.routers,
            ..Default::default()
        };
        for (k, v) in self.namespaces {
            match v {
                Some(v) => u.namespaces_upsert.push(v),
                None => u.namespaces_removed.push(k),
            }
        }
        for (k, v) in self.identities {
            match v {
                Some(v) => u.identities_upsert.push(v),
                None => u.identities_removed.push(k),
            }
        }
        for (k, v) in self.actions {
            match v {
                Some(v) => u.actions_upsert.push(v),
                None => u.actions_removed.push(k),
            }
        }
        for (k, v) in self.endpoints {
            match v {
                Some(v) => u.endpoints_upsert.push(v),
                None => u.endpoints_removed.push(k),
            }
        }
        u
    }
}

#[derive(Default)]
struct Tables {
    namespaces: BTreeMap<String, pb::Namespace>,
    identities: BTreeMap<String, pb::Identity>,
    actions: BTreeMap<String, pb::Action>,
    endpoints: BTreeMap<String, pb::Endpoint>,
    /// Routers subscribed now.
    routers: u32,
    /// The system's default limits, in every snapshot.
    default_limits: Option<pb::NamespaceLimits>,
}

fn apply<T: Clone>(table: &mut BTreeMap<String, T>, changes: &BTreeMap<String, Option<T>>) {
    for (k, v) in changes {
        match v {
            Some(v) => {
                table.insert(k.clone(), v.clone());
            }
            None => {
                table.remove(k);
            }
        }
    }
}

struct HubState {
    /// Revision of the last update sent.
    revision: u64,
    tables: Tables,
    pending: Delta,
}

/// The broadcast hub every router subscribes to.
pub struct PushHub {
    /// Subscribers resynchronised with a snapshot after lagging (a metric).
    pub resyncs: prometheus_client::metrics::counter::Counter,
    /// What each subscribed router has applied (read your writes).
    pub acks: crate::acks::Acks,
    state: Mutex<HubState>,
    tx: broadcast::Sender<Arc<pb::TableUpdate>>,
    wake: Notify,
    shutdown: watch::Sender<bool>,
}

impl PushHub {
    /// `buffer` bounds how many deltas a subscriber may lag before it is resynchronised.
    pub fn new(buffer: usize) -> Arc<Self> {
        let (tx, _) = broadcast::channel(buffer.max(1));
        let (shutdown, _) = watch::channel(false);
        Arc::new(Self {
            resyncs: Default::default(),
            acks: crate::acks::Acks::default(),
            state: Mutex::new(HubState {
                revision: 0,
                tables: Tables::default(),
                pending: Delta::default(),
            }),
            tx,
            wake: Notify::new(),
            shutdown,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start the task that flushes pending changes; it ends on [`PushHub::close`].
    pub fn spawn_flusher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = hub.wake.notified() => hub.flush(),
                    _ = stop.changed() => return,
                }
            }
        })
    }

    /// Routers subscribed now.
    pub fn subscriber_count(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Deltas sent that the slowest subscriber has not received yet.
    pub fn backlog(&self) -> usize {
        self.tx.len()
    }

    /// Revision of the last update sent.
    pub fn revision(&self) -> u64 {
        self.lock().revision
    }

    /// Send whatever is pending as one delta (revision + 1).
    pub fn flush(&self) {
        let mut st = self.lock();
        if st.pending.is_empty() {
            return;
        }
        let delta = std::mem::take(&mut st.pending);
        st.revision += 1;
        let update = Arc::new(delta.into_update(st.revision));
        // No receivers is fine: the change is in the tables for the next snapshot.
        let _ = self.tx.send(update);
    }

    /// Apply changes to the tables now (snapshots and reads see them at once) and queue them
    /// for the next delta.
    pub fn publish(&self, delta: Delta) {
        if delta.is_empty() {
            return;
        }
        {
            let mut st = self.lock();
            apply(&mut st.tables.namespaces, &delta.namespaces);
            apply(&mut st.tables.identities, &delta.identities);
            apply(&mut st.tables.actions, &delta.actions);
            apply(&mut st.tables.endpoints, &delta.endpoints);
            if let Some(n) = delta.routers {
                st.tables.routers = n;
            }
            st.pending.merge(delta);
        }
        self.wake.notify_one();
    }

    /// A full snapshot at the current revision, and a receiver of every later delta.
    fn snapshot_and_subscribe(
        &self,
    ) -> (pb::TableUpdate, broadcast::Receiver<Arc<pb::TableUpdate>>) {
        let st = self.lock();
        let rx = self.tx.subscribe();
        let t = &st.tables;
        let snap = pb::TableUpdate {
            revision: st.revision,
            snapshot: true,
            namespaces_upsert: t.namespaces.values().cloned().collect(),
            identities_upsert: t.identities.values().cloned().collect(),
            actions_upsert: t.actions.values().cloned().collect(),
            endpoints_upsert: t.endpoints.values().cloned().collect(),
            routers: Some(t.routers),
            default_limits: t.default_limits,
            ..Default::default()
        };
        (snap, rx)
    }

    /// Sets the system's default limits every snapshot carries (before routers subscribe: the
    /// configuration does not change while the control plane runs).
    pub fn set_default_limits(&self, limits: pb::NamespaceLimits) {
        self.lock().tables.default_limits = Some(limits);
    }

    /// A snapshot of the current tables (for tests and diagnostics).
    pub fn snapshot(&self) -> pb::TableUpdate {
        self.snapshot_and_subscribe().0
    }

    /// The pushed state of one endpoint.
    pub fn endpoint(&self, container_id: &str) -> Option<pb::Endpoint> {
        self.lock().tables.endpoints.get(container_id).cloned()
    }

    /// How many routers are subscribed now.
    pub fn routers(&self) -> u32 {
        self.lock().tables.routers
    }

    /// The limits a namespace sets itself (absent fields: the defaults).
    pub fn namespace_limits(&self, name: &str) -> Option<pb::NamespaceLimits> {
        self.lock()
            .tables
            .namespaces
            .get(name)
            .and_then(|n| n.limits)
    }

    /// The pushed state of one action.
    pub fn action(&self, fqn: &str) -> Option<pb::Action> {
        self.lock().tables.actions.get(fqn).cloned()
    }

    /// End every subscription and the flusher.
    pub fn close(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Counts a router in (`+1`) or out (`-1`) and tells every router the new number.
    fn routers_changed(&self, by: i32) {
        {
            let mut st = self.lock();
            let n = st.tables.routers.saturating_add_signed(by);
            st.tables.routers = n;
            st.pending.routers = Some(n);
        }
        self.wake.notify_one();
    }

    /// The subscription stream: a snapshot, then deltas; a fresh snapshot after lagging.
    /// The router is counted in [`pb::TableUpdate::routers`] while the stream lives.
    pub fn subscribe(
        self: &Arc<Self>,
    ) -> impl Stream<Item = Arc<pb::TableUpdate>> + Send + 'static {
        struct Sub {
            hub: Arc<PushHub>,
            rx: Option<broadcast::Receiver<Arc<pb::TableUpdate>>>,
            last: u64,
            stop: watch::Receiver<bool>,
        }
        impl Drop for Sub {
            fn drop(&mut self) {
                self.hub.routers_changed(-1);
            }
        }
        self.routers_changed(1);
        let sub = Sub {
            hub: self.clone(),
            rx: None,
            last: 0,
            stop: self.shutdown.subscribe(),
        };
        futures::stream::unfold(sub, |mut sub| async move {
            if *sub.stop.borrow() {
                return None;
            }
            loop {
                let Some(rx) = sub.rx.as_mut() else {
                    let (snap, rx) = sub.hub.snapshot_and_subscribe();
                    sub.rx = Some(rx);
                    sub.last = snap.revision;
                    return Some((Arc::new(snap), sub));
                };
                tokio::select! {
                    _ = sub.stop.changed() => return None,
                    got = rx.recv() => match got {
                        Ok(update) if update.revision <= sub.last => continue,
                        Ok(update) => {
                            sub.last = update.revision;
                            return Some((update, sub));
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(skipped = n, "subscriber lagged; sending a fresh snapshot");
                            sub.hub.resyncs.inc();
                            sub.rx = None;
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn ep(id: &str) -> Endpoint {
        Endpoint {
            container_id: id.into(),
            action_fqn: String::new(),
            action_revision: 0,
            address: String::new(),
            capacity: 0,
            marked: false,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn snapshot_then_ordered_deltas() {
        let hub = PushHub::new(16);
        hub.publish({
            let mut d = Delta::default();
            d.upsert_endpoint(&ep("a"));
            d
        });
        hub.flush();
        let mut s = Box::pin(hub.subscribe());
        let snap = s.next().await.unwrap();
        assert!(snap.snapshot);
        assert_eq!(snap.revision, 1);
        assert_eq!(snap.endpoints_upsert.len(), 1);
        for i in 0..3 {
            let mut d = Delta::default();
            d.upsert_endpoint(&ep(&format!("b{i}")));
            hub.publish(d);
            hub.flush();
        }
        for want in 2..5 {
            let u = s.next().await.unwrap();
            assert!(!u.snapshot);
            assert_eq!(u.revision, want);
        }
    }

    #[tokio::test]
    async fn pending_changes_coalesce() {
        let hub = PushHub::new(16);
        let mut s = Box::pin(hub.subscribe());
        assert!(s.next().await.unwrap().snapshot);
        let mut d = Delta::default();
        d.upsert_endpoint(&ep("x"));
        hub.publish(d);
        let mut d = Delta::default();
        d.remove_endpoint("x");
        d.upsert_endpoint(&ep("y"));
        hub.publish(d);
        hub.flush();
        let u = s.next().await.unwrap();
        assert_eq!(u.revision, 1);
        assert_eq!(u.endpoints_removed, vec!["x".to_string()]);
        assert_eq!(u.endpoints_upsert.len(), 1);
    }

    #[tokio::test]
    async fn routers_are_counted_in_and_out() {
        let hub = PushHub::new(16);
        let mut first = Box::pin(hub.subscribe());
        assert_eq!(first.next().await.unwrap().routers, Some(1));
        let second = Box::pin(hub.subscribe());
        hub.flush();
        let u = first.next().await.unwrap();
        assert!(!u.snapshot);
        assert_eq!(u.routers, Some(2), "the first router hears of the second");
        drop(second);
        hub.flush();
        assert_eq!(first.next().await.unwrap().routers, Some(1));
        // An ordinary change says nothing about routers.
        let mut d = Delta::default();
        d.upsert_endpoint(&ep("e"));
        hub.publish(d);
        hub.flush();
        assert_eq!(first.next().await.unwrap().routers, None);
    }

    #[tokio::test]
    async fn lagging_subscriber_gets_snapshot() {
        let hub = PushHub::new(2);
        let mut s = Box::pin(hub.subscribe());
        assert!(s.next().await.unwrap().snapshot);
        for i in 0..10 {
            let mut d = Delta::default();
            d.upsert_endpoint(&ep(&format!("e{i}")));
            hub.publish(d);
            hub.flush();
        }
        let u = s.next().await.unwrap();
        assert!(u.snapshot, "expected a fresh snapshot after lagging");
        assert_eq!(u.revision, 10);
        assert_eq!(u.endpoints_upsert.len(), 10);
        let mut d = Delta::default();
        d.remove_endpoint("e0");
        hub.publish(d);
        hub.flush();
        let u = s.next().await.unwrap();
        assert_eq!(u.revision, 11);
        assert!(!u.snapshot);
    }
}
