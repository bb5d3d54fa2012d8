//! OpenWhisk's classification of a run (compat §2 `processRunResponseContent`, §6) and the
//! activation record built from it, in its stored form (with `response.statusCode`, reported to
//! the control plane) and its API form (without, answered to the caller).

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::action::ActionSpec;

/// Status codes of `response.statusCode`.
pub const SUCCESS: u8 = 0;
pub const APPLICATION_ERROR: u8 = 1;
pub const DEVELOPER_ERROR: u8 = 2;
pub const WHISK_ERROR: u8 = 3;

/// OpenWhisk's text for a container that died mid-run.
pub const ABNORMAL_RUN: &str =
    "The action did not produce a valid response and exited unexpectedly.";

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
    /// The action's code failed to initialise (developer error with this text).
    InitFailed(String),
    /// The proxy or runtime failed on its side (e.g. `/run` before init): whisk internal error.
    Internal(String),
}

/// The classified `response` of an activation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivationResponse {
    pub status: &'static str,
    #[serde(rename = "statusCode")]
    pub status_code: u8,
    pub success: bool,
    pub result: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    /// Seconds the caller may cache a successful result for (see [`CACHE_FIELD`]); never stored.
    #[serde(skip)]
    pub cache_max_age: Option<u64>,
}

/// The result field by which an action lets its successful response be cached, in seconds:
/// `{"greeting": "hi", "__ow_cache_max_age": 60}`. The proxy removes it from the result and
/// answers with `Cache-Control: max-age=60`, which the router honours.
pub const CACHE_FIELD: &str = "__ow_cache_max_age";

fn status_text(code: u8) -> &'static str {
    match code {
        SUCCESS => "success",
        APPLICATION_ERROR => "application error",
        DEVELOPER_ERROR => "action developer error",
        _ => "whisk internal error",
    }
}

impl ActivationResponse {
    fn new(status_code: u8, result: Value, size: Option<usize>) -> Self {
        ActivationResponse {
            status: status_text(status_code),
            status_code,
            success: status_code == SUCCESS,
            result,
            size,
            cache_max_age: None,
        }
    }

    fn error(status_code: u8, message: impl Into<String>, size: Option<usize>) -> Self {
        Self::new(status_code, json!({ "error": message.into() }), size)
    }

    /// The HTTP status OpenWhisk's controller answers a blocking invoke with.
    pub fn http_status(&self) -> u16 {
        match self.status_code {
            SUCCESS => 200,
            APPLICATION_ERROR | DEVELOPER_ERROR => 502,
            _ => 500,
        }
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
pub fn classify(response: &RunResponse) -> ActivationResponse {
    match response {
        RunResponse::Answered {
            truncated: Some(limit),
            body,
            size,
            ..
        } => ActivationResponse::error(
            APPLICATION_ERROR,
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
                    Some(error) if *ok => {
                        ActivationResponse::new(APPLICATION_ERROR, json!({ "error": error }), size)
                    }
                    Some(error) => {
                        ActivationResponse::new(DEVELOPER_ERROR, json!({ "error": error }), size)
                    }
                    None if *ok => {
                        let cache = fields.remove(CACHE_FIELD).and_then(|v| v.as_u64());
                        let mut response =
                            ActivationResponse::new(SUCCESS, Value::Object(fields), size);
                        response.cache_max_age = cache.filter(|s| *s > 0);
                        response
                    }
                    None => {
                        ActivationResponse::error(DEVELOPER_ERROR, invalid_run_response(body), size)
                    }
                },
                Ok(array @ Value::Array(_)) if *ok => ActivationResponse::new(SUCCESS, array, size),
                _ => ActivationResponse::error(DEVELOPER_ERROR, invalid_run_response(body), size),
            }
        }
        RunResponse::TimedOut { limit_ms } => {
            ActivationResponse::error(DEVELOPER_ERROR, timeout_message(*limit_ms), None)
        }
        RunResponse::Exited => ActivationResponse::error(DEVELOPER_ERROR, ABNORMAL_RUN, None),
        RunResponse::InitFailed(msg) => {
            ActivationResponse::error(DEVELOPER_ERROR, msg.clone(), None)
        }
        RunResponse::Internal(msg) => ActivationResponse::error(WHISK_ERROR, msg.clone(), None),
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
    pub response: ActivationResponse,
    pub logs: Vec<String>,
}

/// An activation record as OpenWhisk stores it.
#[derive(Debug, Clone)]
pub struct ActivationRecord {
    stored: Value,
    cache_max_age: Option<u64>,
}

impl ActivationRecord {
    /// Builds the record of one activation of `action`.
    pub fn build(action: &ActionSpec, done: Finished) -> Self {
        let mut annotations = vec![
            json!({"key": "path", "value": action.fqn}),
            json!({"key": "waitTime", "value": done.wait_time_ms}),
            json!({"key": "kind", "value": action.kind}),
            json!({"key": "timeout", "value": done.timed_out}),
            json!({"key": "limits", "value": {
                "timeout": action.limits.timeout,
                "memory": action.limits.memory,
                "logs": action.limits.logs,
                "concurrency": action.limits.concurrency,
            }}),
        ];
        if let Some(init) = done.init_time_ms {
            annotations.push(json!({"key": "initTime", "value": init}));
        }
        if done.cause.is_some() {
            annotations.push(json!({"key": "causedBy", "value": "sequence"}));
        }
        let cache_max_age = done.response.cache_max_age;
        let response = serde_json::to_value(&done.response).unwrap_or_else(|_| json!({}));
        let stored = json!({
            "namespace": done.namespace,
            "name": action.name,
            "subject": done.subject,
            "activationId": done.activation_id,
            "start": done.start_ms,
            "end": done.end_ms,
            "duration": done.end_ms.saturating_sub(done.start_ms),
            "response": response,
            "logs": done.logs,
            "version": action.version,
            "publish": false,
            "annotations": annotations,
        });
        let mut stored = stored;
        if let Some(cause) = done.cause {
            stored["cause"] = json!(cause);
        }
        ActivationRecord {
            stored,
            cache_max_age,
        }
    }

