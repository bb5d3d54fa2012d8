//! The default namespace limits are `whisk up`'s (or `whisk controlplane`'s) flags, and the
//! routers enforce exactly those: one source, pushed.

mod common;

use common::whisk_up;

const GUEST: (&str, &str) = (
    whisk_controlplane::plane::GUEST_UUID,
    whisk_controlplane::plane::GUEST_KEY,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routers_enforce_the_configured_default_rate() {
    let dir = tempfile::tempdir().unwrap();
    let (up, apihost) = whisk_up(
        dir.path(),
        &[
            "--prewarm",
            "nodejs:20=0",
            "--default-invocations-per-minute",
            "4",
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{apihost}/api/v1/namespaces/_/limits"))
        .basic_auth(GUEST.0, Some(GUEST.1))
        .send()
        .await
        .unwrap();
    let limits: serde_json::Value = r.json().await.unwrap();
    assert_eq!(limits["invocationsPerMinute"], 4);
    let action = format!("{apihost}/api/v1/namespaces/_/actions/counted");
    let r = http
        .put(&action)
        .basic_auth(GUEST.0, Some(GUEST.1))
        .json(&serde_json::json!({"exec": {"kind": "nodejs:20", "code": "function main() { return {}; }"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = http
            .post(format!("{action}?blocking=true"))
            .basic_auth(GUEST.0, Some(GUEST.1))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    up.stop(std::time::Duration::from_secs(15)).await;
}
