//! The router's metrics, scraped from its admin port after a scripted set of requests.

mod common;

use std::time::Duration;

use common::*;

async fn scrape(b: &Bench) -> String {
    b.router_metrics().await
}

/// The value of one sample line (`name{labels} value`), 0 when absent.
fn value(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn decisions_are_counted_by_outcome() {
    let b = Bench::start().await;
    let _u = b.one_at_a_time("a").await;
    let before = scrape(&b).await;
    for _ in 0..3 {
        assert_eq!(b.invoke("a").await.status(), 200);
    }
    for _ in 0..2 {
        let r = b
            .http
            .post(b.invoke_url("a"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    assert_eq!(b.invoke("missing").await.status(), 404);
    // One slow request holds the namespace's only slot; the next is throttled.
    let slow = b
        .http
        .post(b.invoke_url("a"))
        .header("authorization", guest_auth())
        .header("x-test-delay-ms", "1500")
        .body("{}")
        .send();
    let slow = tokio::spawn(slow);
    eventually("slow request in flight", Duration::from_secs(5), || async {
        value(
            &scrape(&b).await,
            "whisk_router_in_flight{namespace=\"guest\"}",
        ) == 1.0
    })
    .await;
    assert_eq!(b.invoke("a").await.status(), 429);
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);

    let after = scrape(&b).await;
    let delta = |s: &str| value(&after, s) - value(&before, s);
    assert_eq!(
        delta("whisk_router_decisions_total{outcome=\"routed\"}"),
        4.0
    );
    assert_eq!(
        delta("whisk_router_decisions_total{outcome=\"unauthenticated_missing\"}"),
        2.0
    );
    assert_eq!(
        delta("whisk_router_decisions_total{outcome=\"not_found\"}"),
        1.0
    );
    assert_eq!(
        delta("whisk_router_decisions_total{outcome=\"throttled_concurrency\"}"),
        1.0
    );
    assert_eq!(delta("whisk_router_decision_duration_seconds_count"), 8.0);
    assert_eq!(
        value(&after, "whisk_router_in_flight{namespace=\"guest\"}"),
        0.0
    );
    assert_eq!(
        value(&after, "whisk_router_table_entries{table=\"actions\"}"),
        1.0
    );
    assert_eq!(
        value(&after, "whisk_router_table_entries{table=\"endpoints\"}"),
        1.0
    );
    assert!(value(&after, "whisk_router_table_revision") >= 2.0);
    // Readiness: the router holds a snapshot.
    let r = b
        .http
        .get(format!("http://{}/readyz", b.router_admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
