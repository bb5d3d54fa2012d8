//! Response caching controlled by the action, through real Envoy: hits never reach the
//! container, expire, are scoped to the caller's namespace, die with an update, and errors and
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
async fn entries_are_not_shared_across_namespaces_except_public_actions() {
    let b = Bench::start().await;
    let private = Upstream::caching("private", "max-age=60").await;
    let public = Upstream::caching("public", "max-age=60").await;
    let mut shared = action("guest/pkg/shared", 10);
    shared.public = true;
    b.apply(pb::TableUpdate {
        actions_upsert: vec![action("other/mine", 10), shared],
        endpoints_upsert: vec![
            endpoint("c-private", "other/mine", private.addr, 10),
            endpoint("c-public", "guest/pkg/shared", public.addr, 10),
        ],
        ..Default::default()
    })
    .await;
    let other = basic(OTHER_UUID, OTHER_KEY);
    let shared_path = "/api/v1/namespaces/guest/actions/pkg/shared?blocking=true&result=true";
    // Public: guest warms it, "other" hits the same entry.
    for _ in 0..3 {
        call(&b, &guest_auth(), shared_path, json!({})).await;
    }
    assert_eq!(public.requests.load(Ordering::SeqCst), 2);
    assert_eq!(call(&b, &other, shared_path, json!({})).await.status(), 200);
    assert_eq!(public.requests.load(Ordering::SeqCst), 2);
    // Private to "other": guest may not use it at all (403), and nothing cached leaks.
    let mine = "/api/v1/namespaces/other/actions/mine?blocking=true&result=true";
    for _ in 0..3 {
        call(&b, &other, mine, json!({})).await;
    }
    assert_eq!(call(&b, &guest_auth(), mine, json!({})).await.status(), 403);
}
