//! Who may speak ext_proc and ext_authz to the router: Envoy, and only Envoy. Over TCP the
//! router's gRPC port is reachable by anything on the machine or network — action code
//! included — and an ext_proc answer carries routing secrets (the chosen container's token). So
//! Envoy presents a token as gRPC initial metadata (`x-whisk-ingress-token`, set in its config
//! from the same file the router reads with `--ingress-token-file`), and every stream without
//! it is refused with `UNAUTHENTICATED` before it reaches the adapters. The check is one
//! constant-time compare per stream (one per HTTP request).
//!
//! A Unix socket listener is protected by its directory's permissions instead and is not gated.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::{Request, Status};

/// The metadata key Envoy sends the token under.
pub const INGRESS_TOKEN_HEADER: &str = "x-whisk-ingress-token";

/// A tonic interceptor admitting only streams that carry the ingress token (or every stream,
/// when there is no token to check).
#[derive(Clone, Default)]
pub struct IngressGate {
    token: Option<Arc<str>>,
}

impl std::fmt::Debug for IngressGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressGate")
            .field("gated", &self.token.is_some())
            .finish()
    }
}

impl IngressGate {
    /// Admits only `token`.
    pub fn new(token: impl Into<Arc<str>>) -> Self {
        Self {
            token: Some(token.into()),
        }
    }

    /// Admits every caller (a private Unix socket).
    pub fn open() -> Self {
        Self::default()
    }

    /// Reads the token from a file (trimmed); an empty file is an error.
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let token = text.trim();
        if token.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is empty", path.display()),
            ));
        }
        Ok(Self::new(token))
    }
}

impl tonic::service::Interceptor for IngressGate {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.token else {
            return Ok(req);
        };
        let presented = req
            .metadata()
            .get(INGRESS_TOKEN_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if bool::from(presented.ct_eq(expected.as_bytes())) {
            Ok(req)
        } else {
            Err(Status::unauthenticated(
                "only the gateway's Envoy may call the router",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn with(token: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(t) = token {
            r.metadata_mut()
                .insert(INGRESS_TOKEN_HEADER, t.parse().unwrap());
        }
        r
    }

    #[test]
    fn only_the_token_is_admitted() {
        let mut gate = IngressGate::new("secret-token");
        assert!(gate.call(with(Some("secret-token"))).is_ok());
        for bad in [None, Some("secret-tokeN"), Some("secret"), Some("")] {
            let err = gate.call(with(bad)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad:?}");
        }
        let mut open = IngressGate::open();
        assert!(open.call(with(None)).is_ok());
        assert!(!format!("{gate:?}").contains("secret"));
    }
}
