//! The containers the control plane owns: stem cells (started, no action yet), containers being
//! started, and warm containers of one action revision. Pure bookkeeping (no I/O), so capacity
//! decisions, eviction and GC marking are easy to reason about and test. What routers see of a
//! container is an [`Endpoint`]; its wire form is made at the protobuf boundary.
//!
//! A container serves one action revision for one invoking namespace (as OpenWhisk keys warm
//! containers): callers of different namespaces never share process state or `__OW_API_KEY`.
//! Every container has its own secret token from the moment it is started (stem cells too).

use std::collections::HashMap;
use std::time::Instant;

use whisk_vocab::ContainerToken;

/// A fresh container id.
pub fn new_container_id() -> String {
    format!("wsk-{}", hex::encode(rand::random::<[u8; 6]>()))
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Being started or initialised; not routable, not evictable.
    Starting,
    /// Warm, without an action, waiting to be initialised.
    Stem,
    Ready,
    /// The GC will sweep it at `since + grace` unless it gets traffic.
    Marked {
        since: Instant,
    },
}

impl State {
    /// The `state` label of the containers gauge.
    pub fn label(&self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Stem => "stem",
            State::Ready => "ready",
            State::Marked { .. } => "marked",
        }
    }
}

/// The action revision a container serves, and for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub fqn: String,
    pub revision: u64,
    pub capacity: u32,
    /// The namespace whose invokes it serves (the owner's, or a caller of a public action).
    pub namespace: String,
}

/// What routers see of a container serving an action revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub container_id: String,
    pub action_fqn: String,
    pub action_revision: u64,
    pub address: String,
    /// Activations it takes at once.
    pub capacity: u32,
    /// Marked for removal: routers send it no new work.
    pub marked: bool,
    /// The namespace whose invokes it serves.
    pub invoking_namespace: String,
    /// Its secret, which routers present to its proxy.
    pub token: ContainerToken,
}

#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub kind: String,
    pub address: Option<String>,
    pub action: Option<Assigned>,
    pub memory_mb: u32,
    pub state: State,
    pub last_activity: Instant,
    /// The secret handed to its proxy when it was started.
    pub token: ContainerToken,
}

impl Container {
    /// The endpoint routers see, for containers with an action and an address.
    pub fn endpoint(&self) -> Option<Endpoint> {
        let action = self.action.as_ref()?;
        let marked = match self.state {
            State::Ready => false,
            State::Marked { .. } => true,
            State::Starting | State::Stem => return None,
        };
        Some(Endpoint {
            container_id: self.id.clone(),
            action_fqn: action.fqn.clone(),
            action_revision: action.revision,
            address: self.address.clone()?,
            capacity: action.capacity,
            marked,
            invoking_namespace: action.namespace.clone(),
            token: self.token.clone(),
        })
    }
}

/// All containers, with the capacity bounds.
#[derive(Debug)]
pub struct Pool {
    containers: HashMap<String, Container>,
    pub max_containers: usize,
    pub max_memory_mb: u64,
}

impl Pool {
    pub fn new(max_containers: usize, max_memory_mb: u64) -> Self {
        Self {
            containers: HashMap::new(),
            max_containers,
            max_memory_mb,
        }
    }

