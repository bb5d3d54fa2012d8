//! The per-container circuit breaker on the forwarded (blocking) path: a 429 with `Retry-After`
//! (seconds or HTTP-date) takes the container out of rotation until then, traffic shifts to the
//! others, a cold start serves when every container is out, and the container comes back after.
//! The request that met the 429 is replayed elsewhere when the router kept its body (by default
//! while other routers share the containers, or after a refusal): the client sees the 429 only
//! when no capacity is found in time, or when the policy kept no body.

mod common;

use std::cell::Cell;
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

/// Tells the router that another router shares its containers (so refusals are possible).
async fn share_containers(b: &Bench) {
    b.apply(pb::TableUpdate {
        routers: Some(2),
        ..Default::default()
    })
    .await;
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
    // An unreadable Retry-After falls back to 1 s. Let that pass (a deliberate wait on the clock,
    // not a synchronisation): only a parsed date keeps the container out now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..4 {
        assert_eq!(b.invoke("a").await.status(), 200);
    }
    assert_eq!(
        busy.requests.load(Ordering::SeqCst),
        1,
        "the date, not the fallback, keeps the breaker open"
    );
}

#[tokio::test]
async fn an_unreadable_retry_after_falls_back_to_one_second() {
    let b = Bench::start().await;
    let (busy, free) = busy_and_free(&b, "soon").await;
    traffic_shifts_after_429(&b, &busy, &free).await;
    eventually(
        "probed again after the fallback",
        Duration::from_secs(10),
        || async {
            b.invoke("a").await;
            busy.requests.load(Ordering::SeqCst) >= 2
        },
    )
    .await;
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
    share_containers(&b).await;
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
    // The request that met the 429 is the one the cold start serves.
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

/// Invokes `guest/<name>` with `{"n": n}` (or no body at all).
async fn invoke_n(b: &Bench, name: &str, n: Option<u64>) -> reqwest::Response {
    let req = b
        .http
        .post(b.invoke_url(name))
        .header("authorization", guest_auth());
    let req = match n {
        Some(n) => req.json(&serde_json::json!({ "n": n })),
        None => req,
    };
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_refused_invoke_is_replayed_on_another_container() {
    let b = Bench::start().await;
    share_containers(&b).await;
    let (busy, free) = busy_and_free(&b, "30").await;
    let n = Cell::new(0);
    eventually(
        "the busy container refused a request",
        Duration::from_secs(5),
        || {
            n.set(n.get() + 1);
            let n = n.get();
            let (b, busy) = (&b, &busy);
            async move {
                let r = invoke_n(b, "a", Some(n)).await;
                assert_eq!(
                    r.status(),
                    200,
                    "no client sees the 429 while capacity exists"
                );
                busy.requests.load(Ordering::SeqCst) == 1
            }
        },
    )
    .await;
    // The refused request reached the free container with the same activation and body.
    let refused = busy.last.lock().unwrap().clone();
    let served = free.last.lock().unwrap().clone();
    assert_eq!(
        served["headers"]["x-whisk-activation-id"],
        refused["headers"]["x-whisk-activation-id"]
    );
    assert_eq!(served["body"], refused["body"]);
    assert_eq!(served["body"]["n"], n.get());
    assert_eq!(
        served["headers"]["authorization"],
        refused["headers"]["authorization"]
    );
    let metrics = b.router_metrics().await;
    assert!(
        metrics.contains("whisk_router_replays_total{outcome=\"answered\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_client_sees_the_429_only_without_capacity_in_time() {
    let b = Bench::start().await;
    share_containers(&b).await;
    let busy = Upstream::always("busy", 429, "30").await;
    b.one_action("a", &busy, 1).await;
    // No other container, and the cold start finds no capacity: the refusal stands.
    let r = invoke_n(&b, "a", Some(1)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "30");
    assert_eq!(b.cp.cold_starts.load(Ordering::SeqCst), 1);
    let metrics = b.router_metrics().await;
    assert!(
        metrics.contains("whisk_router_replays_total{outcome=\"no_capacity\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn with_replay_never_only_bodyless_invokes_are_replayed() {
    let b = Bench::start_with_router_args(&["--replay", "never"]).await;
    share_containers(&b).await;
    let (busy, free) = busy_and_free(&b, "30").await;
    // A body is not kept: the request that meets the 429 gets it.
    let refused = Cell::new(0);
    eventually(
        "a request with a body met the 429",
        Duration::from_secs(5),
        || {
            let (b, busy) = (&b, &busy);
            let refused = &refused;
            async move {
                if invoke_n(b, "a", Some(1)).await.status() == 429 {
                    refused.set(refused.get() + 1);
                }
                busy.requests.load(Ordering::SeqCst) == 1
            }
        },
    )
    .await;
    assert_eq!(refused.get(), 1);
    // The breaker opened all the same: the busy container gets nothing more.
    for n in 0..4 {
        assert_eq!(invoke_n(&b, "a", Some(n)).await.status(), 200);
    }
    assert_eq!(busy.requests.load(Ordering::SeqCst), 1);
    // Without a body there is nothing to keep: a second action's refusal is replayed.
    let busy2 = Upstream::always("busy2", 429, "30").await;
    b.apply(pb::TableUpdate {
        actions_upsert: vec![action("guest/b", 1)],
        endpoints_upsert: vec![
            endpoint("c-busy2", "guest/b", busy2.addr, 1),
            endpoint("c-free2", "guest/b", free.addr, 1),
        ],
        ..Default::default()
    })
    .await;
    eventually(
        "a bodyless request met the 429",
        Duration::from_secs(5),
        || {
            let (b, busy2) = (&b, &busy2);
            async move {
                assert_eq!(invoke_n(b, "b", None).await.status(), 200);
                busy2.requests.load(Ordering::SeqCst) == 1
            }
        },
    )
    .await;
}

#[tokio::test]
async fn with_replay_always_a_lone_router_replays_the_first_refusal() {
    let b = Bench::start_with_router_args(&["--replay", "always"]).await;
    let (busy, free) = busy_and_free(&b, "30").await;
    eventually("the busy container refused", Duration::from_secs(5), || {
        let (b, busy) = (&b, &busy);
        async move {
            assert_eq!(invoke_n(b, "a", Some(7)).await.status(), 200);
            busy.requests.load(Ordering::SeqCst) == 1
        }
    })
    .await;
    assert_eq!(free.last.lock().unwrap()["body"]["n"], 7);
}

#[tokio::test]
async fn a_lone_router_keeps_bodies_only_after_a_refusal() {
    // The default policy (auto), and no other router: the first refusal reaches its client.
    let b = Bench::start().await;
    let one = Upstream::always("busy-one", 429, "30").await;
    let two = Upstream::always("busy-two", 429, "30").await;
    let free = Upstream::start("free").await;
    b.apply(pb::TableUpdate {
        actions_upsert: vec![action("guest/a", 1)],
        endpoints_upsert: vec![
            endpoint("c-one", "guest/a", one.addr, 1),
            endpoint("c-two", "guest/a", two.addr, 1),
            endpoint("c-free", "guest/a", free.addr, 1),
        ],
        ..Default::default()
    })
    .await;
    let refused = Cell::new(0);
    eventually(
        "both busy containers refused",
        Duration::from_secs(5),
        || {
            let (b, one, two) = (&b, &one, &two);
            let refused = &refused;
            async move {
                if invoke_n(b, "a", Some(1)).await.status() == 429 {
                    refused.set(refused.get() + 1);
                }
                one.requests.load(Ordering::SeqCst) + two.requests.load(Ordering::SeqCst) == 2
            }
        },
    )
    .await;
    assert_eq!(
        refused.get(),
        1,
        "the action was remembered as refused after the first"
    );
}
