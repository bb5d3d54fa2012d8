//! The HTTP request becomes the web action's argument (compat §7, OpenWhisk's `WebActions`):
//! the context (`__ow_method`, lowercase; `__ow_headers`, lowercase names; `__ow_path`, the path
//! after the action; `__ow_user`, the caller's namespace when it authenticated), then the query
//! parameters, then the body (a JSON object's fields, or a form's), later ones winning. A body
//! that is neither JSON nor a form arrives whole as `__ow_body`: text as a string, anything
//! binary in base64. A `raw-http` action gets the query string as `__ow_query` and the body
//! always as `__ow_body` (JSON in base64, as OpenWhisk does).
//!
//! A request may not set the context itself: query or body fields named like it are refused.
//! (The action's `final` parameters are guarded where the parameters are merged, in the
//! container proxy.)

use base64::Engine;
use serde_json::{Map, Value};

use crate::domain::rejection::Rejection;

/// The context parameters a request cannot set.
pub const RESERVED: [&str; 6] = [
    "__ow_method",
    "__ow_headers",
    "__ow_path",
    "__ow_user",
    "__ow_query",
    "__ow_body",
];

/// Everything of the request the argument is made of.
#[derive(Debug, Clone, Copy)]
pub struct WebRequest<'a> {
    pub method: &'a str,
    /// Lowercase names, as received.
    pub headers: &'a [(String, String)],
    /// The path after the action.
    pub path: &'a str,
    /// The raw query string.
    pub query: &'a str,
    pub body: &'a [u8],
    /// The caller's namespace, when it authenticated.
    pub user: Option<&'a str>,
}

impl WebRequest<'_> {
    fn content_type(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.as_str())
    }
}

/// The media type of a `Content-Type` value, lowercase and without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// `application/json` or any `+json` type.
pub fn is_json_family(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// Whether a media type carries text (everything else is binary and travels in base64).
pub fn is_text(media: &str) -> bool {
    media.starts_with("text/")
        || media.ends_with("+xml")
        || media.ends_with("+json")
        || matches!(
            media,
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-www-form-urlencoded"
        )
}

/// The body, as the action sees it before it is placed.
enum Body {
    None,
    /// Parsed JSON, or a form as an object of strings.
    Structured(Value),
    /// Opaque: a string (text, or base64 of binary).
    Opaque(String),
}

fn read_body(req: &WebRequest<'_>, raw_http: bool) -> Result<Body, Rejection> {
    if req.body.is_empty() {
        return Ok(Body::None);
    }
    // No content type is `application/octet-stream`: binary.
    let media = req
        .content_type()
        .map(media_type)
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let b64 = || base64::engine::general_purpose::STANDARD.encode(req.body);
    if !raw_http && is_json_family(&media) {
        if req.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body::None);
        }
        return serde_json::from_slice(req.body)
            .map(Body::Structured)
            .map_err(|e| Rejection::MalformedBody(e.to_string()));
    }
    if !raw_http && media == "application/x-www-form-urlencoded" {
        let form: Map<String, Value> = form_urlencoded::parse(req.body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        return Ok(Body::Structured(Value::Object(form)));
    }
    // OpenWhisk still sends JSON in base64 to a raw action.
    if media == "application/json" || !is_text(&media) {
        return Ok(Body::Opaque(b64()));
    }
    Ok(Body::Opaque(String::from_utf8_lossy(req.body).into_owned()))
}

