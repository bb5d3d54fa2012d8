//! The response phase, decided: what the router does once the container (or Envoy on its behalf)
//! answered a forwarded invoke.
//!
//! [`Router::on_response`] takes the request's [`Admission`] and the answer's head and says what
//! follows, as an [`Outcome`] the adapter carries out:
//! - a 429 is the container refusing: [`super::refusal`] opens its breaker and says whether the
//!   request moves elsewhere ([`Outcome::Replay`]) or the 429 goes on ([`Outcome::Refused`]);
//! - a 502–504 that does not carry the container's activation id is Envoy's own: the container
//!   never answered, so it is taken out of rotation and reported ([`Outcome::Unreachable`]);
//! - a container's 202 to a blocking invoke means its wait expired while the activation runs on:
//!   the slots stay held until it ends ([`Outcome::StillRunning`]);
//! - a cacheable answer is stored ([`Outcome::Store`], [`super::cache`] decides);
//! - anything else just ends the request ([`Outcome::Done`]).
//!
//! Every outcome but `Replay` and `StillRunning` consumes the admission, so both the container slot and the
//! namespace's concurrency are released as soon as it is returned.

use std::time::Duration;

use super::pipeline::{Admission, Router};
use super::refusal::{Refusal, refused};

/// What the router needs from an answer's headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseHead<'a> {
    pub status: u16,
    /// `Retry-After`, parsed.
    pub retry_after: Option<Duration>,
    pub cache_control: Option<&'a str>,
    pub content_length: Option<u64>,
    /// Whether the answer names its activation (`x-openwhisk-activation-id`): container proxies
    /// always do, Envoy's own error answers never.
    pub from_container: bool,
}

/// What follows a forwarded invoke's answer.
pub enum Outcome {
    /// Nothing more: the slots are released.
    Done,
    /// The container never answered (Envoy's own 502–504): its breaker opened and the control
    /// plane was told.
    Unreachable,
    /// The container refused (429) and the 429 goes on to the client; its breaker opened.
    Refused,
    /// The container refused (429) and the router has the request: send it elsewhere.
    Replay(Admission),
    /// The caller stopped waiting but the activation still runs (a container's 202 to a blocking
    /// invoke: its wait expired): the slots stay held until it ends.
    StillRunning(Admission),
    /// Store the answer's result under `key` for `ttl` (`result_only`: the body is the result,
    /// not a record).
    Store {
        key: String,
        ttl: Duration,
        result_only: bool,
    },
}

impl Router {
    /// Decides what follows an answer to the forwarded invoke holding `admission`. `kept`: the
    /// router has what it takes to send the request again; `cache_key`: the request's key in the
    /// response cache, if it was looked up.
    pub fn on_response(
        &self,
        admission: Admission,
        head: &ResponseHead<'_>,
        kept: bool,
        cache_key: Option<String>,
    ) -> Outcome {
        if head.status == 429 {
            return match refused(&admission.slot, head.retry_after, kept) {
                Refusal::Replay => Outcome::Replay(admission),
                Refusal::PassOn => Outcome::Refused,
            };
        }
        if head.status == 202 && head.from_container && admission.invocation.blocking {
            return Outcome::StillRunning(admission);
        }
        if (502..=504).contains(&head.status) && !head.from_container {
            admission.slot.unreachable(
                self.control().as_ref(),
                format!("upstream unreachable (status {})", head.status),
            );
            return Outcome::Unreachable;
        }
        let inv = &admission.invocation;
        let ttl = self.cache.storable(
            &inv.action,
            inv.blocking,
            head.status,
            head.cache_control,
            head.content_length,
        );
        match (ttl, cache_key) {
            (Some(ttl), Some(key)) => Outcome::Store {
                key,
                ttl,
                result_only: inv.result,
            },
            _ => Outcome::Done,
        }
    }
}
