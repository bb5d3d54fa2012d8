//! Non-blocking invokes: 202 at once, the activation run to completion by the router holding
//! its slots, and moved to another container when one answers 429.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use whisk_proto::controlplane::v1 as pb;

async fn fire(b: &Bench, name: &str, delay_ms: u64) -> reqwest::Response {
    b.http
        .post(b.url(&format!("/api/v1/namespaces/_/actions/{name}")))
        .header("authorization", guest_auth())
        .json(&serde_json::json!({ "delay_ms": delay_ms }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn answers_202_at_once_and_holds_concurrency_until_completion() {
    let b = Bench::start().await;
    let u = b.one_at_a_time("a").await;
    let started = Instant::now();
    let r = fire(&b, "a", 2000).await;
    assert_eq!(r.status(), 202);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "answered before the activation ended"
    );
    let id = r.headers()["x-openwhisk-activation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["activationId"], id.as_str());
    // The activation still holds the namespace's only concurrency slot.
    eventually("the container runs it", Duration::from_secs(5), || async {
        u.active.load(Ordering::SeqCst) == 1
    })
    .await;
    let r = b.invoke("a").await;
    assert_eq!(r.status(), 429);
    // Once it completes, the slot is free again.
    eventually(
        "slot released after completion",
        Duration::from_secs(10),
        || async { b.invoke("a").await.status() == 200 },
    )
    .await;
    assert_eq!(u.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_router_runs_it_as_a_blocking_call_with_the_body() {
    let b = Bench::start().await;
    let u = Upstream::start("a").await;
    b.one_action("a", &u, 1).await;
    let r = fire(&b, "a", 0).await;
    assert_eq!(r.status(), 202);
    let id = r.headers()["x-openwhisk-activation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    eventually("the container got it", Duration::from_secs(5), || async {
        u.requests.load(Ordering::SeqCst) == 1
    })
    .await;
    let last = u.last.lock().unwrap().clone();
    assert_eq!(last["body"], serde_json::json!({ "delay_ms": 0 }));
    assert_eq!(last["headers"]["x-whisk-blocking"], "true");
    assert_eq!(last["headers"]["x-whisk-activation-id"], id.as_str());
    assert_eq!(last["headers"]["x-whisk-action"], "guest/a");
    assert_eq!(last["headers"]["authorization"], guest_auth().as_str());
    // The router's own upstream call vouches for itself with the container's token.
    assert_eq!(
        last["headers"]["x-whisk-container-token"],
        whisk_testkit::tables::token_of("ca")
    );
}

#[tokio::test]
async fn a_container_answering_429_does_not_fail_the_activation() {
    let b = Bench::start().await;
    let busy = Upstream::always("busy", 429, "30").await;
    let free = Upstream::start("free").await;
    b.apply(pb::TableUpdate {
        actions_upsert: vec![action("guest/a", 1)],
        endpoints_upsert: vec![
            endpoint("c-busy", "guest/a", busy.addr, 1),
            endpoint("c-free", "guest/a", free.addr, 1),
        ],
        ..Default::default()
    })
    .await;
    // Fire until the router has tried the busy container (least-loaded picking may start with
    // either), then a few more.
    let fired = std::sync::atomic::AtomicU64::new(0);
    eventually(
        "the busy container was tried",
        Duration::from_secs(10),
        || async {
            assert_eq!(fire(&b, "a", 0).await.status(), 202);
            fired.fetch_add(1, Ordering::SeqCst);
            busy.requests.load(Ordering::SeqCst) >= 1
        },
    )
    .await;
    for _ in 0..3 {
        assert_eq!(fire(&b, "a", 0).await.status(), 202);
        fired.fetch_add(1, Ordering::SeqCst);
    }
    let fired = fired.load(Ordering::SeqCst);
    eventually(
        "every activation ran on the free container",
        Duration::from_secs(10),
        || async { free.requests.load(Ordering::SeqCst) == fired },
    )
    .await;
    // The busy one refused exactly once: its breaker stays open for its Retry-After, and the
    // activation it refused ran on the free one.
    assert_eq!(busy.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn when_every_container_refuses_a_cold_start_serves_it() {
    let b = Bench::start().await;
    let busy = Upstream::always("busy", 429, "30").await;
    let fresh = Upstream::start("fresh").await;
    b.apply(pb::TableUpdate {
        actions_upsert: vec![action("guest/a", 1)],
        endpoints_upsert: vec![endpoint("c-busy", "guest/a", busy.addr, 1)],
        ..Default::default()
    })
    .await;
    b.cp.plan_cold_start(
        "guest/a",
        ColdPlan {
            delay: Duration::from_millis(100),
            endpoint: endpoint("c-fresh", "guest/a", fresh.addr, 1),
        },
    );
    assert_eq!(fire(&b, "a", 0).await.status(), 202);
    eventually(
        "the cold-started container ran it",
        Duration::from_secs(10),
        || async { fresh.requests.load(Ordering::SeqCst) == 1 },
    )
    .await;
    assert_eq!(b.cp.cold_starts.load(Ordering::SeqCst), 1);
}

/// Envoy's count of ext_proc streams started (from its admin interface).
async fn ext_proc_streams(b: &Bench) -> u64 {
    let (_, stats) = b
        .envoy
        .admin_get("/stats?filter=ext_proc.streams_started")
        .await
        .unwrap();
    stats
        .lines()
        .filter_map(|l| l.rsplit_once(": ").and_then(|(_, v)| v.parse::<u64>().ok()))
        .sum()
}

#[tokio::test]
async fn a_slow_upload_holds_no_concurrency_while_its_body_arrives() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = Bench::start().await;
    let u = b.one_at_a_time("a").await;
    let before = ext_proc_streams(&b).await;
    // A non-blocking invoke whose body comes slowly: headers and half of it now.
    let body = br#"{"slow":"upload"}"#;
    let mut sock = tokio::net::TcpStream::connect(b.envoy.listen)
        .await
        .unwrap();
    let head = format!(
        "POST /api/v1/namespaces/_/actions/a HTTP/1.1\r\nhost: localhost\r\nauthorization: {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        guest_auth(),
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&body[..5]).await.unwrap();
    eventually(
        "the router has the upload's headers",
        Duration::from_secs(5),
        || async { ext_proc_streams(&b).await > before },
    )
    .await;
    // The namespace allows one invocation at a time, and the upload holds none of it.
    let r = b.invoke("a").await;
    assert_eq!(r.status(), 200, "the upload held the namespace's only slot");
    // The rest of the body: now it is admitted and run.
    sock.write_all(&body[5..]).await.unwrap();
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    eventually("the upload ran", Duration::from_secs(5), || async {
        u.last.lock().unwrap()["body"] == serde_json::json!({ "slow": "upload" })
    })
    .await;
}

/// A body that never finishes arriving gets 408 once the request timeout passes, and held
/// nothing meanwhile: the namespace's only slot serves others throughout and after.
#[tokio::test]
async fn an_upload_that_never_finishes_gets_408_and_held_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = Bench::start().await;
    let u = b.one_at_a_time("a").await;
    let served = u.requests.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    let mut sock = tokio::net::TcpStream::connect(b.envoy.listen)
        .await
        .unwrap();
    let head = format!(
        "POST /api/v1/namespaces/_/actions/a HTTP/1.1\r\nhost: localhost\r\nauthorization: {}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"never\":",
        guest_auth()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(
        b.invoke("a").await.status(),
        200,
        "the upload holds no slot"
    );
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "Envoy answered the stalled upload");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() >= REQUEST_TIMEOUT,
        "not before the timeout"
    );
    assert_eq!(b.invoke("a").await.status(), 200);
    assert_eq!(
        u.requests.load(Ordering::SeqCst),
        served + 2,
        "only the two invokes reached the container; the upload never ran"
    );
}
