//! One trace from the edge into the action: `whisk up` with OTLP export on, an invoke through
//! Envoy carrying a client `traceparent`, and an in-test OTLP receiver that gets the router's and
//! the container proxy's spans in the client's trace — and the action sees the same trace id.

use std::time::Duration;

use whisk_stack::child::spawn_announcing;
use whisk_telemetry::testing::OtlpReceiver;

const GUEST: (&str, &str) = (
    whisk_controlplane::plane::GUEST_UUID,
    whisk_controlplane::plane::GUEST_KEY,
);
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_the_gateway_into_the_action() {
    let mut receiver = OtlpReceiver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_whisk"));
    cmd.arg("up")
        .args(["--port", "0", "--prewarm", "nodejs:20=1"])
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--otlp-endpoint",
            &receiver.endpoint(),
            "--trace-sample-ratio",
            "0",
        ])
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env("RUST_LOG", "debug");
    let up = spawn_announcing(
        cmd,
        "WHISK_UP_READY",
        &dir.path().join("up.log"),
        Duration::from_secs(120),
    )
    .await
    .expect("whisk up starts");
    let apihost = up
        .address
        .split_whitespace()
        .find_map(|w| w.strip_prefix("apihost="))
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let action = format!("{apihost}/api/v1/namespaces/_/actions/traced");
    let r = http
        .put(format!("{action}?overwrite=true"))
        .basic_auth(GUEST.0, Some(GUEST.1))
        .json(&serde_json::json!({
            "exec": { "kind": "nodejs:20", "code": "function main() { return { tp: process.env.TRACEPARENT }; }" }
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    // Sampled by the caller (flag 01), although the ratio for new traces is 0.
    let r = http
        .post(format!("{action}?blocking=true&result=true"))
        .basic_auth(GUEST.0, Some(GUEST.1))
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let result: serde_json::Value = r.json().await.unwrap();
    let tp = result["tp"].as_str().expect("the action saw a TRACEPARENT");
    assert_eq!(tp.split('-').nth(1), Some(TRACE_ID), "{tp}");

    let services = receiver
        .wait_for(Duration::from_secs(20), |spans| {
            let mine: Vec<_> = spans.iter().filter(|s| s.trace_id == TRACE_ID).collect();
            let router = mine.iter().find(|s| s.service == "whisk-router")?;
            let proxy = mine.iter().find(|s| {
                s.service == "whisk-container-proxy" && s.parent_span_id == router.span_id
            })?;
            Some((
                router.attr("faas.name").map(str::to_owned),
                proxy.name.clone(),
            ))
        })
        .await
        .expect("router and container-proxy spans in the client's trace, proxy under router");
    assert_eq!(services.0.as_deref(), Some("guest/traced"));
    up.stop(Duration::from_secs(10)).await;
    assert_no_key_in_logs(dir.path());
}

/// Every log the stack wrote (at debug level) is free of the key, in clear and in base64.
fn assert_no_key_in_logs(data: &std::path::Path) {
    use base64::Engine;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", GUEST.0, GUEST.1));
    let mut files = vec![data.join("up.log"), data.join("envoy/envoy.log")];
    let mut dirs = vec![data.join("logs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut read = 0;
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        read += text.len();
        // `whisk up` prints the well-known guest key in its banner on purpose (as OpenWhisk's
        // standalone mode does); that is output for the user, not a log line.
        let banner = |l: &&str| {
            l.starts_with("  guest key") || l.starts_with("  try:") || l.starts_with("  web:")
        };
        for line in text.lines().filter(|l| !banner(l)) {
            assert!(
                !line.contains(GUEST.1),
                "{} logs the key: {line}",
                file.display()
            );
            assert!(
                !line.contains(&basic),
                "{} logs the credentials: {line}",
                file.display()
            );
        }
    }
    assert!(read > 0, "no logs were written");
}
