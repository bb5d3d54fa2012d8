//! The router as invoker: calling a container proxy itself instead of letting Envoy forward.
//!
//! Used where the client must not wait for the container: a non-blocking invoke is answered
//! `202 {"activationId"}` at once, and this task runs the activation to completion as a blocking
//! call, holding the container slot and the namespace's concurrency until the proxy answers — so
//! both limits count the activation exactly as long as it runs.
//!
//! The same loop replays a forwarded blocking invoke whose container answered 429, when the
//! router kept its body (see `domain::replay`).
//!
//! Because the router holds the request body here, a container that answers 429 (or refuses the
//! connection) does not fail the request: its breaker opens (until `Retry-After`), and the
//! activation moves to another container or a cold start, until its deadline. If none is found,
//! the router records the activation as a whisk internal error, so `activations get` tells the
//! caller what happened.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::context::context_headers;
use crate::domain::clock::now_ms;
use crate::domain::endpoints::Slot;
use crate::domain::pipeline::{Admission, Invocation, Pending, Router, SequenceAdmission};
use crate::envoy::extproc::parse_retry_after;

/// How long a refused container stays out of rotation.
const CONNECT_FAILURE_BACKOFF: Duration = Duration::from_secs(5);

/// A keep-alive HTTP/1.1 client to container proxies.
#[derive(Clone)]
pub struct ProxyClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for ProxyClient {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        }
    }
}

/// Who asked, as the container proxy must hear it.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The client's `Authorization`, passed on for actions allowed to see their API key.
    pub authorization: Option<&'a str>,
    pub transaction_id: &'a str,
}

/// What a proxy answered.
#[derive(Debug)]
pub struct ProxyAnswer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// The proxy's `Cache-Control` (an action's caching directive), passed on to the client.
    pub cache_control: Option<String>,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("could not reach the container: {0}")]
    Unreachable(String),
    #[error("the container did not answer in time")]
    Timeout,
}

impl ProxyClient {
    /// POSTs one invoke with the context headers to the proxy at `address`.
    pub async fn call(
        &self,
        address: &str,
        inv: &Invocation,
        origin: Origin<'_>,
        body: Bytes,
        timeout: Duration,
    ) -> Result<ProxyAnswer, CallError> {
        let uri = format!(
            "http://{address}/api/v1/namespaces/{}/actions/{}",
            inv.namespace,
            inv.action.fqn.split_once('/').map_or("", |(_, rest)| rest)
        );
        let mut req = hyper::Request::post(uri).header("content-type", "application/json");
        for (k, v) in context_headers(inv, origin.transaction_id) {
            req = req.header(k, v);
        }
        if let Some(a) = origin.authorization {
            req = req.header("authorization", a);
        }
        if let Some(cause) = &inv.cause {
            req = req.header("x-whisk-cause", cause);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        let resp = tokio::time::timeout(timeout, self.client.request(req))
            .await
            .map_err(|_| CallError::Timeout)?
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let cache_control = resp
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = tokio::time::timeout(timeout, resp.into_body().collect())
            .await
            .map_err(|_| CallError::Timeout)?
            .map_err(|e| CallError::Unreachable(e.to_string()))?
            .to_bytes();
        Ok(ProxyAnswer {
            status,
            retry_after,
            cache_control,
            body,
        })
    }
}

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

/// Calls the container behind `slot` and, when it refuses (429, connection failure), opens its
/// breaker and moves to another container or a cold start — until `deadline`.
pub async fn call_until_answered(
    router: &Router,
    client: &ProxyClient,
    slot: &mut Slot,
    inv: &Invocation,
    body: &Bytes,
    origin: Origin<'_>,
    deadline: Instant,
) -> Result<ProxyAnswer, String> {
    let limit = Duration::from_millis(inv.action.limits.timeout_ms.max(100) as u64);
    loop {
        let endpoint = slot.endpoint().clone();
        let answer = client
            .call(
                &endpoint.address,
                inv,
                origin,
                body.clone(),
                limit + Duration::from_secs(65),
            )
            .await;
        match answer {
            Ok(a) if a.status == 429 => {
                slot.refused(a.retry_after.unwrap_or(Duration::from_secs(1)));
            }
            Ok(a) => return Ok(a),
            Err(CallError::Unreachable(reason)) => {
                endpoint.open_for(CONNECT_FAILURE_BACKOFF);
                router
                    .control()
                    .report_unusable(endpoint.container_id.clone(), reason);
            }
            Err(CallError::Timeout) => {
                return Err("The action did not produce a response in time.".to_owned());
            }
        }
        *slot = router
            .reacquire(inv, deadline)
            .await
            .map_err(|r| r.to_string())?;
    }
}

/// Runs a non-blocking activation to completion (spawn it; it owns the slots until the end).
pub async fn run_in_background(
    router: Arc<Router>,
    client: ProxyClient,
    accepted: Accepted,
    body: Bytes,
    authorization: Option<String>,
    transaction_id: String,
) {
    let mut admission = match accepted {
        Accepted::Sequence(seq) => {
            crate::sequence::run(
                &router,
                &client,
                &seq.invocation,
                body,
                authorization,
                transaction_id,
            )
            .await;
            return;
        }
        Accepted::Admitted(a) => a,
        Accepted::Pending(p) => {
            let inv = p.invocation().clone();
            match router.wait(p).await {
                Ok(a) => a,
                Err(r) => {
                    router.record_failure(&inv, &r.to_string());
                    return;
                }
            }
        }
    };
    // The proxy must run it to completion: a blocking call whose wait covers the time limit.
    let limit =
        Duration::from_millis(admission.invocation.action.limits.timeout_ms.max(100) as u64);
    admission.invocation.blocking = true;
    admission.invocation.deadline_ms = now_ms() + limit.as_millis() as u64 + 60_000;
    let deadline = Instant::now() + limit + Duration::from_secs(60);
    let Admission {
        invocation, slot, ..
    } = &mut admission;
    if let Err(message) = call_until_answered(
        &router,
        &client,
        slot,
        invocation,
        &body,
        Origin {
            authorization: authorization.as_deref(),
            transaction_id: &transaction_id,
        },
        deadline,
    )
    .await
    {
        router.record_failure(invocation, &message);
    }
}
