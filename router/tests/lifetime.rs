//! An activation outlives a caller who stops waiting, and so do its slots: after a client abort,
//! or a container's 202 when a blocking wait expired, the namespace's concurrency and the
//! container's slot stay counted until the activation ends in its container — then come back.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use serde_json::Value;

async fn refused_while_it_runs(b: &Bench) {
    let r = b.invoke("a").await;
    assert_eq!(r.status(), 429, "the first activation still counts");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"],
        "Too many concurrent requests in flight (count: 1, allowed: 1)."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_invoke_keeps_its_concurrency_until_the_activation_ends() {
    let b = Bench::start().await;
    let u = b.one_at_a_time("a").await;
    // The client gives up after 100 ms; the container works for 1.5 s.
    let request = b
        .http
        .post(b.invoke_url("a"))
        .header("authorization", guest_auth())
        .header("x-test-delay-ms", "1500")
        .body("{}")
        .send();
    assert!(
        tokio::time::timeout(Duration::from_millis(100), request)
            .await
            .is_err(),
        "the client gave up first"
    );
    eventually("the activation runs", Duration::from_secs(5), || async {
        u.active.load(Ordering::SeqCst) == 1
    })
    .await;
    refused_while_it_runs(&b).await;
    // Once it ended in its container, the namespace is free again.
    eventually("served again", Duration::from_secs(10), || async {
        b.invoke("a").await.status() == 200
    })
    .await;
    assert_eq!(u.active.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_expired_202_keeps_the_slots_until_the_activation_ends() {
    let b = Bench::start().await;
    let _u = b.one_at_a_time("a").await;
    // The container answers 202 at once (the caller's wait expired) and runs on for 1.5 s.
    let r = b
        .http
        .post(b.invoke_url("a"))
        .header("authorization", guest_auth())
        .header("x-test-runs-ms", "1500")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    refused_while_it_runs(&b).await;
    eventually("served again", Duration::from_secs(10), || async {
        b.invoke("a").await.status() == 200
    })
    .await;
}
