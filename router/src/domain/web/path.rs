//! What a web URL names: `/api/v1/web/{namespace}/{package|default}/{action}[.ext][/rest][?query]`.
//!
//! As in OpenWhisk, each of the three names must be a valid entity name once percent-decoded
//! (so `..`, `.` and encoded slashes name nothing: 404), `default` means "no package", the
//! extension picks how the result is answered (`.http` when there is none), and whatever path
//! follows the action is the action's `__ow_path` (and, for every extension but `.http`, a
//! projection into the result).

use percent_encoding::percent_decode_str;

use crate::domain::rejection::Rejection;
use crate::domain::request::is_valid_name;

/// Where web URLs start.
pub const WEB_PREFIX: &str = "/api/v1/web/";

/// How the result is turned into the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    Http,
    Json,
    Html,
    Svg,
    Text,
}

impl Extension {
    const ALL: [(&'static str, Extension); 5] = [
        (".http", Extension::Http),
        (".json", Extension::Json),
        (".html", Extension::Html),
        (".svg", Extension::Svg),
        (".text", Extension::Text),
    ];

    /// Splits `name.ext` into the name and a known extension (`.http` if none is known).
    fn split(segment: &str) -> (&str, Extension) {
        Self::ALL
            .iter()
            .find_map(|(suffix, ext)| segment.strip_suffix(suffix).map(|base| (base, *ext)))
            .unwrap_or((segment, Extension::Http))
    }
}

/// A parsed web URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPath {
    pub namespace: String,
    pub package: Option<String>,
    pub name: String,
    pub extension: Extension,
    /// The path after the action, as sent (`/a/b`, or empty).
    pub rest: String,
    /// The raw query string, without `?`.
    pub query: String,
}

impl WebPath {
    /// `ns/name` or `ns/pkg/name`.
    pub fn fqn(&self) -> String {
        match &self.package {
            Some(p) => format!("{}/{}/{}", self.namespace, p, self.name),
            None => format!("{}/{}", self.namespace, self.name),
        }
    }

    /// The projection of the result the rest of the path asks for (not for `.http`).
    pub fn projection(&self) -> Vec<String> {
        if self.extension == Extension::Http {
            return Vec::new();
        }
        self.rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect()
    }
}

fn name(raw: &str) -> Result<String, Rejection> {
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Rejection::NotFound)?;
    if is_valid_name(&decoded) {
        Ok(decoded.into_owned())
    } else {
        Err(Rejection::NotFound)
    }
}

/// Parses a web request's `:path`; anything that names no action is OpenWhisk's 404.
pub fn parse_web(path: &str) -> Result<WebPath, Rejection> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let rest = path.strip_prefix(WEB_PREFIX).ok_or(Rejection::NotFound)?;
    let mut parts = rest.splitn(4, '/');
    let (Some(ns), Some(pkg), Some(action)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Rejection::NotFound);
    };
    let tail = parts.next().map(|t| format!("/{t}")).unwrap_or_default();
    let namespace = name(ns)?;
    let package = match pkg {
        "default" => None,
        p => Some(name(p)?),
    };
    let (base, extension) = Extension::split(action);
    Ok(WebPath {
        namespace,
        package,
        name: name(base)?,
        extension,
        rest: tail,
        query: query.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_extension_rest_and_query() {
        let p = parse_web("/api/v1/web/guest/demo/hello.json/body/x?a=1&b=2").unwrap();
        assert_eq!(p.fqn(), "guest/demo/hello");
        assert_eq!(p.extension, Extension::Json);
        assert_eq!(p.rest, "/body/x");
        assert_eq!(p.projection(), vec!["body", "x"]);
        assert_eq!(p.query, "a=1&b=2");
        let p = parse_web("/api/v1/web/guest/default/hello").unwrap();
        assert_eq!(p.fqn(), "guest/hello");
        assert_eq!(p.extension, Extension::Http);
        assert_eq!(p.rest, "");
        let p = parse_web("/api/v1/web/guest/default/hello.http/a/b").unwrap();
        assert_eq!(p.rest, "/a/b");
        assert!(p.projection().is_empty(), ".http does not project");
        // An unknown extension is part of the name.
        assert_eq!(
            parse_web("/api/v1/web/g/default/x.foo").unwrap().name,
            "x.foo"
        );
    }

    #[test]
    fn what_names_nothing_is_not_found() {
        for bad in [
            "/api/v1/web/guest",
            "/api/v1/web/guest/default",
            "/api/v1/web/guest/default/",
            "/api/v1/web/guest/../x",
            "/api/v1/web/guest/default/..",
            "/api/v1/web/guest/default/.json",
            "/api/v1/web/guest/a%2Fb/x",
            "/api/v1/web/guest%2Fother/default/x",
            "/api/v1/web/./default/x",
            "/api/v1/namespaces/guest/actions/x",
        ] {
            assert_eq!(parse_web(bad), Err(Rejection::NotFound), "{bad}");
        }
    }
}
