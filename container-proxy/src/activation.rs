//! Running one admitted activation: OpenWhisk's `/run` message, the call to the executor with
//! the action's limits, and the activation record built from the classified outcome.

use std::time::Duration;

use serde_json::{Value, json};
use whisk_vocab::now_ms;

use crate::action::{ActionSpec, MAX_RESULT_BYTES};
use crate::context::InvokeContext;
use crate::executor::{Executor, RunOutcome, RunRequest};
use crate::record::{Finished, Recorded, RunResponse, classify};

/// OpenWhisk's `/run` body. `deadline` is a string of epoch ms (as the invoker sends it);
/// `api_key` only when the action's `provide-api-key` annotation is truthy.
pub fn run_message(action: &ActionSpec, ctx: &InvokeContext, value: Value, start_ms: u64) -> Value {
    let deadline = start_ms.saturating_add(action.limits.timeout);
    let mut msg = json!({
        "value": value,
        "namespace": ctx.namespace,
        "action_name": action.action_name(),
        "action_version": action.version,
        "activation_id": ctx.activation_id,
        "transaction_id": ctx.transaction_id,
        "deadline": deadline.to_string(),
    });
    if action.annotation_truthy("provide-api-key")
        && let (Some(key), Value::Object(m)) = (&ctx.api_key, &mut msg)
    {
        m.insert("api_key".into(), Value::String(key.clone()));
    }
    msg
}

/// Runs the activation (or, when the action failed to initialise, records that failure) and
/// builds its record. `init_time_ms` is set only for the first activation after init.
pub async fn execute(
    action: &ActionSpec,
    executor: &dyn Executor,
    init_error: Option<&str>,
    init_time_ms: Option<u64>,
    ctx: &InvokeContext,
    value: Value,
) -> Recorded {
    let start_ms = now_ms();
    let outcome = match init_error {
        Some(err) => RunOutcome {
            response: RunResponse::InitFailed(err.to_string()),
            logs: Vec::new(),
        },
        None => {
            let message = run_message(action, ctx, value, start_ms);
            executor
                .run(RunRequest {
                    message,
                    traceparent: ctx.traceparent.clone(),
                    timeout: Duration::from_millis(action.limits.timeout),
                    log_limit: action.limits.log_bytes(),
                    max_result: MAX_RESULT_BYTES,
                })
                .await
        }
    };
    let end_ms = now_ms().max(start_ms);
    let timed_out = matches!(outcome.response, RunResponse::TimedOut { .. });
    Recorded::build(
        action,
        Finished {
            activation_id: ctx.activation_id.clone(),
            namespace: ctx.namespace.clone(),
            subject: ctx.subject.clone(),
            start_ms,
            end_ms,
            wait_time_ms: start_ms.saturating_sub(ctx.received_at_ms),
            cause: ctx.cause.clone(),
            init_time_ms,
            timed_out,
            response: classify(&outcome.response),
            logs: outcome.logs,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> InvokeContext {
        InvokeContext {
            activation_id: "a".repeat(32),
            transaction_id: "tid".into(),
            namespace: "caller".into(),
            subject: "subj".into(),
            action: "owner/hello".into(),
            action_revision: None,
            blocking: true,
            result_only: false,
            deadline_ms: 0,
            received_at_ms: 0,
            api_key: Some("uuid:key".into()),
            traceparent: None,
            cause: None,
            web: false,
        }
    }

    #[test]
    fn run_message_shape() {
        let mut action = ActionSpec::from_json(json!({
            "fqn": "owner/pkg/hello", "version": "0.0.3", "limits": {"timeout": 500}
        }))
        .unwrap();
        let msg = run_message(&action, &ctx(), json!({"x": 1}), 1000);
        assert_eq!(
            msg,
            json!({
                "value": {"x": 1},
                "namespace": "caller",
                "action_name": "/owner/pkg/hello",
                "action_version": "0.0.3",
                "activation_id": "a".repeat(32),
                "transaction_id": "tid",
                "deadline": "1500",
            })
        );
        action.annotations.push(crate::action::Annotation {
            key: "provide-api-key".into(),
            value: json!(true),
        });
        let msg = run_message(&action, &ctx(), json!({}), 1000);
        assert_eq!(msg["api_key"], "uuid:key");
    }
}
