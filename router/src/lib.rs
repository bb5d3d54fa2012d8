//! The router: Envoy's `ext_proc` (invokes) and `ext_authz` (management calls) in one tonic
//! service, deciding every request from tables the control plane pushes.
//!
//! * [`domain`] — the decisions (who, may they, over the limit, where), free of Envoy and gRPC.
//! * [`envoy`] — thin adapters from Envoy's filter protocols to the domain.
//! * [`control`] — the subscription that fills the tables, and the cold-start client.
//! * [`server`] — wiring: one gRPC server on TCP and/or a Unix domain socket.
//! * [`upstream`] — the router calling container proxies itself (non-blocking invokes,
//!   sequences, replays after a 429) and the context headers every invoke carries.
//! * [`config`] — the command line, the pipeline's policy and the fixed limits.
//! * [`admin`] — metrics, liveness and readiness on an HTTP port; [`metrics`] defines them.

pub mod admin;
pub mod config;
pub mod control;
pub mod domain;
pub mod envoy;
pub mod metrics;
pub mod server;
pub mod upstream;
