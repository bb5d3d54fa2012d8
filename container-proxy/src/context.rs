//! The invoke context the router hands over in `x-whisk-*` headers (Contract 2), parsed and
//! validated in one place so a malformed request is refused before it reaches the action.
//!
//! Parsing takes a header lookup closure rather than a framework type, so it is tested directly.

use base64::Engine;
use whisk_vocab::is_activation_id;

/// Why the context headers were refused (answered with 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    #[error("Missing header '{0}'.")]
    Missing(&'static str),
    #[error("Malformed header '{0}'.")]
    Malformed(&'static str),
}

/// Everything the proxy needs to know about one invoke besides its parameters.
///
/// `Debug` is written by hand so the API key never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct InvokeContext {
    pub activation_id: String,
    pub transaction_id: String,
    /// The caller's namespace (the record's `namespace`).
    pub namespace: String,
    pub subject: String,
    /// `ns/[pkg/]name` the router routed for.
    pub action: String,
    pub action_revision: Option<u64>,
    pub blocking: bool,
    pub result_only: bool,
    /// Epoch ms at which a blocking caller stops waiting.
    pub deadline_ms: u64,
    /// Epoch ms at which the router received the request.
    pub received_at_ms: u64,
    /// `uuid:key` decoded from a Basic `authorization` header, if any.
    pub api_key: Option<String>,
    /// W3C `traceparent`, passed to the action as `TRACEPARENT`.
    pub traceparent: Option<String>,
    /// The sequence activation this one is a component of (`x-whisk-cause`).
    pub cause: Option<String>,
    /// A web request's argument, made by the router (`x-whisk-web`): it carries the `__ow_*`
    /// context a client's payload may not set.
    pub web: bool,
}

fn required<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    name: &'static str,
) -> Result<&'a str, ContextError> {
    match get(name) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim()),
        _ => Err(ContextError::Missing(name)),
    }
}

fn boolean<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    name: &'static str,
) -> Result<bool, ContextError> {
    match required(get, name)? {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ContextError::Malformed(name)),
    }
}

fn epoch_ms<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    name: &'static str,
) -> Result<u64, ContextError> {
    required(get, name)?
        .parse::<u64>()
        .map_err(|_| ContextError::Malformed(name))
}

/// Decodes `Basic base64(uuid:key)` into `uuid:key`; anything else gives `None`.
pub fn decode_basic(authorization: &str) -> Option<String> {
    let (scheme, rest) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.contains(':').then_some(text)
}

impl std::fmt::Debug for InvokeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvokeContext")
            .field("activation_id", &self.activation_id)
            .field("transaction_id", &self.transaction_id)
            .field("namespace", &self.namespace)
            .field("subject", &self.subject)
            .field("action", &self.action)
            .field("action_revision", &self.action_revision)
            .field("blocking", &self.blocking)
            .field("result_only", &self.result_only)
            .field("deadline_ms", &self.deadline_ms)
            .field("received_at_ms", &self.received_at_ms)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("traceparent", &self.traceparent)
            .field("cause", &self.cause)
            .field("web", &self.web)
            .finish()
    }
}

impl InvokeContext {
    /// Parses the context from a case-insensitive header lookup (`get("x-whisk-...")`).
    pub fn parse<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, ContextError> {
        let activation_id = required(&get, "x-whisk-activation-id")?;
        if !is_activation_id(activation_id) {
            return Err(ContextError::Malformed("x-whisk-activation-id"));
        }
        let action_revision = match get("x-whisk-action-revision") {
            Some(v) if !v.trim().is_empty() => Some(
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| ContextError::Malformed("x-whisk-action-revision"))?,
            ),
            _ => None,
        };
        let result_only = match get("x-whisk-result") {
            None => false,
            Some(_) => boolean(&get, "x-whisk-result")?,
        };
        Ok(InvokeContext {
            activation_id: activation_id.to_string(),
            transaction_id: required(&get, "x-whisk-transaction-id")?.to_string(),
            namespace: required(&get, "x-whisk-namespace")?.to_string(),
            subject: required(&get, "x-whisk-subject")?.to_string(),
            action: required(&get, "x-whisk-action")?
                .trim_start_matches('/')
                .to_string(),
            action_revision,
            blocking: boolean(&get, "x-whisk-blocking")?,
            result_only,
            deadline_ms: epoch_ms(&get, "x-whisk-deadline")?,
            received_at_ms: epoch_ms(&get, "x-whisk-received-at")?,
            api_key: get("authorization").and_then(decode_basic),
            traceparent: get("traceparent")
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            cause: match get("x-whisk-cause").map(str::trim) {
                None | Some("") => None,
                Some(c) if is_activation_id(c) => Some(c.to_string()),
                Some(_) => return Err(ContextError::Malformed("x-whisk-cause")),
            },
            web: match get("x-whisk-web").map(str::trim) {
                None | Some("false") => false,
                Some("true") => true,
                Some(_) => return Err(ContextError::Malformed("x-whisk-web")),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn headers() -> HashMap<&'static str, String> {
        HashMap::from([
            (
                "x-whisk-activation-id",
                "0123456789abcdef0123456789abcdef".to_string(),
            ),
            ("x-whisk-transaction-id", "tid-1".to_string()),
            ("x-whisk-namespace", "guest".to_string()),
            ("x-whisk-subject", "guest".to_string()),
            ("x-whisk-action", "guest/hello".to_string()),
            ("x-whisk-action-revision", "3".to_string()),
            ("x-whisk-blocking", "true".to_string()),
            ("x-whisk-result", "false".to_string()),
            ("x-whisk-deadline", "1700000060000".to_string()),
            ("x-whisk-received-at", "1700000000000".to_string()),
            ("authorization", "Basic dXVpZDprZXk=".to_string()),
        ])
    }

    fn parse(h: &HashMap<&'static str, String>) -> Result<InvokeContext, ContextError> {
        InvokeContext::parse(|k| h.get(k).map(String::as_str))
    }

    #[test]
    fn parses_a_full_context() {
        let ctx = parse(&headers()).unwrap();
        assert!(ctx.blocking);
        assert!(!ctx.result_only);
        assert_eq!(ctx.api_key.as_deref(), Some("uuid:key"));
        assert!(!format!("{ctx:?}").contains("uuid:key"));
        assert_eq!(ctx.action_revision, Some(3));
        assert_eq!(ctx.received_at_ms, 1_700_000_000_000);
    }

    #[test]
    fn refuses_missing_and_malformed_headers() {
        let mut h = headers();
        h.remove("x-whisk-namespace");
        assert_eq!(parse(&h), Err(ContextError::Missing("x-whisk-namespace")));
        let mut h = headers();
        h.insert("x-whisk-blocking", "yes".into());
        assert_eq!(parse(&h), Err(ContextError::Malformed("x-whisk-blocking")));
        let mut h = headers();
        h.insert(
            "x-whisk-activation-id",
            "0123456789ABCDEF0123456789abcdef".into(),
        );
        assert_eq!(
            parse(&h),
            Err(ContextError::Malformed("x-whisk-activation-id"))
        );
        let mut h = headers();
        h.insert("x-whisk-deadline", "soon".into());
        assert_eq!(parse(&h), Err(ContextError::Malformed("x-whisk-deadline")));
    }

    #[test]
    fn basic_auth_decoding() {
        assert_eq!(
            decode_basic("Basic dXVpZDprZXk=").as_deref(),
            Some("uuid:key")
        );
        assert_eq!(decode_basic("Bearer abc"), None);
        assert_eq!(decode_basic("Basic !!!"), None);
    }
}
