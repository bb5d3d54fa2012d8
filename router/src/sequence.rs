//! Sequences, run by the router in the data plane with OpenWhisk's semantics.
//!
//! The components run strictly in order, each through normal warm/cold routing (but with no
//! throttle charge of its own: the sequence paid one), each as its own activation whose `cause`
//! is the sequence's id. Each result feeds the next component; the first error stops the chain.
//! Nested sequences run inline, and at most [`MAX_ATOMIC`] atomic actions run in all. The
//! sequence's own record has the last component's response, `logs` = the ids of its direct
//! components, `duration` = the sum of theirs, and the annotations `topmost`, `kind`, `path`,
//! `causedBy` (nested only) and `waitTime`. It is reported to the control plane like any record.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::domain::clock::now_ms;
use crate::domain::pipeline::{Invocation, Router, new_activation_id};
use crate::invoker::{Origin, ProxyClient, call_until_answered};

/// OpenWhisk's `limits.actions.sequence.maxLength`.
pub const MAX_ATOMIC: usize = 50;

/// A response object as the activation record holds it.
fn response(status_code: u8, result: Value) -> Value {
    let status = match status_code {
        0 => "success",
        1 => "application error",
        2 => "action developer error",
        _ => "whisk internal error",
    };
    json!({ "statusCode": status_code, "status": status, "success": status_code == 0, "result": result })
}

fn error(status_code: u8, message: &str) -> Value {
    response(status_code, json!({ "error": message }))
}

/// Runs the sequence of `inv` on `body` (its parameters) and returns its stored record.
pub async fn run(
    router: &Router,
    client: &ProxyClient,
    inv: &Invocation,
    body: Bytes,
    authorization: Option<String>,
    transaction_id: String,
) -> Value {
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(json!({}))
    } else {
        serde_json::from_slice::<Value>(&body)
    };
    let mut run = Run {
        router,
        client,
        authorization: authorization.as_deref(),
        transaction_id: &transaction_id,
        atomic: 0,
    };
    match input {
        Ok(v) if v.is_object() || v.is_array() => run.sequence(inv, v, true).await,
        _ => {
            // OpenWhisk refuses such bodies before running anything; we record why.
            let record = finish(
                inv,
                inv.received_ms,
                0,
                error(1, "The request content was malformed."),
                vec![],
                true,
            );
            router.control().report_activation(record.to_string());
            record
        }
    }
}

struct Run<'a> {
    router: &'a Router,
    client: &'a ProxyClient,
    authorization: Option<&'a str>,
    transaction_id: &'a str,
    /// Atomic actions run so far, over every nesting level.
    atomic: usize,
}

impl Run<'_> {
    async fn sequence(&mut self, inv: &Invocation, input: Value, topmost: bool) -> Value {
        let start = now_ms();
        let mut logs = Vec::new();
        let mut duration = 0u64;
        let mut current = input;
        let mut last = response(0, current.clone());
        for fqn in inv.action.components.iter() {
            let Some(action) = self.router.tables.action(fqn) else {
                last = error(1, "Sequence component does not exist.");
                break;
            };
            let component = Invocation {
                activation_id: new_activation_id(),
                namespace: inv.namespace.clone(),
                subject: inv.subject.clone(),
                action: action.clone(),
                blocking: true,
                result: false,
                deadline_ms: u64::MAX / 2,
                received_ms: now_ms(),
                cause: Some(inv.activation_id.clone()),
            };
            let record = if action.is_sequence() {
                Box::pin(self.sequence(&component, current.clone(), false)).await
            } else {
                self.atomic += 1;
                if self.atomic > MAX_ATOMIC {
                    last = error(1, "Too many actions in the sequence.");
                    break;
                }
                self.component(&component, &current).await
            };
            logs.push(component.activation_id.clone());
            duration += record["duration"].as_u64().unwrap_or(0);
            last = record["response"].clone();
            if last["success"] != json!(true) {
                break;
            }
            current = last["result"].clone();
        }
        let record = finish(inv, start, duration, last, logs, topmost);
        self.router.control().report_activation(record.to_string());
        record
    }

    /// One atomic component, as a blocking call to its container; returns its stored record.
    async fn component(&self, inv: &Invocation, input: &Value) -> Value {
        let limit = Duration::from_millis(inv.action.limits.timeout_ms.max(100) as u64);
        let deadline = Instant::now() + limit + Duration::from_secs(60);
        let failed = |message: &str| {
            let now = now_ms();
            json!({ "duration": now.saturating_sub(inv.received_ms), "response": error(3, message) })
        };
        let mut slot = match self.router.reacquire(inv, deadline).await {
            Ok(slot) => slot,
            Err(r) => return failed(&r.to_string()),
        };
        let body = Bytes::from(input.to_string());
        let answer = call_until_answered(
            self.router,
            self.client,
            &mut slot,
            inv,
            &body,
            Origin {
                authorization: self.authorization,
                transaction_id: self.transaction_id,
            },
            deadline,
        )
        .await;
        let answer = match answer {
            Ok(a) => a,
            Err(message) => return failed(&message),
        };
        match serde_json::from_slice::<Value>(&answer.body) {
            // A JSON-array result comes back bare (as OpenWhisk answers it).
            Ok(v @ Value::Array(_)) => json!({ "duration": 0, "response": response(0, v) }),
            Ok(mut record) if record["response"].is_object() => {
                let status = record["response"]["status"].as_str().unwrap_or("");
                let code = match status {
                    "success" => 0,
                    "application error" => 1,
                    "action developer error" => 2,
                    _ => 3,
                };
                record["response"]["statusCode"] = json!(code);
                record
            }
            _ => failed("Sequence failed."),
        }
    }
}

