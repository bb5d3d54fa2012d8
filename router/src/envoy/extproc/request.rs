//! The request phase of an invoke's stream: its headers become the domain's [`RequestHead`],
//! [`Router::decide`](crate::domain::pipeline::Router::decide) decides, and the decision goes back
//! to Envoy as one of:
//! - the route to a warm container (after holding Envoy while a cold start runs, if it must);
//! - an OpenWhisk-shaped rejection;
//! - `202 {"activationId"}` for a request the router runs itself (non-blocking invokes and
//!   sequences, see `upstream::background`), once it has the body;
//! - an answer from the response cache, once it has the body the key needs.
//!
//! What happens to the body is the domain's [`BodyPlan`].

use std::time::{Duration, Instant};

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::HeaderMap;
use envoy_types::pb::envoy::service::ext_proc::v3::{HttpHeaders, ProcessingResponse};
use whisk_vocab::now_ms;

use super::answers;
use super::stream::{InvokeStream, Measuring, Phase};
use crate::config::HOLD_GRACE;
use crate::domain::cache_hit::Lookup;
use crate::domain::pipeline::{Admission, AwaitingBody, BodyPlan, Decision, Pending, RequestHead};
use crate::domain::rejection::Rejection;
use crate::domain::web::path::WEB_PREFIX;
use crate::envoy::headers::get;
use crate::upstream::KeptRequest;
use crate::upstream::background::{Accepted, run_in_background};
use crate::upstream::sequence;

impl InvokeStream {
    pub(super) async fn on_request_headers(&mut self, h: &HttpHeaders) -> ProcessingResponse {
        let empty = HeaderMap::default();
        let map = h.headers.as_ref().unwrap_or(&empty);
        if get(map, ":path").is_some_and(|p| p.starts_with(WEB_PREFIX)) {
            return self.on_web_headers(h).await;
        }
        let transaction_id = get(map, "x-request-id").unwrap_or_default();
        let head = RequestHead {
            method: get(map, ":method").unwrap_or_default(),
            path: get(map, ":path").unwrap_or_default(),
            authorization: get(map, "authorization"),
            content_length: get(map, "content-length").and_then(|v| v.trim().parse().ok()),
            has_body: !h.end_of_stream,
        };
        let started = Instant::now();
        self.span = tracing::info_span!(
            "whisk.router.invoke",
            otel.kind = "server",
            faas.invocation_id = tracing::field::Empty,
            faas.name = tracing::field::Empty,
            whisk.namespace = tracing::field::Empty,
            whisk.outcome = tracing::field::Empty,
        );
        whisk_telemetry::set_parent_from_traceparent(
            &self.span,
            get(map, "traceparent"),
            get(map, "tracestate"),
        );
        let decision = self.router.decide(&head);
        self.note_decision(&decision, started);
        if !h.end_of_stream && head.content_length.is_none() {
            self.measuring = Some(Measuring {
                received: 0,
                transaction_id: transaction_id.to_owned(),
            });
        }
        // What a request the router runs itself needs (the forwarded path builds it only when it
        // keeps the request).
        let request = || KeptRequest::new(head.authorization, transaction_id);
        let admission = match decision {
            Decision::Rejected(r) => {
                tracing::debug!(reason = r.reason(), "rejected");
                return answers::rejection(&r, transaction_id);
            }
            Decision::AwaitingBody(ticket) => {
                self.phase = Phase::AwaitingBody {
                    ticket,
                    request: request(),
                };
                let streamed = self.measuring.is_some();
                return answers::with_request_body(answers::continue_request_headers(), streamed);
            }
            Decision::Admitted(a) if a.invocation.blocking => a,
            Decision::Pending(p) if p.invocation().blocking => {
                let inv = p.invocation().clone();
                match self.wait(p).await {
                    Ok(a) => a,
                    // The cold start's init failed: that is this caller's activation.
                    Err(Rejection::InitFailed(failure)) => {
                        let (status, body) = self.router.answer_init_failure(&inv, &failure);
                        return answers::json(status, body, &inv.activation_id);
                    }
                    Err(r) => return answers::rejection(&r, transaction_id),
                }
            }
            Decision::Admitted(a) => {
                return self
                    .accept(Accepted::Admitted(a), request(), h.end_of_stream)
                    .await;
            }
            Decision::Pending(p) => {
                return self
                    .accept(Accepted::Pending(p), request(), h.end_of_stream)
                    .await;
            }
            Decision::Sequence(s) => {
                return self
                    .accept(Accepted::Sequence(s), request(), h.end_of_stream)
                    .await;
            }
        };
        self.forward(
            admission,
            map,
            transaction_id,
            request,
            h.end_of_stream,
            head.content_length,
        )
    }

