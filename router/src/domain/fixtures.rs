//! Test fixtures for the domain's unit tests: one action description to vary.

use super::tables::{ActionLimits, ActionMeta};

/// `fqn` at `revision`: a nodejs action with OpenWhisk's default limits.
pub fn action(fqn: &str, revision: u64) -> ActionMeta {
    ActionMeta {
        fqn: fqn.into(),
        revision,
        version: "0.0.1".into(),
        kind: "nodejs:20".into(),
        limits: ActionLimits {
            timeout_ms: 60_000,
            memory_mb: 256,
            logs_mb: 10,
            concurrency: 1,
        },
        components: Box::new([]),
        public: false,
        web: None,
    }
}
