//! Fail-static: while the control plane is away (an upgrade, a crash), the router keeps routing
//! warm invokes to the containers it knows, answers what needs the control plane (a cold start)
//! with 503 + `Retry-After`, and resubscribes by itself when it returns — no restart of anything.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use whisk_proto::controlplane::v1 as pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_invokes_survive_the_control_plane_going_away_and_it_is_rejoined() {
    let b = Bench::start().await;
    let u = Upstream::start("a").await;
    b.one_action("a", &u, 10).await;
    b.apply(pb::TableUpdate {
        actions_upsert: vec![action("guest/cold", 1)],
        ..Default::default()
    })
    .await;
    assert_eq!(b.invoke("a").await.status(), 200);
    let subscribed = b.cp.subscribes.load(Ordering::SeqCst);

    // `stop` returns once the server is gone: the router's subscription has ended, and its
    // attempts to subscribe again fail while the plane is away.
    b.cp.stop().await;
    for _ in 0..20 {
        assert_eq!(
            b.invoke("a").await.status(),
            200,
            "warm path without the control plane"
        );
    }
    // A cold start needs the control plane: 503 with Retry-After, not a hang.
    let r = b.invoke("cold").await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));

    b.cp.restart().await;
    eventually(
        "resubscribed by itself",
        Duration::from_secs(10),
        || async { b.cp.subscribes.load(Ordering::SeqCst) > subscribed },
    )
    .await;
    // And a change made now reaches it.
    let fresh = Upstream::start("fresh").await;
    b.apply(pb::TableUpdate {
        endpoints_upsert: vec![endpoint("c-cold", "guest/cold", fresh.addr, 1)],
        ..Default::default()
    })
    .await;
    assert_eq!(b.invoke("cold").await.status(), 200);
    assert_eq!(fresh.requests.load(Ordering::SeqCst), 1);
}
