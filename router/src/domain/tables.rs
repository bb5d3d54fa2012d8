//! What the control plane pushed: namespaces and their limits, identities, action metadata and
//! warm endpoints. The warm path only reads these tables. Only this module writes them: the
//! subscription applies [`Update`]s, and a cold start adds the endpoint it was given (which the
//! next push also carries) through [`Tables::upsert_endpoint`].
//!
//! Every table is a sharded concurrent map (no global lock). Updates arrive as [`Update`]s, the
//! domain's mirror of the proto `TableUpdate`: a snapshot replaces everything, a delta upserts and
//! removes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use dashmap::DashMap;

use super::endpoints::{EndpointSpec, EndpointTable};
use super::throttle::{LimitOverrides, NamespaceLimits, NamespaceState, Share, Usage};
use super::web::export::WebExport;

/// One key of a namespace (the key itself is never pushed, only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uuid: Box<str>,
    pub namespace: Arc<str>,
    pub subject: Box<str>,
    pub key_sha256: [u8; 32],
}

/// The per-action limits the router passes on and the container proxy enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionLimits {
    pub timeout_ms: u32,
    pub memory_mb: u32,
    pub logs_mb: u32,
    pub concurrency: u32,
}

/// What the router needs to know about an action at request time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionMeta {
    /// `ns/name` or `ns/pkg/name`.
    pub fqn: Arc<str>,
    pub revision: u64,
    pub version: Box<str>,
    pub kind: Box<str>,
    pub limits: ActionLimits,
    /// Sequence components (fully qualified), empty for other kinds.
    pub components: Box<[Arc<str>]>,
    /// In a published package: any authenticated caller may invoke it.
    pub public: bool,
    /// How it is served on `/api/v1/web/...`; `None` unless it is exported.
    pub web: Option<WebExport>,
}

impl ActionMeta {
    /// The namespace that owns the action (the first segment of its fqn).
    pub fn owner(&self) -> &str {
        self.fqn.split('/').next().unwrap_or_default()
    }

    pub fn is_sequence(&self) -> bool {
        &*self.kind == "sequence"
    }
}

/// One message of the subscription, in domain types.
#[derive(Debug, Default)]
pub struct Update {
    pub revision: u64,
    pub snapshot: bool,
    pub namespaces_upsert: Vec<(Arc<str>, LimitOverrides)>,
    pub namespaces_removed: Vec<String>,
    pub identities_upsert: Vec<Identity>,
    pub identities_removed: Vec<String>,
    pub actions_upsert: Vec<ActionMeta>,
    pub actions_removed: Vec<String>,
    pub endpoints_upsert: Vec<EndpointSpec>,
    pub endpoints_removed: Vec<String>,
    /// How many routers the control plane serves, when it says (see [`Tables::routers`]).
    pub routers: Option<u32>,
    /// The system's default limits, when the control plane says (every snapshot does).
    pub default_limits: Option<NamespaceLimits>,
}

/// A namespace's identities, as web actions need them: the subject they run as, and how many
/// identities remain (the namespace is unknown once none does).
#[derive(Debug)]
struct Owner {
    identities: u32,
    subject: Box<str>,
}

/// Everything pushed, plus the live counters hanging off it.
#[derive(Default)]
pub struct Tables {
    namespaces: DashMap<Arc<str>, Arc<NamespaceState>>,
    /// What each pushed namespace sets of its limits (the rest: `defaults`).
    overrides: DashMap<Arc<str>, LimitOverrides>,
    /// The system's default limits: one source, the control plane's configuration.
    defaults: ArcSwap<NamespaceLimits>,
    identities: DashMap<Box<str>, Arc<Identity>>,
    /// Namespaces that have identities: how many, and a subject to run their web actions as.
    owners: DashMap<Arc<str>, Owner>,
    actions: DashMap<Arc<str>, Arc<ActionMeta>>,
    pub endpoints: EndpointTable,
    revision: AtomicU64,
    ready: AtomicBool,
    /// Routers subscribed to the control plane (0 = not told).
    routers: AtomicU32,
    /// Bumped on every identity change so caches of verified credentials can drop stale entries.
    identity_epoch: AtomicU64,
}

