//! OpenWhisk's vocabulary, in one place for the router, the control plane and the container
//! proxy: what an activation record looks like ([`record`]), what its status codes mean and how
//! OpenWhisk words them ([`status`]), which names are legal ([`names`]), what an activation id is
//! ([`ids`]), what a credential looks like ([`credentials`]), the epoch-millisecond clock
//! OpenWhisk speaks everywhere ([`clock`]), and the per-container secret that ties routers,
//! proxies and the control plane together ([`token`]).
//!
//! Nothing here knows about HTTP, gRPC or storage: it is the shared language, not a component.

pub mod clock;
pub mod credentials;
pub mod ids;
pub mod names;
pub mod record;
pub mod status;
pub mod token;

pub use clock::now_ms;
pub use ids::{is_activation_id, new_activation_id};
pub use record::{ActivationRecord, ActivationResponse, KeyValue};
pub use status::ActivationStatus;
pub use token::ContainerToken;
