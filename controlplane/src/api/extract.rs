//! What every management API handler starts with, as axum extractors: who the caller is
//! ([`Caller`], as [`super::authn`] verified it), which namespace the path names, checked and with `_`
//! resolved ([`Namespace`]), the same when only its owner may use it ([`OwnNamespace`]), and the
//! query string ([`ApiQuery`]). Each rejects with OpenWhisk's status code and text, so a handler
//! begins with its own work and the checks run in one order everywhere.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::authn::Authentication;
use super::{ApiError, QueryMap, check_namespace};

/// The authenticated caller: an identity whose key the request presented.
#[derive(Debug, Clone)]
pub struct Caller {
    pub namespace: String,
    pub uuid: String,
    pub subject: String,
}

impl Caller {
    /// `_` means the caller's namespace.
    pub fn resolve(&self, ns: &str) -> String {
        if ns == "_" {
            self.namespace.clone()
        } else {
            ns.to_string()
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Authentication>() {
            Some(Authentication::Verified(caller)) => Ok(caller.clone()),
            Some(Authentication::Invalid) => Err(ApiError::unauthorized()),
            Some(Authentication::Unavailable) => Err(ApiError::internal(
                "The server could not check the supplied authentication.",
            )),
            Some(Authentication::Missing) | None => Err(ApiError::unauthenticated()),
        }
    }
}

/// The `{ns}` of the path: 401 without a caller, 400 when it is not a legal namespace name, then
/// resolved (`_` = the caller's own).
#[derive(Debug, Clone)]
pub struct Namespace {
    pub caller: Caller,
    /// The namespace, resolved.
    pub name: String,
}

impl Namespace {
    /// Whether the caller owns the namespace.
    pub fn is_own(&self) -> bool {
        self.name == self.caller.namespace
    }

    /// 403 naming `resource` (`ns[/pkg][/name]`) unless the caller owns the namespace.
    pub fn require_own(&self, resource: &str) -> Result<(), ApiError> {
        if self.is_own() {
            Ok(())
        } else {
            Err(ApiError::forbidden(resource))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Namespace {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let caller = Caller::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let ns = params
            .get("ns")
            .ok_or_else(|| ApiError::not_found().into_response())?;
        check_namespace(ns).map_err(IntoResponse::into_response)?;
        let name = caller.resolve(ns);
        Ok(Namespace { caller, name })
    }
}

/// A [`Namespace`] only its owner may use: 403 naming the namespace otherwise.
#[derive(Debug, Clone)]
pub struct OwnNamespace(pub Namespace);

impl<S: Send + Sync> FromRequestParts<S> for OwnNamespace {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let ns = Namespace::from_request_parts(parts, state).await?;
        ns.require_own(&ns.name)
            .map_err(IntoResponse::into_response)?;
        Ok(OwnNamespace(ns))
    }
}

/// The query string as a map: 400 with axum's explanation when it cannot be read.
#[derive(Debug, Clone, Default)]
pub struct ApiQuery(pub QueryMap);

impl<S: Send + Sync> FromRequestParts<S> for ApiQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<QueryMap>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}
