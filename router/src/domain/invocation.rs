//! One admitted activation as the rest of the router carries it: who asked, for which action
//! revision, how they want the answer, and by when.

use std::sync::Arc;

use super::rejection::Rejection;
use super::tables::ActionMeta;

/// The context a container proxy needs about an admitted invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub activation_id: String,
    pub namespace: Arc<str>,
    pub subject: Box<str>,
    pub action: Arc<ActionMeta>,
    pub blocking: bool,
    pub result: bool,
    /// Epoch ms when a blocking caller stops waiting.
    pub deadline_ms: u64,
    pub received_ms: u64,
    /// For a sequence component: the sequence's activation id.
    pub cause: Option<String>,
    /// The caller's namespace's payload limit, for bodies whose size is known only as they come.
    pub max_payload_bytes: u64,
}

impl Invocation {
    /// Whether `received` bytes of body are still within the payload limit: a body without a
    /// `content-length` (chunked) is measured as it arrives, and refused with OpenWhisk's 413 as
    /// soon as it passes the limit, before the action runs.
    pub fn admits_body(&self, received: u64) -> Result<(), Rejection> {
        within_payload_limit(received, self.max_payload_bytes)
    }

    /// The action's name without namespace and package (the record's `name`).
    pub fn action_name(&self) -> &str {
        self.action.fqn.rsplit('/').next().unwrap_or_default()
    }
}

/// OpenWhisk's 413 once `received` bytes pass `limit`.
pub fn within_payload_limit(received: u64, limit: u64) -> Result<(), Rejection> {
    if received > limit {
        return Err(Rejection::EntityTooLarge {
            size: received,
            limit,
        });
    }
    Ok(())
}
