//! Response caching controlled by the action, through real Envoy: hits never reach the
//! container, expire, are scoped to the caller's namespace (public actions too), are the caller's
//! own recorded activations, work without a body, die with an update, and errors and
//! oversize bodies are never kept.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use whisk_proto::controlplane::v1 as pb;

async fn call(b: &Bench, auth: &str, path: &str, params: Value) -> reqwest::Response {
    b.http
        .post(b.url(path))
        .header("authorization", auth)
        .json(&params)
        .send()
        .await
        .unwrap()
}

async fn setup(b: &Bench, cache_control: &str) -> Upstream {
    let u = Upstream::caching("c", cache_control).await;
    b.one_action("a", &u, 10).await;
    u
}

const A: &str = "/api/v1/namespaces/_/actions/a?blocking=true&result=true";

#[tokio::test]
async fn a_hit_never_reaches_the_container_and_has_its_own_activation_id() {
    let b = Bench::start().await;
    let u = setup(&b, "max-age=60").await;
    // First call teaches the router the action caches; the second is stored; then hits.
    let mut ids = Vec::new();
    for _ in 0..5 {
        let r = call(&b, &guest_auth(), A, json!({ "x": 1, "y": 2 })).await;
        assert_eq!(r.status(), 200);
        ids.push(
            r.headers()["x-openwhisk-activation-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        assert_eq!(
            r.json::<Value>().await.unwrap()["body"],
            json!({ "x": 1, "y": 2 })
        );
    }
    assert_eq!(u.requests.load(Ordering::SeqCst), 2, "calls 3..5 were hits");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "every answer has its own activation id");
    // The same parameters in another order are the same entry; others are not.
    call(&b, &guest_auth(), A, json!({ "y": 2, "x": 1 })).await;
    assert_eq!(u.requests.load(Ordering::SeqCst), 2);
    call(&b, &guest_auth(), A, json!({ "x": 2 })).await;
    assert_eq!(u.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn entries_expire_after_max_age() {
    let b = Bench::start().await;
    let u = setup(&b, "max-age=1").await;
    for _ in 0..3 {
        call(&b, &guest_auth(), A, json!({})).await;
    }
    assert_eq!(u.requests.load(Ordering::SeqCst), 2);
    eventually("the entry expired", Duration::from_secs(5), || async {
        call(&b, &guest_auth(), A, json!({})).await;
        u.requests.load(Ordering::SeqCst) > 2
    })
    .await;
}

#[tokio::test]
async fn an_update_invalidates_the_entries() {
    let b = Bench::start().await;
    let u = setup(&b, "max-age=60").await;
    for _ in 0..3 {
        call(&b, &guest_auth(), A, json!({})).await;
    }
    assert_eq!(u.requests.load(Ordering::SeqCst), 2);
    let mut updated = action("guest/a", 10);
    updated.revision = 2;
    let mut ep = endpoint("ca2", "guest/a", u.addr, 10);
    ep.action_revision = 2;
    b.apply(pb::TableUpdate {
        actions_upsert: vec![updated],
        endpoints_upsert: vec![ep],
        ..Default::default()
    })
    .await;
    call(&b, &guest_auth(), A, json!({})).await;
    assert_eq!(
        u.requests.load(Ordering::SeqCst),
        3,
        "the new revision is not served from the old entry"
    );
}

#[tokio::test]
async fn errors_and_oversize_bodies_are_never_cached() {
    let b = Bench::start().await;
    let u = setup(&b, "max-age=60").await;
    call(&b, &guest_auth(), A, json!({})).await; // learn that the action caches
    for _ in 0..3 {
        let r = b
            .http
            .post(b.url(A))
            .header("authorization", guest_auth())
            .header("x-test-status", "502")
            .json(&json!({ "e": 1 }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502);
    }
    for _ in 0..3 {
        let r = b
            .http
            .post(b.url(A))
            .header("authorization", guest_auth())
            .header("x-test-pad", "300000")
            .json(&json!({ "big": 1 }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(u.requests.load(Ordering::SeqCst), 7);
}

#[tokio::test]
async fn entries_are_scoped_to_the_callers_namespace_public_actions_too() {
    let b = Bench::start().await;
    let public = Upstream::caching("public", "max-age=60").await;
    let mut shared = action("guest/pkg/shared", 10);
    shared.public = true;
    b.apply(pb::TableUpdate {
        actions_upsert: vec![shared],
        endpoints_upsert: vec![
            endpoint("c-public", "guest/pkg/shared", public.addr, 10),
            // A container serves one caller namespace: "other" has its own.
            pb::Endpoint {
                invoking_namespace: "other".into(),
                ..endpoint("c-public-other", "guest/pkg/shared", public.addr, 10)
            },
        ],
        ..Default::default()
    })
    .await;
    let other = basic(OTHER_UUID, OTHER_KEY);
    let shared_path = "/api/v1/namespaces/guest/actions/pkg/shared?blocking=true&result=true";
    // guest's entry: stored by the second call, hit by the third.
    for _ in 0..3 {
        call(&b, &guest_auth(), shared_path, json!({})).await;
    }
    assert_eq!(public.requests.load(Ordering::SeqCst), 2);
    // "other" calls the same public action with the same parameters: its own entry, never guest's.
    let first = call(&b, &other, shared_path, json!({})).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        public.requests.load(Ordering::SeqCst),
        3,
        "guest's entry is not served to other"
    );
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["headers"]["x-whisk-namespace"], "other");
    let hit = call(&b, &other, shared_path, json!({})).await;
    assert_eq!(
        public.requests.load(Ordering::SeqCst),
        3,
        "other's own entry"
    );
    let hit: Value = hit.json().await.unwrap();
    assert_eq!(hit["headers"]["x-whisk-namespace"], "other");
}

#[tokio::test]
async fn bodyless_invokes_of_a_caching_action_miss_then_hit() {
    let b = Bench::start().await;
    let u = setup(&b, "max-age=60").await;
    for i in 0..4 {
        let r = b
            .http
            .post(b.url(A))
            .header("authorization", guest_auth())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "call {i}");
        assert!(r.headers().contains_key("x-openwhisk-activation-id"));
    }
    assert_eq!(
        u.requests.load(Ordering::SeqCst),
        2,
        "calls 3 and 4 were hits"
    );
}

fn doubled(input: Value) -> Value {
    json!({ "n": input["n"].as_i64().unwrap_or(0) * 2 })
}

#[tokio::test]
async fn a_hit_is_the_callers_own_recorded_activation_in_the_shape_asked_for() {
    let b = Bench::start().await;
    let u = Upstream::caching_action("c", "max-age=60", doubled).await;
    b.one_action("a", &u, 10).await;
    let full = "/api/v1/namespaces/_/actions/a?blocking=true";
    for _ in 0..2 {
        call(&b, &guest_auth(), full, json!({ "n": 21 })).await;
    }
    assert_eq!(u.requests.load(Ordering::SeqCst), 2);
    // A hit asked for the whole record: the caller's own, with only the result reused.
    let r = call(&b, &guest_auth(), full, json!({ "n": 21 })).await;
    assert_eq!(r.status(), 200);
    assert_eq!(u.requests.load(Ordering::SeqCst), 2, "a hit");
    let id = r.headers()["x-openwhisk-activation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let record: Value = r.json().await.unwrap();
    assert_eq!(record["activationId"], id);
    assert_eq!(record["namespace"], "guest");
    assert_eq!(record["response"]["success"], true);
    assert_eq!(record["response"]["result"], json!({ "n": 42 }));
    // The same entry answers `result=true` with the bare result.
    let r = call(&b, &guest_auth(), A, json!({ "n": 21 })).await;
    assert_eq!(u.requests.load(Ordering::SeqCst), 2, "the same entry");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({ "n": 42 }));
    // The hit was recorded, so `activations get` finds it, and says it came from the cache.
    eventually("the hit's record", Duration::from_secs(5), || async {
        b.cp.records.lock().unwrap().iter().any(|r| {
            r["activationId"] == id.as_str()
                && r["namespace"] == "guest"
                && r["response"]["result"] == json!({ "n": 42 })
                && r["annotations"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|kv| kv["key"] == "cached" && kv["value"] == true)
                })
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_hits_made_while_the_control_plane_is_away_are_delivered_when_it_returns() {
    let b = Bench::start().await;
    let u = setup(&b, "max-age=60").await;
    for _ in 0..2 {
        call(&b, &guest_auth(), A, json!({ "x": 1 })).await;
    }
    assert_eq!(u.requests.load(Ordering::SeqCst), 2);

    b.cp.stop().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let r = call(&b, &guest_auth(), A, json!({ "x": 1 })).await;
        assert_eq!(r.status(), 200);
        ids.push(
            r.headers()["x-openwhisk-activation-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(u.requests.load(Ordering::SeqCst), 2, "all five were hits");
    let pending = b.router_metrics().await;
    assert!(
        pending
            .lines()
            .any(|l| l.starts_with("whisk_router_records_pending ") && !l.ends_with(" 0")),
        "{pending}"
    );

    b.cp.restart().await;
    eventually("every hit's record", Duration::from_secs(20), || async {
        let records = b.cp.records.lock().unwrap();
        ids.iter()
            .all(|id| records.iter().any(|r| r["activationId"] == id.as_str()))
    })
    .await;
    let metrics = b.router_metrics().await;
    assert!(
        metrics.contains("whisk_router_records_dropped_total 0"),
        "{metrics}"
    );
}
