//! OpenWhisk's classification of a run (compat §2 `processRunResponseContent`, §6) and the
//! activation record built from it. The record's model, its forms (stored, with
//! `response.statusCode`, reported to the control plane; API, without, answered to the caller)
//! and the status codes and texts are OpenWhisk's shared vocabulary (`whisk-vocab`); this module
//! only decides which outcome a run had and which annotations the proxy adds.

use serde_json::{Value, json};
use whisk_vocab::record::KeyValue;
use whisk_vocab::{ActivationRecord, ActivationResponse, ActivationStatus};

use crate::action::ActionSpec;

/// OpenWhisk's text for a container that died mid-run.
pub const ABNORMAL_RUN: &str =
    "The action did not produce a valid response and exited unexpectedly.";

/// OpenWhisk's text for an action killed for holding more memory than its limit.
pub const MEMORY_EXHAUSTED: &str = "The action exhausted its memory and was aborted.";

/// What the runtime produced for one `/run`, before classification.
#[derive(Debug, Clone, PartialEq)]
pub enum RunResponse {
    /// The runtime answered. `ok` = HTTP 200 (or a plain result line of a launcher); `body` is the
    /// (possibly truncated) raw text; `size` its full length in bytes.
    Answered {
        ok: bool,
        body: String,
        size: usize,
        /// `Some(limit)` when `size` exceeded it and `body` holds only the first `limit` bytes.
        truncated: Option<usize>,
    },
    /// The time limit (ms) passed before an answer.
    TimedOut { limit_ms: u64 },
    /// The runtime process died or the connection failed.
    Exited,
    /// The action's processes held more memory than its limit and were killed.
    MemoryExhausted,
    /// The action's code failed to initialise (developer error with this text).
    InitFailed(String),
    /// The proxy or runtime failed on its side (e.g. `/run` before init): whisk internal error.
    Internal(String),
}

/// The classified `response` of an activation, and what the proxy learned beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub response: ActivationResponse,
    /// Seconds the caller may cache a successful result for (see [`CACHE_FIELD`]); never stored.
    pub cache_max_age: Option<u64>,
}

/// The result field by which an action lets its successful response be cached, in seconds:
/// `{"greeting": "hi", "__ow_cache_max_age": 60}`. The proxy removes it from the result and
/// answers with `Cache-Control: max-age=60`, which the router honours.
pub const CACHE_FIELD: &str = "__ow_cache_max_age";

impl Classified {
    fn new(status: ActivationStatus, result: Value, size: Option<usize>) -> Self {
        Classified {
            response: ActivationResponse::new(status, result).with_size(size.map(|n| n as u64)),
            cache_max_age: None,
        }
    }

    fn error(status: ActivationStatus, message: impl Into<String>, size: Option<usize>) -> Self {
        Self::new(status, json!({ "error": message.into() }), size)
    }
}

/// `"The action did not produce a valid JSON or JSON Array response: <body>"`.
pub fn invalid_run_response(body: &str) -> String {
    if body.is_empty() {
        "The action did not produce a valid JSON or JSON Array response.".to_string()
    } else {
        format!("The action did not produce a valid JSON or JSON Array response: {body}")
    }
}

/// `"The action exceeded its time limits of N milliseconds."`.
pub fn timeout_message(limit_ms: u64) -> String {
    format!("The action exceeded its time limits of {limit_ms} milliseconds.")
}

/// `"... during initialization."` variant.
pub fn init_timeout_message(limit_ms: u64) -> String {
    format!("The action exceeded its time limits of {limit_ms} milliseconds during initialization.")
}

/// `"The action produced a response that exceeded the allowed length: N > M bytes. ..."`.
pub fn truncated_message(trunk: &str, size: usize, limit: usize) -> String {
    format!(
        "The action produced a response that exceeded the allowed length: {size} > {limit} bytes. The truncated response was: {trunk}"
    )
}

