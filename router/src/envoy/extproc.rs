//! `envoy.service.ext_proc.v3.ExternalProcessor`: one bidirectional stream per invoke.
//!
//! Request headers → [`Router::decide`] (and, if it must wait, an `override_message_timeout`
//! first, then [`Router::wait`]) → either the destination as dynamic metadata
//! `whisk.router.dst` plus the context headers, or an immediate OpenWhisk-shaped answer.
//! Response headers → the breaker sees the status, the slots are released (by dropping the
//! admission) and `x-openwhisk-activation-id` is added. A 429 on a request whose body the router
//! kept (see `domain::replay`) is replayed on another container or a cold start and answered
//! with an immediate response instead. The admission lives in the stream's task,
//! so a client abort, an upstream reset or a router error all end the task and release it too.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::HeaderMap;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::{
    ProcessingMode, processing_mode::BodySendMode,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, HttpHeaders, ImmediateResponse,
    ProcessingRequest, ProcessingResponse, TrailersResponse,
    external_processor_server::ExternalProcessor, processing_request, processing_response,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{self, Struct, Value, value::Kind};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::headers::{CONTEXT_PREFIX, get, raw};
use crate::context::context_headers;
use crate::domain::cache::{MAX_BODY, ResponseCache, max_age, with_activation_id};
use crate::domain::clock::now_ms;
use crate::domain::pipeline::{Admission, Decision, RequestHead, Router};
use crate::domain::rejection::{Rejection, WWW_AUTHENTICATE};
use crate::invoker::{
    Accepted, Origin, ProxyAnswer, ProxyClient, call_until_answered, run_in_background,
};
use crate::metrics::RouterMetrics;

/// The dynamic-metadata namespace Envoy's `ORIGINAL_DST` cluster reads `dst` from.
pub const METADATA_NAMESPACE: &str = "whisk.router";
/// Header carrying the activation id back to the client.
pub const ACTIVATION_ID_HEADER: &str = "x-openwhisk-activation-id";

/// How long a connection failure keeps a container out of rotation.
const CONNECT_FAILURE_BACKOFF: Duration = Duration::from_secs(5);

pub struct ExtProc {
    router: Arc<Router>,
    client: ProxyClient,
    metrics: RouterMetrics,
}

