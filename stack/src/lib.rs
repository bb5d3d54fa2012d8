//! Running the stack's parts as supervised child processes.
//!
//! * [`child`] — start a program that prints one `<MARKER> <address>` line once it is listening,
//!   and own it: it dies with us (kill on drop, and the parent-death signal).
//! * [`leftovers`] — what a local container leaves behind (processes that left its tree, temporary
//!   directories of a killed proxy), found and removed.
//! * [`envoy`] — find Envoy, render the gateway or sidecar config from `envoy/*.yaml`, validate
//!   it, start it on free ports and learn the port it bound.

pub mod child;
pub mod envoy;
pub mod leftovers;
