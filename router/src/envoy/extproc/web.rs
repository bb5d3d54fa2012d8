//! The web phase of a stream (`/api/v1/web/...`): the headers become the domain's
//! [`WebHead`] and [`Router::decide_web`](crate::domain::pipeline::Router) decides; a request
//! allowed to run has its body read whole (Envoy buffers it; its size was checked against the
//! owner's limit), becomes the action's argument, runs (`upstream::web`), and its activation
//! becomes the HTTP answer, sent as an immediate response. Nothing of a web request is forwarded
//! by Envoy: the router speaks to the container itself.

use envoy_types::pb::envoy::config::core::v3::HeaderMap;
use envoy_types::pb::envoy::service::ext_proc::v3::{HttpHeaders, ProcessingResponse};
use whisk_vocab::{ActivationResponse, ActivationStatus};

use super::answers;
use super::stream::{InvokeStream, Phase, WebPending};
use crate::config::{HOLD_GRACE, WEB_WAIT};
use crate::domain::rejection::Rejection;
use crate::domain::web::admit::{WebDecision, WebHead, WebTicket};
use crate::domain::web::args::{WebRequest, argument};
use crate::domain::web::cache;
use crate::domain::web::result::{NOT_READY, WebResponse, respond};
use crate::envoy::headers::get;
use crate::upstream::web::{WebRun, run};

impl WebPending {
    pub(super) fn ticket(&self) -> &WebTicket {
        &self.ticket
    }

    /// The refusal of a body that did not fit Envoy's buffer (only its first part came).
    pub(super) fn cut_short(&self, received: usize) -> ProcessingResponse {
        let limit = self.ticket.invocation.max_payload_bytes;
        let size = (received as u64).max(limit + 1);
        answers::rejection(
            &Rejection::EntityTooLarge { size, limit },
            &self.transaction_id,
        )
    }

    pub(super) fn extend(&mut self, chunk: Vec<u8>) {
        if self.body.is_empty() {
            self.body = chunk;
        } else {
            self.body.extend_from_slice(&chunk);
        }
    }
}

/// The headers an action sees: everything the client sent, not Envoy's pseudo-headers or its
/// internal ones.
fn visible_headers(map: &HeaderMap) -> Vec<(String, String)> {
    map.headers
        .iter()
        .filter(|h| !h.key.starts_with(':') && !h.key.starts_with("x-envoy-"))
        .map(|h| {
            let value = if h.raw_value.is_empty() {
                h.value.clone()
            } else {
                String::from_utf8_lossy(&h.raw_value).into_owned()
            };
            (h.key.to_ascii_lowercase(), value)
        })
        .collect()
}

impl InvokeStream {
    pub(super) async fn on_web_headers(&mut self, h: &HttpHeaders) -> ProcessingResponse {
        let empty = HeaderMap::default();
        let map = h.headers.as_ref().unwrap_or(&empty);
        let transaction_id = get(map, "x-request-id").unwrap_or_default().to_owned();
        let head = WebHead {
            method: get(map, ":method").unwrap_or_default(),
            path: get(map, ":path").unwrap_or_default(),
            authorization: get(map, "authorization"),
            secret: get(map, "x-require-whisk-auth"),
            cors_request_headers: get(map, "access-control-request-headers"),
            content_length: get(map, "content-length").and_then(|v| v.trim().parse().ok()),
        };
        self.span = tracing::info_span!(
            "whisk.router.web",
            otel.kind = "server",
            faas.invocation_id = tracing::field::Empty,
            faas.name = tracing::field::Empty,
            whisk.namespace = tracing::field::Empty,
        );
        let ticket = match self.router.decide_web(&head) {
            WebDecision::Rejected(r) => {
                self.metrics.decided(r.reason());
                return answers::rejection(&r, &transaction_id);
            }
            WebDecision::Answer(response) => {
                self.metrics.decided("web_preflight");
                return answers::web(response, "");
            }
            WebDecision::Run(ticket) => ticket,
        };
        self.metrics.decided("web");
        let inv = &ticket.invocation;
        self.span
            .record("faas.invocation_id", inv.activation_id.as_str());
        self.span.record("faas.name", &*inv.action.fqn);
        self.span.record("whisk.namespace", &*inv.namespace);
        let pending = WebPending {
            ticket,
            method: head.method.to_owned(),
            headers: visible_headers(map),
            transaction_id: transaction_id.clone(),
            body: Vec::new(),
        };
        if h.end_of_stream {
            return self.run_web(pending).await;
        }
        // Whole, even without a `content-length`: Envoy must not stream any of it upstream (the
        // router answers). A body larger than Envoy's buffer arrives cut short: refused.
        self.phase = Phase::Web(pending);
        answers::with_bounded_request_body(answers::continue_request_headers())
    }

