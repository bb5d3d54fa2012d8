//! Which action an invoke names, and how the caller wants the answer.
//!
//! Parses `POST /api/v1/namespaces/{ns}/actions/{[pkg/]name}?blocking=&result=&timeout=` with
//! OpenWhisk's rules: names match `\A([\w]|[\w][\w@ .&-]{0,254}[\w@.&-])\z` after percent-decoding
//! (so encoded slashes and dot segments are refused), `_` is the caller's namespace, and `timeout`
//! is whole milliseconds in `1..=60000`.

use percent_encoding::percent_decode_str;

use super::rejection::Rejection;

/// The longest blocking wait OpenWhisk grants, and its default.
pub const MAX_WAIT_MS: u32 = 60_000;

/// An invoke, as the client asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeRequest {
    /// `None` for `_`: the caller's namespace.
    pub namespace: Option<String>,
    pub package: Option<String>,
    pub name: String,
    pub blocking: bool,
    pub result: bool,
    /// How long a blocking caller waits, in ms.
    pub wait_ms: u32,
}

impl InvokeRequest {
    /// The fully qualified name in the namespace given (`ns/[pkg/]name`).
    pub fn fqn(&self, namespace: &str) -> String {
        match &self.package {
            Some(p) => format!("{namespace}/{p}/{}", self.name),
            None => format!("{namespace}/{}", self.name),
        }
    }
}

const PREFIX: &str = "/api/v1/namespaces/";

/// Parses method and `:path`; anything that is not an invoke is a 404 or 405.
pub fn parse_invoke(method: &str, path: &str) -> Result<InvokeRequest, Rejection> {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, q),
        None => (path, ""),
    };
    let rest = path.strip_prefix(PREFIX).ok_or(Rejection::NotFound)?;
    let mut segments = rest.split('/');
    let ns = segments.next().ok_or(Rejection::NotFound)?;
    if segments.next() != Some("actions") {
        return Err(Rejection::NotFound);
    }
    let rest: Vec<&str> = segments.collect();
    let (package, name) = match rest.as_slice() {
        [name] => (None, *name),
        [pkg, name] => (Some(*pkg), *name),
        _ => return Err(Rejection::NotFound),
    };
    if method != "POST" {
        return Err(Rejection::MethodNotAllowed);
    }
    let ns = decode_segment(ns)?;
    let namespace = if ns == "_" {
        None
    } else {
        Some(valid_name(ns)?)
    };
    let package = package
        .map(decode_segment)
        .transpose()?
        .map(valid_name)
        .transpose()?;
    let name = valid_name(decode_segment(name)?)?;

    let mut req = InvokeRequest {
        namespace,
        package,
        name,
        blocking: false,
        result: false,
        wait_ms: MAX_WAIT_MS,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode_str(v).decode_utf8_lossy();
        match k {
            "blocking" => req.blocking = parse_bool(&v).ok_or_else(|| malformed("blocking", &v))?,
            "result" => req.result = parse_bool(&v).ok_or_else(|| malformed("result", &v))?,
            "timeout" => {
                req.wait_ms = v
                    .parse::<u32>()
                    .ok()
                    .filter(|t| (1..=MAX_WAIT_MS).contains(t))
                    .ok_or(Rejection::InvalidTimeout)?
            }
            _ => {}
        }
    }
    Ok(req)
}

fn decode_segment(raw: &str) -> Result<String, Rejection> {
    if raw.is_empty() {
        return Err(Rejection::NotFound);
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Rejection::IllegalName)?;
    Ok(decoded.into_owned())
}

fn malformed(name: &'static str, value: &str) -> Rejection {
    Rejection::MalformedQuery {
        name,
        value: value.to_owned(),
    }
}

/// A boolean query parameter as OpenWhisk reads it; an empty value is the default (`false`).
fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "" => Some(false),
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// OpenWhisk's entity name rule.
pub fn is_valid_name(s: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let middle = |c: char| word(c) || matches!(c, '@' | ' ' | '.' | '&' | '-');
    let last = |c: char| word(c) || matches!(c, '@' | '.' | '&' | '-');
    let chars: Vec<char> = s.chars().collect();
    match chars.as_slice() {
        [] => false,
        [only] => word(*only),
        [first, mid @ .., end] => {
            chars.len() <= 256 && word(*first) && mid.iter().all(|c| middle(*c)) && last(*end)
        }
    }
}

fn valid_name(s: String) -> Result<String, Rejection> {
    if is_valid_name(&s) {
        Ok(s)
    } else {
        Err(Rejection::IllegalName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_packaged_invokes() {
        let r = parse_invoke("POST", "/api/v1/namespaces/_/actions/hello?blocking=").unwrap();
        assert!(!r.blocking, "an empty value is the default");
        let r = parse_invoke("POST", "/api/v1/namespaces/_/actions/hello?blocking=true").unwrap();
        assert_eq!(r.namespace, None);
        assert_eq!(r.package, None);
        assert_eq!(r.name, "hello");
        assert!(r.blocking);
        assert!(!r.result);
        assert_eq!(r.wait_ms, 60_000);
        assert_eq!(r.fqn("guest"), "guest/hello");

        let r = parse_invoke(
            "POST",
            "/api/v1/namespaces/guest/actions/utils/echo%20me?blocking=true&result=true&timeout=500",
        )
        .unwrap();
        assert_eq!(r.namespace.as_deref(), Some("guest"));
        assert_eq!(r.package.as_deref(), Some("utils"));
        assert_eq!(r.name, "echo me");
        assert!(r.result);
        assert_eq!(r.wait_ms, 500);
        assert_eq!(r.fqn("guest"), "guest/utils/echo me");
    }

    #[test]
    fn refuses_bad_paths_and_names() {
        use Rejection::*;
        let cases = [
            ("/api/v1/namespaces/_/actions/a%2Fb", IllegalName),
            ("/api/v1/namespaces/_/actions/..", IllegalName),
            ("/api/v1/namespaces/_/actions/./a", IllegalName),
            ("/api/v1/namespaces/_/actions/a/b/c", NotFound),
            ("/api/v1/namespaces/_/actions/", NotFound),
            ("/api/v1/namespaces/_/triggers/a", NotFound),
            ("/api/v2/namespaces/_/actions/a", NotFound),
            ("/api/v1/namespaces/_/actions/-a", IllegalName),
            ("/api/v1/namespaces/_/actions/a%ff", IllegalName),
            ("/api/v1/namespaces/_/actions/a?timeout=0", InvalidTimeout),
            (
                "/api/v1/namespaces/_/actions/a?timeout=60001",
                InvalidTimeout,
            ),
            ("/api/v1/namespaces/_/actions/a?timeout=abc", InvalidTimeout),
            (
                "/api/v1/namespaces/_/actions/a?blocking=maybe",
                MalformedQuery {
                    name: "blocking",
                    value: "maybe".into(),
                },
            ),
        ];
        for (path, want) in cases {
            assert_eq!(parse_invoke("POST", path), Err(want), "{path}");
        }
        assert_eq!(
            parse_invoke("GET", "/api/v1/namespaces/_/actions/a"),
            Err(MethodNotAllowed)
        );
        let long = "a".repeat(257);
        assert_eq!(
            parse_invoke("POST", &format!("/api/v1/namespaces/_/actions/{long}")),
            Err(IllegalName)
        );
    }

    #[test]
    fn name_rule() {
        for ok in ["a", "a1", "hello world", "x@y.z", "a&b-c", "_"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", " a", "a ", ".", "..", "a/b", "é", "-"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