/// Builds the action's argument, or refuses a request that sets context parameters.
pub fn argument(req: &WebRequest<'_>, raw_http: bool) -> Result<Map<String, Value>, Rejection> {
    let body = read_body(req, raw_http)?;
    let query: Vec<(String, String)> = form_urlencoded::parse(req.query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if !raw_http {
        let body_keys = match &body {
            Body::Structured(Value::Object(m)) => m.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        if query
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(body_keys)
            .any(|k| RESERVED.contains(&k))
        {
            return Err(Rejection::ReservedParameters);
        }
    }
    let mut arg = Map::new();
    arg.insert(
        "__ow_method".into(),
        Value::String(req.method.to_ascii_lowercase()),
    );
    let headers: Map<String, Value> = req
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    arg.insert("__ow_headers".into(), Value::Object(headers));
    arg.insert("__ow_path".into(), Value::String(req.path.to_owned()));
    if let Some(user) = req.user {
        arg.insert("__ow_user".into(), Value::String(user.to_owned()));
    }
    if raw_http {
        arg.insert("__ow_query".into(), Value::String(req.query.to_owned()));
    } else {
        for (k, v) in query {
            arg.insert(k, Value::String(v));
        }
    }
    match body {
        Body::Structured(Value::Object(fields)) if !raw_http => arg.extend(fields),
        Body::Structured(v) => {
            arg.insert("__ow_body".into(), v);
        }
        Body::Opaque(s) => {
            arg.insert("__ow_body".into(), Value::String(s));
        }
        Body::None if raw_http => {
            arg.insert("__ow_body".into(), Value::String(String::new()));
        }
        Body::None => {}
    }
    Ok(arg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req<'a>(headers: &'a [(String, String)], query: &'a str, body: &'a [u8]) -> WebRequest<'a> {
        WebRequest {
            method: "POST",
            headers,
            path: "/x",
            query,
            body,
            user: None,
        }
    }

    fn ct(v: &str) -> Vec<(String, String)> {
        vec![("content-type".into(), v.into())]
    }

    #[test]
    fn query_then_json_body_then_context() {
        let h = ct("application/json");
        let a = argument(&req(&h, "a=1&b=q+r", br#"{"b":"body","c":[1]}"#), false).unwrap();
        assert_eq!(a["a"], "1");
        assert_eq!(a["b"], "body", "the body wins over the query");
        assert_eq!(a["c"], json!([1]));
        assert_eq!(a["__ow_method"], "post");
        assert_eq!(a["__ow_path"], "/x");
        assert_eq!(a["__ow_headers"]["content-type"], "application/json");
        assert!(a.get("__ow_user").is_none());
        assert!(a.get("__ow_body").is_none());
    }

    #[test]
    fn forms_text_and_binary_bodies() {
        let h = ct("application/x-www-form-urlencoded");
        let a = argument(&req(&h, "", b"name=Ada+L&x=%26"), false).unwrap();
        assert_eq!(
            (a["name"].as_str(), a["x"].as_str()),
            (Some("Ada L"), Some("&"))
        );
        let h = ct("text/plain; charset=utf-8");
        assert_eq!(
            argument(&req(&h, "", b"hi"), false).unwrap()["__ow_body"],
            "hi"
        );
        let h = ct("image/png");
        assert_eq!(
            argument(&req(&h, "", &[0, 1, 2]), false).unwrap()["__ow_body"],
            "AAEC"
        );
        assert_eq!(
            argument(&req(&[], "", b"raw"), false).unwrap()["__ow_body"],
            "cmF3"
        );
        let h = ct("application/json");
        assert_eq!(
            argument(&req(&h, "", b"[1,2]"), false).unwrap()["__ow_body"],
            json!([1, 2])
        );
    }

    #[test]
    fn raw_http_boxes_query_and_body() {
        let h = ct("application/json");
        let a = argument(&req(&h, "a=1&__ow_body=x", br#"{"k":1}"#), true).unwrap();
        assert_eq!(a["__ow_query"], "a=1&__ow_body=x");
        assert_eq!(a["__ow_body"], "eyJrIjoxfQ==");
        assert!(a.get("a").is_none() && a.get("k").is_none());
        assert_eq!(argument(&req(&h, "", b""), true).unwrap()["__ow_body"], "");
    }

    #[test]
    fn context_cannot_be_set_by_the_request() {
        let h = ct("application/json");
        for (q, b) in [
            ("__ow_user=me", &b""[..]),
            ("", br#"{"__ow_method":"get"}"#),
        ] {
            assert_eq!(
                argument(&req(&h, q, b), false),
                Err(Rejection::ReservedParameters)
            );
        }
        assert!(matches!(
            argument(&req(&h, "", b"{nope"), false),
            Err(Rejection::MalformedBody(_))
        ));
    }
}
