//! Activations the router could not run are still the caller's own: each gets a record, reported
//! like any other, so `activations get/list/logs` find it. An init failure is the action's
//! developer error (with the init's logs, see [`super::init_failure`]); anything else is a whisk
//! internal error. A blocking caller whose cold start's init failed is answered as OpenWhisk does.

use whisk_vocab::ActivationRecord;

use super::init_failure::InitFailure;
use super::invocation::Invocation;
use super::pipeline::Router;
use super::records;
use super::rejection::Rejection;

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