/// Classifies a run exactly as OpenWhisk's invoker does.
pub fn classify(response: &RunResponse) -> Classified {
    match response {
        RunResponse::Answered {
            truncated: Some(limit),
            body,
            size,
            ..
        } => Classified::error(
            ActivationStatus::ApplicationError,
            truncated_message(body, *size, *limit),
            Some(*size),
        ),
        RunResponse::Answered {
            ok,
            body,
            size,
            truncated: None,
        } => {
            let size = Some(*size);
            match serde_json::from_str::<Value>(body) {
                Ok(Value::Object(mut fields)) => match fields.remove("error") {
                    Some(error) if *ok => Classified::new(
                        ActivationStatus::ApplicationError,
                        json!({ "error": error }),
                        size,
                    ),
                    Some(error) => Classified::new(
                        ActivationStatus::DeveloperError,
                        json!({ "error": error }),
                        size,
                    ),
                    None if *ok => {
                        let cache = fields.remove(CACHE_FIELD).and_then(|v| v.as_u64());
                        let mut classified =
                            Classified::new(ActivationStatus::Success, Value::Object(fields), size);
                        classified.cache_max_age = cache.filter(|s| *s > 0);
                        classified
                    }
                    None => Classified::error(
                        ActivationStatus::DeveloperError,
                        invalid_run_response(body),
                        size,
                    ),
                },
                Ok(array @ Value::Array(_)) if *ok => {
                    Classified::new(ActivationStatus::Success, array, size)
                }
                _ => Classified::error(
                    ActivationStatus::DeveloperError,
                    invalid_run_response(body),
                    size,
                ),
            }
        }
        RunResponse::TimedOut { limit_ms } => Classified::error(
            ActivationStatus::DeveloperError,
            timeout_message(*limit_ms),
            None,
        ),
        RunResponse::Exited => {
            Classified::error(ActivationStatus::DeveloperError, ABNORMAL_RUN, None)
        }
        RunResponse::MemoryExhausted => {
            Classified::error(ActivationStatus::DeveloperError, MEMORY_EXHAUSTED, None)
        }
        RunResponse::InitFailed(msg) => {
            Classified::error(ActivationStatus::DeveloperError, msg.clone(), None)
        }
        RunResponse::Internal(msg) => {
            Classified::error(ActivationStatus::WhiskError, msg.clone(), None)
        }
    }
}

/// Everything about one finished activation that is not in the action spec.
#[derive(Debug, Clone)]
pub struct Finished {
    pub activation_id: String,
    /// Caller's namespace and subject.
    pub namespace: String,
    pub subject: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub wait_time_ms: u64,
    /// The sequence activation this one belongs to.
    pub cause: Option<String>,
    pub init_time_ms: Option<u64>,
    pub timed_out: bool,
    pub response: Classified,
    pub logs: Vec<String>,
}

/// One finished activation: its record, and how long the caller may cache its result.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub record: ActivationRecord,
    /// Seconds a successful result may be cached, if the action said so.
    pub cache_max_age: Option<u64>,
}

