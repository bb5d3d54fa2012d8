//! Every way the router says "no", with OpenWhisk's status codes and message texts.
//!
//! Adapters turn a [`Rejection`] into an HTTP answer: `{"error": <text>, "code": <transaction id>}`
//! plus the headers listed here (`WWW-Authenticate` on 401, `Retry-After` on 429 and 503).

use std::time::Duration;

use super::init_failure::InitFailure;

/// OpenWhisk's challenge for a 401.
pub const WWW_AUTHENTICATE: &str = "Basic realm=\"OpenWhisk secure realm\"";

/// A decision not to route the request, as the client will see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("The resource requires authentication, which was not supplied with the request")]
    MissingCredentials,
    #[error("The supplied authentication is invalid")]
    InvalidCredentials,
    #[error("The supplied authentication is not authorized to access '{0}'.")]
    NotAuthorized(String),
    #[error("The requested resource does not exist.")]
    NotFound,
    #[error("The requested resource does not exist.")]
    MethodNotAllowed,
    #[error("The name of the entity contains illegal characters.")]
    IllegalName,
    #[error("Timeout must be number of milliseconds up to 60000.")]
    InvalidTimeout,
    /// A Boolean query parameter (`blocking`, `result`) that is not one, in Akka's words.
    #[error("The query parameter '{name}' was malformed:\n'{value}' is not a valid Boolean value")]
    MalformedQuery { name: &'static str, value: String },
    /// A web request's query or body sets a context parameter (`__ow_*`).
    #[error("Request defines parameters that are not allowed (e.g., reserved properties).")]
    ReservedParameters,
    /// A web request's body is not what its content type says.
    #[error("The request content was malformed:\n{0}")]
    MalformedBody(String),
    #[error("Request larger than allowed: {size} > {limit} bytes.")]
    EntityTooLarge { size: u64, limit: u64 },
    #[error("Too many requests in the last minute (count: {count}, allowed: {allowed}).")]
    TooManyRequests {
        count: u64,
        allowed: u32,
        retry_after: Duration,
    },
    #[error("Too many concurrent requests in flight (count: {count}, allowed: {allowed}).")]
    TooManyConcurrent {
        count: u32,
        allowed: u32,
        retry_after: Duration,
    },
    #[error(
        "The server is currently unavailable (because it is overloaded or down for maintenance)."
    )]
    Unavailable { retry_after: Duration },
    /// The action's code failed to initialise on a cold start (a developer error). Where the
    /// router holds the invocation this becomes its activation (`init_failure`); this bare form
    /// is only the fallback.
    #[error("{}", .0.message)]
    InitFailed(InitFailure),
    /// The action's runtime is no longer supported: it may be read and deleted, not invoked.
    #[error("{0}")]
    KindDeprecated(String),
    /// Something inside the router went wrong; never treated as an "allow".
    #[error("The server encountered an internal error.")]
    Internal,
}

impl Rejection {
    /// The HTTP status OpenWhisk answers with.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::MissingCredentials | Rejection::InvalidCredentials => 401,
            Rejection::NotAuthorized(_) => 403,
            Rejection::NotFound => 404,
            Rejection::MethodNotAllowed => 405,
            Rejection::IllegalName
            | Rejection::InvalidTimeout
            | Rejection::MalformedQuery { .. }
            | Rejection::ReservedParameters
            | Rejection::MalformedBody(_) => 400,
            Rejection::EntityTooLarge { .. } => 413,
            Rejection::TooManyRequests { .. } | Rejection::TooManyConcurrent { .. } => 429,
            Rejection::Unavailable { .. } => 503,
            Rejection::InitFailed(_) => 502,
            Rejection::KindDeprecated(_) => 400,
            Rejection::Internal => 500,
        }
    }

    /// When the client may try again, for the `Retry-After` header (whole seconds, at least 1).
    pub fn retry_after_secs(&self) -> Option<u64> {
        let d = match self {
            Rejection::TooManyRequests { retry_after, .. }
            | Rejection::TooManyConcurrent { retry_after, .. }
            | Rejection::Unavailable { retry_after } => *retry_after,
            _ => return None,
        };
        Some(d.as_millis().div_ceil(1000).max(1) as u64)
    }

    /// The JSON body: `{"error": <text>, "code": <transaction id>}`.
    pub fn body(&self, transaction_id: &str) -> String {
        serde_json::json!({ "error": self.to_string(), "code": transaction_id }).to_string()
    }

    /// A short machine-readable reason, for Envoy's access log and the metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::MissingCredentials => "unauthenticated_missing",
            Rejection::InvalidCredentials => "unauthenticated",
            Rejection::NotAuthorized(_) => "forbidden",
            Rejection::NotFound => "not_found",
            Rejection::MethodNotAllowed => "method_not_allowed",
            Rejection::IllegalName => "illegal_name",
            Rejection::InvalidTimeout => "invalid_timeout",
            Rejection::MalformedQuery { .. } => "malformed_query",
            Rejection::ReservedParameters => "reserved_parameters",
            Rejection::MalformedBody(_) => "malformed_body",
            Rejection::EntityTooLarge { .. } => "payload_too_large",
            Rejection::TooManyRequests { .. } => "throttled_rate",
            Rejection::TooManyConcurrent { .. } => "throttled_concurrency",
            Rejection::Unavailable { .. } => "unavailable",
            Rejection::InitFailed(_) => "init_failed",
            Rejection::KindDeprecated(_) => "kind_deprecated",
            Rejection::Internal => "internal_error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_match_openwhisk() {
        let r = Rejection::TooManyRequests {
            count: 63,
            allowed: 60,
            retry_after: Duration::from_millis(1),
        };
        assert_eq!(
            r.to_string(),
            "Too many requests in the last minute (count: 63, allowed: 60)."
        );
        assert_eq!(r.status(), 429);
        assert_eq!(r.retry_after_secs(), Some(1));
        let c = Rejection::TooManyConcurrent {
            count: 30,
            allowed: 30,
            retry_after: Duration::from_millis(2500),
        };
        assert_eq!(
            c.to_string(),
            "Too many concurrent requests in flight (count: 30, allowed: 30)."
        );
        assert_eq!(c.retry_after_secs(), Some(3));
        assert_eq!(
            Rejection::EntityTooLarge { size: 10, limit: 5 }.to_string(),
            "Request larger than allowed: 10 > 5 bytes."
        );
        assert_eq!(
            Rejection::MalformedQuery {
                name: "blocking",
                value: "maybe".into()
            }
            .to_string(),
            "The query parameter 'blocking' was malformed:\n'maybe' is not a valid Boolean value"
        );
        assert_eq!(
            Rejection::NotAuthorized("other/pkg/a".into()).to_string(),
            "The supplied authentication is not authorized to access 'other/pkg/a'."
        );
    }

    #[test]
    fn body_is_openwhisk_error_json() {
        let body = Rejection::InvalidCredentials.body("tid-1");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "The supplied authentication is invalid");
        assert_eq!(v["code"], "tid-1");
        assert_eq!(Rejection::InvalidCredentials.status(), 401);
        assert_eq!(Rejection::InvalidCredentials.retry_after_secs(), None);
    }
}
