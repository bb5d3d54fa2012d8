//! Where the request goes: the warm endpoints of every action, with live in-flight counts.
//!
//! Each action has a [`Pool`]: a copy-on-write list of endpoints (swapped atomically when the
//! control plane pushes a change, so readers never lock) and a [`Notify`] that wakes requests
//! waiting for a slot or a cold start. Picking scans the pool for the least loaded ready endpoint
//! with a free slot (in-flight / capacity), which is at least as good as two random choices, and
//! takes the slot with a compare-and-swap. A [`Slot`] gives it back when dropped.
//!
//! A container serves one invoking namespace (the control plane starts one per action and caller
//! namespace): picking considers only endpoints of the caller's namespace, so callers of a public
//! action never share a container. Each endpoint carries its container's token, which the
//! upstream side presents to the proxy.
//!
//! Picking skips endpoints whose circuit breaker is open ([`Endpoint::is_open`]); what opens one is
//! the business of `breaker.rs`. Only `tables.rs` changes the table.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use tokio::sync::Notify;

use whisk_vocab::{ContainerToken, now_ms};

/// An endpoint as the control plane describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub container_id: Arc<str>,
    pub action_fqn: Arc<str>,
    pub action_revision: u64,
    /// `ip:port` of the container proxy.
    pub address: Arc<str>,
    pub capacity: u32,
    pub marked_for_removal: bool,
    /// The namespace whose invokes it serves.
    pub invoking_namespace: Arc<str>,
    /// What its proxy wants to see before it runs anything.
    pub token: ContainerToken,
}

/// A warm container and its live counters.
#[derive(Debug)]
pub struct Endpoint {
    pub container_id: Arc<str>,
    pub address: Arc<str>,
    pub revision: u64,
    /// The namespace whose invokes it serves.
    pub namespace: Arc<str>,
    /// Sent to its proxy with every request (never logged: its `Debug` is redacted).
    pub token: ContainerToken,
    capacity: AtomicU32,
    in_flight: AtomicU32,
    marked: AtomicBool,
    /// Epoch ms until which the breaker is open (0 = closed).
    pub(super) open_until_ms: AtomicU64,
}

