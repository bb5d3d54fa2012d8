//! Who is calling the management API. The control plane owns the identities, so it checks every
//! request's Basic `uuid:key` itself against the stored key digest (constant time) and believes
//! nothing else: a request that reaches its port without Envoy — from action code on the same
//! machine or in the cluster network — is whoever its credentials prove, or nobody. Envoy's
//! ext_authz still answers first on the public path (bad credentials never get this far), and the
//! `x-whisk-auth-*` headers the router adds there are ignored here.
//!
//! The middleware runs once per request and leaves an [`Authentication`] in the request's
//! extensions; the [`Caller`](super::Caller) extractor turns it into a caller or OpenWhisk's 401.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;
use whisk_vocab::credentials::{BasicCredentials, CredentialError};

use super::{AppState, Caller};
use crate::model::digest_key;

/// Longer `Authorization` values are refused without decoding.
const MAX_HEADER_LEN: usize = 512;

/// What the request's credentials amount to.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// No Basic credentials.
    Missing,
    /// Basic credentials that are malformed, unknown or wrong.
    Invalid,
    /// A verified caller.
    Verified(Caller),
    /// The store could not be read: neither yes nor no.
    Unavailable,
}

/// Verifies the request's `Authorization` header and records the outcome for the handlers.
pub async fn authenticate(State(plane): State<AppState>, mut req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let outcome = match header {
        None => Authentication::Missing,
        Some(h) => verify(&plane, &h),
    };
    req.extensions_mut().insert(outcome);
    next.run(req).await
}

fn verify(plane: &AppState, header: &str) -> Authentication {
    if header.len() > MAX_HEADER_LEN {
        return Authentication::Invalid;
    }
    let creds = match BasicCredentials::parse(header) {
        Ok(c) => c,
        Err(CredentialError::Missing) => return Authentication::Missing,
        Err(CredentialError::Invalid) => return Authentication::Invalid,
    };
    let identity = match plane.store.get_identity(&creds.uuid) {
        Ok(Some(id)) => id,
        Ok(None) => return Authentication::Invalid,
        Err(e) => {
            tracing::error!(error = %e, "identity lookup failed");
            return Authentication::Unavailable;
        }
    };
    let presented = digest_key(&creds.key);
    if !bool::from(
        presented
            .as_bytes()
            .ct_eq(identity.key_sha256.to_ascii_lowercase().as_bytes()),
    ) {
        return Authentication::Invalid;
    }
    Authentication::Verified(Caller {
        namespace: identity.namespace,
        uuid: identity.uuid,
        subject: identity.subject,
    })
}
