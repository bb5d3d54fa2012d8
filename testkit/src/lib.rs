//! The test kit: what the router's tests, the control plane's tests and the bench share, written
//! once.
//!
//! * [`creds`] — OpenWhisk's guest credentials (and a second tenant), as Basic headers.
//! * [`tables`] — builders for the pushed table entries, and [`tables::TableModel`], the tables as
//!   a control plane holds them (apply a delta, take a snapshot).
//! * [`control_plane`] — [`control_plane::FakeControlPlane`], the `ControlPlane` gRPC service in
//!   the test's process: it pushes what the test says, plans cold starts and records reports.
//! * [`wait`] — [`wait::eventually`]: wait on a condition with a deadline, never a bare sleep.

pub mod control_plane;
pub mod creds;
pub mod tables;
pub mod wait;

pub use control_plane::{ColdPlan, FakeControlPlane};
pub use creds::{GUEST_KEY, GUEST_UUID, OTHER_KEY, OTHER_UUID, basic, guest_auth};
pub use tables::{TableModel, action, endpoint, identity, namespace, namespace_with_payload};
pub use wait::eventually;
