//! The decision for one invoke, in OpenWhisk's order: who is calling, what they named, whether
//! the body fits, whether their namespace is over its limits, whether they may use the action,
//! and which container gets it.
//!
//! [`Router::decide`] never waits: it either admits the request onto a free slot, rejects it, or
//! returns a [`Pending`] that the adapter resolves with [`Router::wait`] after telling Envoy to
//! hold the request longer (a cold start, or every container busy). A non-blocking invoke with a
//! body is [`AwaitingBody`] until its body is in, holding nothing, then [`Router::admit`]ted.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use whisk_vocab::{ActivationRecord, new_activation_id, now_ms};

use super::authn::Authenticator;
use super::authz::{authorize, authorize_components};
use super::cache::ResponseCache;
use super::coldstart::{ColdStarts, Wait};
use super::endpoints::{Pick, Slot};
pub use super::invocation::Invocation;
use super::invocation::within_payload_limit;
use super::ports::ControlPlane;
use super::records;
use super::refusal::keeps_body;
use super::rejection::Rejection;
use super::request::{InvokeRequest, parse_invoke};
use super::tables::{Identity, Tables};
use super::throttle::{ConcurrencyGuard, NamespaceState};
use crate::config::Policy;

/// What the router needs from one request's headers.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub content_length: Option<u64>,
    /// A body follows the headers.
    pub has_body: bool,
}

/// A request that passed the checks its headers allow (ready, caller, name, declared size) and
/// whose body must arrive before it is admitted: a non-blocking invoke the router runs itself.
/// It holds nothing — no namespace concurrency, no container slot — so a slow upload blocks no one.
/// [`Router::admit`] finishes the decision once the body is in.
pub struct AwaitingBody {
    identity: Arc<Identity>,
    request: InvokeRequest,
    /// The caller's namespace (its limits and counters), looked up once.
    ns: Arc<NamespaceState>,
}

impl AwaitingBody {
    /// Whether `received` bytes of body are still within the namespace's payload limit.
    pub fn admits_body(&self, received: u64) -> Result<(), Rejection> {
        within_payload_limit(received, self.ns.limits().max_payload_bytes)
    }
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
    /// Decided once the body is in ([`Router::admit`]).
    AwaitingBody(AwaitingBody),
    Rejected(Rejection),
}

/// What a forwarded blocking invoke's body needs, decided at its request headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPlan {
    /// Nothing: the body goes to the container untouched, and a 429 cannot be replayed.
    PassThrough,
    /// The body has no `content-length` (chunked): the router measures it as it streams past, to
    /// refuse it once it is over the payload limit. It is not kept.
    Measure,
    /// The router keeps the request (a copy of the body, if it has one) to replay it after a 429.
    Keep,
    /// The router reads the body first: the action caches, and the key needs the parameters.
    /// The body is kept too.
    ProbeCache,
}

/// The router's whole decision logic over the pushed tables.
pub struct Router {
    pub tables: Arc<Tables>,
    /// Responses actions allowed to be cached.
    pub cache: ResponseCache,
    authn: Authenticator,
    control: Arc<dyn ControlPlane>,
    cold: ColdStarts,
    policy: Policy,
}