    /// Records the decision on the span and in the metrics (a blocking wait is recorded when it
    /// ends, by [`Self::wait`]).
    fn note_decision(&self, decision: &Decision, started: Instant) {
        let outcome = match decision {
            Decision::Admitted(a) if a.invocation.blocking => "routed",
            Decision::Admitted(_) | Decision::Pending(_) => "accepted",
            Decision::Sequence(_) => "sequence",
            Decision::Rejected(r) => r.reason(),
            // Noted once the body is in and the request admitted.
            Decision::AwaitingBody(_) => return,
        };
        let inv = match decision {
            Decision::Admitted(a) => Some(&a.invocation),
            Decision::Pending(p) => Some(p.invocation()),
            Decision::Sequence(s) => Some(&s.invocation),
            Decision::Rejected(_) | Decision::AwaitingBody(_) => None,
        };
        if let Some(inv) = inv {
            self.span
                .record("faas.invocation_id", inv.activation_id.as_str());
            self.span.record("faas.name", &*inv.action.fqn);
            self.span.record("whisk.namespace", &*inv.namespace);
        }
        if !matches!(decision, Decision::Pending(p) if p.invocation().blocking) {
            self.span.record("whisk.outcome", outcome);
            self.metrics.decided(outcome);
            self.metrics
                .decision_seconds
                .observe(started.elapsed().as_secs_f64());
        }
    }

    /// A blocking invoke with no free container: holds Envoy past its message timeout while the
    /// router waits for one (a cold start, or a busy container freeing up).
    async fn wait(&mut self, pending: Pending) -> Result<Admission, Rejection> {
        if !self.hold(pending.max_wait() + HOLD_GRACE).await {
            return Err(Rejection::Internal);
        }
        let waited = Instant::now();
        let result = self.router.wait(pending).await;
        let outcome = match &result {
            Err(r) => r.reason(),
            Ok(_) => "cold_start",
        };
        let seconds = waited.elapsed().as_secs_f64();
        self.metrics.cold_start_wait_seconds.observe(seconds);
        self.metrics.decision_seconds.observe(seconds);
        self.metrics.decided(outcome);
        self.span.record("whisk.outcome", outcome);
        result
    }

    /// Sends a blocking invoke to its container, reading or keeping its body as planned.
    fn forward(
        &mut self,
        admission: Admission,
        map: &HeaderMap,
        transaction_id: &str,
        request: impl FnOnce() -> KeptRequest,
        end_of_stream: bool,
        body_len: Option<u64>,
    ) -> ProcessingResponse {
        let traceparent = whisk_telemetry::traceparent_of(&self.span);
        let route = answers::route(map, &admission, transaction_id, traceparent);
        match self.router.body_plan(&admission, !end_of_stream, body_len) {
            BodyPlan::ProbeCache if end_of_stream => {
                self.look_up_cache(admission, route, request(), true)
            }
            BodyPlan::ProbeCache => {
                self.phase = Phase::Probing {
                    admission,
                    route: Box::new(route),
                    request: request(),
                };
                // Ask for the (small, size-checked) body to compute the key; route after it.
                answers::with_request_body(answers::continue_request_headers(), body_len.is_none())
            }
            BodyPlan::Keep => {
                self.phase = Phase::Forwarded {
                    admission,
                    kept: Some(request()),
                    cache_key: None,
                };
                if end_of_stream {
                    route
                } else {
                    answers::with_request_body(route, false)
                }
            }
            BodyPlan::Measure => {
                self.phase = Phase::Forwarded {
                    admission,
                    kept: None,
                    cache_key: None,
                };
                answers::with_request_body(route, true)
            }
            BodyPlan::PassThrough => {
                self.phase = Phase::Forwarded {
                    admission,
                    kept: None,
                    cache_key: None,
                };
                route
            }
        }
    }

    pub(super) async fn on_request_body(
        &mut self,
        chunk: Vec<u8>,
        end: bool,
    ) -> ProcessingResponse {
        if let Some(refused) = self.measure(chunk.len()) {
            return refused;
        }
        match self.take_phase() {
            Phase::AwaitingBody {
                ticket,
                mut request,
            } => {
                request.extend(chunk);
                if end {
                    return self.admit(ticket, request).await;
                }
                self.phase = Phase::AwaitingBody { ticket, request };
            }
            Phase::Running {
                accepted,
                mut request,
            } => {
                request.extend(chunk);
                if end {
                    return self.accept(accepted, request, true).await;
                }
                self.phase = Phase::Running { accepted, request };
            }
            Phase::Probing {
                admission,
                route,
                mut request,
            } => {
                request.extend(chunk);
                if end {
                    return self.look_up_cache(admission, *route, request, false);
                }
                self.phase = Phase::Probing {
                    admission,
                    route,
                    request,
                };
            }
            Phase::Web(mut pending) => {
                if !end {
                    return pending.cut_short(chunk.len());
                }
                pending.extend(chunk);
                return self.run_web(pending).await;
            }
            Phase::Forwarded {
                admission,
                mut kept,
                cache_key,
            } => {
                if let Some(request) = kept.as_mut() {
                    request.extend(chunk);
                }
                self.phase = Phase::Forwarded {
                    admission,
                    kept,
                    cache_key,
                };
            }
            other => self.phase = other,
        }
        answers::continue_request_body()
    }

