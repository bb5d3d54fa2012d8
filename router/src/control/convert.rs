//! Proto (`whisk.controlplane.v1`) to domain types.

use std::sync::Arc;

use whisk_proto::controlplane::v1 as pb;

use crate::domain::endpoints::EndpointSpec;
use crate::domain::tables::{ActionLimits, ActionMeta, Identity, Update};
use crate::domain::throttle::{LimitOverrides, NamespaceLimits};
use crate::domain::web::export::WebExport;

pub fn endpoint(e: pb::Endpoint) -> EndpointSpec {
    EndpointSpec {
        marked_for_removal: e.state() == pb::EndpointState::MarkedForRemoval,
        container_id: e.container_id.into(),
        action_fqn: e.action_fqn.into(),
        action_revision: e.action_revision,
        address: e.address.into(),
        capacity: e.capacity,
        invoking_namespace: e.invoking_namespace.into(),
        token: whisk_vocab::ContainerToken::from_wire(&e.container_token).unwrap_or_default(),
    }
}

fn overrides(l: Option<pb::NamespaceLimits>) -> LimitOverrides {
    let l = l.unwrap_or_default();
    LimitOverrides {
        invocations_per_minute: l.invocations_per_minute,
        concurrent_invocations: l.concurrent_invocations,
        max_payload_bytes: l.max_payload_bytes,
    }
}

/// The system defaults, as pushed (a field left out keeps OpenWhisk's default).
fn defaults(l: pb::NamespaceLimits) -> NamespaceLimits {
    overrides(Some(l)).resolve(&NamespaceLimits::default())
}

fn identity(i: pb::Identity) -> Option<Identity> {
    Some(Identity {
        key_sha256: i.key_sha256.as_slice().try_into().ok()?,
        uuid: i.uuid.into(),
        namespace: i.namespace.into(),
        subject: i.subject.into(),
    })
}

fn action(a: pb::Action) -> ActionMeta {
    let l = a.limits.unwrap_or_default();
    ActionMeta {
        fqn: a.fqn.into(),
        revision: a.revision,
        version: a.version.into(),
        kind: a.kind.into(),
        limits: ActionLimits {
            timeout_ms: l.timeout_ms,
            memory_mb: l.memory_mb,
            logs_mb: l.logs_mb,
            concurrency: l.concurrency.max(1),
        },
        components: a.components.iter().cloned().map(Arc::from).collect(),
        public: a.public,
        web: WebExport::from_annotations(|k| a.annotations.get(k).map(String::as_str)),
    }
}

pub fn update(u: pb::TableUpdate) -> Update {
    Update {
        revision: u.revision,
        snapshot: u.snapshot,
        namespaces_upsert: u
            .namespaces_upsert
            .into_iter()
            .map(|n| (Arc::from(n.name), overrides(n.limits)))
            .collect(),
        namespaces_removed: u.namespaces_removed,
        identities_upsert: u
            .identities_upsert
            .into_iter()
            .filter_map(identity)
            .collect(),
        identities_removed: u.identities_removed,
        actions_upsert: u.actions_upsert.into_iter().map(action).collect(),
        actions_removed: u.actions_removed,
        endpoints_upsert: u.endpoints_upsert.into_iter().map(endpoint).collect(),
        endpoints_removed: u.endpoints_removed,
        routers: u.routers,
        default_limits: u.default_limits.map(defaults),
    }
}
