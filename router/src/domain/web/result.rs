//! The activation becomes the web response (compat §7): a success's result, or an application
//! error's `error` field, is projected by the rest of the path and answered as the extension
//! says; any other failure is OpenWhisk's 400 "There was an error processing your request.".
//!
//! `.http` reads `statusCode`, `headers` (strings, numbers, booleans, or arrays of them for a
//! header sent several times, like `Set-Cookie`) and `body`: a string is sent as it is for text
//! content types and decoded from base64 for binary ones; any other JSON value is sent as JSON.
//! Every way a result can fail to be a response has OpenWhisk's status and text.

use base64::Engine;
use serde_json::Value;
use whisk_vocab::{ActivationResponse, ActivationStatus};

use super::args::{is_json_family, is_text, media_type};
use super::path::Extension;

pub const PROPERTY_NOT_FOUND: &str = "Response does not include requested property.";
pub const ERROR_PROCESSING: &str = "There was an error processing your request.";
pub const UNKNOWN_CONTENT_TYPE: &str = "Response did not specify a known content-type.";
pub const CONTENT_TYPE_ERROR: &str =
    "Response type in header did not match generated content type.";
pub const NOT_READY: &str = "Response not yet ready.";

/// An HTTP response to send as it is. Header names are as the action gave them; a name may repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl WebResponse {
    /// OpenWhisk's `{"error", "code"}` answer.
    pub fn error(status: u16, message: &str, transaction_id: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::json!({"error": message, "code": transaction_id})
                .to_string()
                .into_bytes(),
        }
    }

    fn with(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }
}

/// The response for an activation that ended with `response`.
pub fn respond(
    response: &ActivationResponse,
    extension: Extension,
    projection: &[String],
    transaction_id: &str,
) -> WebResponse {
    let start = match response.status {
        ActivationStatus::Success => Some(&response.result),
        ActivationStatus::ApplicationError => response.result.get("error"),
        _ => return WebResponse::error(400, ERROR_PROCESSING, transaction_id),
    };
    let projected = projection
        .iter()
        .try_fold(start, |v, field| v.map(|v| v.get(field.as_str())))
        .flatten();
    let Some(value) = projected else {
        return WebResponse::error(404, PROPERTY_NOT_FOUND, transaction_id);
    };
    let invalid = |media: &str| {
        WebResponse::error(
            400,
            &format!("Response is not valid '{media}'."),
            transaction_id,
        )
    };
    let field = |names: [&str; 2]| match value {
        Value::Object(m) => names.iter().find_map(|n| m.get(*n)),
        other => Some(other),
    };
    match extension {
        Extension::Json => match value {
            Value::Object(_) | Value::Array(_) => {
                WebResponse::with(200, "application/json", value.to_string())
            }
            _ => invalid("application/json"),
        },
        Extension::Html => match field(["body", "html"]) {
            Some(Value::String(s)) => WebResponse::with(200, "text/html; charset=UTF-8", s.clone()),
            _ => invalid("text/html"),
        },
        Extension::Svg => match field(["body", "svg"]) {
            Some(Value::String(s)) => WebResponse::with(200, "image/svg+xml", s.clone()),
            _ => invalid("image/svg+xml"),
        },
        Extension::Text => {
            let text = match field(["body", "text"]) {
                Some(v @ (Value::Object(_) | Value::Array(_))) => {
                    serde_json::to_string_pretty(v).unwrap_or_default()
                }
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => return WebResponse::error(404, PROPERTY_NOT_FOUND, transaction_id),
            };
            WebResponse::with(200, "text/plain; charset=UTF-8", text)
        }
        Extension::Http => http(value, transaction_id).unwrap_or_else(|| invalid("message/http")),
    }
}

fn header_values(name: &str, v: &Value, out: &mut Vec<(String, String)>) -> Option<()> {
    match v {
        Value::String(s) => out.push((name.to_owned(), s.clone())),
        Value::Bool(b) => out.push((name.to_owned(), b.to_string())),
        Value::Number(n) => out.push((name.to_owned(), n.to_string())),
        Value::Array(items) => {
            for item in items {
                header_values(name, item, out)?;
            }
        }
        _ => return None,
    }
    Some(())
}

