//! `whisk-container-proxy`: the sidecar beside every action runtime.
//!
//! Envoy forwards an invoke here once the router has chosen this container (Contract 2 of
//! `docs/architecture.md`); the control plane initialises it and receives its activation records
//! (Contract 3). The crate is split so that the OpenWhisk semantics (context headers, parameter
//! merge, admission, classification, logs) are plain functions and types, independent of the HTTP
//! framework in [`server`] and of the runtime behind the [`executor::Executor`] trait.

pub mod action;
pub mod activation;
pub mod admission;
pub mod answer;
pub mod code;
pub mod config;
pub mod context;
pub mod executor;
pub mod gate;
pub mod launchers;
pub mod logs;
pub mod metrics;
pub mod params;
pub mod proxy;
pub mod record;
pub mod report;
pub mod running;
pub mod server;
pub mod spool;
pub mod truthy;
