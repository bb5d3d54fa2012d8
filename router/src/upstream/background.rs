//! Activations the client does not wait for: a non-blocking invoke is answered
//! `202 {"activationId"}` at once, and [`run_in_background`] runs it as a blocking call, holding
//! the container slot and the namespace's concurrency until the proxy answers — so both limits
//! count the activation exactly as long as it runs. Sequences the router runs the same way.
//! If no container takes it before its deadline, the activation is recorded as a whisk internal
//! error, so `activations get` tells the caller what happened; if its action's code failed to
//! initialise, it is recorded as that developer error, with the init's logs.

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;
use whisk_vocab::now_ms;

use super::KeptRequest;
use super::client::ProxyClient;
use super::invoke::{InvokeError, call_until_answered, run_limit};
use super::sequence;
use crate::config::RUN_GRACE;
use crate::domain::invocation::Invocation;
use crate::domain::pipeline::{Admission, Pending, Router, SequenceAdmission};

/// An accepted request the router completes itself.
pub enum Accepted {
    Admitted(Admission),
    Pending(Pending),
    Sequence(SequenceAdmission),
}

impl Accepted {
    pub fn invocation(&self) -> &Invocation {
        match self {
            Accepted::Admitted(a) => &a.invocation,
            Accepted::Pending(p) => p.invocation(),
            Accepted::Sequence(s) => &s.invocation,
        }
    }
}

/// Runs a non-blocking activation (or sequence) to completion: spawn it; it owns the slots until
/// the end.
pub async fn run_in_background(
    router: Arc<Router>,
    client: ProxyClient,
    accepted: Accepted,
    mut request: KeptRequest,
) {
    let body = Bytes::from(std::mem::take(&mut request.body));
    let mut admission = match accepted {
        Accepted::Sequence(seq) => {
            sequence::run(&router, &client, &seq.invocation, body, &request).await;
            return;
        }
        Accepted::Admitted(a) => a,
        Accepted::Pending(p) => {
            let inv = p.invocation().clone();
            match router.wait(p).await {
                Ok(a) => a,
                Err(r) => {
                    router.record_not_run(&inv, &r);
                    return;
                }
            }
        }
    };
    // The proxy must run it to completion: a blocking call whose wait covers the time limit.
    let limit = run_limit(&admission.invocation);
    admission.invocation.blocking = true;
    admission.invocation.deadline_ms = now_ms() + (limit + RUN_GRACE).as_millis() as u64;
    let deadline = Instant::now() + limit + RUN_GRACE;
    let Admission {
        invocation, slot, ..
    } = &mut admission;
    match call_until_answered(
        &router, &client, slot, invocation, &request, &body, deadline,
    )
    .await
    {
        Ok(_) => {}
        Err(InvokeError::NoCapacity(r)) => {
            router.record_not_run(invocation, &r);
        }
        Err(e) => {
            router.record_failure(invocation, &e.to_string());
        }
    }
}