/// A `.http` result; `None` when it is not a valid `message/http`.
fn http(result: &Value, tid: &str) -> Option<WebResponse> {
    let fields = result.as_object()?;
    let mut headers = Vec::new();
    match fields.get("headers") {
        None => {}
        Some(Value::Object(hs)) => {
            for (k, v) in hs {
                header_values(k, v, &mut headers)?;
            }
        }
        Some(_) => return None,
    }
    let code = match fields.get("statusCode") {
        None => None,
        Some(Value::Number(n)) => Some(u16::try_from(n.as_u64()?).ok()?),
        Some(Value::String(s)) => Some(s.trim().parse::<u16>().ok()?),
        Some(_) => return None,
    };
    if code.is_some_and(|c| !(100..=599).contains(&c)) {
        return None;
    }
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone());
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
    let respond = |status: u16, ct: Option<String>, body: Vec<u8>, mut headers: Vec<_>| {
        if let Some(ct) = ct {
            headers.push(("content-type".to_owned(), ct));
        }
        WebResponse {
            status,
            headers,
            body,
        }
    };
    let body = match fields.get("body") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(b) => Some(b),
    };
    let Some(body) = body else {
        return Some(respond(code.unwrap_or(204), None, Vec::new(), headers));
    };
    let status = code.unwrap_or(200);
    let err = |status: u16, msg: &str| Some(WebResponse::error(status, msg, tid));
    match body {
        Value::String(s) => {
            let ct = content_type.unwrap_or_else(|| "text/html".to_owned());
            let media = media_type(&ct);
            if !is_media_type(&media) {
                return err(400, UNKNOWN_CONTENT_TYPE);
            }
            let decode = || {
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .ok()
            };
            let with_charset = |ct: String| {
                if is_text(&media) && !ct.to_ascii_lowercase().contains("charset") {
                    format!("{ct}; charset=UTF-8")
                } else {
                    ct
                }
            };
            let bytes = if is_json_family(&media) && looks_base64(s) {
                // Legacy: a JSON body sent in base64.
                match decode() {
                    Some(b) => b,
                    None => s.clone().into_bytes(),
                }
            } else if is_text(&media) {
                s.clone().into_bytes()
            } else {
                match decode() {
                    Some(b) => b,
                    None => return err(400, CONTENT_TYPE_ERROR),
                }
            };
            Some(respond(status, Some(with_charset(ct)), bytes, headers))
        }
        js => {
            let ct = content_type.unwrap_or_else(|| "application/json".to_owned());
            let media = media_type(&ct);
            if !is_media_type(&media) {
                return err(400, UNKNOWN_CONTENT_TYPE);
            }
            if !is_json_family(&media) {
                return err(400, CONTENT_TYPE_ERROR);
            }
            Some(respond(
                status,
                Some(ct),
                js.to_string().into_bytes(),
                headers,
            ))
        }
    }
}

fn is_media_type(media: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    media
        .split_once('/')
        .is_some_and(|(t, s)| token(t) && token(s))
}

