//! Validation of OpenWhisk names and kinds, in one place so the API, the admin endpoints and
//! sequence resolution agree on what a valid name is.
//!
//! Entity names follow `\A([\w]|[\w][\w@ .&-]{0,254}[\w@.&-])\z` (compat §1), with `\w` = ASCII
//! letters, digits and `_`; the rule itself is OpenWhisk's shared vocabulary (`whisk-vocab`).
//! Kinds live in the runtime manifest (`runtimes.rs`).

/// OpenWhisk's `EntityName.REGEX` and the namespace rule, from the shared vocabulary.
pub use whisk_vocab::names::{is_valid_entity_name, is_valid_namespace};

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
}
