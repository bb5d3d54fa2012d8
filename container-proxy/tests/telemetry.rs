//! Observability of the real proxy binary: exact Prometheus counts after a scripted sequence,
//! the OTLP activation span (with `init` and `run` children) continuing the caller's
//! `traceparent` into the action's `TRACEPARENT`, JSON logs tagged with the activation, and no
//! secret in any log line.

mod common;

use std::sync::Arc;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use whisk_telemetry::testing::OtlpReceiver;

/// `name{labels} value` lines of the exposition, as a map.
fn samples(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

async fn get(proxy: &ProxyProcess, path: &str) -> (u16, String) {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(proxy.url(path))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_successes_errors_and_429s() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"function main(p) {
        if (p.fail) return { error: "boom" };
        if (p.sleep) return new Promise(r => setTimeout(() => r({ ok: true }), p.sleep));
        return { ok: true };
    }"#;
    let proxy = Arc::new(ready_proxy(&cp, "nodejs:20", action("m", "nodejs:20", code)).await);
    assert_eq!(get(&proxy, "/healthz").await.0, 200);
    assert_eq!(get(&proxy, "/readyz").await.0, 200);

    for _ in 0..3 {
        let r = proxy.invoke(&Invoke::blocking("guest/m"), json!({})).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for _ in 0..2 {
        let r = proxy
            .invoke(&Invoke::blocking("guest/m"), json!({"fail": true}))
            .await;
        assert_eq!(r.status, 502, "{}", r.body);
    }
    // Concurrency 1 + queue 2: of 5 concurrent slow invokes, 3 run and 2 are refused.
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let proxy = proxy.clone();
        tasks.push(tokio::spawn(async move {
            proxy
                .invoke(&Invoke::blocking("guest/m"), json!({"sleep": 1500}))
                .await
                .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);

    let (status, text) = get(&proxy, "/metrics").await;
    assert_eq!(status, 200);
    let m = samples(&text);
    let at = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("{k} missing in\n{text}"))
    };
    assert_eq!(at("whisk_proxy_activations_total{status=\"success\"}"), 6.0);
    assert_eq!(
        at("whisk_proxy_activations_total{status=\"application_error\"}"),
        2.0
    );
    assert_eq!(at("whisk_proxy_too_many_requests_total"), 2.0);
    assert_eq!(at("whisk_proxy_run_duration_seconds_count"), 8.0);
    assert_eq!(at("whisk_proxy_init_duration_seconds_count"), 1.0);
    assert_eq!(at("whisk_proxy_queue_wait_duration_seconds_count"), 8.0);
    assert_eq!(at("whisk_proxy_queue_length"), 0.0);
    assert_eq!(at("whisk_proxy_in_flight"), 0.0);
    assert_eq!(at("whisk_proxy_capacity"), 1.0);
    assert!(!text.contains("activation_id") && !text.contains("invocation_id"));
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_fails_when_the_baked_action_cannot_initialise() {
    let cp = ControlPlaneStub::start().await;
    let proxy = ProxyProcess::spawn(
        &["--kind", "nodejs:20", "--controlplane", &cp.url()],
        &[
            ("__OW_ACTION_CODE", "this is not javascript ("),
            ("__OW_ACTION_NAME", "/guest/broken"),
            ("__OW_ACTION_KIND", "nodejs:20"),
        ],
    );
    assert_eq!(get(&proxy, "/healthz").await.0, 200);
    let (status, body) = get(&proxy, "/readyz").await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn activation_span_continues_the_callers_trace_into_the_action() {
    let cp = ControlPlaneStub::start().await;
    let mut otlp = OtlpReceiver::start().await.unwrap();
    let endpoint = otlp.endpoint();
    // Ratio 0: only the caller's sampled flag makes this trace exported (parent-based sampler).
    let proxy = ProxyProcess::spawn(
        &[
            "--kind",
            "nodejs:20",
            "--container-id",
            "c-trace",
            "--controlplane",
            &cp.url(),
            "--otlp-endpoint",
            &endpoint,
            "--trace-sample-ratio",
            "0",
        ],
        &[("OTEL_BSP_SCHEDULE_DELAY", "50")],
    );
    let code = r#"function main() { return { tp: process.env.TRACEPARENT || null }; }"#;
    let (status, body) = proxy.init(action("tp", "nodejs:20", code)).await;
    assert_eq!(status, 200, "{body}");

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let mut inv = Invoke::blocking("guest/tp");
    inv.extra.push((
        "traceparent".into(),
        format!("00-{trace_id}-{caller_span}-01"),
    ));
    let reply = proxy.invoke(&inv, json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let seen = reply.body["response"]["result"]["tp"]
        .as_str()
        .expect("the action saw TRACEPARENT")
        .to_string();
    let parts: Vec<&str> = seen.split('-').collect();
    assert_eq!(parts.len(), 4, "{seen}");
    assert_eq!(
        parts[1], trace_id,
        "the action continues the caller's trace"
    );
    assert_ne!(
        parts[2], caller_span,
        "the action's parent is the proxy's span"
    );

    let found = otlp
        .wait_for(WAIT, |spans| {
            let in_trace: Vec<_> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
            let act = in_trace.iter().find(|s| s.name == "guest/tp")?;
            let init = in_trace.iter().find(|s| s.name == "init")?;
            let run = in_trace.iter().find(|s| s.name == "run")?;
            Some(((*act).clone(), (*init).clone(), (*run).clone()))
        })
        .await;
    let (act, init, run) =
        found.unwrap_or_else(|| panic!("spans not received: {:?}", otlp.spans()));
    assert_eq!(act.service, "whisk-container-proxy");
    assert_eq!(act.parent_span_id, caller_span);
    assert_eq!(
        act.attr("faas.invocation_id"),
        Some(inv.activation_id.as_str())
    );
    assert_eq!(act.attr("whisk.namespace"), Some("caller"));
    assert_eq!(act.attr("faas.name"), Some("guest/tp"));
    assert_eq!(act.attr("faas.trigger"), Some("http"));
    assert_eq!(act.attr("faas.coldstart"), Some("true"));
    assert_eq!(init.parent_span_id, act.span_id);
    assert_eq!(run.parent_span_id, act.span_id);
    assert_eq!(parts[2], run.span_id, "TRACEPARENT names the run span");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_the_activation_and_never_the_key() {
    let cp = ControlPlaneStub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("proxy.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut proxy = ProxyProcess::spawn_with_stderr(
        &[
            "--kind",
            "nodejs:20",
            "--controlplane",
            &cp.url(),
            "--log-json",
        ],
        &[("RUST_LOG", "debug")],
        log.into(),
    );
    let mut act = action(
        "k",
        "nodejs:20",
        r#"function main() { console.log("hello"); return { has_key: process.env.__OW_API_KEY === "uuid-1:s3cr3t-k3y" }; }"#,
    );
    act["annotations"] = json!([{"key": "provide-api-key", "value": true}]);
    let (status, body) = proxy.init(act).await;
    assert_eq!(status, 200, "{body}");
    let basic = base64::engine::general_purpose::STANDARD.encode("uuid-1:s3cr3t-k3y");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut inv = Invoke::blocking("guest/k");
        inv.extra
            .push(("authorization".into(), format!("Basic {basic}")));
        let reply = proxy.invoke(&inv, json!({"password": "not-logged"})).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["response"]["result"]["has_key"], true);
        ids.push(inv.activation_id);
    }
    // Stop the proxy so every line is written.
    proxy.signal_and_wait(libc::SIGTERM);
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(!text.contains("s3cr3t-k3y"), "the key leaked:\n{text}");
    assert!(
        !text.contains(&basic),
        "the authorization header leaked:\n{text}"
    );
    for id in &ids {
        let line: Value = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| {
                l["message"] == "activation finished" && l["span"]["faas.invocation_id"] == *id
            })
            .unwrap_or_else(|| panic!("no JSON line for {id} in\n{text}"));
        assert_eq!(line["span"]["whisk.namespace"], "caller");
        assert_eq!(line["span"]["faas.name"], "guest/k");
        assert_eq!(line["status"], "success");
    }
}
