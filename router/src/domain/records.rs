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
