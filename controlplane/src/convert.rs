//! The control plane's protobuf boundary: every conversion between its own model (entities,
//! endpoints, cold-start errors) and the `whisk_proto` types routers and container proxies speak,
//! in one place. The core works on its model; the push hub and the gRPC adapter call these.

use std::time::{Duration, Instant};

use whisk_proto::controlplane::v1 as pb;

use crate::model::{ActionDoc, IdentityDoc, NamespaceDoc};
use crate::pool::Endpoint;
use crate::starts::ColdStartError;

/// A namespace and its limit overrides, as routers receive it.
pub fn namespace_pb(ns: &NamespaceDoc) -> pb::Namespace {
    pb::Namespace {
        name: ns.name.clone(),
        limits: Some(pb::NamespaceLimits {
            invocations_per_minute: ns.limits.invocations_per_minute,
            concurrent_invocations: ns.limits.concurrent_invocations,
            max_payload_bytes: ns.limits.max_payload_bytes,
        }),
    }
}

/// Only the SHA-256 of the key (the secret part of `uuid:key`) is stored, and only it is pushed.
pub fn identity_pb(id: &IdentityDoc) -> pb::Identity {
    pb::Identity {
        uuid: id.uuid.clone(),
        namespace: id.namespace.clone(),
        subject: id.subject.clone(),
        key_sha256: id.key_digest(),
    }
}

/// An action as routers receive it (`public`: in a published package); annotation values are
/// JSON text.
pub fn action_pb(a: &ActionDoc, public: bool) -> pb::Action {
    pb::Action {
        fqn: a.fqn(),
        revision: a.revision,
        version: a.version.clone(),
        kind: a.exec.kind.clone(),
        limits: Some(pb::ActionLimits {
            timeout_ms: a.limits.timeout,
            memory_mb: a.limits.memory,
            logs_mb: a.limits.logs,
            concurrency: a.limits.concurrency,
        }),
        annotations: a
            .annotations
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.to_string()))
            .collect(),
        components: a
            .exec
            .components
            .iter()
            .flatten()
            .map(|c| c.trim_start_matches('/').to_string())
            .collect(),
        public,
    }
}

/// An endpoint as routers receive it.
pub fn endpoint_pb(e: &Endpoint) -> pb::Endpoint {
    let state = if e.marked {
        pb::EndpointState::MarkedForRemoval
    } else {
        pb::EndpointState::Ready
    };
    pb::Endpoint {
        container_id: e.container_id.clone(),
        action_fqn: e.action_fqn.clone(),
        action_revision: e.action_revision,
        address: e.address.clone(),
        capacity: e.capacity,
        state: state as i32,
        invoking_namespace: e.invoking_namespace.clone(),
        container_token: e.token.expose().to_string(),
    }
}

/// Why a cold start failed, as the router receives it.
pub fn cold_start_error_pb(e: ColdStartError) -> pb::ColdStartError {
    use pb::cold_start_error::Code;
    let (logs, duration_ms) = match &e {
        ColdStartError::InitFailed {
            logs, duration_ms, ..
        } => (logs.clone(), *duration_ms),
        _ => (Vec::new(), 0),
    };
    let (code, retry) = match &e {
        ColdStartError::UnknownAction(_) => (Code::UnknownAction, 0),
        ColdStartError::StartFailed(_) => (Code::StartFailed, 0),
        ColdStartError::CapacityExhausted { retry_after_ms, .. } => {
            (Code::CapacityExhausted, *retry_after_ms)
        }
        ColdStartError::DeadlineExceeded => (Code::DeadlineExceeded, 0),
        ColdStartError::InitFailed { .. } => (Code::InitFailed, 0),
        ColdStartError::KindDeprecated(_) => (Code::KindDeprecated, 0),
    };
    pb::ColdStartError {
        code: code as i32,
        message: e.to_string(),
        retry_after_ms: retry,
        logs,
        duration_ms,
    }
}

/// A request's deadline in epoch milliseconds as a local instant (`None` for 0 = no deadline).
pub fn deadline_from_unix_ms(ms: u64) -> Option<Instant> {
    if ms == 0 {
        return None;
    }
    let now_ms = whisk_vocab::now_ms();
    let now = Instant::now();
    Some(if ms <= now_ms {
        now
    } else {
        now + Duration::from_millis(ms - now_ms)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_errors_cross_the_boundary() {
        let mut e = Endpoint {
            container_id: "c".into(),
            action_fqn: "ns/a".into(),
            action_revision: 3,
            address: "127.0.0.1:1".into(),
            capacity: 2,
            marked: false,
            invoking_namespace: "other".into(),
            token: whisk_vocab::ContainerToken::generate(),
        };
        assert_eq!(endpoint_pb(&e).state, pb::EndpointState::Ready as i32);
        e.marked = true;
        let wire = endpoint_pb(&e);
        assert_eq!(wire.state, pb::EndpointState::MarkedForRemoval as i32);
        assert_eq!((wire.action_revision, wire.capacity), (3, 2));
        assert_eq!(wire.invoking_namespace, "other");
        assert_eq!(wire.container_token, e.token.expose());
        let err = cold_start_error_pb(ColdStartError::CapacityExhausted {
            message: "full".into(),
            retry_after_ms: 1000,
        });
        assert_eq!(
            err.code,
            pb::cold_start_error::Code::CapacityExhausted as i32
        );
        assert_eq!((err.message.as_str(), err.retry_after_ms), ("full", 1000));
        assert!(deadline_from_unix_ms(0).is_none());
        assert!(deadline_from_unix_ms(1).is_some_and(|d| d <= Instant::now()));
    }
}
