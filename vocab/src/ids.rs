//! Activation ids: 32 lowercase hexadecimal characters, as OpenWhisk prints them.

/// A fresh, random activation id.
pub fn new_activation_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Whether `s` is an activation id (32 lowercase hex characters).
pub fn is_activation_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_are_ids() {
        for _ in 0..100 {
            assert!(is_activation_id(&new_activation_id()));
        }
        assert!(!is_activation_id("ABCDEF0123456789abcdef0123456789"));
        assert!(!is_activation_id("abc"));
    }
}