impl ExtProc {
    pub fn new(router: Arc<Router>, metrics: RouterMetrics) -> Self {
        Self {
            router,
            client: ProxyClient::default(),
            metrics,
        }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalProcessor for ExtProc {
    type ProcessStream = ResponseStream;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(run_stream(
            self.router.clone(),
            self.client.clone(),
            self.metrics.clone(),
            inbound,
            tx,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Per-request state carried from the request phase to the response phase.
struct StreamState {
    router: Arc<Router>,
    client: ProxyClient,
    metrics: RouterMetrics,
    /// The request's span (`traceparent` continues from the client, on into the container).
    span: tracing::Span,
    admission: Option<Admission>,
    activation_id: Option<String>,
    /// A non-blocking invoke waiting for its body before the router runs it itself.
    deferred: Option<Deferred>,
    /// A blocking invoke of a caching action, waiting for its body to look the cache up.
    probe: Option<Probe>,
    /// The cache key of this request, once known.
    cache_key: Option<String>,
    /// A cacheable response being buffered: its key and lifetime.
    cache_store: Option<(String, Duration, Vec<u8>)>,
    /// A forwarded blocking invoke the router can replay elsewhere if its container answers 429.
    replay: Option<Replay>,
}

struct Probe {
    admission: Admission,
    /// The routing answer, sent with the body reply on a miss.
    route: ProcessingResponse,
    /// What a replay needs, the body included (collected for the cache key).
    replay: Replay,
}

/// What the router keeps of a forwarded blocking invoke to send it to another container.
struct Replay {
    authorization: Option<String>,
    transaction_id: String,
    body: Vec<u8>,
}

impl Replay {
    fn of(map: &HeaderMap, transaction_id: &str) -> Self {
        Self {
            authorization: get(map, "authorization").map(str::to_owned),
            transaction_id: transaction_id.to_owned(),
            body: Vec::new(),
        }
    }
}

/// The largest body the router keeps for a replay; larger ones are forwarded without.
const MAX_KEPT_BODY: u64 = 512 * 1024;

struct Deferred {
    accepted: Accepted,
    authorization: Option<String>,
    transaction_id: String,
    body: Vec<u8>,
}

async fn run_stream(
    router: Arc<Router>,
    client: ProxyClient,
    metrics: RouterMetrics,
    mut inbound: Streaming<ProcessingRequest>,
    tx: mpsc::Sender<Result<ProcessingResponse, Status>>,
) {
    let mut state = StreamState {
        router: router.clone(),
        client,
        metrics,
        span: tracing::Span::none(),
        probe: None,
        cache_key: None,
        cache_store: None,
        admission: None,
        activation_id: None,
        deferred: None,
        replay: None,
    };
    while let Ok(Some(msg)) = inbound.message().await {
        use processing_request::Request as R;
        use processing_response::Response as P;
        let reply = match msg.request {
            Some(R::RequestHeaders(h)) => on_request_headers(&router, &h, &mut state, &tx).await,
            Some(R::ResponseHeaders(h)) => on_response_headers(&router, &h, &mut state, &tx).await,
            Some(R::RequestBody(b)) => {
                on_request_body(b.body, b.end_of_stream, &mut state, &tx).await
            }
            Some(R::ResponseBody(b)) => on_response_body(b.body, b.end_of_stream, &mut state),
            Some(R::RequestTrailers(_)) => {
                response(P::RequestTrailers(TrailersResponse::default()))
            }
            Some(R::ResponseTrailers(_)) => {
                response(P::ResponseTrailers(TrailersResponse::default()))
            }
            None => continue,
        };
        if tx.send(Ok(reply)).await.is_err() {
            break;
        }
    }
    // Dropping `state` releases any slot still held (abort, reset, early end).
}

fn response(r: processing_response::Response) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(r),
        ..Default::default()
    }
}

async fn on_request_headers(
    router: &Router,
    h: &HttpHeaders,
    state: &mut StreamState,
    tx: &mpsc::Sender<Result<ProcessingResponse, Status>>,
) -> ProcessingResponse {
    let empty = HeaderMap::default();
    let map = h.headers.as_ref().unwrap_or(&empty);
    let transaction_id = get(map, "x-request-id").unwrap_or_default().to_owned();
    let head = RequestHead {
        method: get(map, ":method").unwrap_or_default(),
        path: get(map, ":path").unwrap_or_default(),
        authorization: get(map, "authorization"),
        content_length: get(map, "content-length").and_then(|v| v.trim().parse().ok()),
    };
    let started = std::time::Instant::now();
    let span = tracing::info_span!(
        "whisk.router.invoke",
        otel.kind = "server",
        faas.invocation_id = tracing::field::Empty,
        faas.name = tracing::field::Empty,
        whisk.namespace = tracing::field::Empty,
        whisk.outcome = tracing::field::Empty,
    );
    whisk_telemetry::set_parent_from_traceparent(
        &span,
        get(map, "traceparent"),
        get(map, "tracestate"),
    );
    state.span = span;
    let decision = router.decide(&head);
    let outcome = match &decision {
        Decision::Admitted(a) if a.invocation.blocking => "routed",
        Decision::Admitted(_) | Decision::Pending(_) => "accepted",
        Decision::Sequence(_) => "sequence",
        Decision::Rejected(r) => r.reason(),
    };
    if let Some(inv) = match &decision {
        Decision::Admitted(a) => Some(&a.invocation),
        Decision::Pending(p) => Some(p.invocation()),
        Decision::Sequence(s) => Some(&s.invocation),
        Decision::Rejected(_) => None,
    } {
        state
            .span
            .record("faas.invocation_id", inv.activation_id.as_str());
        state.span.record("faas.name", &*inv.action.fqn);
        state.span.record("whisk.namespace", &*inv.namespace);
    }
    let blocking_wait = matches!(&decision, Decision::Pending(p) if p.invocation().blocking);
    if !blocking_wait {
        state.span.record("whisk.outcome", outcome);
        state.metrics.decided(outcome);
        state
            .metrics
            .decision_seconds
            .observe(started.elapsed().as_secs_f64());
    }
    // Non-blocking: answer 202 at once and run the activation from the router.
    let accepted = match decision {
        Decision::Sequence(s) => Accepted::Sequence(s),
        Decision::Admitted(a) if !a.invocation.blocking => Accepted::Admitted(a),
        Decision::Pending(p) if !p.invocation().blocking => Accepted::Pending(p),
        d => {
            let body_len = head.content_length;
            return decide_blocking(router, d, h, body_len, &transaction_id, state, tx).await;
        }
    };
    let deferred = Deferred {
        accepted,
        authorization: head.authorization.map(str::to_owned),
        transaction_id,
        body: Vec::new(),
    };
    if h.end_of_stream {
        return start_deferred(deferred, state, tx).await;
    }
    state.deferred = Some(deferred);
    // Ask Envoy for the (small, already size-checked) body.
    ProcessingResponse {
        response: Some(processing_response::Response::RequestHeaders(
            HeadersResponse::default(),
        )),
        mode_override: Some(ProcessingMode {
            request_body_mode: BodySendMode::Buffered as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn on_request_body(
    chunk: Vec<u8>,
    end: bool,
    state: &mut StreamState,
    tx: &mpsc::Sender<Result<ProcessingResponse, Status>>,
) -> ProcessingResponse {
    if let Some(mut probe) = state.probe.take() {
        probe.replay.body.extend_from_slice(&chunk);
        if !end {
            state.probe = Some(probe);
            return response(processing_response::Response::RequestBody(
                BodyResponse::default(),
            ));
        }
        return look_up_cache(probe, state);
    }
    let Some(mut deferred) = state.deferred.take() else {
        // A forwarded invoke: keep the body for a replay, and let it go on.
        if let Some(replay) = state.replay.as_mut() {
            if replay.body.is_empty() {
                replay.body = chunk;
            } else {
                replay.body.extend_from_slice(&chunk);
            }
        }
        return response(processing_response::Response::RequestBody(
            BodyResponse::default(),
        ));
    };
    deferred.body.extend_from_slice(&chunk);
    if end {
        return start_deferred(deferred, state, tx).await;
    }
    state.deferred = Some(deferred);
    response(processing_response::Response::RequestBody(
        BodyResponse::default(),
    ))
}

/// Runs what the router completes itself. A blocking sequence is awaited up to the caller's
/// wait (then 202 while it goes on); everything else is answered `202 {"activationId"}` at once.
async fn start_deferred(
    deferred: Deferred,
    state: &StreamState,
    tx: &mpsc::Sender<Result<ProcessingResponse, Status>>,
) -> ProcessingResponse {
    let Deferred {
        accepted,
        authorization,
        transaction_id,
        body,
    } = deferred;
    let id = accepted.invocation().activation_id.clone();
    let (router, client) = (state.router.clone(), state.client.clone());
    match accepted {
        Accepted::Sequence(seq) if seq.invocation.blocking => {
            let result_only = seq.invocation.result;
            let wait = Duration::from_millis(seq.invocation.deadline_ms.saturating_sub(now_ms()));
            if tx
                .send(Ok(hold_for(wait + Duration::from_secs(1))))
                .await
                .is_err()
            {
                return immediate(&Rejection::Internal, &transaction_id);
            }
            let run = tokio::spawn(async move {
                let record = crate::sequence::run(
                    &router,
                    &client,
                    &seq.invocation,
                    Bytes::from(body),
                    authorization,
                    transaction_id,
                )
                .await;
                drop(seq);
                record
            });
            match tokio::time::timeout(wait, run).await {
                Ok(Ok(record)) => {
                    let (status, body) = crate::sequence::answer(&record, result_only);
                    json_response(status, body, &id)
                }
                // The wait expired (the sequence goes on) or the task failed.
                _ => accepted_response(&id),
            }
        }
        accepted => {
            tokio::spawn(run_in_background(
                router,
                client,
                accepted,
                Bytes::from(body),
                authorization,
                transaction_id,
            ));
            accepted_response(&id)
        }
    }
}

fn accepted_response(id: &str) -> ProcessingResponse {
    let body = serde_json::json!({ "activationId": id }).to_string();
    json_response(202, body, id)
}

/// An immediate JSON answer carrying the activation id.
fn json_response(status: u16, body: impl Into<Vec<u8>>, id: &str) -> ProcessingResponse {
    response(processing_response::Response::ImmediateResponse(
        ImmediateResponse {
            status: Some(HttpStatus {
                code: status as i32,
            }),
            headers: Some(HeaderMutation {
                set_headers: vec![
                    raw("content-type", "application/json"),
                    raw(ACTIVATION_ID_HEADER, id),
                ],
                remove_headers: vec![],
            }),
            body: body.into(),
            details: "whisk_router_answered".to_owned(),
            ..Default::default()
        },
    ))
}

/// Asks Envoy to wait longer than its per-message timeout for our next answer.
fn hold_for(d: Duration) -> ProcessingResponse {
    ProcessingResponse {
        override_message_timeout: Some(protobuf::Duration {
            seconds: d.as_secs() as i64,
            nanos: d.subsec_nanos() as i32,
        }),
        ..Default::default()
    }
}

/// With the body of a caching action's invoke: a hit is answered from the cache (the slots are
/// released unused); a miss is routed as usual, and its key kept for the response.
fn look_up_cache(probe: Probe, state: &mut StreamState) -> ProcessingResponse {
    let Probe {
        admission,
        route,
        replay,
    } = probe;
    let inv = &admission.invocation;
    let key = ResponseCache::key(&inv.action, &inv.namespace, inv.result, &replay.body);
    if let Some(hit) = key.as_deref().and_then(|k| state.router.cache.get(k)) {
        state.metrics.decided("cached");
        state.span.record("whisk.outcome", "cached");
        let id = inv.activation_id.clone();
        drop(admission);
        return json_response(200, with_activation_id(&hit.body, &id), &id);
    }
    state.cache_key = key;
    state.admission = Some(admission);
    state.replay = Some(replay);
    // The routing decided at request headers, now sent with the body reply.
    let common = match route.response {
        Some(processing_response::Response::RequestHeaders(h)) => h.response,
        _ => None,
    };
    ProcessingResponse {
        response: Some(processing_response::Response::RequestBody(BodyResponse {
            response: common,
        })),
        dynamic_metadata: route.dynamic_metadata,
        ..Default::default()
    }
}

/// Buffers a cacheable response body and keeps it.
fn on_response_body(chunk: Vec<u8>, end: bool, state: &mut StreamState) -> ProcessingResponse {
    if let Some((key, ttl, mut body)) = state.cache_store.take() {
        body.extend_from_slice(&chunk);
        if end {
            state.router.cache.put(key, body, ttl);
        } else {
            state.cache_store = Some((key, ttl, body));
        }
    }
    response(processing_response::Response::ResponseBody(
        BodyResponse::default(),
    ))
}

/// A blocking invoke: routed through Envoy to the chosen container, after waiting if needed.
async fn decide_blocking(
    router: &Router,
    decision: Decision,
    h: &HttpHeaders,
    body_len: Option<u64>,
    transaction_id: &str,
    state: &mut StreamState,
    tx: &mpsc::Sender<Result<ProcessingResponse, Status>>,
) -> ProcessingResponse {
    let empty = HeaderMap::default();
    let map = h.headers.as_ref().unwrap_or(&empty);
    let transaction_id = transaction_id.to_owned();
    let decision = match decision {
        Decision::Pending(pending) => {
            // Hold the request past Envoy's per-message timeout while we wait.
            let hold = hold_for(pending.max_wait() + Duration::from_secs(1));
            if tx.send(Ok(hold)).await.is_err() {
                return immediate(&Rejection::Internal, &transaction_id);
            }
            let waited = std::time::Instant::now();
            let decision = match router.wait(pending).await {
                Ok(a) => Decision::Admitted(a),
                Err(r) => Decision::Rejected(r),
            };
            let outcome = match &decision {
                Decision::Rejected(r) => r.reason(),
                _ => "cold_start",
            };
            let m = &state.metrics;
            m.cold_start_wait_seconds
                .observe(waited.elapsed().as_secs_f64());
            m.decision_seconds.observe(waited.elapsed().as_secs_f64());
            m.decided(outcome);
            state.span.record("whisk.outcome", outcome);
            decision
        }
        d => d,
    };
    match decision {
        Decision::Admitted(admission) => {
            let traceparent = whisk_telemetry::traceparent_of(&state.span);
            let mut reply = route(map, &admission, &transaction_id, traceparent);
            state.activation_id = Some(admission.invocation.activation_id.clone());
            if router.cache.is_cacheable(&admission.invocation.action) {
                let probe = Probe {
                    admission,
                    route: reply,
                    replay: Replay::of(map, &transaction_id),
                };
                if h.end_of_stream {
                    return look_up_cache(probe, state);
                }
                // Ask for the (small, size-checked) body to compute the cache key.
                state.probe = Some(probe);
                return ProcessingResponse {
                    response: Some(processing_response::Response::RequestHeaders(
                        HeadersResponse::default(),
                    )),
                    mode_override: Some(ProcessingMode {
                        request_body_mode: BodySendMode::Buffered as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                };
            }
            // Keep what a replay after a 429 needs: nothing to buffer without a body; a body
            // only when the policy says so and it is small enough.
            let keep = h.end_of_stream
                || (body_len.is_some_and(|len| len <= MAX_KEPT_BODY)
                    && router.keeps_body(&admission));
            if keep {
                state.replay = Some(Replay::of(map, &transaction_id));
                if !h.end_of_stream {
                    reply.mode_override = Some(ProcessingMode {
                        request_body_mode: BodySendMode::Buffered as i32,
                        ..Default::default()
                    });
                }
            }
            state.admission = Some(admission);
            reply
        }
        Decision::Rejected(r) => {
            tracing::debug!(reason = r.reason(), "rejected");
            immediate(&r, &transaction_id)
        }
        Decision::Pending(_) | Decision::Sequence(_) => {
            immediate(&Rejection::Internal, &transaction_id)
        }
    }
}

/// Sends the request to the chosen container with the context it needs.
fn route(
    map: &HeaderMap,
    admission: &Admission,
    transaction_id: &str,
    traceparent: Option<String>,
) -> ProcessingResponse {
    let mut set_headers: Vec<_> = context_headers(&admission.invocation, transaction_id)
        .into_iter()
        .map(|(k, v)| raw(k, v))
        .collect();
    // With tracing on, the container's span is a child of the router's.
    if let Some(tp) = traceparent {
        set_headers.push(raw("traceparent", tp));
    }
    let remove_headers = map
        .headers
        .iter()
        .filter(|h| h.key.starts_with(CONTEXT_PREFIX))
        .filter(|h| {
            !set_headers
                .iter()
                .any(|s| s.header.as_ref().is_some_and(|sh| sh.key == h.key))
        })
        .map(|h| h.key.clone())
        .collect();
    let dst = Struct {
        fields: [(
            "dst".to_owned(),
            Value {
                kind: Some(Kind::StringValue(
                    admission.slot.endpoint().address.to_string(),
                )),
            },
        )]
        .into(),
    };
    let metadata = Struct {
        fields: [(
            METADATA_NAMESPACE.to_owned(),
            Value {
                kind: Some(Kind::StructValue(dst)),
            },
        )]
        .into(),
    };
    ProcessingResponse {
        response: Some(processing_response::Response::RequestHeaders(
            HeadersResponse {
                response: Some(CommonResponse {
                    header_mutation: Some(HeaderMutation {
                        set_headers,
                        remove_headers,
                    }),
                    ..Default::default()
                }),
            },
        )),
        dynamic_metadata: Some(metadata),
        ..Default::default()
    }
}

async fn on_response_headers(
    router: &Router,
    h: &HttpHeaders,
    state: &mut StreamState,
    tx: &mpsc::Sender<Result<ProcessingResponse, Status>>,
) -> ProcessingResponse {
    let empty = HeaderMap::default();
    let map = h.headers.as_ref().unwrap_or(&empty);
    let status: u16 = get(map, ":status")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status == 429
        && let Some(admission) = state.admission.as_ref()
    {
        let retry = get(map, "retry-after")
            .and_then(parse_retry_after)
            .unwrap_or(Duration::from_secs(1));
        admission.slot.refused(retry);
        state.metrics.tripped("retry_after");
        if let Some(replay) = state.replay.take()
            && let Some(admission) = state.admission.take()
            && let Some(answer) = replay_elsewhere(admission, replay, state, tx).await
        {
            return answer;
        }
        // Not kept, or no capacity in time: the container's 429 (with its Retry-After) goes on.
    }
    let mut buffer_body = false;
    if let Some(admission) = state.admission.take() {
        let cacheable = (status == 200 && admission.invocation.blocking)
            .then(|| get(map, "cache-control").and_then(max_age))
            .flatten()
            .filter(|_| {
                get(map, "content-length")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .is_some_and(|len| len <= MAX_BODY)
            });
        if let Some(ttl) = cacheable {
            router.cache.mark_cacheable(&admission.invocation.action);
            if let Some(key) = state.cache_key.take() {
                state.cache_store = Some((key, ttl, Vec::new()));
                buffer_body = true;
            }
        }
        // Envoy's own 502–504 (no activation id): the container did not answer at all.
        if (502..=504).contains(&status) && get(map, ACTIVATION_ID_HEADER).is_none() {
            let endpoint = admission.slot.endpoint();
            state.metrics.tripped("unreachable");
            endpoint.open_for(CONNECT_FAILURE_BACKOFF);
            router.control().report_unusable(
                endpoint.container_id.clone(),
                format!("upstream unreachable (status {status})"),
            );
        }
        // `admission` drops here: container slot and namespace concurrency are released.
    }
    let set_headers = state
        .activation_id
        .as_deref()
        .map(|id| vec![raw(ACTIVATION_ID_HEADER, id)])
        .unwrap_or_default();
    let mut reply = response(processing_response::Response::ResponseHeaders(
        HeadersResponse {
            response: Some(CommonResponse {
                header_mutation: Some(HeaderMutation {
                    set_headers,
                    remove_headers: vec![],
                }),
                ..Default::default()
            }),
        },
    ));
    if buffer_body {
        reply.mode_override = Some(ProcessingMode {
            response_body_mode: BodySendMode::Buffered as i32,
            ..Default::default()
        });
    }
    reply
}

/// Sends a refused invoke to another container or a cold start, within the caller's wait, and
/// answers the client with what that container said. `None` when no capacity was found in
/// time: the refusal stands.
async fn replay_elsewhere(
    mut admission: Admission,
    replay: Replay,
    state: &StreamState,
    tx: &mpsc::Sender<Result<ProcessingResponse, Status>>,
) -> Option<ProcessingResponse> {
    let wait = Duration::from_millis(admission.invocation.deadline_ms.checked_sub(now_ms())?);
    let deadline = tokio::time::Instant::now() + wait;
    // Envoy holds the container's 429 while we look; the proxy answers 202 at the deadline.
    let grace = Duration::from_secs(5);
    tx.send(Ok(hold_for(wait + grace))).await.ok()?;
    let id = admission.invocation.activation_id.clone();
    let Admission {
        invocation, slot, ..
    } = &mut admission;
    let outcome = tokio::time::timeout(wait + grace - Duration::from_secs(1), async {
        // `slot` still holds the refusing container (its breaker is open): take another.
        *slot = state.router.reacquire(invocation, deadline).await.ok()?;
        call_until_answered(
            &state.router,
            &state.client,
            slot,
            invocation,
            &Bytes::from(replay.body),
            Origin {
                authorization: replay.authorization.as_deref(),
                transaction_id: &replay.transaction_id,
            },
            deadline,
        )
        .await
        .ok()
    })
    .await;
    let (label, reply) = match outcome {
        Ok(Some(answer)) => ("answered", Some(proxy_response(&answer, &id))),
        Ok(None) => ("no_capacity", None),
        // The container took the request but did not answer by the deadline.
        Err(_) => ("wait_expired", Some(accepted_response(&id))),
    };
    state.metrics.replayed(label);
    tracing::debug!(activation_id = %id, outcome = label, "replayed a refused invoke");
    reply
}

/// A container proxy's answer, passed to the client as it is.
fn proxy_response(answer: &ProxyAnswer, id: &str) -> ProcessingResponse {
    let mut reply = json_response(answer.status, answer.body.to_vec(), id);
    if let Some(processing_response::Response::ImmediateResponse(r)) = reply.response.as_mut()
        && let Some(headers) = r.headers.as_mut()
    {
        if let Some(cc) = &answer.cache_control {
            headers.set_headers.push(raw("cache-control", cc.as_str()));
        }
        if let Some(retry) = answer.retry_after {
            headers
                .set_headers
                .push(raw("retry-after", retry.as_secs().max(1).to_string()));
        }
    }
    reply
}

/// `Retry-After` as seconds or an HTTP-date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// An OpenWhisk-shaped answer straight from Envoy.
fn immediate(r: &Rejection, transaction_id: &str) -> ProcessingResponse {
    let mut headers = vec![raw("content-type", "application/json")];
    if r.status() == 401 {
        headers.push(raw("www-authenticate", WWW_AUTHENTICATE));
    }
    if let Some(secs) = r.retry_after_secs() {
        headers.push(raw("retry-after", secs.to_string()));
    }
    response(processing_response::Response::ImmediateResponse(
        ImmediateResponse {
            status: Some(HttpStatus {
                code: r.status() as i32,
            }),
            headers: Some(HeaderMutation {
                set_headers: headers,
                remove_headers: vec![],
            }),
            body: r.body(transaction_id).into_bytes(),
            details: format!("whisk_router_{}", r.reason()),
            ..Default::default()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_both_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
