//! The activation record, as OpenWhisk stores it and as its API shows it.
//!
//! One typed model for every part that makes or reads records: the container proxy (every
//! activation it runs), the router (sequences, cache hits, activations it could not run) and the
//! control plane (which stores them and answers `activations get/list`). The stored form keeps
//! `response.statusCode`; the API form (`toExtendedJson`) drops it and `end` when it is 0;
//! listings without `docs=true` show a summary.

use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::status::ActivationStatus;

/// A `{key, value}` pair, as OpenWhisk stores parameters and annotations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: Value,
    /// Parameters only: passed to the action at init, not at run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
}

impl KeyValue {
    pub fn new(key: impl Into<String>, value: Value) -> Self {
        Self {
            key: key.into(),
            value,
            init: None,
        }
    }
}

/// Look up a key in a `{key, value}` list.
pub fn kv_get<'a>(list: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    list.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
}

/// Set (replace or append) a key in a `{key, value}` list.
pub fn kv_set(list: &mut Vec<KeyValue>, key: &str, value: Value) {
    match list.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = value,
        None => list.push(KeyValue::new(key, value)),
    }
}

/// `response` of a record: the outcome, the result and (when the runtime answered) its size.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationResponse {
    pub status: ActivationStatus,
    pub result: Value,
    /// Bytes of the runtime's answer, when it answered.
    pub size: Option<u64>,
}

impl ActivationResponse {
    pub fn new(status: ActivationStatus, result: Value) -> Self {
        Self {
            status,
            result,
            size: None,
        }
    }

    pub fn success(result: Value) -> Self {
        Self::new(ActivationStatus::Success, result)
    }

    /// `{"error": message}` with the given outcome.
    pub fn error(status: ActivationStatus, message: impl Into<String>) -> Self {
        Self::new(status, json!({ "error": message.into() }))
    }

    pub fn with_size(mut self, size: Option<u64>) -> Self {
        self.size = size;
        self
    }

    /// The API form: `status`, `success`, `result` (and `size`), no `statusCode`.
    pub fn to_api_json(&self) -> Value {
        let mut v = json!({
            "status": self.status.text(),
            "success": self.status.is_success(),
            "result": self.result,
        });
        if let Some(size) = self.size {
            v["size"] = json!(size);
        }
        v
    }
}

impl Serialize for ActivationResponse {
    /// The stored form: `status`, `statusCode`, `success`, `result` (and `size`).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("status", self.status.text())?;
        m.serialize_entry("statusCode", &self.status.code())?;
        m.serialize_entry("success", &self.status.is_success())?;
        m.serialize_entry("result", &self.result)?;
        if let Some(size) = self.size {
            m.serialize_entry("size", &size)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for ActivationResponse {
    /// Either form: `statusCode` when present, else OpenWhisk's `status` words.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut m = Map::<String, Value>::deserialize(d)?;
        let status = match (m.get("statusCode"), m.get("status")) {
            (Some(code), _) => ActivationStatus::from_code(
                code.as_u64()
                    .ok_or_else(|| de::Error::custom("statusCode is not a number"))?,
            ),
            (None, Some(Value::String(text))) => ActivationStatus::from_text(text),
            _ => return Err(de::Error::custom("response has no status")),
        };
        Ok(Self {
            status,
            result: m.remove("result").unwrap_or_else(|| json!({})),
            size: m.get("size").and_then(Value::as_u64),
        })
    }
}

/// One activation, in OpenWhisk's stored form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationRecord {
    /// The invoking namespace (whose activations list shows it).
    pub namespace: String,
    /// The action's name (without package).
    pub name: String,
    #[serde(default)]
    pub subject: String,
    #[serde(rename = "activationId")]
    pub activation_id: String,
    /// Epoch ms.
    #[serde(default)]
    pub start: u64,
    #[serde(default)]
    pub end: u64,
    #[serde(default)]
    pub duration: u64,
    pub response: ActivationResponse,
    /// Log lines, or for a sequence the ids of its components.
    #[serde(default)]
    pub logs: Vec<String>,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub annotations: Vec<KeyValue>,
    /// The activation this one is part of (a sequence, a trigger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl ActivationRecord {
    /// The record's annotation `key`.
    pub fn annotation(&self, key: &str) -> Option<&Value> {
        kv_get(&self.annotations, key)
    }

    /// Sets (or replaces) an annotation.
    pub fn set_annotation(&mut self, key: &str, value: Value) {
        kv_set(&mut self.annotations, key, value);
    }

    /// The `path` annotation: `ns/[pkg/]name` of the action.
    pub fn path(&self) -> Option<&str> {
        self.annotation("path").and_then(Value::as_str)
    }

    /// The stored form as JSON.
    pub fn to_stored_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The API form (`toExtendedJson`): no `statusCode`, no `end` when it is 0.
    pub fn to_api_json(&self) -> Value {
        api_json_of(&self.to_stored_json())
    }

    /// The summary a listing without `docs=true` shows.
    pub fn to_summary_json(&self) -> Value {
        summary_json_of(&self.to_stored_json())
    }

    /// What OpenWhisk answers a blocking invoke with once this activation finished: the HTTP
    /// status by outcome, and the API form — or just the result with `result=true`; a JSON-array
    /// result always comes back bare.
    pub fn blocking_answer(&self, result_only: bool) -> (u16, Value) {
        let status = self.response.status.http_status();
        if result_only || self.response.result.is_array() {
            (status, self.response.result.clone())
        } else {
            (status, self.to_api_json())
        }
    }
}