impl Tables {
    /// True once a snapshot has been applied: before that, the router knows no one.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// How many routers share the containers (at least this one).
    pub fn routers(&self) -> u32 {
        self.routers.load(Ordering::Relaxed).max(1)
    }

    pub fn identity_epoch(&self) -> u64 {
        self.identity_epoch.load(Ordering::Acquire)
    }

    pub fn identity(&self, uuid: &str) -> Option<Arc<Identity>> {
        self.identities.get(uuid).map(|e| e.value().clone())
    }

    /// The namespace as an owner of web actions: its interned name and the subject its web
    /// activations run as; `None` when no identity has it.
    pub fn owner(&self, namespace: &str) -> Option<(Arc<str>, Box<str>)> {
        self.owners
            .get(namespace)
            .map(|e| (e.key().clone(), e.value().subject.clone()))
    }

    fn own(&self, identity: &Identity) {
        self.owners
            .entry(identity.namespace.clone())
            .and_modify(|o| o.identities += 1)
            .or_insert_with(|| Owner {
                identities: 1,
                subject: identity.subject.clone(),
            });
    }

    fn disown(&self, identity: &Identity) {
        self.owners.remove_if_mut(&identity.namespace, |_, o| {
            o.identities = o.identities.saturating_sub(1);
            o.identities == 0
        });
    }

    pub fn action(&self, fqn: &str) -> Option<Arc<ActionMeta>> {
        self.actions.get(fqn).map(|e| e.value().clone())
    }

    /// The system defaults in effect.
    pub fn default_limits(&self) -> NamespaceLimits {
        **self.defaults.load()
    }

    /// The namespace's throttle state; a namespace the control plane has not described (yet)
    /// gets the system defaults.
    pub fn namespace(&self, name: &Arc<str>) -> Arc<NamespaceState> {
        if let Some(ns) = self.namespaces.get(name) {
            return ns.value().clone();
        }
        self.namespaces
            .entry(name.clone())
            .or_insert_with(|| Arc::new(NamespaceState::new(**self.defaults.load())))
            .value()
            .clone()
    }

    /// This router's use of every namespace active here, for its usage report (not on the
    /// request path).
    pub fn usage(&self) -> Vec<(Arc<str>, Usage)> {
        self.namespaces
            .iter()
            .filter_map(|e| Some((e.key().clone(), e.value().usage()?)))
            .collect()
    }

    /// This router's shares of the namespaces' limits, as the control plane answered its usage
    /// report; a namespace not listed has no share (an equal part of its limits applies).
    pub fn apply_shares(&self, shares: &[(String, Share)]) {
        let by_name: std::collections::HashMap<&str, Share> =
            shares.iter().map(|(ns, s)| (ns.as_str(), *s)).collect();
        for e in self.namespaces.iter() {
            match by_name.get(&**e.key()) {
                Some(s) => e.value().set_share(Some(*s)),
                // Only a namespace that held a share changes: most hold none.
                None if e.value().share().is_some() => e.value().set_share(None),
                None => {}
            }
        }
        for (ns, share) in shares {
            if !self.namespaces.contains_key(ns.as_str()) {
                self.namespace(&Arc::from(ns.as_str()))
                    .set_share(Some(*share));
            }
        }
    }

    /// In-flight invokes of every namespace (for metrics; not on the request path).
    pub fn namespaces_in_flight(&self) -> Vec<(Arc<str>, u32)> {
        self.namespaces
            .iter()
            .map(|e| (e.key().clone(), e.value().in_flight()))
            .collect()
    }

    pub fn counts(&self) -> (usize, usize, usize, usize) {
        (
            self.namespaces.len(),
            self.identities.len(),
            self.actions.len(),
            self.endpoints.len(),
        )
    }

    /// An endpoint the router learned from its own cold start, ahead of the push carrying it.
    pub fn upsert_endpoint(&self, spec: EndpointSpec) {
        self.endpoints.upsert(spec);
    }

