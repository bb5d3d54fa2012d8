//! Images with the action baked in: init from `__OW_ACTION_*` at start-up.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn init_from_environment() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"function greet(p) { return { hi: p.who, v: process.env.__OW_ACTION_VERSION }; }"#;
    let action_json = json!({
        "parameters": [{"key": "who", "value": "env"}],
        "limits": {"timeout": 5000, "memory": 128, "logs": 1, "concurrency": 1},
    })
    .to_string();
    let proxy = ProxyProcess::spawn(
        &["--container-id", "baked", "--controlplane", &cp.url()],
        &[
            ("__OW_ACTION_CODE", code),
            ("__OW_ACTION_MAIN", "greet"),
            ("__OW_ACTION_BINARY", "false"),
            ("__OW_ACTION_NAME", "/guest/pkg/baked"),
            ("__OW_ACTION_VERSION", "0.0.7"),
            ("__OW_ACTION_KIND", "nodejs:20"),
            ("__OW_ACTION_JSON", &action_json),
        ],
    );
    let h = proxy.health().await;
    assert_eq!(h["initialized"], true, "{h}");
    assert_eq!(h["action"], "guest/pkg/baked");
    let inv = Invoke::blocking("guest/pkg/baked");
    let reply = proxy.invoke(&inv, json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["response"]["result"],
        json!({"hi": "env", "v": "0.0.7"})
    );
    assert_eq!(reply.body["name"], "baked");
    assert_eq!(reply.body["version"], "0.0.7");
    assert_eq!(
        annotation(&reply.body, "path"),
        Some(json!("guest/pkg/baked"))
    );
    assert_eq!(
        annotation(&reply.body, "limits"),
        Some(json!({"timeout": 5000, "memory": 128, "logs": 1, "concurrency": 1}))
    );
    let (container, _) = cp.record(&inv.activation_id).await;
    assert_eq!(container, "baked");
    // Already initialised.
    let (status, _) = proxy
        .init(action("baked", "nodejs:20", "function main(){return {}}"))
        .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_env_init_makes_every_invoke_a_developer_error() {
    let cp = ControlPlaneStub::start().await;
    let proxy = ProxyProcess::spawn(
        &["--controlplane", &cp.url()],
        &[
            ("__OW_ACTION_CODE", "this is not javascript {"),
            ("__OW_ACTION_NAME", "/guest/broken"),
            ("__OW_ACTION_KIND", "nodejs:20"),
        ],
    );
    let h = proxy.health().await;
    assert_eq!(h["initialized"], false);
    let reply = proxy
        .invoke(&Invoke::blocking("guest/broken"), json!({}))
        .await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.body["response"]["status"], "action developer error");
    assert!(
        reply.body["response"]["result"]["error"]
            .as_str()
            .unwrap()
            .starts_with("Initialization has failed due to: SyntaxError")
    );
}