/// OpenWhisk's test for code sent in base64: a non-empty multiple of four of base64 characters.
fn looks_base64(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty()
        && t.len().is_multiple_of(4)
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value) -> ActivationResponse {
        ActivationResponse::success(v)
    }

    fn run(v: Value, ext: Extension, proj: &[&str]) -> WebResponse {
        let proj: Vec<String> = proj.iter().map(|s| s.to_string()).collect();
        respond(&ok(v), ext, &proj, "tid")
    }

    fn error_text(r: &WebResponse) -> String {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        v["error"].as_str().unwrap().to_owned()
    }

    #[test]
    fn extensions_and_projection() {
        let r = run(json!({"a": {"b": [1]}}), Extension::Json, &["a"]);
        assert_eq!((r.status, r.body), (200, br#"{"b":[1]}"#.to_vec()));
        let r = run(json!({"a": 1}), Extension::Json, &["a"]);
        assert_eq!(error_text(&r), "Response is not valid 'application/json'.");
        let r = run(json!({"a": 1}), Extension::Json, &["nope"]);
        assert_eq!((r.status, error_text(&r)), (404, PROPERTY_NOT_FOUND.into()));
        let r = run(json!({"body": "<p>hi</p>"}), Extension::Html, &[]);
        assert_eq!((r.status, r.body), (200, b"<p>hi</p>".to_vec()));
        assert_eq!(r.headers[0].1, "text/html; charset=UTF-8");
        let r = run(json!({"html": 3}), Extension::Html, &[]);
        assert_eq!(
            (r.status, error_text(&r)),
            (400, "Response is not valid 'text/html'.".into())
        );
        let r = run(json!({"svg": "<svg/>"}), Extension::Svg, &[]);
        assert_eq!(r.headers[0].1, "image/svg+xml");
        assert_eq!(run(json!({"text": 42}), Extension::Text, &[]).body, b"42");
        assert_eq!(run(json!({"x": 1}), Extension::Text, &["x"]).body, b"1");
        assert_eq!(run(json!({"x": 1}), Extension::Text, &[]).status, 404);
    }

    #[test]
    fn http_results() {
        let r = run(
            json!({"statusCode": 302, "headers": {"location": "/x", "Set-Cookie": ["a=1", "b=2"]}}),
            Extension::Http,
            &[],
        );
        assert_eq!(r.status, 302);
        assert!(r.body.is_empty());
        assert_eq!(
            r.headers.iter().filter(|(k, _)| k == "Set-Cookie").count(),
            2
        );
        let r = run(json!({"body": "hello"}), Extension::Http, &[]);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(
            r.headers,
            vec![("content-type".into(), "text/html; charset=UTF-8".into())]
        );
        let r = run(
            json!({"body": {"k": 1}, "statusCode": "201"}),
            Extension::Http,
            &[],
        );
        assert_eq!((r.status, r.body.as_slice()), (201, &br#"{"k":1}"#[..]));
        let r = run(
            json!({"headers": {"content-type": "image/png"}, "body": "AAEC"}),
            Extension::Http,
            &[],
        );
        assert_eq!(r.body, vec![0, 1, 2]);
        let r = run(
            json!({"headers": {"content-type": "image/png"}, "body": "%%%"}),
            Extension::Http,
            &[],
        );
        assert_eq!((r.status, error_text(&r)), (400, CONTENT_TYPE_ERROR.into()));
        let r = run(
            json!({"body": {"k": 1}, "headers": {"content-type": "text/plain"}}),
            Extension::Http,
            &[],
        );
        assert_eq!(error_text(&r), CONTENT_TYPE_ERROR);
        let r = run(
            json!({"body": "x", "headers": {"content-type": "nonsense"}}),
            Extension::Http,
            &[],
        );
        assert_eq!(error_text(&r), UNKNOWN_CONTENT_TYPE);
        assert_eq!(run(json!({}), Extension::Http, &[]).status, 204);
        for bad in [
            json!([1]),
            json!({"statusCode": true}),
            json!({"headers": {"a": {}}}),
            json!({"statusCode": 99}),
        ] {
            let r = run(bad, Extension::Http, &[]);
            assert_eq!(error_text(&r), "Response is not valid 'message/http'.");
        }
    }

    #[test]
    fn errors_are_unwrapped_and_failures_hidden() {
        let app = ActivationResponse::error(ActivationStatus::ApplicationError, "x");
        let app = ActivationResponse {
            result: json!({"error": {"statusCode": 418, "body": "tea"}}),
            ..app
        };
        let r = respond(&app, Extension::Http, &[], "t");
        assert_eq!((r.status, r.body.as_slice()), (418, &b"tea"[..]));
        let dev = ActivationResponse::error(ActivationStatus::DeveloperError, "boom");
        let r = respond(&dev, Extension::Http, &[], "t");
        assert_eq!((r.status, error_text(&r)), (400, ERROR_PROCESSING.into()));
    }
}