impl Endpoint {
    fn new(spec: &EndpointSpec) -> Self {
        Self {
            container_id: spec.container_id.clone(),
            address: spec.address.clone(),
            revision: spec.action_revision,
            namespace: spec.invoking_namespace.clone(),
            token: spec.token.clone(),
            capacity: AtomicU32::new(spec.capacity.max(1)),
            in_flight: AtomicU32::new(0),
            marked: AtomicBool::new(spec.marked_for_removal),
            open_until_ms: AtomicU64::new(0),
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Whether the breaker keeps this endpoint out of rotation at `now_ms`.
    pub fn is_open(&self, now_ms: u64) -> bool {
        self.open_until_ms.load(Ordering::Acquire) > now_ms
    }

    /// Tries to take a slot: `in_flight < capacity`, atomically.
    fn try_take(&self) -> bool {
        let cap = self.capacity.load(Ordering::Acquire);
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok()
    }

    /// Load as a fraction of capacity, scaled to avoid floats.
    fn load_permille(&self) -> u64 {
        let cap = self.capacity.load(Ordering::Relaxed).max(1) as u64;
        self.in_flight.load(Ordering::Relaxed) as u64 * 1000 / cap
    }
}

/// The endpoints of one action, and the requests waiting on them.
#[derive(Default)]
pub struct Pool {
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    /// Woken when a slot frees (one waiter) or the pool changes (all waiters).
    pub changed: Notify,
    /// Epoch ms of the last 429 from any of its containers (0 = never).
    pub(super) last_refusal_ms: AtomicU64,
}

/// The outcome of one attempt to pick an endpoint.
pub enum Pick {
    /// A slot on a ready endpoint.
    Ready(Slot),
    /// A slot on an endpoint marked for removal: the control plane must hear of the traffic.
    Marked(Slot),
    /// Endpoints of this revision for this namespace exist, but none has a free slot (or all
    /// breakers are open).
    Busy,
    /// No endpoint of this revision for this namespace.
    Empty,
}

impl Pool {
    /// When a container of this action last refused an invoke (epoch ms, 0 = never).
    pub fn last_refusal_ms(&self) -> u64 {
        self.last_refusal_ms.load(Ordering::Relaxed)
    }

    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints.load_full()
    }

    /// Takes a slot on the least loaded usable endpoint of `revision` serving `namespace`.
    pub fn try_acquire(self: &Arc<Self>, revision: u64, namespace: &str) -> Pick {
        let now = now_ms();
        let list = self.endpoints.load();
        let mut any = false;
        // A few rounds: a lost compare-and-swap race means another request just took that slot.
        for _ in 0..4 {
            let mut best: Option<&Arc<Endpoint>> = None;
            let mut best_marked: Option<&Arc<Endpoint>> = None;
            for ep in list
                .iter()
                .filter(|e| e.revision == revision && &*e.namespace == namespace)
            {
                any = true;
                if ep.is_open(now) || ep.in_flight() >= ep.capacity.load(Ordering::Relaxed) {
                    continue;
                }
                let slot = if ep.marked.load(Ordering::Acquire) {
                    &mut best_marked
                } else {
                    &mut best
                };
                if slot.is_none_or(|b| ep.load_permille() < b.load_permille()) {
                    *slot = Some(ep);
                }
            }
            let (ep, marked) = match (best, best_marked) {
                (Some(ep), _) => (ep, false),
                (None, Some(ep)) => (ep, true),
                (None, None) => break,
            };
            if ep.try_take() {
                let slot = Slot {
                    pool: self.clone(),
                    endpoint: ep.clone(),
                };
                return if marked {
                    Pick::Marked(slot)
                } else {
                    Pick::Ready(slot)
                };
            }
        }
        if any { Pick::Busy } else { Pick::Empty }
    }
}

/// One request's hold on an endpoint; dropping it frees the slot and wakes one waiter.
pub struct Slot {
    pool: Arc<Pool>,
    endpoint: Arc<Endpoint>,
}

impl Slot {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.pool.changed.notify_one();
    }
}

/// All pools, by action fqn, plus an index from container id to its action.
#[derive(Default)]
pub struct EndpointTable {
    pools: DashMap<Arc<str>, Arc<Pool>>,
    containers: DashMap<Arc<str>, Arc<str>>,
}

impl EndpointTable {
    pub fn len(&self) -> usize {
        self.containers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }

    pub fn pool(&self, fqn: &str) -> Option<Arc<Pool>> {
        self.pools.get(fqn).map(|p| p.value().clone())
    }

    pub fn pool_or_create(&self, fqn: &Arc<str>) -> Arc<Pool> {
        if let Some(p) = self.pools.get(fqn) {
            return p.value().clone();
        }
        self.pools.entry(fqn.clone()).or_default().value().clone()
    }

    /// Wakes every request waiting on the action's pool.
    pub(super) fn touch(&self, fqn: &str) {
        if let Some(p) = self.pools.get(fqn) {
            p.changed.notify_waiters();
        }
    }

