//! Admission under concurrent load: the concurrency limit, the overflow queue, and 429 with a
//! Retry-After derived from observed run times.

mod common;

use std::collections::HashSet;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn limit_plus_queue_then_429_with_retry_after() {
    let cp = ControlPlaneStub::start().await;
    // Each activation takes ~2 s.
    let code =
        r#"function main() { return new Promise(r => setTimeout(() => r({ok: true}), 2000)); }"#;
    let proxy = ready_proxy(&cp, "nodejs:20", action("slow", "nodejs:20", code)).await;
    let proxy = std::sync::Arc::new(proxy);
    // Concurrency 1 + queue 2 = 3 admitted; 3 more are refused.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let proxy = proxy.clone();
        tasks.push(tokio::spawn(async move {
            let inv = Invoke::blocking("guest/slow");
            let reply = proxy.invoke(&inv, json!({})).await;
            (inv, reply)
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        let (inv, reply) = t.await.unwrap();
        reply.assert_invoke_headers(&inv.activation_id);
        match reply.status {
            200 => ok += 1,
            429 => {
                refused += 1;
                let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
                assert!(retry >= 1);
                assert!(
                    reply.body["error"]
                        .as_str()
                        .unwrap()
                        .starts_with("Too many concurrent requests in flight")
                );
                assert_eq!(reply.body["code"], format!("tid-{}", inv.activation_id));
            }
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert_eq!((ok, refused), (3, 3));

    // Retry-After follows observed durations (~2 s each): with 1 running + 2 queued, at least
    // 2 s × 3 / 1 = 6 s.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let proxy = proxy.clone();
        tasks.push(tokio::spawn(async move {
            proxy
                .invoke(&Invoke::blocking("guest/slow"), json!({}))
                .await
        }));
    }
    let mut retry_after = None;
    for t in tasks {
        let reply = t.await.unwrap();
        if reply.status == 429 {
            retry_after = reply.header("retry-after");
        }
    }
    let retry: u64 = retry_after.expect("one refused").parse().unwrap();
    assert!(retry >= 6, "retry-after {retry}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_two_runs_in_two_processes() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"function main() { return new Promise(r => setTimeout(() => r({pid: process.pid}), 1000)); }"#;
    let mut act = action("par", "nodejs:20", code);
    act["limits"]["concurrency"] = json!(2);
    let proxy = std::sync::Arc::new(ready_proxy(&cp, "nodejs:20", act).await);
    let h = proxy.health().await;
    assert_eq!(h["capacity"], 2);
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let proxy = proxy.clone();
        tasks.push(tokio::spawn(async move {
            proxy
                .invoke(&Invoke::blocking("guest/par"), json!({}))
                .await
        }));
    }
    let mut pids = HashSet::new();
    for t in tasks {
        let reply = t.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        pids.insert(reply.body["response"]["result"]["pid"].as_u64().unwrap());
    }
    assert_eq!(pids.len(), 2, "two launcher processes");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1900),
        "ran in parallel"
    );
}

/// The router waits on `GET /_whisk/activations/{id}/end` for an activation it stopped waiting
/// for: it answers 202 while the activation runs, and 204 as soon as it ends.
#[tokio::test(flavor = "multi_thread")]
async fn the_end_of_an_activation_can_be_awaited() {
    let cp = ControlPlaneStub::start().await;
    let code =
        r#"function main() { return new Promise(r => setTimeout(() => r({ok: true}), 1500)); }"#;
    let proxy = ready_proxy(&cp, "nodejs:20", action("slow", "nodejs:20", code)).await;
    let http = reqwest::Client::new();
    let end = |id: &str, wait_ms: u64| {
        http.get(proxy.url(&format!("/_whisk/activations/{id}/end?wait_ms={wait_ms}")))
            .header("x-whisk-container-token", TOKEN)
            .send()
    };
    // Only a router (which holds the container's token) may wait here.
    let anonymous = http
        .get(proxy.url("/_whisk/activations/0123456789abcdef0123456789abcdef/end"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);
    // Never ran here: ended.
    assert_eq!(
        end("0123456789abcdef0123456789abcdef", 0)
            .await
            .unwrap()
            .status(),
        204
    );
    let inv = Invoke::non_blocking("guest/slow");
    let reply = proxy.invoke(&inv, json!({})).await;
    assert_eq!(reply.status, 202);
    assert_eq!(
        end(&inv.activation_id, 0).await.unwrap().status(),
        202,
        "still running"
    );
    assert_eq!(
        end(&inv.activation_id, 100).await.unwrap().status(),
        202,
        "still running"
    );
    let r = end(&inv.activation_id, 10_000).await.unwrap();
    assert_eq!(r.status(), 204, "ended");
    // It ended because it finished: its record is there.
    let (_, record) = cp.record(&inv.activation_id).await;
    assert_eq!(record["response"]["result"], json!({ "ok": true }));
}
