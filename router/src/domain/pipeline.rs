//! The decision for one invoke, in OpenWhisk's order: who is calling, what they named, whether
//! the body fits, whether their namespace is over its limits, whether they may use the action,
//! and which container gets it.
//!
//! [`Router::decide`] never waits: it either admits the request onto a free slot, rejects it, or
//! returns a [`Pending`] that the adapter resolves with [`Router::wait`] after telling Envoy to
//! hold the request longer (a cold start, or every container busy).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::authn::Authenticator;
use super::authz::authorize;
use super::cache::ResponseCache;
use super::clock::now_ms;
use super::coldstart::{ControlPlane, WaitPolicy, acquire};
use super::endpoints::{Pick, Slot};
use super::rejection::Rejection;
use super::replay::ReplayPolicy;
use super::request::parse_invoke;
use super::tables::{ActionMeta, Tables};
use super::throttle::ConcurrencyGuard;

/// What the router needs from one request's headers.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub content_length: Option<u64>,
}

/// Knobs of the decision pipeline.
#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    pub wait: WaitPolicy,
    /// The longest a request waits for a cold start (non-blocking requests included).
    pub max_cold_wait: Duration,
    /// When forwarded blocking invokes keep their body for a replay after a 429.
    pub replay: ReplayPolicy,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            wait: WaitPolicy::default(),
            max_cold_wait: Duration::from_secs(60),
            replay: ReplayPolicy::default(),
        }
    }
}

/// The context a container proxy needs about an admitted invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub activation_id: String,
    pub namespace: Arc<str>,
    pub subject: Box<str>,
    pub action: Arc<ActionMeta>,
    pub blocking: bool,
    pub result: bool,
    /// Epoch ms when a blocking caller stops waiting.
    pub deadline_ms: u64,
    pub received_ms: u64,
    /// For a sequence component: the sequence's activation id.
    pub cause: Option<String>,
}

/// An admitted request: it holds a container slot and a namespace concurrency slot until dropped.
pub struct Admission {
    pub invocation: Invocation,
    pub slot: Slot,
    _concurrency: ConcurrencyGuard,
}

/// A request that must wait for capacity.
pub struct Pending {
    invocation: Invocation,
    concurrency: ConcurrencyGuard,
    deadline: Instant,
}

impl Pending {
    pub fn invocation(&self) -> &Invocation {
        &self.invocation
    }

