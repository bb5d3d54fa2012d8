//! OpenWhisk's rule for entity and namespace names (`EntityName.REGEX`):
//! `\A([\w]|[\w][\w@ .&-]{0,254}[\w@.&-])\z`, with `\w` = ASCII letters, digits and `_`.
//! Percent-decoding happens before the check, so encoded slashes and dot segments fail it.

/// Whether `name` is a legal action, package, trigger or rule name.
pub fn is_valid_entity_name(name: &str) -> bool {
    let b = name.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let middle = |c: u8| word(c) || matches!(c, b'@' | b' ' | b'.' | b'&' | b'-');
    let last = |c: u8| word(c) || matches!(c, b'@' | b'.' | b'&' | b'-');
    match b.len() {
        0 => false,
        1 => word(b[0]),
        n if n <= 256 => word(b[0]) && b[1..n - 1].iter().all(|&c| middle(c)) && last(b[n - 1]),
        _ => false,
    }
}

/// Namespaces follow the same rule.
pub fn is_valid_namespace(name: &str) -> bool {
    is_valid_entity_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_names() {
        for ok in ["a", "hello", "a b", "a.b-c@d&e", "_x", "x_", "a-", "_"] {
            assert!(is_valid_entity_name(ok), "{ok}");
        }
        for bad in [
            "",
            " a",
            "a ",
            "-a",
            "a/b",
            "a$b",
            "é",
            ".",
            "..",
            &"a".repeat(257),
        ] {
            assert!(!is_valid_entity_name(bad), "{bad}");
        }
        assert!(is_valid_entity_name(&"a".repeat(256)));
    }
}