    /// How long the caller may cache this (successful) result, if the action said so.
    pub fn cache_max_age(&self) -> Option<u64> {
        self.cache_max_age
    }

    /// The stored form (with `response.statusCode`), reported to the control plane.
    pub fn stored(&self) -> &Value {
        &self.stored
    }

    /// The API form: `response.statusCode` removed (`toExtendedJson`).
    pub fn api(&self) -> Value {
        let mut api = self.stored.clone();
        if let Some(Value::Object(response)) = api.get_mut("response") {
            response.remove("statusCode");
        }
        api
    }

    /// `response.result`.
    pub fn result(&self) -> Value {
        self.stored
            .get("response")
            .and_then(|r| r.get("result"))
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()))
    }

    /// The HTTP status of a blocking answer: 200 success, 502 application or developer error,
    /// 500 whisk internal error.
    pub fn http_status(&self) -> u16 {
        match self.stored["response"]["statusCode"].as_u64() {
            Some(0) => 200,
            Some(1) | Some(2) => 502,
            _ => 500,
        }
    }

    /// The activation id.
    pub fn activation_id(&self) -> &str {
        self.stored
            .get("activationId")
            .and_then(Value::as_str)
            .unwrap_or_default()
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
        assert_eq!(r.result, json!({"x": 1}));
        assert_eq!(r.cache_max_age, Some(60));
        let r = classify(&answered(true, r#"{"x":1,"__ow_cache_max_age":0}"#));
        assert_eq!(r.cache_max_age, None);
        let r = classify(&answered(true, r#"{"error":"no","__ow_cache_max_age":60}"#));
        assert_eq!(r.cache_max_age, None, "errors are never cacheable");
    }

    #[test]
    fn success_object() {
        let r = classify(&answered(true, r#"{"greeting":"hi"}"#));
        assert_eq!(r.status_code, SUCCESS);
        assert_eq!(r.status, "success");
        assert!(r.success);
        assert_eq!(r.result, json!({"greeting": "hi"}));
        assert_eq!(r.size, Some(17));
        assert_eq!(r.http_status(), 200);
    }

    #[test]
    fn success_array() {
        let r = classify(&answered(true, "[1,2]"));
        assert_eq!(r.status_code, SUCCESS);
        assert_eq!(r.result, json!([1, 2]));
    }

    #[test]
    fn application_error_keeps_only_the_error_field() {
        let r = classify(&answered(true, r#"{"error":"boom","other":1}"#));
        assert_eq!(r.status_code, APPLICATION_ERROR);
        assert_eq!(r.status, "application error");
        assert!(!r.success);
        assert_eq!(r.result, json!({"error": "boom"}));
        assert_eq!(r.http_status(), 502);
    }

    #[test]
    fn non_ok_with_error_is_developer_error() {
        let r = classify(&answered(
            false,
            r#"{"error":"An error has occurred: Error: x"}"#,
        ));
        assert_eq!(r.status_code, DEVELOPER_ERROR);
        assert_eq!(r.status, "action developer error");
        assert_eq!(
            r.result,
            json!({"error": "An error has occurred: Error: x"})
        );
        assert_eq!(r.http_status(), 502);
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
            assert_eq!(r.status_code, DEVELOPER_ERROR, "{body}");
            assert_eq!(
                r.result,
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
        assert_eq!(r.status_code, APPLICATION_ERROR);
        assert_eq!(
            r.result,
            json!({"error": "The action produced a response that exceeded the allowed length: 10 > 4 bytes. The truncated response was: {\"a\""})
        );
    }

    #[test]
    fn timeout_exit_init_and_internal() {
        let r = classify(&RunResponse::TimedOut { limit_ms: 300 });
        assert_eq!(r.status_code, DEVELOPER_ERROR);
        assert_eq!(
            r.result,
            json!({"error": "The action exceeded its time limits of 300 milliseconds."})
        );
        let r = classify(&RunResponse::Exited);
        assert_eq!(r.status_code, DEVELOPER_ERROR);
        assert_eq!(
            r.result,
            json!({"error": "The action did not produce a valid response and exited unexpectedly."})
        );
        let r = classify(&RunResponse::InitFailed("bad".into()));
        assert_eq!(r.status_code, DEVELOPER_ERROR);
        let r = classify(&RunResponse::Internal("System not initialized.".into()));
        assert_eq!(r.status_code, WHISK_ERROR);
        assert_eq!(r.status, "whisk internal error");
        assert_eq!(r.http_status(), 500);
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
        let rec = ActivationRecord::build(
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
        let stored = rec.stored();
        assert_eq!(stored["namespace"], "caller");
        assert_eq!(stored["name"], "hello");
        assert_eq!(stored["duration"], 250);
        assert_eq!(stored["publish"], false);
        assert_eq!(stored["version"], "0.0.2");
        assert_eq!(stored["response"]["statusCode"], 0);
        assert_eq!(rec.http_status(), 200);
        let api = rec.api();
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
