//! Header plumbing shared by the ext_proc and ext_authz adapters.
//!
//! Envoy sends ext_proc header values in `raw_value` and reads only `raw_value` back; ext_authz
//! uses `value`. These helpers keep that difference in one place.

use envoy_types::pb::envoy::config::core::v3::{
    HeaderMap, HeaderValue, HeaderValueOption, header_value_option::HeaderAppendAction,
};

/// The headers the router sets on an upstream request; anything else starting with this
/// prefix that a client sent is removed.
pub const CONTEXT_PREFIX: &str = "x-whisk-";

/// Looks up a header in an ext_proc header map (names are lowercase).
pub fn get<'a>(map: &'a HeaderMap, name: &str) -> Option<&'a str> {
    map.headers.iter().find(|h| h.key == name).map(|h| {
        if h.raw_value.is_empty() {
            h.value.as_str()
        } else {
            std::str::from_utf8(&h.raw_value).unwrap_or("")
        }
    })
}

/// A header for an ext_proc mutation (`raw_value`), replacing any existing value.
pub fn raw(key: &str, value: impl Into<Vec<u8>>) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: String::new(),
            raw_value: value.into(),
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

/// A header for an ext_authz answer (`value`), replacing any existing value.
pub fn text(key: &str, value: impl Into<String>) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.into(),
            raw_value: Vec::new(),
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}
