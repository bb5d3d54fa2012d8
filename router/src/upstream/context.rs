//! The context headers the router hands a container proxy with every invoke (contract 2 in
//! docs/architecture.md). One list, used both when Envoy forwards the request and when the
//! router calls a proxy itself.

use crate::domain::invocation::Invocation;

/// Every header the router sets on an upstream invoke, in a fixed order.
pub fn context_headers(inv: &Invocation, transaction_id: &str) -> [(&'static str, String); 10] {
    let b = |v: bool| if v { "true" } else { "false" }.to_owned();
    [
        ("x-whisk-activation-id", inv.activation_id.clone()),
        ("x-whisk-transaction-id", transaction_id.to_owned()),
        ("x-whisk-namespace", inv.namespace.to_string()),
        ("x-whisk-subject", inv.subject.to_string()),
        ("x-whisk-action", inv.action.fqn.to_string()),
        ("x-whisk-action-revision", inv.action.revision.to_string()),
        ("x-whisk-blocking", b(inv.blocking)),
        ("x-whisk-result", b(inv.result)),
        ("x-whisk-deadline", inv.deadline_ms.to_string()),
        ("x-whisk-received-at", inv.received_ms.to_string()),
    ]
}
