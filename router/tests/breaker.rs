//! The per-container circuit breaker on the forwarded (blocking) path: a 429 with `Retry-After`
//! (seconds or HTTP-date) takes the container out of rotation until then, traffic shifts to the
//! others, a cold start serves when every container is out, and the container comes back after.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use common::*;
use whisk_proto::controlplane::v1 as pb;

async fn busy_and_free(b: &Bench, retry_after: &str) -> (Upstream, Upstream) {
    let busy = Upstream::always("busy", 429, retry_after).await;
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
    (busy, free)
}

/// Invokes until the busy container has answered once, then checks it gets nothing more.
async fn traffic_shifts_after_429(b: &Bench, busy: &Upstream, free: &Upstream) {
    eventually(
        "the busy container answered 429 once",
        Duration::from_secs(5),
        || async {
            let r = b.invoke("a").await;
            if r.status() == 429 {
                assert!(r.headers().contains_key("retry-after"));
            }
            busy.requests.load(Ordering::SeqCst) == 1
        },
    )
    .await;
    let before = free.requests.load(Ordering::SeqCst);
    for _ in 0..6 {
        assert_eq!(b.invoke("a").await.status(), 200);
    }
    assert_eq!(
        busy.requests.load(Ordering::SeqCst),
        1,
        "breaker open: no more traffic"
    );
    assert_eq!(free.requests.load(Ordering::SeqCst), before + 6);
}

#[tokio::test]
async fn retry_after_in_seconds_opens_the_breaker() {
    let b = Bench::start().await;
    let (busy, free) = busy_and_free(&b, "30").await;
    traffic_shifts_after_429(&b, &busy, &free).await;
}

#[tokio::test]
async fn retry_after_as_http_date_opens_the_breaker() {
    let b = Bench::start().await;
    let until = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
    let (busy, free) = busy_and_free(&b, &until).await;
    traffic_shifts_after_429(&b, &busy, &free).await;
}

#[tokio::test]
async fn the_container_is_probed_again_after_retry_after() {
    let b = Bench::start().await;
    let (busy, _free) = busy_and_free(&b, "1").await;
    eventually("first 429", Duration::from_secs(5), || async {
        b.invoke("a").await;
        busy.requests.load(Ordering::SeqCst) == 1
    })
    .await;
    // Once the second has passed, a request reaches it again (the half-open probe).
    eventually("probed again", Duration::from_secs(10), || async {
        b.invoke("a").await;
        busy.requests.load(Ordering::SeqCst) >= 2
    })
    .await;
}

#[tokio::test]
async fn with_every_breaker_open_a_cold_start_serves() {
    let b = Bench::start().await;
    let busy = Upstream::always("busy", 429, "60").await;
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
            delay: Duration::from_millis(50),
            endpoint: endpoint("c-fresh", "guest/a", fresh.addr, 1),
        },
    );
    assert_eq!(b.invoke("a").await.status(), 429);
    let r = b.invoke("a").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["upstream"],
        "fresh"
    );
    assert_eq!(b.cp.cold_starts.load(Ordering::SeqCst), 1);
    assert_eq!(busy.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_dead_container_is_reported_and_skipped() {
    let b = Bench::start().await;
    let free = Upstream::start("free").await;
    // Nothing listens on the dead container's port.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    b.apply(pb::TableUpdate {
        actions_upsert: vec![action("guest/a", 1)],
        endpoints_upsert: vec![
            endpoint("c-dead", "guest/a", dead, 1),
            endpoint("c-free", "guest/a", free.addr, 1),
        ],
        ..Default::default()
    })
    .await;
    eventually(
        "the dead container was reported",
        Duration::from_secs(5),
        || async {
            b.invoke("a").await;
            b.cp.unusable.lock().unwrap().contains(&"c-dead".to_owned())
        },
    )
    .await;
    for _ in 0..4 {
        assert_eq!(b.invoke("a").await.status(), 200);
    }
}