    /// A non-blocking invoke whose body is in: now it is throttled, entitled and given a
    /// container, and run by the router.
    async fn admit(&mut self, ticket: AwaitingBody, request: KeptRequest) -> ProcessingResponse {
        let decision = self.router.admit(ticket);
        self.note_decision(&decision, Instant::now());
        let accepted = match decision {
            Decision::Admitted(a) => Accepted::Admitted(a),
            Decision::Pending(p) => Accepted::Pending(p),
            Decision::Sequence(s) => Accepted::Sequence(s),
            Decision::Rejected(r) => return answers::rejection(&r, &request.transaction_id),
            Decision::AwaitingBody(_) => {
                return answers::rejection(&Rejection::Internal, &request.transaction_id);
            }
        };
        self.accept(accepted, request, true).await
    }

    /// Counts a chunk of a body of unknown size; once it is over the payload limit, the request
    /// is refused (the slots it held are released, and Envoy resets what it forwarded, so the
    /// action never runs).
    fn measure(&mut self, chunk: usize) -> Option<ProcessingResponse> {
        let m = self.measuring.as_mut()?;
        m.received += chunk as u64;
        let received = m.received;
        let refusal = match &self.phase {
            Phase::AwaitingBody { ticket, .. } => ticket.admits_body(received),
            _ => self.invocation()?.admits_body(received),
        }
        .err()?;
        let tid = self
            .measuring
            .take()
            .map(|m| m.transaction_id)
            .unwrap_or_default();
        self.phase = Phase::Done;
        Some(answers::rejection(&refusal, &tid))
    }

    /// With the body of a caching action's invoke: a hit is answered from the cache (the slots
    /// are released unused); a miss is routed as decided, its key kept for the answer.
    /// `at_headers`: the request had no body, so this answers its headers message.
    fn look_up_cache(
        &mut self,
        admission: Admission,
        route: ProcessingResponse,
        request: KeptRequest,
        at_headers: bool,
    ) -> ProcessingResponse {
        let id = admission.invocation.activation_id.clone();
        let (admission, key) = match self.router.look_up_cache(admission, &request.body) {
            Lookup::Hit { status, body } => {
                self.metrics.decided("cached");
                self.span.record("whisk.outcome", "cached");
                return answers::json(status, body, &id);
            }
            Lookup::Miss { admission, key } => (admission, key),
        };
        self.phase = Phase::Forwarded {
            admission,
            kept: Some(request),
            cache_key: key,
        };
        if at_headers {
            route
        } else {
            answers::route_at_body(route)
        }
    }

    /// Takes on a request the router runs itself once its body is complete (`end`); until then,
    /// asks Envoy for the (small, already size-checked) body. A blocking sequence is awaited up to
    /// the caller's wait (then 202 while it goes on); everything else is answered
    /// `202 {"activationId"}` at once.
    async fn accept(
        &mut self,
        accepted: Accepted,
        request: KeptRequest,
        end: bool,
    ) -> ProcessingResponse {
        if !end {
            self.phase = Phase::Running { accepted, request };
            let streamed = self.measuring.is_some();
            return answers::with_request_body(answers::continue_request_headers(), streamed);
        }
        let id = accepted.invocation().activation_id.clone();
        let (router, client) = (self.router.clone(), self.client.clone());
        let seq = match accepted {
            Accepted::Sequence(seq) if seq.invocation.blocking => seq,
            accepted => {
                tokio::spawn(run_in_background(router, client, accepted, request));
                return answers::accepted(&id);
            }
        };
        let result_only = seq.invocation.result;
        let wait = Duration::from_millis(seq.invocation.deadline_ms.saturating_sub(now_ms()));
        if !self.hold(wait + HOLD_GRACE).await {
            return answers::rejection(&Rejection::Internal, &request.transaction_id);
        }
        let run = tokio::spawn(async move {
            let mut request = request;
            let body = Bytes::from(std::mem::take(&mut request.body));
            let record = sequence::run(&router, &client, &seq.invocation, body, &request).await;
            drop(seq);
            record
        });
        match tokio::time::timeout(wait, run).await {
            Ok(Ok(record)) => {
                let (status, body) = record.blocking_answer(result_only);
                answers::json(status, body.to_string(), &id)
            }
            // The wait expired (the sequence goes on) or the task failed.
            _ => answers::accepted(&id),
        }
    }
}
