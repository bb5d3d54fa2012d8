//! Who may call the control plane's gRPC service (issue 13, "Trust boundaries").
//!
//! Routers present the control plane's router token as gRPC metadata
//! `authorization: Bearer <token>` on every call (`Subscribe`, `ColdStart`, `Acknowledge`,
//! `ReportTraffic`). The token is 64 hex characters the control plane writes, owner-only, to
//! `<data-dir>/router-token` on first start, or the file `--router-token-file` names (a mounted
//! Secret in a cluster); whoever starts routers hands them the file (`whisk up` does).
//!
//! A call without the header and a call with a wrong token are both refused with
//! `UNAUTHENTICATED` (one code, so a caller learns nothing about which it was); the comparison is
//! constant-time. [`Credentials`] is one value per server with one check per kind of caller, so
//! the gRPC adapter says per method whom it admits.

use std::path::Path;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// The answer to a router call without the router token.
pub const MISSING: &str =
    "this call needs the control plane's router token (authorization: Bearer)";
/// The answer to a router call with a token that is not the router token.
pub const WRONG: &str = "the router token presented is not this control plane's";

/// The secrets callers of the gRPC service must present.
#[derive(Clone)]
pub struct Credentials {
    router: Arc<str>,
}

impl Credentials {
    /// Credentials with this router token.
    pub fn new(router_token: impl Into<Arc<str>>) -> Self {
        Self {
            router: router_token.into(),
        }
    }

    /// Reads the router token at `path`, or creates it (random, owner-only) if there is none.
    pub fn load(router_token_file: &Path) -> std::io::Result<Self> {
        crate::admin::load_or_create_token(router_token_file).map(Self::new)
    }

    /// Admits a call that carries the router token.
    pub fn router(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let presented = bearer(metadata).ok_or_else(|| Status::unauthenticated(MISSING))?;
        if bool::from(presented.as_bytes().ct_eq(self.router.as_bytes())) {
            Ok(())
        } else {
            Err(Status::unauthenticated(WRONG))
        }
    }
}

/// The token of an `authorization: Bearer <token>` entry, if there is one.
fn bearer(metadata: &MetadataMap) -> Option<&str> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", value.parse().unwrap());
        m
    }

    #[test]
    fn only_the_router_token_is_admitted() {
        let c = Credentials::new("secret");
        assert!(c.router(&with("Bearer secret")).is_ok());
        for refused in [
            MetadataMap::new(),
            with("Bearer other"),
            with("secret"),
            with("Bearer "),
        ] {
            let e = c.router(&refused).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated);
        }
    }
}
