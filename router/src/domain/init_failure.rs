//! An action whose code fails to initialise makes an activation, as in OpenWhisk.
//!
//! A cold start's init failure comes back from the control plane with OpenWhisk's text, the lines
//! the action printed while initialising and how long it took ([`InitFailure`]). Every invoke that
//! waited on that cold start is then the caller's own activation: its record (status `action
//! developer error`, result `{"error": <text>}`, the init's logs, `initTime`) is reported like any
//! record, so `activations get/list/logs` find it, and a blocking caller is answered 502 with the
//! record (or just the result with `result=true`) and its `x-openwhisk-activation-id`
//! (the `not_run` module records and answers it).

/// Why a cold start's init failed, as the record of each waiting activation tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitFailure {
    /// OpenWhisk's developer-error text (`Initialization has failed due to: …`).
    pub message: String,
    /// What the action printed while it initialised, in OpenWhisk's log format.
    pub logs: Vec<String>,
    /// How long the failed init took.
    pub duration_ms: u64,
}