    /// Applies one update. Returns whether identities changed.
    pub fn apply(&self, update: Update) -> bool {
        let identities_changed = update.snapshot
            || !update.identities_upsert.is_empty()
            || !update.identities_removed.is_empty();
        if update.snapshot {
            retain_only(
                &self.namespaces,
                update.namespaces_upsert.iter().map(|(n, _)| n.as_ref()),
            );
            self.overrides.clear();
            retain_only(
                &self.identities,
                update.identities_upsert.iter().map(|i| &*i.uuid),
            );
            self.owners.clear();
            for e in self.identities.iter() {
                self.own(e.value());
            }
            retain_only(
                &self.actions,
                update.actions_upsert.iter().map(|a| a.fqn.as_ref()),
            );
            self.endpoints.retain_only(
                update
                    .endpoints_upsert
                    .iter()
                    .map(|e| e.container_id.as_ref()),
            );
        }
        if let Some(defaults) = update.default_limits
            && defaults != self.default_limits()
        {
            self.defaults.store(Arc::new(defaults));
            // Every namespace not setting a limit follows the new default.
            for ns in self.namespaces.iter() {
                let own = self
                    .overrides
                    .get(ns.key())
                    .map(|o| *o.value())
                    .unwrap_or_default();
                ns.value().set_limits(own.resolve(&defaults));
            }
        }
        let defaults = self.default_limits();
        for (name, own) in update.namespaces_upsert {
            let limits = own.resolve(&defaults);
            self.overrides.insert(name.clone(), own);
            match self.namespaces.get(&name) {
                Some(ns) => ns.set_limits(limits),
                None => {
                    self.namespaces
                        .insert(name, Arc::new(NamespaceState::new(limits)));
                }
            }
        }
        for name in &update.namespaces_removed {
            self.namespaces.remove(name.as_str());
            self.overrides.remove(name.as_str());
        }
        for identity in update.identities_upsert {
            self.own(&identity);
            if let Some(old) = self
                .identities
                .insert(identity.uuid.clone(), Arc::new(identity))
            {
                self.disown(&old);
            }
        }
        for uuid in &update.identities_removed {
            if let Some((_, old)) = self.identities.remove(uuid.as_str()) {
                self.disown(&old);
            }
        }
        for action in update.actions_upsert {
            let fqn = action.fqn.clone();
            self.actions.insert(fqn.clone(), Arc::new(action));
            // A new revision may make waiting requests routable (or unroutable): wake them.
            self.endpoints.touch(&fqn);
        }
        for fqn in &update.actions_removed {
            self.actions.remove(fqn.as_str());
            self.endpoints.touch(fqn);
        }
        for endpoint in update.endpoints_upsert {
            self.endpoints.upsert(endpoint);
        }
        for id in &update.endpoints_removed {
            self.endpoints.remove(id);
        }
        if let Some(n) = update.routers {
            self.routers.store(n, Ordering::Relaxed);
        }
        if identities_changed {
            self.identity_epoch.fetch_add(1, Ordering::AcqRel);
        }
        self.revision.store(update.revision, Ordering::Release);
        if update.snapshot {
            self.ready.store(true, Ordering::Release);
        }
        identities_changed
    }
}

