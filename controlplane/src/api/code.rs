//! Recognises binary (zip) action code. The official clients (`aio rt action create x.zip`, the JS
//! client's `actions.create({action: <Buffer>})`) send a zip as base64 in `exec.code` without
//! `binary: true`; OpenWhisk's controller classifies the code itself on create and update, so the
//! control plane must too, or the zip is stored as source text and the invoke fails.
//!
//! The rule: the trimmed code has the shape of standard, padded base64 (OpenWhisk's
//! `isBase64Pattern`: alphabet `A-Za-z0-9+/`, length a multiple of 4, at most two `=` at the end)
//! and decodes to a zip (local file header `PK\x03\x04`). The zip check keeps short source texts
//! that merely look like base64 (`abcd`) from being taken for archives.

use base64::Engine;

/// The zip local file header every archive starts with.
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Whether `code` is a base64-encoded zip archive.
pub fn is_zip_base64(code: &str) -> bool {
    let t = code.trim();
    if t.is_empty() || !t.len().is_multiple_of(4) || !has_base64_shape(t) {
        return false;
    }
    // The first 8 characters decode to the first 6 bytes, enough for the magic.
    let Some(head) = t.get(..8) else {
        return false;
    };
    base64::engine::general_purpose::STANDARD
        .decode(head)
        .is_ok_and(|bytes| bytes.starts_with(ZIP_MAGIC))
}

/// Standard base64 alphabet, with `=` padding only in the last two positions.
fn has_base64_shape(t: &str) -> bool {
    let bytes = t.as_bytes();
    let body_len = bytes.len() - bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if bytes.len() - body_len > 2 {
        return false;
    }
    bytes[..body_len]
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn a_base64_zip_is_binary() {
        let zip = b64(b"PK\x03\x04\x14\x00\x00\x00\x08\x00rest of the archive");
        assert!(is_zip_base64(&zip));
        assert!(is_zip_base64(&format!("  {zip}\n")));
    }

    #[test]
    fn source_text_and_other_base64_are_not() {
        assert!(!is_zip_base64("function main(p) { return p; }"));
        assert!(!is_zip_base64("def main(args):\n    return args\n"));
        assert!(!is_zip_base64(""));
        assert!(!is_zip_base64("abcd"));
        assert!(!is_zip_base64(&b64(b"just some bytes, not a zip")));
        // A zip's base64 cut short or with a stray character is not base64 any more.
        let zip = b64(b"PK\x03\x04\x14\x00\x00\x00\x08\x00rest");
        assert!(!is_zip_base64(&zip[..zip.len() - 1]));
        assert!(!is_zip_base64(&format!("{}!", &zip[..zip.len() - 1])));
        assert!(!is_zip_base64("UEsDBA==="));
    }
}
