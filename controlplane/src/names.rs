//! Validation of OpenWhisk names and kinds, in one place so the API, the admin endpoints and
//! sequence resolution agree on what a valid name is.
//!
//! Entity names follow `\A([\w]|[\w][\w@ .&-]{0,254}[\w@.&-])\z` (compat §1), with `\w` = ASCII
//! letters, digits and `_`; the rule itself is OpenWhisk's shared vocabulary (`whisk-vocab`).
//! Kinds are the control plane's own.

/// OpenWhisk's `EntityName.REGEX` and the namespace rule, from the shared vocabulary.
pub use whisk_vocab::names::{is_valid_entity_name, is_valid_namespace};

/// Resolve `family:default` to the kind OpenWhisk's runtime manifest makes default, and reject
/// kinds we do not know. Returns the canonical kind.
pub fn resolve_kind(kind: &str) -> Option<String> {
    let resolved = match kind {
        "nodejs:default" => "nodejs:20",
        "python:default" => "python:3",
        "go:default" => "go:1.22",
        "java:default" => "java:8",
        "php:default" => "php:8.2",
        "ruby:default" => "ruby:2.5",
        "swift:default" => "swift:5.7",
        "dotnet:default" => "dotnet:8.0",
        "rust:default" => "rust:1.34",
        other => other,
    };
    let known_family = [
        "nodejs", "python", "go", "java", "php", "ruby", "swift", "dotnet", "rust",
    ];
    if resolved == "blackbox" || resolved == "sequence" {
        return Some(resolved.to_string());
    }
    let (family, version) = resolved.split_once(':')?;
    if !known_family.contains(&family)
        || version.is_empty()
        || version == "default"
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.')
    {
        return None;
    }
    Some(resolved.to_string())
}

/// The family of a kind ("nodejs:20" -> "nodejs").
pub fn kind_family(kind: &str) -> &str {
    kind.split(':').next().unwrap_or(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_names() {
        for ok in ["a", "hello", "a b", "a.b-c@d&e", "_x", "x_", "a-"] {
            assert!(is_valid_entity_name(ok), "{ok}");
        }
        for bad in ["", " a", "a ", "-a", "a/b", "a$b", "é", &"a".repeat(257)] {
            assert!(!is_valid_entity_name(bad), "{bad}");
        }
        assert!(is_valid_entity_name(&"a".repeat(256)));
    }

    #[test]
    fn kinds() {
        assert_eq!(resolve_kind("nodejs:default").as_deref(), Some("nodejs:20"));
        assert_eq!(resolve_kind("python:default").as_deref(), Some("python:3"));
        assert_eq!(resolve_kind("nodejs:18").as_deref(), Some("nodejs:18"));
        assert_eq!(resolve_kind("blackbox").as_deref(), Some("blackbox"));
        assert_eq!(resolve_kind("cobol:1"), None);
        assert_eq!(resolve_kind("nodejs"), None);
    }
}
