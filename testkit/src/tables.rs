//! The tables a control plane pushes to routers, for tests: one builder per kind of entry (with
//! the defaults tests rely on), and [`TableModel`], the tables as a control plane holds them.

use std::collections::HashMap;
use std::net::SocketAddr;

use sha2::{Digest, Sha256};
use whisk_proto::controlplane::v1 as pb;

/// An identity as pushed: the key's SHA-256, never the key. Its subject is its namespace.
pub fn identity(uuid: &str, ns: &str, key: &str) -> pb::Identity {
    pb::Identity {
        uuid: uuid.into(),
        namespace: ns.into(),
        subject: ns.into(),
        key_sha256: Sha256::digest(key.as_bytes()).to_vec(),
    }
}

/// A namespace with these limits and a 1 MiB payload limit (OpenWhisk's default).
pub fn namespace(name: &str, per_minute: u32, concurrent: u32) -> pb::Namespace {
    namespace_with_payload(name, per_minute, concurrent, 1024 * 1024)
}

/// A namespace with these limits.
pub fn namespace_with_payload(
    name: &str,
    per_minute: u32,
    concurrent: u32,
    max_payload_bytes: u64,
) -> pb::Namespace {
    pb::Namespace {
        name: name.into(),
        limits: Some(pb::NamespaceLimits {
            invocations_per_minute: Some(per_minute),
            concurrent_invocations: Some(concurrent),
            max_payload_bytes: Some(max_payload_bytes),
        }),
    }
}

/// A nodejs action at revision 1 with OpenWhisk's default limits and this concurrency.
pub fn action(fqn: &str, concurrency: u32) -> pb::Action {
    pb::Action {
        fqn: fqn.into(),
        revision: 1,
        version: "0.0.1".into(),
        kind: "nodejs:20".into(),
        limits: Some(pb::ActionLimits {
            timeout_ms: 60_000,
            memory_mb: 256,
            logs_mb: 10,
            concurrency,
        }),
        ..Default::default()
    }
}

/// A ready endpoint of revision 1 of `fqn` at `addr`, serving the action's own namespace, with
/// the token [`token_of`] gives for `id`.
pub fn endpoint(id: &str, fqn: &str, addr: SocketAddr, capacity: u32) -> pb::Endpoint {
    pb::Endpoint {
        container_id: id.into(),
        action_fqn: fqn.into(),
        action_revision: 1,
        address: addr.to_string(),
        capacity,
        state: pb::EndpointState::Ready as i32,
        invoking_namespace: fqn.split('/').next().unwrap_or_default().into(),
        container_token: token_of(id),
    }
}

/// The container token the table builders give container `id` (deterministic, for fakes that
/// check what the router presents).
pub fn token_of(id: &str) -> String {
    format!("{:0>64}", hex_of(id))
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The tables as a control plane holds them: deltas applied in order, a snapshot on demand.
#[derive(Debug, Default, Clone)]
pub struct TableModel {
    pub revision: u64,
    pub namespaces: HashMap<String, pb::Namespace>,
    pub identities: HashMap<String, pb::Identity>,
    pub actions: HashMap<String, pb::Action>,
    pub endpoints: HashMap<String, pb::Endpoint>,
}

impl TableModel {
    /// Applies a delta's upserts and removals (the revision is the caller's business).
    pub fn apply(&mut self, u: &pb::TableUpdate) {
        for n in &u.namespaces_upsert {
            self.namespaces.insert(n.name.clone(), n.clone());
        }
        for n in &u.namespaces_removed {
            self.namespaces.remove(n);
        }
        for i in &u.identities_upsert {
            self.identities.insert(i.uuid.clone(), i.clone());
        }
        for i in &u.identities_removed {
            self.identities.remove(i);
        }
        for a in &u.actions_upsert {
            self.actions.insert(a.fqn.clone(), a.clone());
        }
        for a in &u.actions_removed {
            self.actions.remove(a);
        }
        for e in &u.endpoints_upsert {
            self.endpoints.insert(e.container_id.clone(), e.clone());
        }
        for e in &u.endpoints_removed {
            self.endpoints.remove(e);
        }
    }

    /// Every table, as one snapshot message at the current revision.
    pub fn snapshot(&self) -> pb::TableUpdate {
        pb::TableUpdate {
            revision: self.revision,
            snapshot: true,
            namespaces_upsert: self.namespaces.values().cloned().collect(),
            identities_upsert: self.identities.values().cloned().collect(),
            actions_upsert: self.actions.values().cloned().collect(),
            endpoints_upsert: self.endpoints.values().cloned().collect(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_holds_what_the_deltas_left() {
        let mut m = TableModel::default();
        m.apply(&pb::TableUpdate {
            namespaces_upsert: vec![namespace("guest", 10, 10)],
            actions_upsert: vec![action("guest/a", 1), action("guest/b", 1)],
            ..Default::default()
        });
        m.apply(&pb::TableUpdate {
            actions_removed: vec!["guest/a".into()],
            ..Default::default()
        });
        m.revision = 2;
        let s = m.snapshot();
        assert!(s.snapshot);
        assert_eq!(s.revision, 2);
        assert_eq!(s.namespaces_upsert.len(), 1);
        let names: Vec<_> = s.actions_upsert.iter().map(|a| a.fqn.as_str()).collect();
        assert_eq!(names, ["guest/b"]);
    }

    #[test]
    fn identities_carry_the_digest_never_the_key() {
        let i = identity("u", "guest", "secret");
        assert_eq!(i.key_sha256, Sha256::digest(b"secret").to_vec());
        assert!(!i.key_sha256.windows(6).any(|w| w == b"secret"));
    }
}
