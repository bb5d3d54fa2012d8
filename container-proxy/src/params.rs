//! The invoke payload and OpenWhisk's parameter merge (compat §8): action parameters under the
//! payload, nothing merged into an array payload, `final` parameters and `__ow_*` keys protected.

use serde_json::{Map, Value};

use crate::action::Parameter;

/// OpenWhisk's text for a payload that touches protected parameters.
pub const RESERVED_PARAMETERS: &str =
    "Request defines parameters that are not allowed (e.g., reserved properties).";

/// Why a payload was refused (answered with 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamError {
    #[error("The request content was malformed:\n{0}")]
    NotJson(String),
    #[error("The request content was malformed: the parameters must be a JSON object or array.")]
    NotObjectOrArray,
    #[error("{}", RESERVED_PARAMETERS)]
    Reserved,
}

/// Parses the body of an invoke: empty means `{}`; it must be a JSON object or array.
pub fn parse_payload(body: &[u8]) -> Result<Value, ParamError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParamError::NotJson(e.to_string()))?;
    match value {
        Value::Object(_) | Value::Array(_) => Ok(value),
        _ => Err(ParamError::NotObjectOrArray),
    }
}

/// Merges the action's parameters under the payload. Parameters marked `init` went to the init
/// environment and are not passed to `/run`. With `final`, a payload may not redefine a parameter
/// whose value is defined (not null); no payload may define an `__ow_*` key, except a web
/// request's argument (`web`), which the router made with that context.
pub fn merge(
    params: &[Parameter],
    is_final: bool,
    payload: Value,
    web: bool,
) -> Result<Value, ParamError> {
    let payload = match payload {
        Value::Object(map) => map,
        other => return Ok(other),
    };
    if !web && payload.keys().any(|k| k.starts_with("__ow_")) {
        return Err(ParamError::Reserved);
    }
    if is_final
        && params
            .iter()
            .any(|p| !p.value.is_null() && payload.contains_key(&p.key))
    {
        return Err(ParamError::Reserved);
    }
    let mut merged: Map<String, Value> = params
        .iter()
        .filter(|p| !p.init)
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    merged.extend(payload);
    Ok(Value::Object(merged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(key: &str, value: Value) -> Parameter {
        Parameter {
            key: key.into(),
            value,
            init: false,
        }
    }

    #[test]
    fn payload_parsing() {
        assert_eq!(parse_payload(b"").unwrap(), json!({}));
        assert_eq!(parse_payload(b" \n").unwrap(), json!({}));
        assert_eq!(parse_payload(b"[1]").unwrap(), json!([1]));
        assert!(matches!(parse_payload(b"{"), Err(ParamError::NotJson(_))));
        assert_eq!(parse_payload(b"42"), Err(ParamError::NotObjectOrArray));
        assert_eq!(parse_payload(b"\"x\""), Err(ParamError::NotObjectOrArray));
    }

    #[test]
    fn payload_wins_over_defaults() {
        let params = [p("name", json!("World")), p("n", json!(1))];
        let merged = merge(&params, false, json!({"name": "Ada"}), false).unwrap();
        assert_eq!(merged, json!({"name": "Ada", "n": 1}));
    }

    #[test]
    fn arrays_are_not_merged() {
        let params = [p("name", json!("World"))];
        assert_eq!(
            merge(&params, true, json!([1, 2]), false).unwrap(),
            json!([1, 2])
        );
    }

    #[test]
    fn final_parameters_are_protected() {
        let params = [p("name", json!("World")), p("open", Value::Null)];
        assert_eq!(
            merge(&params, true, json!({"name": "x"}), false),
            Err(ParamError::Reserved)
        );
        assert_eq!(
            merge(&params, true, json!({"open": 1}), false).unwrap(),
            json!({"name": "World", "open": 1})
        );
        assert!(merge(&params, false, json!({"name": "x"}), false).is_ok());
        assert_eq!(
            ParamError::Reserved.to_string(),
            "Request defines parameters that are not allowed (e.g., reserved properties)."
        );
    }

    #[test]
    fn reserved_keys_are_refused() {
        assert_eq!(
            merge(&[], false, json!({"__ow_method": "get"}), false),
            Err(ParamError::Reserved)
        );
        // A web request's argument, made by the router, carries the context.
        assert!(merge(&[], false, json!({"__ow_method": "get"}), true).is_ok());
    }

    #[test]
    fn init_parameters_are_not_passed_to_run() {
        let params = [Parameter {
            key: "secret".into(),
            value: json!("s"),
            init: true,
        }];
        assert_eq!(merge(&params, false, json!({}), false).unwrap(), json!({}));
    }
}