    pub fn get(&self, id: &str) -> Option<&Container> {
        self.containers.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Container> {
        self.containers.get_mut(id)
    }

    pub fn insert(&mut self, c: Container) {
        self.containers.insert(c.id.clone(), c);
    }

    pub fn remove(&mut self, id: &str) -> Option<Container> {
        self.containers.remove(id)
    }

    pub fn all(&self) -> impl Iterator<Item = &Container> {
        self.containers.values()
    }

    pub fn len(&self) -> usize {
        self.containers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }

    fn memory_used(&self) -> u64 {
        self.containers.values().map(|c| c.memory_mb as u64).sum()
    }

    /// Is there room for one more container of `memory_mb` (replacing `replacing_mb`)?
    pub fn has_room(&self, memory_mb: u32, replacing_mb: u32) -> bool {
        let count_ok = replacing_mb > 0 || self.containers.len() < self.max_containers;
        count_ok
            && self.memory_used() - replacing_mb as u64 + memory_mb as u64 <= self.max_memory_mb
    }

    /// Take a stem cell of `kind`: it becomes `Starting` (reserved for the caller).
    pub fn take_stem(&mut self, kind: &str) -> Option<Container> {
        self.take_stem_of_at_least(kind, 0)
    }

    /// Take a stem cell of `kind` started with at least `memory_mb` (for backends whose
    /// containers cannot grow after start, such as pods with a memory limit).
    pub fn take_stem_of_at_least(&mut self, kind: &str, memory_mb: u32) -> Option<Container> {
        let id = self
            .containers
            .values()
            .filter(|c| {
                c.state == State::Stem
                    && c.kind == kind
                    && c.address.is_some()
                    && c.memory_mb >= memory_mb
            })
            .map(|c| c.id.clone())
            .next()?;
        let c = self.containers.get_mut(&id)?;
        c.state = State::Starting;
        Some(c.clone())
    }

    /// Stem cells of `kind` warm or being started for the stem pool.
    pub fn stem_count(&self, kind: &str) -> usize {
        self.containers
            .values()
            .filter(|c| {
                c.kind == kind
                    && c.action.is_none()
                    && matches!(c.state, State::Stem | State::Starting)
            })
            .count()
    }

    /// The container to evict to make room: stem cells of other kinds first, then the least
    /// recently used warm container idle at least `min_idle`.
    pub fn eviction_victim(
        &self,
        now: Instant,
        min_idle: std::time::Duration,
        keep_kind: &str,
    ) -> Option<String> {
        let stem = self
            .containers
            .values()
            .filter(|c| c.state == State::Stem && c.kind != keep_kind)
            .min_by_key(|c| c.last_activity);
        if let Some(c) = stem {
            return Some(c.id.clone());
        }
        self.containers
            .values()
            .filter(|c| matches!(c.state, State::Ready | State::Marked { .. }))
            .filter(|c| now.saturating_duration_since(c.last_activity) >= min_idle)
            .min_by_key(|c| c.last_activity)
            .map(|c| c.id.clone())
    }

    /// Containers (of any state) serving `fqn` at a revision other than `keep_revision`.
    pub fn of_action(&self, fqn: &str, keep_revision: Option<u64>) -> Vec<String> {
        self.containers
            .values()
            .filter(|c| {
                c.action
                    .as_ref()
                    .is_some_and(|a| a.fqn == fqn && Some(a.revision) != keep_revision)
            })
            .map(|c| c.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn c(id: &str, kind: &str, state: State, age_s: u64, now: Instant) -> Container {
        Container {
            id: id.into(),
            kind: kind.into(),
            address: Some("127.0.0.1:1".into()),
            action: (state != State::Stem).then(|| Assigned {
                fqn: "ns/a".into(),
                revision: 1,
                capacity: 1,
                namespace: "ns".into(),
            }),
            memory_mb: 256,
            state,
            last_activity: now - Duration::from_secs(age_s),
            token: ContainerToken::generate(),
        }
    }

    #[test]
    fn eviction_prefers_other_stems_then_lru() {
        let now = Instant::now() + Duration::from_secs(100);
        let mut p = Pool::new(3, 10_000);
        p.insert(c("old", "nodejs:20", State::Ready, 50, now));
        p.insert(c("new", "nodejs:20", State::Ready, 5, now));
        p.insert(c("stem", "python:3", State::Stem, 1, now));
        assert!(!p.has_room(256, 0));
        assert_eq!(
            p.eviction_victim(now, Duration::from_secs(1), "nodejs:20")
                .as_deref(),
            Some("stem")
        );
        p.remove("stem");
        assert_eq!(
            p.eviction_victim(now, Duration::from_secs(1), "nodejs:20")
                .as_deref(),
            Some("old")
        );
        assert_eq!(
            p.eviction_victim(now, Duration::from_secs(60), "nodejs:20"),
            None
        );
    }

    #[test]
    fn memory_bound() {
        let now = Instant::now();
        let mut p = Pool::new(10, 512);
        p.insert(c("a", "k", State::Ready, 0, now));
        assert!(p.has_room(256, 0));
        assert!(!p.has_room(512, 0));
        assert!(p.has_room(512, 256));
    }
}