/// The fields of a record a listing's summary keeps.
const SUMMARY_FIELDS: [&str; 11] = [
    "namespace",
    "name",
    "version",
    "subject",
    "activationId",
    "start",
    "end",
    "duration",
    "cause",
    "annotations",
    "publish",
];

/// The API form (`toExtendedJson`) of a record kept as JSON in its stored form, as it was
/// reported: `response.statusCode` becomes OpenWhisk's `status` words and `success` (unless the
/// record already has them), `end` is dropped when it is 0, everything else is kept as it is.
pub fn api_json_of(stored: &Value) -> Value {
    let mut out = stored.clone();
    if let Some(obj) = out.as_object_mut() {
        if let Some(resp) = obj.get_mut("response").and_then(Value::as_object_mut)
            && let Some(code) = resp.remove("statusCode")
        {
            let status = code
                .as_u64()
                .map_or(ActivationStatus::WhiskError, ActivationStatus::from_code);
            resp.entry("status").or_insert_with(|| json!(status.text()));
            resp.entry("success")
                .or_insert_with(|| json!(status.is_success()));
        }
        if obj.get("end").and_then(Value::as_i64) == Some(0) {
            obj.remove("end");
        }
    }
    out
}

/// The summary a listing without `docs=true` shows, of a record kept as JSON in its stored form:
/// the identifying fields and `statusCode`, no response and no logs.
pub fn summary_json_of(stored: &Value) -> Value {
    let mut out = Map::new();
    if let Some(obj) = stored.as_object() {
        for key in SUMMARY_FIELDS {
            if let Some(v) = obj.get(key) {
                out.insert(key.to_string(), v.clone());
            }
        }
        if let Some(code) = obj.get("response").and_then(|r| r.get("statusCode")) {
            out.insert("statusCode".to_string(), code.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: ActivationStatus, result: Value) -> ActivationRecord {
        ActivationRecord {
            namespace: "guest".into(),
            name: "hello".into(),
            subject: "guest".into(),
            activation_id: "a".repeat(32),
            start: 1000,
            end: 1250,
            duration: 250,
            response: ActivationResponse::new(status, result),
            logs: vec![],
            version: "0.0.1".into(),
            publish: false,
            annotations: vec![KeyValue::new("path", json!("guest/hello"))],
            cause: None,
        }
    }

    #[test]
    fn stored_form_round_trips_and_keeps_the_code() {
        let r = record(ActivationStatus::ApplicationError, json!({"error": "x"}));
        let stored = r.to_stored_json();
        assert_eq!(stored["response"]["statusCode"], 1);
        assert_eq!(stored["response"]["status"], "application error");
        assert_eq!(stored["response"]["success"], false);
        assert!(stored.get("cause").is_none());
        let back: ActivationRecord = serde_json::from_value(stored).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.path(), Some("guest/hello"));
    }

    #[test]
    fn api_form_drops_the_code_and_a_zero_end() {
        let mut r = record(ActivationStatus::Success, json!({"x": 1}));
        let api = r.to_api_json();
        assert!(api["response"].get("statusCode").is_none());
        assert_eq!(api["response"]["status"], "success");
        assert_eq!(api["end"], 1250);
        r.end = 0;
        assert!(r.to_api_json().get("end").is_none());
        let s = r.to_summary_json();
        assert_eq!(s["statusCode"], 0);
        assert!(s.get("response").is_none());
        assert!(s.get("logs").is_none());
    }

    #[test]
    fn reads_the_api_form_too() {
        let v = json!({"namespace": "n", "name": "a", "activationId": "b".repeat(32),
            "response": {"status": "action developer error", "success": false, "result": {}}});
        let r: ActivationRecord = serde_json::from_value(v).unwrap();
        assert_eq!(r.response.status, ActivationStatus::DeveloperError);
        let bad = json!({"namespace": "n", "name": "a", "activationId": "b", "response": {}});
        assert!(serde_json::from_value::<ActivationRecord>(bad).is_err());
    }

    #[test]
    fn forms_of_a_record_kept_as_json() {
        let stored = json!({"response": {"statusCode": 2, "result": {"error": "x"}}, "end": 0,
            "name": "a", "logs": ["l"], "extra": 1});
        let api = api_json_of(&stored);
        assert_eq!(
            api["response"],
            json!({"status": "action developer error", "success": false, "result": {"error": "x"}})
        );
        assert!(api.get("end").is_none());
        assert_eq!(api["extra"], 1, "unknown fields are kept");
        let kept = json!({"response": {"status": "success", "result": {}}});
        assert_eq!(
            api_json_of(&kept),
            kept,
            "a record without a code is left alone"
        );
        assert_eq!(
            summary_json_of(&stored),
            json!({"name": "a", "end": 0, "statusCode": 2})
        );
        assert_eq!(summary_json_of(&json!("not a record")), json!({}));
    }

    #[test]
    fn blocking_answers_by_outcome() {
        let ok = record(ActivationStatus::Success, json!({"x": 1}));
        assert_eq!(ok.blocking_answer(true), (200, json!({"x": 1})));
        let (status, body) = ok.blocking_answer(false);
        assert_eq!(status, 200);
        assert_eq!(body["response"]["result"], json!({"x": 1}));
        let arr = record(ActivationStatus::Success, json!([1, 2]));
        assert_eq!(arr.blocking_answer(false), (200, json!([1, 2])));
        assert_eq!(
            record(ActivationStatus::DeveloperError, json!({}))
                .blocking_answer(false)
                .0,
            502
        );
        assert_eq!(
            record(ActivationStatus::WhiskError, json!({}))
                .blocking_answer(true)
                .0,
            500
        );
    }
}
