//! What the domain needs from the control plane, as a port: the gRPC client in `control/`
//! implements it, and tests can stand in for it. Only cold starts are awaited; everything else
//! is fire and forget, so the warm path never waits on the control plane.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::endpoints::EndpointSpec;
pub use super::init_failure::InitFailure;
use super::rejection::Rejection;

/// Why the control plane could not give us a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColdStartFailure {
    UnknownAction,
    /// The action's code failed to initialise (OpenWhisk's developer-error text, the init's logs).
    InitFailed(InitFailure),
    /// The action's runtime is deprecated (OpenWhisk's text).
    KindDeprecated(String),
    /// Start failed, capacity exhausted, deadline passed or control plane unreachable.
    Unavailable {
        retry_after: Duration,
    },
}

impl From<ColdStartFailure> for Rejection {
    fn from(f: ColdStartFailure) -> Self {
        match f {
            ColdStartFailure::UnknownAction => Rejection::NotFound,
            ColdStartFailure::InitFailed(f) => Rejection::InitFailed(f),
            ColdStartFailure::KindDeprecated(text) => Rejection::KindDeprecated(text),
            ColdStartFailure::Unavailable { retry_after } => Rejection::Unavailable { retry_after },
        }
    }
}

/// The router's side of the control plane, as the domain needs it.
pub trait ControlPlane: Send + Sync + 'static {
    /// Asks for a ready container of the action, serving `namespace` (the caller's).
    fn cold_start(
        &self,
        fqn: Arc<str>,
        namespace: Arc<str>,
        deadline_ms: u64,
    ) -> BoxFuture<'static, Result<EndpointSpec, ColdStartFailure>>;
    /// A container marked for removal got a request (fire and forget).
    fn report_traffic(&self, container_id: Arc<str>);
    /// A container failed to accept a connection (fire and forget).
    fn report_unusable(&self, container_id: Arc<str>, reason: String);
    /// An activation record the router produced itself (fire and forget).
    fn report_activation(&self, record: whisk_vocab::ActivationRecord);
}
