//! The router's decisions, free of Envoy and gRPC types.
//!
//! Read top to bottom, these modules answer the questions every invoke asks, in order:
//! who the caller is ([`authn`]), which action the request names ([`request`]), whether the
//! caller's namespace is over its limits ([`throttle`], per minute by [`minute_window`]), whether the caller may use the action
//! ([`authz`]), and which warm container gets it ([`endpoints`], [`coldstart`]).
//! [`pipeline`] strings them together; [`tables`] holds what the control plane pushed;
//! [`rejection`] carries OpenWhisk's status codes and texts for every "no".
//!
//! After the container answered, [`response`] decides what follows: what a 429 does
//! ([`refusal`], with the per-container [`breaker`]) and what is cached ([`cache`]; a hit is
//! answered by [`cache_hit`]).
//! [`records`] are the activation records the router makes itself (an action whose code fails
//! to initialise makes one too: [`init_failure`]); [`ports`] is what the domain needs from the
//! control plane.
//!
//! [`web`] serves web actions (`/api/v1/web/...`) with the same pieces.

pub mod authn;
pub mod authz;
pub mod breaker;
pub mod cache;
pub mod cache_hit;
pub mod coldstart;
pub mod endpoints;
#[cfg(test)]
mod fixtures;
pub mod init_failure;
pub mod invocation;
pub mod minute_window;
pub mod not_run;
pub mod pipeline;
pub mod ports;
pub mod records;
pub mod refusal;
pub mod rejection;
pub mod request;
pub mod response;
pub mod retry_after;
pub mod tables;
pub mod throttle;
pub mod web;