    /// Adds an endpoint or updates it in place (keeping its in-flight count).
    pub(super) fn upsert(&self, spec: EndpointSpec) {
        let pool = self.pool_or_create(&spec.action_fqn);
        let current = pool.endpoints.load_full();
        if let Some(ep) = current.iter().find(|e| {
            e.container_id == spec.container_id
                && e.revision == spec.action_revision
                && e.address == spec.address
                && e.namespace == spec.invoking_namespace
                && e.token == spec.token
        }) {
            ep.marked.store(spec.marked_for_removal, Ordering::Release);
            ep.capacity.store(spec.capacity.max(1), Ordering::Release);
            pool.changed.notify_waiters();
            return;
        }
        let mut next: Vec<Arc<Endpoint>> = current
            .iter()
            .filter(|e| e.container_id != spec.container_id)
            .cloned()
            .collect();
        next.push(Arc::new(Endpoint::new(&spec)));
        pool.endpoints.store(Arc::new(next));
        if let Some(old) = self
            .containers
            .insert(spec.container_id.clone(), spec.action_fqn.clone())
            && old != spec.action_fqn
        {
            self.remove_from_pool(&old, &spec.container_id);
        }
        pool.changed.notify_waiters();
    }

    pub(super) fn remove(&self, container_id: &str) {
        if let Some((_, fqn)) = self.containers.remove(container_id) {
            self.remove_from_pool(&fqn, container_id);
        }
    }

    fn remove_from_pool(&self, fqn: &str, container_id: &str) {
        if let Some(pool) = self.pool(fqn) {
            let next: Vec<Arc<Endpoint>> = pool
                .endpoints
                .load()
                .iter()
                .filter(|e| &*e.container_id != container_id)
                .cloned()
                .collect();
            pool.endpoints.store(Arc::new(next));
            pool.changed.notify_waiters();
        }
    }