/// The sequence's own record (stored form).
fn finish(
    inv: &Invocation,
    start: u64,
    duration: u64,
    response: Value,
    logs: Vec<String>,
    topmost: bool,
) -> Value {
    let end = now_ms().max(start);
    let name = inv.action.fqn.rsplit('/').next().unwrap_or_default();
    let l = inv.action.limits;
    let mut annotations = vec![
        json!({ "key": "topmost", "value": topmost }),
        json!({ "key": "path", "value": &*inv.action.fqn }),
        json!({ "key": "kind", "value": "sequence" }),
        json!({ "key": "waitTime", "value": start.saturating_sub(inv.received_ms) }),
        json!({ "key": "limits", "value": {
            "timeout": l.timeout_ms, "memory": l.memory_mb, "logs": l.logs_mb, "concurrency": l.concurrency,
        }}),
    ];
    let mut record = json!({
        "namespace": &*inv.namespace,
        "name": name,
        "subject": &*inv.subject,
        "activationId": inv.activation_id,
        "start": start,
        "end": end,
        "duration": duration,
        "response": response,
        "logs": logs,
        "version": &*inv.action.version,
        "publish": false,
    });
    if let Some(cause) = &inv.cause {
        annotations.push(json!({ "key": "causedBy", "value": "sequence" }));
        record["cause"] = json!(cause);
    }
    record["annotations"] = Value::Array(annotations);
    record
}

/// The HTTP answer OpenWhisk gives for a finished record: status by outcome, the record without
/// `statusCode` (or just the result with `result=true`), and a JSON-array result bare.
pub fn answer(record: &Value, result_only: bool) -> (u16, String) {
    let code = record["response"]["statusCode"].as_u64().unwrap_or(3);
    let status = match code {
        0 => 200,
        1 | 2 => 502,
        _ => 500,
    };
    let result = &record["response"]["result"];
    let body = if result_only || result.is_array() {
        result.to_string()
    } else {
        let mut api = record.clone();
        if let Some(r) = api["response"].as_object_mut() {
            r.remove("statusCode");
        }
        api.to_string()
    };
    (status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_by_outcome() {
        let ok = json!({ "response": response(0, json!({ "x": 1 })) });
        let (status, body) = answer(&ok, true);
        assert_eq!((status, body.as_str()), (200, "{\"x\":1}"));
        let (_, body) = answer(&ok, false);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["response"].get("statusCode").is_none());
        assert_eq!(v["response"]["status"], "success");
        let app = json!({ "response": error(1, "boom") });
        assert_eq!(answer(&app, false).0, 502);
        assert_eq!(answer(&json!({ "response": error(3, "x") }), true).0, 500);
        let arr = json!({ "response": response(0, json!([1, 2])) });
        assert_eq!(answer(&arr, false), (200, "[1,2]".to_owned()));
    }
}
