//! One admitted activation as the rest of the router carries it: who asked, for which action
//! revision, how they want the answer, and by when.

use std::sync::Arc;

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
}

impl Invocation {
    /// The action's name without namespace and package (the record's `name`).
    pub fn action_name(&self) -> &str {
        self.action.fqn.rsplit('/').next().unwrap_or_default()
    }
}
