//! Activation records the router makes itself, in OpenWhisk's stored form (`whisk_vocab`): the
//! record of a sequence (the components' records are the container proxies'), and the record of
//! an activation the router accepted but could not run, so `activations get` tells the caller
//! what happened; the record of an activation whose action failed to initialise; and the record
//! of an invoke answered from the response cache.

use serde_json::json;
use whisk_vocab::{ActivationRecord, ActivationResponse, ActivationStatus, KeyValue, now_ms};

use super::init_failure::InitFailure;
use super::invocation::Invocation;

/// The skeleton every record of `inv` shares.
fn record(inv: &Invocation, start: u64, response: ActivationResponse) -> ActivationRecord {
    let end = now_ms().max(start);
    ActivationRecord {
        namespace: inv.namespace.to_string(),
        name: inv.action_name().to_owned(),
        subject: inv.subject.to_string(),
        activation_id: inv.activation_id.clone(),
        start,
        end,
        duration: end - start,
        response,
        logs: Vec::new(),
        version: inv.action.version.to_string(),
        publish: false,
        annotations: Vec::new(),
        cause: None,
    }
}

/// An activation the router accepted and could not run: a whisk internal error.
pub fn failed(inv: &Invocation, message: &str) -> ActivationRecord {
    let mut r = record(
        inv,
        inv.received_ms,
        ActivationResponse::error(ActivationStatus::WhiskError, message),
    );
    r.annotations = vec![
        KeyValue::new("path", json!(&*inv.action.fqn)),
        KeyValue::new("kind", json!(&*inv.action.kind)),
    ];
    r
}

/// The limits annotation OpenWhisk puts on a primitive action's records.
fn limits(inv: &Invocation) -> serde_json::Value {
    let l = inv.action.limits;
    json!({
        "timeout": l.timeout_ms, "memory": l.memory_mb, "logs": l.logs_mb,
        "concurrency": l.concurrency,
    })
}

/// An activation whose action's code failed to initialise: OpenWhisk's developer error with
/// `{"error": <text>}`, the lines printed during init as its logs, the init's interval as its
/// own (`initTime`), and the annotations the invoker sets on a cold start.
pub fn init_failed(inv: &Invocation, failure: &InitFailure) -> ActivationRecord {
    let end = now_ms().max(inv.received_ms);
    let start = end.saturating_sub(failure.duration_ms).max(inv.received_ms);
    let mut r = record(
        inv,
        start,
        ActivationResponse::error(ActivationStatus::DeveloperError, failure.message.as_str()),
    );
    r.logs = failure.logs.clone();
    let timed_out = failure
        .message
        .starts_with("The action exceeded its time limits");
    r.annotations = vec![
        KeyValue::new("path", json!(&*inv.action.fqn)),
        KeyValue::new("kind", json!(&*inv.action.kind)),
        KeyValue::new("limits", limits(inv)),
        KeyValue::new("waitTime", json!(start.saturating_sub(inv.received_ms))),
        KeyValue::new("initTime", json!(failure.duration_ms)),
        KeyValue::new("timeout", json!(timed_out)),
    ];
    if let Some(cause) = &inv.cause {
        r.annotations
            .push(KeyValue::new("causedBy", json!("sequence")));
        r.cause = Some(cause.clone());
    }
    r
}

/// An invoke answered from the response cache: a successful activation of the caller's own,
/// taking no time, annotated `cached: true`.
pub fn cached(inv: &Invocation, result: serde_json::Value) -> ActivationRecord {
    let now = now_ms();
    let mut r = record(inv, now, ActivationResponse::success(result));
    r.annotations = vec![
        KeyValue::new("path", json!(&*inv.action.fqn)),
        KeyValue::new("kind", json!(&*inv.action.kind)),
        KeyValue::new("waitTime", json!(now.saturating_sub(inv.received_ms))),
        KeyValue::new("cached", json!(true)),
    ];
    r
}

/// A sequence's own record: its last component's response, `logs` = the ids of its direct
/// components, `duration` = the sum of theirs, and OpenWhisk's sequence annotations.
pub fn sequence(
    inv: &Invocation,
    start: u64,
    duration: u64,
    response: ActivationResponse,
    components: Vec<String>,
    topmost: bool,
) -> ActivationRecord {
    let mut r = record(inv, start, response);
    r.duration = duration;
    r.logs = components;
    r.annotations = vec![
        KeyValue::new("topmost", json!(topmost)),
        KeyValue::new("path", json!(&*inv.action.fqn)),
        KeyValue::new("kind", json!("sequence")),
        KeyValue::new("waitTime", json!(start.saturating_sub(inv.received_ms))),
        KeyValue::new("limits", limits(inv)),
    ];
    if let Some(cause) = &inv.cause {
        r.annotations
            .push(KeyValue::new("causedBy", json!("sequence")));
        r.cause = Some(cause.clone());
    }
    r
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::fixtures;

    fn invocation(received_ms: u64, cause: Option<&str>) -> Invocation {
        Invocation {
            activation_id: "a".repeat(32),
            namespace: "guest".into(),
            subject: "guest-subject".into(),
            action: Arc::new(fixtures::action("guest/pkg/broken", 3)),
            blocking: true,
            result: false,
            deadline_ms: received_ms + 60_000,
            received_ms,
            cause: cause.map(str::to_owned),
            max_payload_bytes: 1024,
        }
    }

    fn value(r: &ActivationRecord, key: &str) -> Option<serde_json::Value> {
        r.annotations
            .iter()
            .find(|a| a.key == key)
            .map(|a| a.value.clone())
    }

    #[test]
    fn an_init_failure_is_a_developer_error_with_the_init_logs_and_interval() {
        let received = now_ms() - 1_000;
        let failure = InitFailure {
            message: "Initialization has failed due to: boom".into(),
            logs: vec!["l1".into(), "l2".into()],
            duration_ms: 300,
        };
        let r = init_failed(&invocation(received, None), &failure);
        assert_eq!(r.response.status, ActivationStatus::DeveloperError);
        assert_eq!(
            r.response.result,
            json!({"error": "Initialization has failed due to: boom"})
        );
        assert_eq!(r.logs, vec!["l1".to_string(), "l2".to_string()]);
        assert_eq!((r.name.as_str(), r.namespace.as_str()), ("broken", "guest"));
        // The activation's interval is the init's, after the caller's wait.
        assert!(r.start >= received && r.end >= r.start + 300, "{r:?}");
        assert_eq!(r.duration, r.end - r.start);
        assert_eq!(value(&r, "initTime"), Some(json!(300)));
        assert_eq!(value(&r, "waitTime"), Some(json!(r.start - received)));
        assert_eq!(value(&r, "path"), Some(json!("guest/pkg/broken")));
        assert_eq!(value(&r, "timeout"), Some(json!(false)));
        assert!(r.cause.is_none() && value(&r, "causedBy").is_none());
    }

    #[test]
    fn an_init_that_timed_out_is_annotated_and_a_component_names_its_sequence() {
        let failure = InitFailure {
            message:
                "The action exceeded its time limits of 500 milliseconds during initialization."
                    .into(),
            logs: vec![],
            duration_ms: 500,
        };
        // Received just now: the init cannot have started before the request came.
        let received = now_ms();
        let r = init_failed(&invocation(received, Some(&"c".repeat(32))), &failure);
        assert!(r.start >= received);
        assert_eq!(value(&r, "timeout"), Some(json!(true)));
        assert_eq!(r.cause.as_deref(), Some("c".repeat(32).as_str()));
        assert_eq!(value(&r, "causedBy"), Some(json!("sequence")));
    }
}
