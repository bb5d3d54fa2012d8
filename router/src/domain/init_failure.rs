//! An action whose code fails to initialise makes an activation, as in OpenWhisk.
//!
//! A cold start's init failure comes back from the control plane with OpenWhisk's text, the lines
//! the action printed while initialising and how long it took ([`InitFailure`]). Every invoke that
//! waited on that cold start is then the caller's own activation: its record (status `action
//! developer error`, result `{"error": <text>}`, the init's logs, `initTime`) is reported like any
//! record, so `activations get/list/logs` find it, and a blocking caller is answered 502 with the
//! record (or just the result with `result=true`) and its `x-openwhisk-activation-id`.

use whisk_vocab::ActivationRecord;

use super::invocation::Invocation;
use super::pipeline::Router;
use super::records;
use super::rejection::Rejection;

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

impl Router {
    /// Records `inv` as the developer error of an init failure and returns the record.
    pub fn record_init_failure(&self, inv: &Invocation, failure: &InitFailure) -> ActivationRecord {
        tracing::info!(activation_id = %inv.activation_id, action = %inv.action.fqn, message = %failure.message, "the action failed to initialise");
        let record = records::init_failed(inv, failure);
        self.control().report_activation(record.clone());
        record
    }

    /// Records an activation the router could not run because of `why`: an init failure is the
    /// action's developer error (with the init's logs), anything else a whisk internal error.
    pub fn record_not_run(&self, inv: &Invocation, why: &Rejection) -> ActivationRecord {
        match why {
            Rejection::InitFailed(failure) => self.record_init_failure(inv, failure),
            other => self.record_failure(inv, &other.to_string()),
        }
    }

    /// A blocking caller's answer when its cold start's init failed: the activation is recorded
    /// and answered as OpenWhisk does (502 with the record, or the bare result with `result=true`).
    pub fn answer_init_failure(&self, inv: &Invocation, failure: &InitFailure) -> (u16, Vec<u8>) {
        let record = self.record_init_failure(inv, failure);
        let (status, body) = record.blocking_answer(inv.result);
        (status, body.to_string().into_bytes())
    }
}