    /// Keeps only the given containers (after a snapshot).
    pub(super) fn retain_only<'a>(&self, keep: impl Iterator<Item = &'a str>) {
        let keep: std::collections::HashSet<&str> = keep.collect();
        let gone: Vec<Arc<str>> = self
            .containers
            .iter()
            .filter(|e| !keep.contains(e.key().as_ref()))
            .map(|e| e.key().clone())
            .collect();
        for id in gone {
            self.remove(&id);
        }
    }

    /// How many endpoints have an open breaker (for metrics; not on the request path).
    pub fn open_breakers(&self, now_ms: u64) -> usize {
        self.pools
            .iter()
            .map(|p| {
                p.endpoints
                    .load()
                    .iter()
                    .filter(|e| e.is_open(now_ms))
                    .count()
            })
            .sum()
    }

    /// The endpoint of a container, if it is known.
    pub fn endpoint(&self, container_id: &str) -> Option<Arc<Endpoint>> {
        let fqn = self.containers.get(container_id)?.value().clone();
        let pool = self.pool(&fqn)?;
        pool.endpoints()
            .iter()
            .find(|e| &*e.container_id == container_id)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, fqn: &str, cap: u32) -> EndpointSpec {
        EndpointSpec {
            container_id: id.into(),
            action_fqn: fqn.into(),
            action_revision: 1,
            address: format!("127.0.0.1:{}", 1000 + id.len()).into(),
            capacity: cap,
            marked_for_removal: false,
            invoking_namespace: fqn.split('/').next().unwrap_or_default().into(),
            token: ContainerToken::from_wire(&format!("token-of-{id}")).unwrap_or_default(),
        }
    }

    fn take(pool: &Arc<Pool>) -> Option<Slot> {
        match pool.try_acquire(1, "guest") {
            Pick::Ready(s) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn least_loaded_and_capacity() {
        let t = EndpointTable::default();
        t.upsert(spec("a", "guest/x", 2));
        t.upsert(spec("bb", "guest/x", 2));
        let pool = t.pool("guest/x").unwrap();
        let s1 = take(&pool).unwrap();
        let s2 = take(&pool).unwrap();
        assert_ne!(s1.endpoint().container_id, s2.endpoint().container_id);
        let s3 = take(&pool).unwrap();
        let s4 = take(&pool).unwrap();
        assert!(matches!(pool.try_acquire(1, "guest"), Pick::Busy));
        drop(s3);
        let s5 = take(&pool).unwrap();
        drop((s1, s2, s4, s5));
        for ep in pool.endpoints().iter() {
            assert_eq!(ep.in_flight(), 0);
        }
    }

    #[test]
    fn other_revisions_and_unknown_actions_are_empty() {
        let t = EndpointTable::default();
        t.upsert(spec("a", "guest/x", 1));
        let pool = t.pool("guest/x").unwrap();
        assert!(matches!(pool.try_acquire(2, "guest"), Pick::Empty));
        let empty = t.pool_or_create(&Arc::from("guest/none"));
        assert!(matches!(empty.try_acquire(1, "guest"), Pick::Empty));
    }

    #[test]
    fn only_endpoints_of_the_callers_namespace_are_picked() {
        let t = EndpointTable::default();
        let mut other = spec("o", "guest/x", 4);
        other.invoking_namespace = "alice".into();
        t.upsert(other);
        let pool = t.pool("guest/x").unwrap();
        assert!(matches!(pool.try_acquire(1, "guest"), Pick::Empty));
        assert!(matches!(pool.try_acquire(1, "bob"), Pick::Empty));
        assert!(
            matches!(&pool.try_acquire(1, "alice"), Pick::Ready(s) if &*s.endpoint().container_id == "o")
        );
        t.upsert(spec("g", "guest/x", 1));
        assert!(
            matches!(&pool.try_acquire(1, "guest"), Pick::Ready(s) if &*s.endpoint().container_id == "g")
        );
    }

    #[test]
    fn marked_endpoints_only_as_a_last_resort() {
        let t = EndpointTable::default();
        let mut m = spec("m", "guest/x", 1);
        m.marked_for_removal = true;
        t.upsert(m);
        t.upsert(spec("rr", "guest/x", 1));
        let pool = t.pool("guest/x").unwrap();
        let first = pool.try_acquire(1, "guest");
        assert!(matches!(&first, Pick::Ready(s) if &*s.endpoint().container_id == "rr"));
        let second = pool.try_acquire(1, "guest");
        assert!(matches!(&second, Pick::Marked(s) if &*s.endpoint().container_id == "m"));
    }

    #[test]
    fn open_breaker_is_skipped() {
        let t = EndpointTable::default();
        t.upsert(spec("a", "guest/x", 1));
        let pool = t.pool("guest/x").unwrap();
        pool.endpoints()[0]
            .open_until_ms
            .store(now_ms() + 10_000, Ordering::Release);
        assert!(matches!(pool.try_acquire(1, "guest"), Pick::Busy));
    }

    #[test]
    fn upsert_keeps_in_flight_and_remove_drops() {
        let t = EndpointTable::default();
        t.upsert(spec("a", "guest/x", 1));
        let pool = t.pool("guest/x").unwrap();
        let s = take(&pool).unwrap();
        let mut marked = spec("a", "guest/x", 1);
        marked.marked_for_removal = true;
        t.upsert(marked);
        assert_eq!(pool.endpoints()[0].in_flight(), 1);
        drop(s);
        t.remove("a");
        assert!(pool.endpoints().is_empty());
        assert_eq!(t.len(), 0);
        t.upsert(spec("b", "guest/y", 1));
        t.retain_only(std::iter::empty());
        assert!(t.is_empty());
    }

    #[test]
    fn concurrent_takers_never_exceed_capacity() {
        let t = EndpointTable::default();
        t.upsert(spec("a", "guest/x", 3));
        let pool = t.pool("guest/x").unwrap();
        let taken = std::sync::atomic::AtomicU32::new(0);
        let max = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..2000 {
                        if let Some(slot) = take(&pool) {
                            let n = taken.fetch_add(1, Ordering::SeqCst) + 1;
                            max.fetch_max(n, Ordering::SeqCst);
                            taken.fetch_sub(1, Ordering::SeqCst);
                            drop(slot);
                        }
                    }
                });
            }
        });
        assert!(max.load(Ordering::SeqCst) <= 3);
        assert_eq!(pool.endpoints()[0].in_flight(), 0);
    }
}
