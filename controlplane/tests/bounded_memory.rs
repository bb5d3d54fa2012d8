//! The control plane's memory does not grow with the activations it records: tens of thousands
//! of records reported over real gRPC, as container proxies report them, leave the store's
//! in-memory cache within its configured bound and the stored records within retention.
//! (RSS is measured by `bench/mem/controlplane-rss.sh`, not asserted here.)

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use serde_json::json;
use whisk_proto::controlplane::v1 as pb;

/// Records reported in the test.
const RECORDS: usize = 20_000;
/// Reports in flight at once (as several proxies report at once).
const CONCURRENT: usize = 16;
/// The store's cache bound in the test: far below what the records take on disk.
const CACHE_BYTES: usize = 1024 * 1024;
/// Records kept per namespace in the test.
const KEEP: usize = 2_000;

fn record(id: &str, path: &str, start: i64) -> String {
    json!({
        "namespace": "guest", "name": "private", "subject": "guest",
        "activationId": id, "start": start, "end": start + 3, "duration": 3,
        "response": { "statusCode": 0, "result": { "padding": "x".repeat(256) } },
        "logs": ["2026-01-01T00:00:00.000Z stdout: one line of the action's output"],
        "annotations": [{ "key": "path", "value": path }],
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_memory_stays_bounded_over_tens_of_thousands_of_activations() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.store_cache_bytes = CACHE_BYTES;
    config.activations_per_namespace = KEEP;
    let cp = start_fake(config, FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    guest
        .put("/api/v1/namespaces/_/actions/private", nodejs_action("x"))
        .await;
    let endpoint = whisk_controlplane::coldstart::cold_start(cp.plane(), "guest/private", "", None)
        .await
        .unwrap();
    let client = grpc(&cp).await;
    let bearer: Arc<str> = format!("Bearer {}", endpoint.token.expose()).into();
    let container: Arc<str> = endpoint.container_id.clone().into();

    let started = Instant::now();
    let mut largest_cache = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENT {
        let (mut client, bearer, container) = (client.clone(), bearer.clone(), container.clone());
        tasks.spawn(async move {
            for i in (worker..RECORDS).step_by(CONCURRENT) {
                let id = format!("{i:032x}");
                let mut request = tonic::Request::new(pb::ReportActivationRequest {
                    container_id: container.to_string(),
                    activation_json: record(&id, "guest/private", 1_000 + i as i64),
                });
                request
                    .metadata_mut()
                    .insert("authorization", bearer.parse().unwrap());
                client.report_activation(request).await.unwrap();
            }
        });
        // Sample the cache while the records arrive, not only at the end.
    }
    while !tasks.is_empty() {
        tokio::select! {
            done = tasks.join_next() => { done.unwrap().unwrap(); }
            _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
        }
        largest_cache = largest_cache.max(cp.plane().store.cache_bytes());
    }
    let took = started.elapsed();
    largest_cache = largest_cache.max(cp.plane().store.cache_bytes());

    let store = &cp.plane().store;
    // Every record went through: the newest is there, the oldest fell out of retention.
    let newest = format!("{:032x}", RECORDS - 1);
    assert!(store.get_activation("guest", &newest).unwrap().is_some());
    assert!(
        store
            .get_activation("guest", &format!("{:032x}", 0))
            .unwrap()
            .is_none()
    );
    assert_eq!(store.activation_count().unwrap(), KEEP as u64);
    // What the store holds in memory stayed within its bound, far below what was written.
    let written = RECORDS * record(&newest, "guest/private", 0).len();
    assert!(largest_cache > 0, "the cache is measured");
    assert!(
        largest_cache <= CACHE_BYTES as u64,
        "the store's cache held {largest_cache} bytes, over its bound of {CACHE_BYTES} \
         ({written} bytes of records written in {took:?})"
    );
    // Reading every kept record back does not grow it either.
    let listed = store.list_activations("guest", &|_| true, 0, KEEP).unwrap();
    assert_eq!(listed.len(), KEEP);
    assert!(store.cache_bytes() <= CACHE_BYTES as u64);
    eprintln!(
        "{RECORDS} records ({written} bytes) in {took:?}; store cache at most {largest_cache} bytes"
    );
    cp.shutdown().await;
}