impl Router {
    pub fn new(tables: Arc<Tables>, control: Arc<dyn ControlPlane>, policy: Policy) -> Self {
        Self {
            tables,
            cache: ResponseCache::default(),
            authn: Authenticator::default(),
            control,
            cold: ColdStarts::default(),
            policy,
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
        let request = parse_invoke(head.method, head.path)?;
        let ns = self.tables.namespace(&identity.namespace);
        if let Some(size) = head.content_length {
            within_payload_limit(size, ns.limits().max_payload_bytes)?;
        }
        let ticket = AwaitingBody {
            identity,
            request,
            ns,
        };
        // A non-blocking invoke is run by the router once its body is in: it takes no slot
        // while the body arrives.
        if head.has_body && !ticket.request.blocking {
            return Ok(Decision::AwaitingBody(ticket));
        }
        self.try_admit(ticket)
    }

    /// Finishes the decision for a request whose body is in.
    pub fn admit(&self, ticket: AwaitingBody) -> Decision {
        match self.try_admit(ticket) {
            Ok(d) => d,
            Err(r) => Decision::Rejected(r),
        }
    }

    fn try_admit(&self, ticket: AwaitingBody) -> Result<Decision, Rejection> {
        let AwaitingBody {
            identity,
            request: req,
            ns,
        } = ticket;
        // OpenWhisk throttles before it checks the entitlement.
        let concurrency = ns.admit(self.tables.routers())?;
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
            max_payload_bytes: ns.limits().max_payload_bytes,
        };
        if action.is_sequence() {
            authorize_components(&identity.namespace, &action, &|fqn| self.tables.action(fqn))?;
            return Ok(Decision::Sequence(SequenceAdmission {
                invocation,
                _concurrency: concurrency,
            }));
        }
        let pool = self.tables.endpoints.pool_or_create(&action.fqn);
        match pool.try_acquire(action.revision, &invocation.namespace) {
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
                let max_cold_wait = self.policy.max_cold_wait();
                let cold_wait = if req.blocking {
                    Duration::from_millis(wait_ms.max(1000)).min(max_cold_wait)
                } else {
                    max_cold_wait
                };
                Ok(Decision::Pending(Pending {
                    invocation,
                    concurrency,
                    deadline: Instant::now() + cold_wait,
                }))
            }
        }
    }

    /// What to do with the body of a forwarded blocking invoke (`body_len` from its
    /// `content-length`; `has_body` false when the request ended with its headers).
    pub fn body_plan(
        &self,
        admission: &Admission,
        has_body: bool,
        body_len: Option<u64>,
    ) -> BodyPlan {
        if self.cache.is_cacheable(&admission.invocation.action) {
            return BodyPlan::ProbeCache;
        }
        if has_body && body_len.is_none() {
            return BodyPlan::Measure;
        }
        // Without a body there is nothing to keep: the request can always be sent again.
        if !has_body
            || keeps_body(
                self.policy.replay,
                body_len,
                self.tables.routers() > 1,
                admission.slot.pool().last_refusal_ms(),
                now_ms(),
            )
        {
            BodyPlan::Keep
        } else {
            BodyPlan::PassThrough
        }
    }

    fn waiter(&self) -> Wait<'_> {
        Wait {
            tables: &self.tables,
            control: &self.control,
            cold: &self.cold,
            busy_wait: self.policy.busy_wait(),
        }
    }

    /// A new slot for an admitted invocation whose container refused it (or for a component the
    /// router runs itself).
    pub async fn reacquire(&self, inv: &Invocation, deadline: Instant) -> Result<Slot, Rejection> {
        let deadline_ms = now_ms()
            + deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as u64;
        self.waiter()
            .acquire(&inv.action, &inv.namespace, deadline, deadline_ms)
            .await
    }

    /// Records an activation the router could not run, as OpenWhisk's whisk internal error,
    /// so the caller finds out through the activations API; returns the record.
    pub fn record_failure(&self, inv: &Invocation, message: &str) -> ActivationRecord {
        tracing::warn!(activation_id = %inv.activation_id, action = %inv.action.fqn, message, "activation failed in the router");
        let record = records::failed(inv, message);
        self.control.report_activation(record.clone());
        record
    }

    /// Waits for capacity for a pending request.
    pub async fn wait(&self, pending: Pending) -> Result<Admission, Rejection> {
        let Pending {
            invocation,
            concurrency,
            deadline,
        } = pending;
        let slot = self.reacquire(&invocation, deadline).await?;
        Ok(Admission {
            invocation,
            slot,
            _concurrency: concurrency,
        })
    }
}
