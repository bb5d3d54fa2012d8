//! Many gateways, one truth: `whisk up --gateways 3` runs three Envoy + router pairs on one
//! control plane, and a namespace's per-minute limit holds across all of them (not three times
//! over), while a namespace used through one gateway only gets (almost) all of its limit there.

mod common;

use std::time::{Duration, Instant};

use common::whisk_up;

const GUEST: (&str, &str) = (
    whisk_controlplane::plane::GUEST_UUID,
    whisk_controlplane::plane::GUEST_KEY,
);
const LIMIT: usize = 30;

async fn invoke(http: &reqwest::Client, gateway: &str, who: (&str, &str)) -> u16 {
    http.post(format!(
        "{gateway}/api/v1/namespaces/_/actions/counted?blocking=true"
    ))
    .basic_auth(who.0, Some(who.1))
    .send()
    .await
    .map(|r| r.status().as_u16())
    .unwrap_or(0)
}

async fn create(http: &reqwest::Client, gateway: &str, who: (&str, &str)) {
    let r = http
        .put(format!("{gateway}/api/v1/namespaces/_/actions/counted"))
        .basic_auth(who.0, Some(who.1))
        .json(&serde_json::json!({"exec": {"kind": "nodejs:20", "code": "function main() { return {}; }"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_limit_holds_across_gateways() {
    let dir = tempfile::tempdir().unwrap();
    let (up, apihost) = whisk_up(
        dir.path(),
        &[
            "--gateways",
            "3",
            "--prewarm",
            "nodejs:20=0",
            "--default-invocations-per-minute",
            &LIMIT.to_string(),
        ],
    )
    .await;
    let gateways: Vec<String> = up
        .address
        .split_whitespace()
        .find_map(|w| w.strip_prefix("gateways="))
        .expect("whisk up lists its gateways")
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(gateways.len(), 3);
    assert_eq!(gateways[0], apihost);
    let http = reqwest::Client::new();
    create(&http, &apihost, GUEST).await;

    // Three times the limit, spread over the three gateways for a few seconds (several usage
    // reports): no more than the limit gets through in all.
    let mut ok = 0;
    let until = Instant::now() + Duration::from_secs(4);
    let mut i = 0;
    while Instant::now() < until {
        let s = invoke(&http, &gateways[i % 3], GUEST).await;
        assert!(s == 200 || s == 429, "status {s}");
        ok += usize::from(s == 200);
        i += 1;
    }
    assert!(i >= 3 * LIMIT, "the test offered {i} invokes");
    assert!(
        ok <= LIMIT,
        "{ok} admitted across three gateways; the limit is {LIMIT}"
    );
    assert!(ok >= LIMIT * 2 / 3, "only {ok} admitted");

    // Another namespace, used through one gateway only, gets almost all of its limit there once
    // the routers have reported (a second at most): an equal part first, then the rest.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_whisk"))
        .args(["admin", "--data-dir"])
        .arg(dir.path())
        .args(["user", "create", "solo"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cred = String::from_utf8(out.stdout).unwrap();
    let (uuid, key) = cred.trim().split_once(':').unwrap();
    create(&http, &gateways[1], (uuid, key)).await;
    let mut admitted = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while admitted < LIMIT - 2 {
        assert!(
            Instant::now() < deadline,
            "only {admitted} of {LIMIT} admitted through one gateway"
        );
        match invoke(&http, &gateways[1], (uuid, key)).await {
            200 => admitted += 1,
            // Refused until the shares moved to this gateway.
            429 => tokio::time::sleep(Duration::from_millis(100)).await,
            s => panic!("status {s}"),
        }
    }
    up.stop(Duration::from_secs(15)).await;
}
