//! Sequences, run by the router in the data plane with OpenWhisk's semantics.
//!
//! The components run strictly in order, each through normal warm/cold routing (but with no
//! throttle charge of its own: the sequence paid one), each as its own activation whose `cause`
//! is the sequence's id. Each result feeds the next component; the first error stops the chain
//! (a component whose code fails to initialise is its own developer-error activation, and the
//! sequence ends with that error, as in OpenWhisk).
//! Nested sequences run inline, and at most [`MAX_ATOMIC`] atomic actions run in all. The
//! sequence's own record (`domain::records::sequence`) is reported to the control plane like any
//! record.

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::time::Instant;
use whisk_vocab::{
    ActivationRecord, ActivationResponse, ActivationStatus, new_activation_id, now_ms,
};

use super::KeptRequest;
use super::client::ProxyClient;
use super::invoke::{InvokeError, call_until_answered};
use crate::config::RUN_GRACE;
use crate::domain::invocation::Invocation;
use crate::domain::pipeline::Router;
use crate::domain::records;
use crate::domain::rejection::Rejection;

/// OpenWhisk's `limits.actions.sequence.maxLength`.
pub const MAX_ATOMIC: usize = 50;

/// What the sequence reads of a component's activation record.
#[derive(serde::Deserialize)]
struct Answered {
    #[serde(default)]
    duration: u64,
    response: ActivationResponse,
}

/// A component's outcome: its duration and response.
struct Ran {
    duration: u64,
    response: ActivationResponse,
}

impl Ran {
    /// A component that could not run because of `why`: an init failure is recorded as the
    /// component's own activation (a developer error with the init's logs) and ends the sequence
    /// with that error; anything else is a whisk internal error.
    fn not_run(router: &Router, inv: &Invocation, why: Rejection) -> Self {
        match why {
            Rejection::InitFailed(failure) => {
                let record = router.record_init_failure(inv, &failure);
                Ran {
                    duration: record.duration,
                    response: record.response,
                }
            }
            other => Ran::failed(inv, &other.to_string()),
        }
    }

    fn failed(inv: &Invocation, message: &str) -> Self {
        Ran {
            duration: now_ms().saturating_sub(inv.received_ms),
            response: ActivationResponse::error(ActivationStatus::WhiskError, message),
        }
    }
}

/// Runs the sequence of `inv` on `body` (its parameters) and returns its stored record.
pub async fn run(
    router: &Router,
    client: &ProxyClient,
    inv: &Invocation,
    body: Bytes,
    request: &KeptRequest,
) -> ActivationRecord {
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(json!({}))
    } else {
        serde_json::from_slice::<Value>(&body)
    };
    let mut run = Run {
        router,
        client,
        request,
        atomic: 0,
    };
    match input {
        Ok(v) if v.is_object() || v.is_array() => run.sequence(inv, v, true).await,
        _ => {
            // OpenWhisk refuses such bodies before running anything; we record why.
            let record = records::sequence(
                inv,
                inv.received_ms,
                0,
                ActivationResponse::error(
                    ActivationStatus::ApplicationError,
                    "The request content was malformed.",
                ),
                vec![],
                true,
            );
            router.control().report_activation(record.clone());
            record
        }
    }
}

struct Run<'a> {
    router: &'a Router,
    client: &'a ProxyClient,
    request: &'a KeptRequest,
    /// Atomic actions run so far, over every nesting level.
    atomic: usize,
}

impl Run<'_> {
    async fn sequence(
        &mut self,
        inv: &Invocation,
        input: Value,
        topmost: bool,
    ) -> ActivationRecord {
        let start = now_ms();
        let mut logs = Vec::new();
        let mut duration = 0u64;
        let mut current = input;
        let mut last = ActivationResponse::success(current.clone());
        for fqn in inv.action.components.iter() {
            let Some(action) = self.router.tables.action(fqn) else {
                last = ActivationResponse::error(
                    ActivationStatus::ApplicationError,
                    "Sequence component does not exist.",
                );
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
                max_payload_bytes: inv.max_payload_bytes,
            };
            let ran = if action.is_sequence() {
                let record = Box::pin(self.sequence(&component, current.clone(), false)).await;
                Ran {
                    duration: record.duration,
                    response: record.response,
                }
            } else {
                self.atomic += 1;
                if self.atomic > MAX_ATOMIC {
                    last = ActivationResponse::error(
                        ActivationStatus::ApplicationError,
                        "Too many actions in the sequence.",
                    );
                    break;
                }
                self.component(&component, &current).await
            };
            logs.push(component.activation_id.clone());
            duration += ran.duration;
            last = ran.response;
            if !last.status.is_success() {
                break;
            }
            current = last.result.clone();
        }
        let record = records::sequence(inv, start, duration, last, logs, topmost);
        self.router.control().report_activation(record.clone());
        record
    }

    /// One atomic component, as a blocking call to its container.
    async fn component(&self, inv: &Invocation, input: &Value) -> Ran {
        let limit = std::time::Duration::from_millis(inv.action.limits.timeout_ms.max(100) as u64);
        let deadline = Instant::now() + limit + RUN_GRACE;
        let mut slot = match self.router.reacquire(inv, deadline).await {
            Ok(slot) => slot,
            Err(r) => return Ran::not_run(self.router, inv, r),
        };
        let body = Bytes::from(input.to_string());
        let answer = call_until_answered(
            self.router,
            self.client,
            &mut slot,
            inv,
            self.request,
            &body,
            deadline,
        )
        .await;
        let answer = match answer {
            Ok(a) => a,
            Err(InvokeError::NoCapacity(r)) => return Ran::not_run(self.router, inv, r),
            Err(e) => return Ran::failed(inv, &e.to_string()),
        };
        match serde_json::from_slice::<Value>(&answer.body) {
            // A JSON-array result comes back bare (as OpenWhisk answers it).
            Ok(v @ Value::Array(_)) => Ran {
                duration: 0,
                response: ActivationResponse::success(v),
            },
            Ok(record) => match serde_json::from_value::<Answered>(record) {
                Ok(a) => Ran {
                    duration: a.duration,
                    response: a.response,
                },
                Err(_) => Ran::failed(inv, "Sequence failed."),
            },
            _ => Ran::failed(inv, "Sequence failed."),
        }
    }
}