    /// With the whole body: the argument is made, the action runs, and its activation is the
    /// answer (OpenWhisk's 202 "Response not yet ready." once the wait is over; the activation
    /// goes on).
    pub(super) async fn run_web(&mut self, pending: WebPending) -> ProcessingResponse {
        let WebPending {
            mut ticket,
            method,
            headers,
            transaction_id: tid,
            body,
        } = pending;
        // A body without a `content-length` is measured once it is in.
        if let Err(r) = ticket
            .admits_body(body.len() as u64)
            .and_then(|()| ticket.charge())
        {
            return answers::rejection(&r, &tid);
        }
        let request = WebRequest {
            method: &method,
            headers: &headers,
            path: &ticket.path.rest,
            query: &ticket.path.query,
            body: &body,
            user: ticket.user.as_deref(),
        };
        let arg = match argument(&request, ticket.export.raw_http) {
            Ok(a) => a,
            Err(r) => return answers::rejection(&r, &tid),
        };
        let id = ticket.invocation.activation_id.clone();
        let (extension, projection) = (ticket.path.extension, ticket.path.projection());
        let cors = ticket.cors.clone();
        let cache_key = cache::key(&ticket, &method, &headers);
        if let Some(result) = cache_key
            .as_deref()
            .and_then(|k| self.router.web_cache_hit(&ticket, k))
        {
            self.metrics.decided("web_cached");
            let mut response = respond(
                &ActivationResponse::success(result),
                extension,
                &projection,
                &tid,
            );
            response
                .headers
                .extend(cors.into_iter().map(|(k, v)| (k.to_owned(), v)));
            return answers::web(response, &id);
        }
        // What storing the answer needs, once the ticket went with the run.
        let store = cache_key.map(|key| {
            let action = ticket.invocation.action.clone();
            (key, self.router.clone(), action)
        });
        if !self.hold(WEB_WAIT + HOLD_GRACE).await {
            return answers::rejection(&Rejection::Internal, &tid);
        }
        let task = tokio::spawn(run(
            self.router.clone(),
            self.client.clone(),
            ticket,
            arg,
            tid.clone(),
        ));
        let mut response = match tokio::time::timeout(WEB_WAIT, task).await {
            Ok(Ok(WebRun::Ended(r, cache_control))) => {
                let response = respond(&r, extension, &projection, &tid);
                if let Some((key, router, action)) = store
                    && r.status == ActivationStatus::Success
                {
                    router.web_cache_store(
                        &action,
                        key,
                        r.result,
                        cache_control.as_deref(),
                        &response,
                    );
                }
                response
            }
            Ok(Ok(WebRun::Refused { status, body })) => WebResponse {
                status,
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.to_vec(),
            },
            Ok(Ok(WebRun::NotRun(r))) => return answers::rejection(&r, &tid),
            Ok(Err(_)) => return answers::rejection(&Rejection::Internal, &tid),
            Err(_) => WebResponse::error(202, NOT_READY, &tid),
        };
        response
            .headers
            .extend(cors.into_iter().map(|(k, v)| (k.to_owned(), v)));
        answers::web(response, &id)
    }
}
