//! The response phase of an invoke's stream: the container's answer headers become the domain's
//! [`ResponseHead`], [`Router::on_response`](crate::domain::pipeline::Router) decides what
//! follows (`domain::response`), and this carries it out: pass the answer on with its activation
//! id, buffer it for the cache, or — for a 429 on a kept request — replay the request elsewhere
//! (`upstream::invoke::replay`) and answer with what that container said.

use envoy_types::pb::envoy::config::core::v3::HeaderMap;
use envoy_types::pb::envoy::service::ext_proc::v3::{HttpHeaders, ProcessingResponse};

use super::answers::{self, ACTIVATION_ID_HEADER};
use super::stream::{InvokeStream, Phase};
use crate::config::REPLAY_GRACE;
use crate::domain::pipeline::Admission;
use crate::domain::response::{Outcome, ResponseHead};
use crate::domain::retry_after;
use crate::envoy::headers::get;
use crate::upstream::KeptRequest;
use crate::upstream::invoke::{ReplayOutcome, replay, replay_wait};
use crate::upstream::lifetime::hold_until_end;

impl InvokeStream {
    pub(super) async fn on_response_headers(&mut self, h: &HttpHeaders) -> ProcessingResponse {
        let Phase::Forwarded {
            admission,
            kept,
            cache_key,
        } = self.take_phase()
        else {
            return answers::response_headers(None);
        };
        let empty = HeaderMap::default();
        let map = h.headers.as_ref().unwrap_or(&empty);
        let head = ResponseHead {
            status: get(map, ":status")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            retry_after: get(map, "retry-after").and_then(retry_after::parse),
            cache_control: get(map, "cache-control"),
            content_length: get(map, "content-length").and_then(|v| v.trim().parse().ok()),
            from_container: get(map, ACTIVATION_ID_HEADER).is_some(),
        };
        let id = admission.invocation.activation_id.clone();
        let reply = answers::response_headers(Some(&id));
        match self
            .router
            .on_response(admission, &head, kept.is_some(), cache_key)
        {
            Outcome::Done => reply,
            Outcome::Unreachable => {
                self.metrics.tripped("unreachable");
                reply
            }
            Outcome::StillRunning(admission) => {
                hold_until_end(self.client.clone(), admission);
                reply
            }
            Outcome::Refused => {
                self.metrics.tripped("retry_after");
                reply
            }
            Outcome::Replay(admission) => {
                self.metrics.tripped("retry_after");
                match kept {
                    Some(request) => self.replay(admission, request, &id).await,
                    None => None,
                }
                // Not answered elsewhere in time: the container's 429 (with its Retry-After)
                // goes on.
                .unwrap_or(reply)
            }
            Outcome::Store {
                key,
                ttl,
                result_only,
            } => {
                self.phase = Phase::Storing {
                    key,
                    ttl,
                    result_only,
                    body: Vec::new(),
                };
                answers::with_response_body(reply)
            }
        }
    }

    /// Sends a refused request to another container or a cold start within the caller's wait,
    /// holding Envoy meanwhile. `None` when no capacity was found in time.
    async fn replay(
        &self,
        admission: Admission,
        request: KeptRequest,
        id: &str,
    ) -> Option<ProcessingResponse> {
        let wait = replay_wait(&admission)?;
        // Envoy holds the container's 429 while we look; the proxy answers 202 at the deadline.
        if !self.hold(wait + REPLAY_GRACE).await {
            return None;
        }
        let outcome = replay(&self.router, &self.client, admission, request, wait).await;
        self.metrics.replayed(outcome.label());
        tracing::debug!(activation_id = %id, outcome = outcome.label(), "replayed a refused invoke");
        match outcome {
            ReplayOutcome::Answered(answer) => Some(answers::proxy_answer(&answer, id)),
            ReplayOutcome::NoCapacity => None,
            // A container took the request but did not answer by the deadline.
            ReplayOutcome::WaitExpired => Some(answers::accepted(id)),
        }
    }

    /// Buffers a cacheable answer and stores it once whole.
    pub(super) fn on_response_body(&mut self, chunk: Vec<u8>, end: bool) -> ProcessingResponse {
        if let Phase::Storing { body, .. } = &mut self.phase {
            body.extend_from_slice(&chunk);
            if end
                && let Phase::Storing {
                    key,
                    ttl,
                    result_only,
                    body,
                } = self.take_phase()
            {
                self.router.cache.put_answer(key, &body, result_only, ttl);
            }
        }
        answers::continue_response_body()
    }
}
