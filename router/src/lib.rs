//! The router: Envoy's `ext_proc` (invokes) and `ext_authz` (management calls) in one tonic
//! service, deciding every request from tables the control plane pushes.
//!
//! * [`domain`] — the decisions (who, may they, over the limit, where), free of Envoy and gRPC.
//! * [`envoy`] — thin adapters from Envoy's filter protocols to the domain.
//! * [`control`] — the subscription that fills the tables, and the cold-start client.
//! * [`server`] — wiring: one gRPC server on TCP and/or a Unix domain socket.
//! * [`invoker`] — the router calling a container proxy itself (non-blocking invokes).
//! * [`sequence`] — sequences run in the data plane, component by component.
//! * [`context`] — the context headers every invoke carries to its container.
//! * [`admin`] — metrics, liveness and readiness on an HTTP port; [`metrics`] defines them.

pub mod admin;
pub mod context;
pub mod control;
pub mod domain;
pub mod envoy;
pub mod invoker;
pub mod metrics;
pub mod sequence;
pub mod server;