    /// How long the adapter must ask Envoy to hold the request.
    pub fn max_wait(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// A sequence: the router runs its components itself. One throttle charge for the whole
/// sequence, held until it ends.
pub struct SequenceAdmission {
    pub invocation: Invocation,
    _concurrency: ConcurrencyGuard,
}

/// The outcome of [`Router::decide`].
pub enum Decision {
    Admitted(Admission),
    Pending(Pending),
    Sequence(SequenceAdmission),
    Rejected(Rejection),
}

/// The router's whole decision logic over the pushed tables.
pub struct Router {
    pub tables: Arc<Tables>,
    /// Responses actions allowed to be cached.
    pub cache: ResponseCache,
    authn: Authenticator,
    control: Arc<dyn ControlPlane>,
    config: PipelineConfig,
}

/// A new OpenWhisk activation id: 32 lowercase hex characters.
pub fn new_activation_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Router {
    pub fn new(
        tables: Arc<Tables>,
        control: Arc<dyn ControlPlane>,
        config: PipelineConfig,
    ) -> Self {
        Self {
            tables,
            cache: ResponseCache::default(),
            authn: Authenticator::default(),
            control,
            config,
        }
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.authn
    }

    pub fn control(&self) -> &Arc<dyn ControlPlane> {
        &self.control
    }

    /// Decides without waiting.
    pub fn decide(&self, head: &RequestHead<'_>) -> Decision {
        match self.try_decide(head) {
            Ok(d) => d,
            Err(r) => Decision::Rejected(r),
        }
    }

    fn try_decide(&self, head: &RequestHead<'_>) -> Result<Decision, Rejection> {
        if !self.tables.is_ready() {
            return Err(Rejection::Unavailable {
                retry_after: Duration::from_secs(1),
            });
        }
        let identity = self.authn.authenticate(&self.tables, head.authorization)?;
        let req = parse_invoke(head.method, head.path)?;
        let ns = self.tables.namespace(&identity.namespace);
        let limit = ns.limits().max_payload_bytes;
        if let Some(size) = head.content_length.filter(|s| *s > limit) {
            return Err(Rejection::EntityTooLarge { size, limit });
        }
        // OpenWhisk throttles before it checks the entitlement.
        let concurrency = ns.admit()?;
        let target_ns = req.namespace.as_deref().unwrap_or(&identity.namespace);
        let fqn = req.fqn(target_ns);
        let action = self.tables.action(&fqn);
        authorize(&identity.namespace, target_ns, &fqn, action.as_deref())?;
        let action = action.ok_or(Rejection::NotFound)?;
        let received_ms = now_ms();
        let wait_ms = if req.blocking { req.wait_ms as u64 } else { 0 };
        let invocation = Invocation {
            activation_id: new_activation_id(),
            namespace: identity.namespace.clone(),
            subject: identity.subject.clone(),
            action: action.clone(),
            blocking: req.blocking,
            result: req.result,
            deadline_ms: received_ms + wait_ms,
            received_ms,
            cause: None,
        };
        if action.is_sequence() {
            return Ok(Decision::Sequence(SequenceAdmission {
                invocation,
                _concurrency: concurrency,
            }));
        }
        let pool = self.tables.endpoints.pool_or_create(&action.fqn);
        match pool.try_acquire(action.revision) {
            Pick::Ready(slot) => Ok(Decision::Admitted(Admission {
                invocation,
                slot,
                _concurrency: concurrency,
            })),
            Pick::Marked(slot) => {
                self.control
                    .report_traffic(slot.endpoint().container_id.clone());
                Ok(Decision::Admitted(Admission {
                    invocation,
                    slot,
                    _concurrency: concurrency,
                }))
            }
            Pick::Busy | Pick::Empty => {
                let cold_wait =
                    Duration::from_millis(wait_ms.max(1000)).min(self.config.max_cold_wait);
                let cold_wait = if req.blocking {
                    cold_wait
                } else {
                    self.config.max_cold_wait
                };
                Ok(Decision::Pending(Pending {
                    invocation,
                    concurrency,
                    deadline: Instant::now() + cold_wait,
                }))
            }
        }
    }

    /// Whether the router keeps this forwarded invoke's body, so that a 429 from its container
    /// can be replayed elsewhere (see [`super::replay`]).
    pub fn keeps_body(&self, admission: &Admission) -> bool {
        self.config.replay.keeps_body(
            self.tables.routers() > 1,
            admission.slot.pool().last_refusal_ms(),
            now_ms(),
        )
    }

    /// A new slot for an admitted invocation whose container refused it.
    pub async fn reacquire(&self, inv: &Invocation, deadline: Instant) -> Result<Slot, Rejection> {
        let deadline_ms = now_ms()
            + deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as u64;
        acquire(
            &self.tables,
            &self.control,
            &inv.action,
            deadline,
            deadline_ms,
            self.config.wait,
        )
        .await
    }

    /// Records an activation the router could not run, as OpenWhisk's whisk internal error,
    /// so the caller finds out through the activations API.
    pub fn record_failure(&self, inv: &Invocation, message: &str) {
        let end = now_ms();
        let name = inv.action.fqn.rsplit('/').next().unwrap_or_default();
        let record = serde_json::json!({
            "namespace": &*inv.namespace,
            "name": name,
            "subject": &*inv.subject,
            "activationId": inv.activation_id,
            "start": inv.received_ms,
            "end": end,
            "duration": end.saturating_sub(inv.received_ms),
            "response": {
                "statusCode": 3,
                "status": "whisk internal error",
                "success": false,
                "result": { "error": message },
            },
            "logs": [],
            "version": &*inv.action.version,
            "publish": false,
            "annotations": [
                { "key": "path", "value": &*inv.action.fqn },
                { "key": "kind", "value": &*inv.action.kind },
            ],
        });
        tracing::warn!(activation_id = %inv.activation_id, action = %inv.action.fqn, message, "activation failed in the router");
        self.control.report_activation(record.to_string());
    }

    /// Waits for capacity for a pending request.
    pub async fn wait(&self, pending: Pending) -> Result<Admission, Rejection> {
        let Pending {
            invocation,
            concurrency,
            deadline,
        } = pending;
        let deadline_ms = now_ms()
            + deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as u64;
        let slot = acquire(
            &self.tables,
            &self.control,
            &invocation.action,
            deadline,
            deadline_ms,
            self.config.wait,
        )
        .await?;
        Ok(Admission {
            invocation,
            slot,
            _concurrency: concurrency,
        })
    }
}
