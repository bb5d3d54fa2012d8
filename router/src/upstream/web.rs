//! Running a web action: the router calls the owner's container itself (or runs the sequence)
//! with the argument it made from the HTTP request, and reads the activation's response, which
//! `domain::web::result` turns into the HTTP answer.
//!
//! The run is its own task holding the ticket (the owner's concurrency slot) and the container
//! slot until the activation ends, even when the caller stopped waiting after
//! [`WEB_WAIT`](crate::config::WEB_WAIT) and got OpenWhisk's 202 "Response not yet ready.".

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::time::Instant;
use whisk_vocab::{ActivationResponse, now_ms};

use super::KeptRequest;
use super::client::ProxyClient;
use super::invoke::{InvokeError, call_until_answered, run_limit};
use super::sequence;
use crate::config::RUN_GRACE;
use crate::domain::pipeline::Router;
use crate::domain::rejection::Rejection;
use crate::domain::web::admit::WebTicket;

/// How a web activation went.
#[derive(Debug)]
pub enum WebRun {
    /// It ran (or its code failed to initialise): the activation's response, and the proxy's
    /// `Cache-Control` (the action allowed its answer to be cached).
    Ended(ActivationResponse, Option<String>),
    /// The container refused the argument itself (e.g. it overrides `final` parameters):
    /// its status and OpenWhisk-shaped error body.
    Refused { status: u16, body: Bytes },
    /// No container could take it.
    NotRun(Rejection),
}

/// Runs `ticket` with `argument` to its end.
pub async fn run(
    router: Arc<Router>,
    client: ProxyClient,
    ticket: Box<WebTicket>,
    argument: Map<String, Value>,
    transaction_id: String,
) -> WebRun {
    let mut inv = ticket.invocation.clone();
    let request = KeptRequest {
        authorization: None,
        transaction_id,
        body: Vec::new(),
        web: true,
    };
    let body = Bytes::from(Value::Object(argument).to_string());
    if inv.action.is_sequence() {
        let record = sequence::run(&router, &client, &inv, body, &request).await;
        return WebRun::Ended(record.response, None);
    }
    // The proxy runs it to the end; the caller's wait is the adapter's.
    let limit = run_limit(&inv) + RUN_GRACE;
    inv.deadline_ms = now_ms() + limit.as_millis() as u64;
    let deadline = Instant::now() + limit;
    let not_run = |r: Rejection| match r {
        Rejection::InitFailed(f) => {
            WebRun::Ended(router.record_init_failure(&inv, &f).response, None)
        }
        other => WebRun::NotRun(other),
    };
    let mut slot = match router.reacquire(&inv, deadline).await {
        Ok(slot) => slot,
        Err(r) => return not_run(r),
    };
    match call_until_answered(&router, &client, &mut slot, &inv, &request, &body, deadline).await {
        Ok(answer) => read_answer(answer.status, answer.body, answer.cache_control),
        Err(InvokeError::NoCapacity(r)) => not_run(r),
        Err(e) => WebRun::Ended(router.record_failure(&inv, &e.to_string()).response, None),
    }
}

/// What the proxy's answer to a blocking call (`result=false`) says.
fn read_answer(status: u16, body: Bytes, cache_control: Option<String>) -> WebRun {
    #[derive(serde::Deserialize)]
    struct Record {
        response: ActivationResponse,
    }
    match serde_json::from_slice::<Record>(&body) {
        Ok(r) => WebRun::Ended(r.response, cache_control),
        Err(_) => WebRun::Refused { status, body },
    }
}
