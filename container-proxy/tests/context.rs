//! Requests the proxy must refuse with 400 before they reach the action.

mod common;

use common::*;
use serde_json::json;

/// (name, headers, body, expected error text or "" for the malformed-content prefix)
type Case = (
    &'static str,
    Vec<(String, String)>,
    &'static str,
    &'static str,
);

#[tokio::test(flavor = "multi_thread")]
async fn bad_context_headers_and_bodies_are_400() {
    let cp = ControlPlaneStub::start().await;
    let proxy = ready_proxy(
        &cp,
        "nodejs:20",
        action("hello", "nodejs:20", "function main() { return {}; }"),
    )
    .await;
    let good = Invoke::blocking("guest/hello");

    let cases: Vec<Case> = vec![
        (
            "missing namespace",
            good.headers()
                .into_iter()
                .filter(|(k, _)| k != "x-whisk-namespace")
                .collect(),
            "{}",
            "Missing header 'x-whisk-namespace'.",
        ),
        (
            "malformed blocking",
            with(&good, "x-whisk-blocking", "maybe"),
            "{}",
            "Malformed header 'x-whisk-blocking'.",
        ),
        (
            "bad activation id",
            with(&good, "x-whisk-activation-id", "not-an-id"),
            "{}",
            "Malformed header 'x-whisk-activation-id'.",
        ),
        (
            "bad deadline",
            with(&good, "x-whisk-deadline", "tomorrow"),
            "{}",
            "Malformed header 'x-whisk-deadline'.",
        ),
        ("not json", good.headers(), "{nope", ""),
        ("json scalar", good.headers(), "42", ""),
    ];
    for (name, headers, body, text) in cases {
        let reply = proxy.invoke_raw(&headers, body).await;
        assert_eq!(reply.status, 400, "{name}: {}", reply.body);
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/json")
        );
        let err = reply.body["error"].as_str().expect(name);
        if !text.is_empty() {
            assert_eq!(err, text, "{name}");
        } else {
            assert!(
                err.starts_with("The request content was malformed"),
                "{name}: {err}"
            );
        }
        assert!(
            reply.body["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{name}"
        );
    }
    // None of them ran: an accepted invoke afterwards is the only record.
    let reply = proxy.invoke(&good, json!({})).await;
    assert_eq!(reply.status, 200);
    cp.record(&good.activation_id).await;
    assert_eq!(cp.records().len(), 1);
}

fn with(inv: &Invoke, key: &str, value: &str) -> Vec<(String, String)> {
    inv.headers()
        .into_iter()
        .map(|(k, v)| {
            if k == key {
                (k, value.to_string())
            } else {
                (k, v)
            }
        })
        .collect()
}
