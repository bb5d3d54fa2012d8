//! Calling a container proxy directly, as anyone on the network could: only requests carrying
//! this container's token (which only routers and the control plane hold) for the action it
//! holds run anything; the token never reaches the action.

mod common;

use common::*;
use serde_json::{Value, json};

/// Writes a marker file (so a test can tell whether it ran) and returns what the action sees.
const SEES: &str = r#"
function main(params) {
  require('fs').writeFileSync(params.marker, 'ran');
  return { env: process.env, params };
}"#;

/// An invoke of `action` presenting `token` (none when `None`), with a fresh client.
async fn call(
    proxy: &ProxyProcess,
    token: Option<&str>,
    action: &str,
    marker: &std::path::Path,
) -> (u16, Value) {
    let mut req = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(proxy.url("/api/v1/namespaces/guest/actions/sees?blocking=true"))
        .body(json!({ "marker": marker }).to_string());
    for (k, v) in Invoke::blocking(action).headers() {
        req = req.header(k, v);
    }
    if let Some(t) = token {
        req = req.header("x-whisk-container-token", t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn stem_with_token(kind: &str, cp: &ControlPlaneStub, token: &str) -> ProxyProcess {
    ProxyProcess::spawn(
        &[
            "--kind",
            kind,
            "--container-id",
            "c-other",
            "--controlplane",
            &cp.url(),
        ],
        &[("WHISK_CONTAINER_TOKEN", token)],
    )
}

#[tokio::test]
async fn only_invokes_vouched_for_with_this_containers_token_run() {
    let cp = ControlPlaneStub::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The action may run as a user of its own (a root proxy isolates it): let it write here.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let marker = dir.path().join("ran");
    let a = ready_proxy(&cp, "nodejs:20", action("sees", "nodejs:20", SEES)).await;
    let other_token = "b".repeat(64);
    let b = stem_with_token("nodejs:20", &cp, &other_token);
    let (status, body) = b
        .init_with_token(&other_token, action("sees", "nodejs:20", SEES))
        .await;
    assert_eq!(status, 200, "{body}");

    // No token, a wrong one, container B's token on container A: 403, and nothing ran.
    for token in [None, Some("not-the-token"), Some(other_token.as_str())] {
        let (status, body) = call(&a, token, "guest/sees", &marker).await;
        assert_eq!(status, 403, "token {token:?}: {body}");
        assert!(body["error"].is_string());
        assert!(!marker.exists(), "the action ran for token {token:?}");
    }
    // The right token for another action than the one this container holds: 403.
    let (status, body) = call(&a, Some(TOKEN), "guest/other", &marker).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        !marker.exists(),
        "the action ran for another action's invoke"
    );

    // The right token: it runs, and neither its environment nor its parameters hold the token.
    let (status, body) = call(&a, Some(TOKEN), "guest/sees", &marker).await;
    assert_eq!(status, 200, "{body}");
    assert!(marker.exists());
    let seen = body["response"]["result"].to_string();
    assert!(seen.contains("__OW_ACTION_NAME"), "{seen}");
    assert!(!seen.contains(TOKEN), "the action saw the token: {seen}");
    assert!(!seen.contains("WHISK_CONTAINER_TOKEN"), "{seen}");
    // B's own token works on B.
    // (Its own marker: A's file belongs to A's action user when the proxies run as root.)
    let marker_b = dir.path().join("ran-b");
    let (status, body_b) = call(&b, Some(&other_token), "guest/sees", &marker_b).await;
    assert_eq!(status, 200, "{body_b}");
    // The proxy removed the token from its own environment at start-up.
    let environ = std::fs::read(format!("/proc/{}/environ", a.pid())).unwrap();
    assert!(!String::from_utf8_lossy(&environ).contains(TOKEN));
    // Nor is it in what the proxy reported.
    let (_, record) = cp.record(body["activationId"].as_str().unwrap()).await;
    assert!(!record.to_string().contains(TOKEN));
}

#[tokio::test]
async fn init_needs_the_token_and_health_does_not() {
    let cp = ControlPlaneStub::start().await;
    let proxy = ProxyProcess::stem("nodejs:20", &cp);
    let anonymous = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = anonymous
        .post(proxy.url("/_whisk/init"))
        .json(&json!({"action": action("hijack", "nodejs:20", "function main() {}"), "env": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let health = anonymous
        .get(proxy.url("/_whisk/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let health: Value = health.json().await.unwrap();
    assert_eq!(
        health["initialized"], false,
        "the anonymous init did nothing"
    );
    let (status, body) = proxy.init(action("sees", "nodejs:20", SEES)).await;
    assert_eq!(status, 200, "{body}");
}