impl Recorded {
    /// Builds the record of one activation of `action`, with the proxy's annotations.
    pub fn build(action: &ActionSpec, done: Finished) -> Self {
        let mut annotations = vec![
            KeyValue::new("path", json!(action.path.as_deref().unwrap_or(&action.fqn))),
            KeyValue::new("waitTime", json!(done.wait_time_ms)),
            KeyValue::new("kind", json!(action.kind)),
            KeyValue::new("timeout", json!(done.timed_out)),
            KeyValue::new(
                "limits",
                json!({
                    "timeout": action.limits.timeout,
                    "memory": action.limits.memory,
                    "logs": action.limits.logs,
                    "concurrency": action.limits.concurrency,
                }),
            ),
        ];
        if let Some(init) = done.init_time_ms {
            annotations.push(KeyValue::new("initTime", json!(init)));
        }
        if done.cause.is_some() {
            annotations.push(KeyValue::new("causedBy", json!("sequence")));
        }
        // Invoked through a package binding: OpenWhisk names the binding (`ns/binding`).
        if let Some(binding) = action.annotations.iter().find(|a| a.key == "binding") {
            annotations.push(KeyValue::new("binding", binding.value.clone()));
        }
        let record = ActivationRecord {
            namespace: done.namespace,
            name: action.name.clone(),
            subject: done.subject,
            activation_id: done.activation_id,
            start: done.start_ms,
            end: done.end_ms,
            duration: done.end_ms.saturating_sub(done.start_ms),
            response: done.response.response,
            logs: done.logs,
            version: action.version.clone(),
            publish: false,
            annotations,
            cause: done.cause,
        };
        Recorded {
            record,
            cache_max_age: done.response.cache_max_age,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(ok: bool, body: &str) -> RunResponse {
        RunResponse::Answered {
            ok,
            body: body.to_string(),
            size: body.len(),
            truncated: None,
        }
    }

    #[test]
    fn the_cache_field_becomes_a_max_age_and_leaves_the_result() {
        let r = classify(&answered(true, r#"{"x":1,"__ow_cache_max_age":60}"#));
        assert_eq!(r.response.result, json!({"x": 1}));
        assert_eq!(r.cache_max_age, Some(60));
        let r = classify(&answered(true, r#"{"x":1,"__ow_cache_max_age":0}"#));
        assert_eq!(r.cache_max_age, None);
        let r = classify(&answered(true, r#"{"error":"no","__ow_cache_max_age":60}"#));
        assert_eq!(r.cache_max_age, None, "errors are never cacheable");
    }

    #[test]
    fn success_object() {
        let r = classify(&answered(true, r#"{"greeting":"hi"}"#));
        assert_eq!(r.response.status, ActivationStatus::Success);
        assert_eq!(r.response.status.text(), "success");
        assert!(r.response.status.is_success());
        assert_eq!(r.response.result, json!({"greeting": "hi"}));
        assert_eq!(r.response.size, Some(17));
        assert_eq!(r.response.status.http_status(), 200);
    }

    #[test]
    fn success_array() {
        let r = classify(&answered(true, "[1,2]"));
        assert_eq!(r.response.status, ActivationStatus::Success);
        assert_eq!(r.response.result, json!([1, 2]));
    }

    #[test]
    fn application_error_keeps_only_the_error_field() {
        let r = classify(&answered(true, r#"{"error":"boom","other":1}"#));
        assert_eq!(r.response.status, ActivationStatus::ApplicationError);
        assert_eq!(r.response.status.text(), "application error");
        assert!(!r.response.status.is_success());
        assert_eq!(r.response.result, json!({"error": "boom"}));
        assert_eq!(r.response.status.http_status(), 502);
    }

    #[test]
    fn non_ok_with_error_is_developer_error() {
        let r = classify(&answered(
            false,
            r#"{"error":"An error has occurred: Error: x"}"#,
        ));
        assert_eq!(r.response.status, ActivationStatus::DeveloperError);
        assert_eq!(r.response.status.text(), "action developer error");
        assert_eq!(
            r.response.result,
            json!({"error": "An error has occurred: Error: x"})
        );
        assert_eq!(r.response.status.http_status(), 502);
    }

    #[test]
    fn invalid_responses_are_developer_errors() {
        for (ok, body) in [
            (true, "not json"),
            (true, "42"),
            (false, "{}"),
            (false, "[1]"),
        ] {
            let r = classify(&answered(ok, body));
            assert_eq!(
                r.response.status,
                ActivationStatus::DeveloperError,
                "{body}"
            );
            assert_eq!(
                r.response.result,
                json!({"error": format!("The action did not produce a valid JSON or JSON Array response: {body}")})
            );
        }
    }

    #[test]
    fn oversized_result_is_application_error() {
        let r = classify(&RunResponse::Answered {
            ok: true,
            body: "{\"a\"".into(),
            size: 10,
            truncated: Some(4),
        });
        assert_eq!(r.response.status, ActivationStatus::ApplicationError);
        assert_eq!(
            r.response.result,
            json!({"error": "The action produced a response that exceeded the allowed length: 10 > 4 bytes. The truncated response was: {\"a\""})
        );
    }

    #[test]
    fn timeout_exit_init_and_internal() {
        let r = classify(&RunResponse::TimedOut { limit_ms: 300 });
        assert_eq!(r.response.status, ActivationStatus::DeveloperError);
        assert_eq!(
            r.response.result,
            json!({"error": "The action exceeded its time limits of 300 milliseconds."})
        );
        let r = classify(&RunResponse::Exited);
        assert_eq!(r.response.status, ActivationStatus::DeveloperError);
        assert_eq!(
            r.response.result,
            json!({"error": "The action did not produce a valid response and exited unexpectedly."})
        );
        let r = classify(&RunResponse::InitFailed("bad".into()));
        assert_eq!(r.response.status, ActivationStatus::DeveloperError);
        let r = classify(&RunResponse::Internal("System not initialized.".into()));
        assert_eq!(r.response.status, ActivationStatus::WhiskError);
        assert_eq!(r.response.status.text(), "whisk internal error");
        assert_eq!(r.response.status.http_status(), 500);
        assert_eq!(
            init_timeout_message(5),
            "The action exceeded its time limits of 5 milliseconds during initialization."
        );
    }

    #[test]
    fn record_forms() {
        let action = ActionSpec::from_json(json!({
            "fqn": "owner/pkg/hello", "kind": "nodejs:20", "version": "0.0.2"
        }))
        .unwrap();
        let rec = Recorded::build(
            &action,
            Finished {
                activation_id: "a".repeat(32),
                namespace: "caller".into(),
                subject: "someone".into(),
                start_ms: 1000,
                end_ms: 1250,
                wait_time_ms: 7,
                init_time_ms: Some(30),
                cause: None,
                timed_out: false,
                response: classify(&answered(true, "{}")),
                logs: vec![],
            },
        );
        let stored = rec.record.to_stored_json();
        assert_eq!(stored["namespace"], "caller");
        assert_eq!(stored["name"], "hello");
        assert_eq!(stored["duration"], 250);
        assert_eq!(stored["publish"], false);
        assert_eq!(stored["version"], "0.0.2");
        assert_eq!(stored["response"]["statusCode"], 0);
        assert_eq!(rec.record.response.status.http_status(), 200);
        let api = rec.record.to_api_json();
        assert!(api["response"].get("statusCode").is_none());
        assert_eq!(api["response"]["status"], "success");
        let ann = api["annotations"].as_array().unwrap();
        let get = |k: &str| {
            ann.iter()
                .find(|a| a["key"] == k)
                .map(|a| a["value"].clone())
        };
        assert_eq!(get("path"), Some(json!("owner/pkg/hello")));
        assert_eq!(get("initTime"), Some(json!(30)));
        assert_eq!(get("waitTime"), Some(json!(7)));
        assert_eq!(get("timeout"), Some(json!(false)));
        assert_eq!(
            get("limits"),
            Some(json!({"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}))
        );
    }
}
