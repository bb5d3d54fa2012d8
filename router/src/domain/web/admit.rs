//! The decision for one web request, in OpenWhisk's order: the method, what the URL names, the
//! caller (optional: Basic credentials are verified if sent, anything else is the action's
//! business), the owner namespace, the action and whether it is exported, the body's declared
//! size against the owner's limit, the CORS preflight the router answers itself, the action's
//! `require-whisk-auth`. What passes becomes a [`WebTicket`]: an invocation under the owner's
//! identity. The owner's limits are charged ([`WebTicket::charge`]) once the body is in, so a
//! slow upload holds none of the owner's concurrency.

use std::sync::Arc;

use whisk_vocab::{new_activation_id, now_ms};

use super::cors;
use super::export::WebExport;
use super::path::{WebPath, parse_web};
use super::result::WebResponse;
use crate::config::WEB_WAIT;
use crate::domain::authz::authorize_components;
use crate::domain::invocation::{Invocation, within_payload_limit};
use crate::domain::pipeline::Router;
use crate::domain::rejection::Rejection;
use crate::domain::throttle::{ConcurrencyGuard, NamespaceState};

/// The methods OpenWhisk serves web actions for.
pub const METHODS: [&str; 7] = ["GET", "DELETE", "POST", "PUT", "HEAD", "OPTIONS", "PATCH"];

/// What the router needs from a web request's headers.
#[derive(Debug, Clone, Copy)]
pub struct WebHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    /// `X-Require-Whisk-Auth`.
    pub secret: Option<&'a str>,
    /// `Access-Control-Request-Headers`, echoed by the CORS answer.
    pub cors_request_headers: Option<&'a str>,
    pub content_length: Option<u64>,
}

/// A web request allowed to run.
pub struct WebTicket {
    /// Under the owner's identity; blocking, waiting up to [`WEB_WAIT`].
    pub invocation: Invocation,
    pub path: WebPath,
    pub export: WebExport,
    /// The caller's namespace, when it authenticated (`__ow_user`).
    pub user: Option<Arc<str>>,
    /// The CORS headers to add to the response (none when the action handles CORS itself).
    pub cors: Vec<(&'static str, String)>,
    ns: Arc<NamespaceState>,
    /// How many routers share the owner's limits.
    routers: u32,
    /// One of the owner's concurrency slots, once charged; released when the ticket is dropped
    /// (the activation ended).
    concurrency: Option<ConcurrencyGuard>,
}

impl WebTicket {
    /// Whether `received` bytes of body are still within the owner's payload limit.
    pub fn admits_body(&self, received: u64) -> Result<(), Rejection> {
        within_payload_limit(received, self.ns.limits().max_payload_bytes)
    }

    /// Charges the owner's limits (per minute and concurrency), or OpenWhisk's 429.
    pub fn charge(&mut self) -> Result<(), Rejection> {
        if self.concurrency.is_none() {
            self.concurrency = Some(self.ns.admit(self.routers)?);
        }
        Ok(())
    }
}

/// The outcome of [`Router::decide_web`].
pub enum WebDecision {
    Run(Box<WebTicket>),
    /// A CORS preflight, answered by the router.
    Answer(WebResponse),
    Rejected(Rejection),
}

impl Router {
    /// Decides a web request without waiting.
    pub fn decide_web(&self, head: &WebHead<'_>) -> WebDecision {
        match self.try_decide_web(head) {
            Ok(d) => d,
            Err(r) => WebDecision::Rejected(r),
        }
    }

    fn try_decide_web(&self, head: &WebHead<'_>) -> Result<WebDecision, Rejection> {
        if !self.tables.is_ready() {
            return Err(Rejection::Unavailable {
                retry_after: std::time::Duration::from_secs(1),
            });
        }
        if !METHODS.contains(&head.method) {
            return Err(Rejection::MethodNotAllowed);
        }
        let path = parse_web(head.path)?;
        // Credentials are optional; Basic ones that are sent must be valid. Any other scheme
        // (a bearer token for the action itself) is passed on to the action untouched.
        let user = match head.authorization {
            Some(a) if a.trim_start().to_ascii_lowercase().starts_with("basic ") => Some(
                self.authenticator()
                    .authenticate(&self.tables, Some(a))?
                    .namespace
                    .clone(),
            ),
            _ => None,
        };
        let (owner, subject) = self
            .tables
            .owner(&path.namespace)
            .ok_or(Rejection::NotFound)?;
        let action = self.tables.action(&path.fqn()).ok_or(Rejection::NotFound)?;
        let export = action.web.clone().ok_or(Rejection::NotFound)?;
        if action.is_sequence() {
            authorize_components(&owner, &action, &|fqn| self.tables.action(fqn))?;
        }
        let ns = self.tables.namespace(&owner);
        if let Some(size) = head.content_length {
            within_payload_limit(size, ns.limits().max_payload_bytes)?;
        }
        let options = head.method == "OPTIONS";
        let cors = if export.custom_options {
            Vec::new()
        } else {
            cors::headers(head.cors_request_headers).to_vec()
        };
        if options && !export.custom_options {
            return Ok(WebDecision::Answer(WebResponse {
                status: 200,
                headers: cors.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                body: Vec::new(),
            }));
        }
        // An action answering OPTIONS itself gets every OPTIONS, authenticated or not.
        if !options && !export.admits(user.is_some(), head.secret) {
            return Err(Rejection::MissingCredentials);
        }
        let received_ms = now_ms();
        let invocation = Invocation {
            activation_id: new_activation_id(),
            namespace: owner,
            subject,
            action: action.clone(),
            blocking: true,
            result: false,
            deadline_ms: received_ms + WEB_WAIT.as_millis() as u64,
            received_ms,
            cause: None,
            max_payload_bytes: ns.limits().max_payload_bytes,
        };
        Ok(WebDecision::Run(Box::new(WebTicket {
            invocation,
            path,
            export,
            user,
            cors,
            ns,
            routers: self.tables.routers(),
            concurrency: None,
        })))
    }
}
