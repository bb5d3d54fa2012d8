//! Management API errors with OpenWhisk's status codes and texts. The body
//! (`{"error": <msg>, "code": <transaction id>}`) is rendered by the transaction middleware in
//! `api/mod.rs`, which is the one place that knows the transaction id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

pub const NOT_FOUND: &str = "The requested resource does not exist.";
pub const UNAUTHENTICATED: &str = "The supplied authentication is invalid";
/// OpenWhisk's (Pekko's) text for a request that carries no credentials at all.
pub const NO_CREDENTIALS: &str =
    "The resource requires authentication, which was not supplied with the request";
pub const EXISTS: &str = "resource already exists";
pub const ENTITY_NAME_ILLEGAL: &str = "The name of the entity contains illegal characters.";
pub const NAMESPACE_ILLEGAL: &str = "The namespace contains illegal characters.";

/// An error answer of the management API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 401 for credentials that are malformed, unknown or wrong.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, UNAUTHENTICATED)
    }
    /// 401 for a request without credentials.
    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, NO_CREDENTIALS)
    }
    /// 403 naming the resource (`ns[/pkg][/name]`).
    pub fn forbidden(resource: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            format!("The supplied authentication is not authorized to access '{resource}'."),
        )
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, NOT_FOUND)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// A body that is not the JSON we expect.
    pub fn malformed(detail: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("The request content was malformed:\n{detail}"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Self::internal(e.to_string())
    }
}

impl From<crate::plane::PlaneError> for ApiError {
    fn from(e: crate::plane::PlaneError) -> Self {
        Self::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = self.status.into_response();
        resp.extensions_mut().insert(self);
        resp
    }
}
