//! Container tokens: the secret the control plane makes for every container it starts. Routers
//! send it to the container proxy with every request they route there (so a proxy only runs what
//! a router vouched for), and the proxy sends it with its reports (so the control plane only
//! stores records a container it started produced). Shared here because all three parts speak
//! it: how one is made, what it looks like on the wire, and how two are compared (in constant
//! time). Its `Debug` never shows the secret, so it cannot leak through a logged struct.

use std::fmt;

use subtle::ConstantTimeEq;

/// The request header a router puts the token in (the router overwrites any copy a client sent).
pub const CONTAINER_TOKEN_HEADER: &str = "x-whisk-container-token";

/// The environment variable the control plane hands the token to a container proxy in; the proxy
/// removes it from its environment at start-up.
pub const CONTAINER_TOKEN_ENV: &str = "WHISK_CONTAINER_TOKEN";

/// Random bytes in a token (64 hex digits).
const TOKEN_BYTES: usize = 32;

/// A container's secret: lower-case hex of 32 random bytes.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ContainerToken(String);

impl ContainerToken {
    /// A fresh random token.
    pub fn generate() -> Self {
        Self(hex::encode(rand::random::<[u8; TOKEN_BYTES]>()))
    }

    /// A token as received (an empty string is no token).
    pub fn from_wire(s: &str) -> Option<Self> {
        let s = s.trim();
        (!s.is_empty()).then(|| Self(s.to_string()))
    }

    /// The secret itself, for the wire and the environment only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is this token, in time independent of where they differ. An empty
    /// token matches nothing.
    pub fn matches(&self, presented: &str) -> bool {
        !self.0.is_empty() && bool::from(self.0.as_bytes().ct_eq(presented.trim().as_bytes()))
    }
}

impl fmt::Debug for ContainerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "ContainerToken(none)"
        } else {
            "ContainerToken(<redacted>)"
        })
    }
}

/// The token of an `authorization: Bearer <token>` value.
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, rest) = authorization.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_tokens_are_long_hex_and_match_only_themselves() {
        let a = ContainerToken::generate();
        let b = ContainerToken::generate();
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(a.matches(a.expose()));
        assert!(!a.matches(b.expose()));
        assert!(!a.matches(""));
        assert!(!ContainerToken::default().matches(""));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn bearer_values_are_parsed() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
