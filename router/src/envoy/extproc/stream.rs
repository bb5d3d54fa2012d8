//! One invoke's ext_proc stream as a state machine.
//!
//! Envoy sends, in order: request headers, the request body (only when the router asked for
//! it), response headers, the response body (only when asked for). What the router holds between
//! those messages is one [`Phase`]; each message moves it on:
//!
//! ```text
//! Start ──headers──► AwaitingBody ──body──► (admitted, run by the router; 202) ► Done
//!   │                Web ──body──► (the router runs the web action; its answer) ► Done
//!   │                Running ──body──► (router runs it; the sequence's answer) ► Done
//!   │                Probing ──body──► (cache hit: answered) ► Done
//!   │                                  (miss) ──────────────► Forwarded
//!   ├──────────────► Forwarded ──response headers──► Storing ──response body──► Done
//!   │                                              └► (429 kept: replayed) ► Done
//!   └──────────────► Done (rejected, or answered from the cache)
//! ```
//!
//! The request the router keeps (for a replay, for running it itself, for the cache key) is one
//! [`KeptRequest`], whichever phase holds it. A body without a `content-length` is streamed
//! through the router and measured ([`Measuring`]) in every phase, so it meets the payload limit
//! like any other.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::ext_proc::v3::{
    ProcessingRequest, ProcessingResponse, processing_request::Request as R,
};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::answers;
use crate::domain::invocation::Invocation;
use crate::domain::pipeline::{Admission, AwaitingBody, Router};
use crate::metrics::RouterMetrics;
use crate::upstream::KeptRequest;
use crate::upstream::background::Accepted;
use crate::upstream::client::ProxyClient;
use crate::upstream::lifetime::hold_until_end;

/// Where one invoke's stream stands.
pub(super) enum Phase {
    /// Nothing seen yet.
    Start,
    /// Reading the body of a non-blocking invoke, which is admitted only once it is in (it holds
    /// no slot meanwhile).
    AwaitingBody {
        ticket: AwaitingBody,
        request: KeptRequest,
    },
    /// Reading the body of an admitted request the router runs itself (a blocking sequence).
    Running {
        accepted: Accepted,
        request: KeptRequest,
    },
    /// Reading the body of a caching action's invoke, to look its answer up. `route` is the
    /// routing answer decided at the headers, sent on a miss.
    Probing {
        admission: Admission,
        route: Box<ProcessingResponse>,
        request: KeptRequest,
    },
    /// Forwarded to the container; waiting for its answer. `kept`: the request, when the router
    /// keeps it to send it again after a 429; `cache_key`: its key when the cache was looked up.
    Forwarded {
        admission: Admission,
        kept: Option<KeptRequest>,
        cache_key: Option<String>,
    },
    /// Buffering a cacheable answer to store it.
    Storing {
        key: String,
        ttl: Duration,
        result_only: bool,
        body: Vec<u8>,
    },
    /// Reading the body of a web request allowed to run.
    Web(WebPending),
    /// Nothing more to do but let messages pass.
    Done,
}

/// A web request allowed to run, waiting for its body (handled in `web.rs`).
pub(super) struct WebPending {
    pub(super) ticket: Box<crate::domain::web::admit::WebTicket>,
    pub(super) method: String,
    /// The request's headers, lowercase, for `__ow_headers`.
    pub(super) headers: Vec<(String, String)>,
    pub(super) transaction_id: String,
    pub(super) body: Vec<u8>,
}

/// A body of unknown size (chunked): how much of it came so far, and the transaction id a 413
/// names.
pub(super) struct Measuring {
    pub(super) received: u64,
    pub(super) transaction_id: String,
}

/// One invoke's stream: the router's view of it, and the way back to Envoy.
pub(super) struct InvokeStream {
    pub(super) router: Arc<Router>,
    pub(super) client: ProxyClient,
    pub(super) metrics: RouterMetrics,
    /// The request's span (`traceparent` continues from the client, on into the container).
    pub(super) span: tracing::Span,
    pub(super) phase: Phase,
    /// A request body without a `content-length`, measured as it streams past.
    pub(super) measuring: Option<Measuring>,
    tx: mpsc::Sender<Result<ProcessingResponse, Status>>,
}

impl InvokeStream {
    pub(super) fn new(
        router: Arc<Router>,
        client: ProxyClient,
        metrics: RouterMetrics,
        tx: mpsc::Sender<Result<ProcessingResponse, Status>>,
    ) -> Self {
        Self {
            router,
            client,
            metrics,
            span: tracing::Span::none(),
            phase: Phase::Start,
            measuring: None,
            tx,
        }
    }

    /// Answers Envoy's messages until the stream ends. A forwarded request whose answer never
    /// came keeps its slots until its activation ends; dropping `self` releases anything else
    /// still held.
    pub(super) async fn run(mut self, mut inbound: Streaming<ProcessingRequest>) {
        while let Ok(Some(msg)) = inbound.message().await {
            let reply = match msg.request {
                Some(R::RequestHeaders(h)) => self.on_request_headers(&h).await,
                Some(R::RequestBody(b)) => self.on_request_body(b.body, b.end_of_stream).await,
                Some(R::ResponseHeaders(h)) => self.on_response_headers(&h).await,
                Some(R::ResponseBody(b)) => self.on_response_body(b.body, b.end_of_stream),
                Some(R::RequestTrailers(_)) => answers::continue_request_trailers(),
                Some(R::ResponseTrailers(_)) => answers::continue_response_trailers(),
                None => continue,
            };
            if self.tx.send(Ok(reply)).await.is_err() {
                break;
            }
        }
        // Ended before the container's answer (the client went away): the activation may still
        // run, so its slots stay held until it ends.
        if let Phase::Forwarded { admission, .. } = self.take_phase() {
            hold_until_end(self.client.clone(), admission);
        }
    }

    /// Asks Envoy to hold the request for `d` before the next answer; false when the stream is
    /// gone.
    pub(super) async fn hold(&self, d: Duration) -> bool {
        self.tx.send(Ok(answers::hold_for(d))).await.is_ok()
    }

    /// The invocation the current phase holds, if any.
    pub(super) fn invocation(&self) -> Option<&Invocation> {
        match &self.phase {
            Phase::Running { accepted, .. } => Some(accepted.invocation()),
            Phase::Probing { admission, .. } | Phase::Forwarded { admission, .. } => {
                Some(&admission.invocation)
            }
            Phase::Web(pending) => Some(&pending.ticket().invocation),
            Phase::Start | Phase::AwaitingBody { .. } | Phase::Storing { .. } | Phase::Done => None,
        }
    }

    /// Takes the phase out, leaving `Done`; a handler puts back what goes on.
    pub(super) fn take_phase(&mut self) -> Phase {
        std::mem::replace(&mut self.phase, Phase::Done)
    }
}
