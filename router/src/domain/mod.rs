//! The router's decisions, free of Envoy and gRPC types.
//!
//! Read top to bottom, these modules answer the questions every invoke asks, in order:
//! who the caller is ([`authn`]), which action the request names ([`request`]), whether the
//! caller's namespace is over its limits ([`throttle`]), whether the caller may use the action
//! ([`authz`]), and which warm container gets it ([`endpoints`], [`coldstart`]).
//! [`pipeline`] strings them together; [`tables`] holds what the control plane pushed;
//! [`rejection`] carries OpenWhisk's status codes and texts for every "no"; [`replay`] says when
//! a request refused by its container (429) can still be moved elsewhere.

pub mod authn;
pub mod authz;
pub mod cache;
pub mod clock;
pub mod coldstart;
pub mod endpoints;
pub mod pipeline;
pub mod rejection;
pub mod replay;
pub mod request;
pub mod tables;
pub mod throttle;
