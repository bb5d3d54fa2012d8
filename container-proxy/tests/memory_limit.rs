//! The local executor enforces each action's memory limit (`limits.memory`): real node and python
//! actions that allocate far more than their limit are aborted with OpenWhisk's developer error,
//! their container is replaced as after a crash, an action under its limit succeeds, and one that
//! exhausts its memory while it initialises fails its init with the same text.

mod common;

use common::*;
use serde_json::{Value, json};

const EXHAUSTED: &str = "The action exhausted its memory and was aborted.";

fn limited(name: &str, kind: &str, code: &str, memory_mb: u64) -> Value {
    let mut a = action(name, kind, code);
    a["limits"]["memory"] = json!(memory_mb);
    a
}

/// Invokes with `{"mb": mb}` (the action touches that many MiB) and returns the reply.
async fn allocate(proxy: &ProxyProcess, fqn: &str, mb: u64) -> Reply {
    proxy
        .invoke(&Invoke::blocking(fqn), json!({ "mb": mb }))
        .await
}

fn assert_exhausted(reply: &Reply) {
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(reply.body["response"]["status"], "action developer error");
    assert_eq!(reply.body["response"]["result"]["error"], EXHAUSTED);
}

fn assert_allocated(reply: &Reply, mb: u64) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["response"]["result"]["mb"], mb);
}

// Touches every page (filled buffers), 16 MiB at a time, so resident memory grows as it goes.
const NODE: &str = r#"
function main(p) {
  const held = [];
  for (let i = 0; i < p.mb / 16; i++) held.push(Buffer.alloc(16 * 1024 * 1024, 1));
  return { mb: held.length * 16 };
}"#;

const PYTHON: &str = r#"
def main(p):
    held = []
    for _ in range(p["mb"] // 16):
        held.append(b"x" * (16 * 1024 * 1024))
    return {"mb": len(held) * 16}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_node_action_over_its_memory_limit_is_aborted_and_replaced() {
    let cp = ControlPlaneStub::start().await;
    let proxy = ready_proxy(&cp, "nodejs:20", limited("big", "nodejs:20", NODE, 128)).await;
    assert_exhausted(&allocate(&proxy, "guest/big", 1024).await);
    // The container was replaced: the next activation under the limit runs.
    assert_allocated(&allocate(&proxy, "guest/big", 32).await, 32);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_action_over_its_memory_limit_is_aborted_and_replaced() {
    let cp = ControlPlaneStub::start().await;
    let proxy = ready_proxy(&cp, "python:3", limited("big", "python:3", PYTHON, 128)).await;
    assert_exhausted(&allocate(&proxy, "guest/big", 1024).await);
    assert_allocated(&allocate(&proxy, "guest/big", 32).await, 32);
}

#[tokio::test(flavor = "multi_thread")]
async fn actions_under_their_memory_limit_succeed() {
    let cp = ControlPlaneStub::start().await;
    let node = ready_proxy(&cp, "nodejs:20", limited("n", "nodejs:20", NODE, 256)).await;
    let python = ready_proxy(&cp, "python:3", limited("p", "python:3", PYTHON, 256)).await;
    assert_allocated(&allocate(&node, "guest/n", 128).await, 128);
    assert_allocated(&allocate(&python, "guest/p", 128).await, 128);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_exhausting_its_memory_while_it_initialises_fails_init() {
    let cp = ControlPlaneStub::start().await;
    let proxy = ProxyProcess::stem("nodejs:20", &cp);
    let code = r#"
const held = [];
for (let i = 0; i < 64; i++) held.push(Buffer.alloc(16 * 1024 * 1024, 1));
function main() { return { held: held.length }; }"#;
    let (status, body) = proxy.init(limited("greedy", "nodejs:20", code, 128)).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], EXHAUSTED);
}