fn retain_only<'a, K, V>(map: &DashMap<K, V>, keep: impl Iterator<Item = &'a str>)
where
    K: std::borrow::Borrow<str> + Eq + std::hash::Hash,
{
    let keep: std::collections::HashSet<&str> = keep.collect();
    map.retain(|k, _| keep.contains(k.borrow()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::action;

    #[test]
    fn snapshot_replaces_and_delta_upserts() {
        let t = Tables::default();
        assert!(!t.is_ready());
        t.apply(Update {
            revision: 1,
            snapshot: true,
            actions_upsert: vec![action("guest/a", 1), action("guest/b", 1)],
            ..Default::default()
        });
        assert!(t.is_ready());
        assert!(t.action("guest/a").is_some());
        t.apply(Update {
            revision: 2,
            actions_removed: vec!["guest/a".into()],
            actions_upsert: vec![action("guest/c", 1)],
            ..Default::default()
        });
        assert!(t.action("guest/a").is_none());
        assert!(t.action("guest/c").is_some());
        t.apply(Update {
            revision: 7,
            snapshot: true,
            actions_upsert: vec![action("guest/d", 1)],
            ..Default::default()
        });
        assert!(t.action("guest/b").is_none());
        assert!(t.action("guest/c").is_none());
        assert!(t.action("guest/d").is_some());
        assert_eq!(t.revision(), 7);
    }

    #[test]
    fn pushed_defaults_apply_to_every_limit_a_namespace_does_not_set() {
        let t = Tables::default();
        let own = LimitOverrides {
            invocations_per_minute: Some(5),
            ..Default::default()
        };
        let defaults = NamespaceLimits {
            invocations_per_minute: 100,
            concurrent_invocations: 7,
            max_payload_bytes: 2048,
        };
        t.apply(Update {
            revision: 1,
            snapshot: true,
            namespaces_upsert: vec![("alpha".into(), own)],
            default_limits: Some(defaults),
            ..Default::default()
        });
        let alpha = t.namespace(&Arc::from("alpha")).limits();
        assert_eq!(
            (alpha.invocations_per_minute, alpha.concurrent_invocations),
            (5, 7)
        );
        assert_eq!(t.namespace(&Arc::from("unknown")).limits(), defaults);
        let changed = NamespaceLimits {
            concurrent_invocations: 9,
            ..defaults
        };
        t.apply(Update {
            revision: 2,
            default_limits: Some(changed),
            ..Default::default()
        });
        let alpha = t.namespace(&Arc::from("alpha")).limits();
        assert_eq!(
            (alpha.invocations_per_minute, alpha.concurrent_invocations),
            (5, 9)
        );
        assert_eq!(t.namespace(&Arc::from("unknown")).limits(), changed);
    }

    #[test]
    fn shares_are_set_for_listed_namespaces_and_cleared_for_the_rest() {
        let t = Tables::default();
        let share = Share {
            invocations_per_minute: 5,
            concurrent_invocations: 2,
            until_ms: u64::MAX,
        };
        let alpha: Arc<str> = Arc::from("alpha");
        t.namespace(&alpha);
        t.apply_shares(&[("alpha".into(), share), ("beta".into(), share)]);
        assert_eq!(t.namespace(&alpha).share(), Some(share));
        assert_eq!(t.namespace(&Arc::from("beta")).share(), Some(share));
        t.apply_shares(&[("beta".into(), share)]);
        assert_eq!(
            t.namespace(&alpha).share(),
            None,
            "alpha is idle everywhere now"
        );
    }

    #[test]
    fn identity_changes_bump_the_epoch() {
        let t = Tables::default();
        let e0 = t.identity_epoch();
        t.apply(Update {
            revision: 1,
            snapshot: true,
            ..Default::default()
        });
        let e1 = t.identity_epoch();
        assert!(e1 > e0);
        t.apply(Update {
            revision: 2,
            actions_upsert: vec![action("guest/a", 1)],
            ..Default::default()
        });
        assert_eq!(t.identity_epoch(), e1);
        t.apply(Update {
            revision: 3,
            identities_removed: vec!["x".into()],
            ..Default::default()
        });
        assert!(t.identity_epoch() > e1);
    }

    #[test]
    fn namespaces_own_web_actions_while_they_have_identities() {
        let id = |uuid: &str, ns: &str| Identity {
            uuid: uuid.into(),
            namespace: ns.into(),
            subject: format!("{ns}-subject").into(),
            key_sha256: [0; 32],
        };
        let t = Tables::default();
        t.apply(Update {
            revision: 1,
            snapshot: true,
            identities_upsert: vec![id("u1", "alpha"), id("u2", "alpha"), id("u3", "beta")],
            ..Default::default()
        });
        assert_eq!(t.owner("alpha").map(|o| o.1), Some("alpha-subject".into()));
        t.apply(Update {
            revision: 2,
            identities_removed: vec!["u1".into()],
            identities_upsert: vec![id("u3", "gamma")],
            ..Default::default()
        });
        assert!(t.owner("alpha").is_some(), "u2 is still in alpha");
        assert!(t.owner("beta").is_none(), "u3 moved to gamma");
        assert!(t.owner("gamma").is_some());
        t.apply(Update {
            revision: 3,
            identities_removed: vec!["u2".into()],
            ..Default::default()
        });
        assert!(t.owner("alpha").is_none());
    }

    #[test]
    fn owner_is_first_segment() {
        assert_eq!(action("guest/pkg/a", 1).owner(), "guest");
    }
}
