//! Many gateways, one truth: `whisk up --gateways 3` runs three Envoy + router pairs on one
//! control plane, and a namespace's per-minute limit holds across all of them (not three times
//! over), while a namespace used through one gateway only gets (almost) all of its limit there.

mod common;

use std::time::{Duration, Instant};

use common::{children, healed, whisk_up};

use common::GUEST;
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
    create_with(http, gateway, who, "function main() { return {}; }").await;
}

async fn create_with(http: &reqwest::Client, gateway: &str, who: (&str, &str), code: &str) {
    let r = http
        .put(format!("{gateway}/api/v1/namespaces/_/actions/counted"))
        .basic_auth(who.0, Some(who.1))
        .json(&serde_json::json!({"exec": {"kind": "nodejs:20", "code": code}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// `whisk admin ...` against the stack in `dir`; its stdout.
fn admin(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_whisk"))
        .args(["admin", "--data-dir"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A new namespace's `(uuid, key)`.
fn user(dir: &std::path::Path, name: &str) -> (String, String) {
    let cred = admin(dir, &["user", "create", name]);
    let (uuid, key) = cred.trim().split_once(':').unwrap();
    (uuid.to_owned(), key.to_owned())
}

/// Offers three times the limit for four seconds, the `i`-th invoke through the gateway
/// `pick(i)` names; returns how many were admitted.
async fn offer(
    http: &reqwest::Client,
    gateways: &[String],
    who: (&str, &str),
    pick: impl Fn(usize) -> usize,
) -> usize {
    let mut ok = 0;
    let until = Instant::now() + Duration::from_secs(4);
    let mut i = 0;
    while Instant::now() < until {
        let s = invoke(http, &gateways[pick(i)], who).await;
        assert!(s == 200 || s == 429, "status {s}");
        ok += usize::from(s == 200);
        i += 1;
    }
    assert!(i >= 3 * LIMIT, "the test offered {i} invokes");
    ok
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
    // reports): no more than the limit gets through in all — evenly, and 90/5/5.
    let even = offer(&http, &gateways, GUEST, |i| i % 3).await;
    assert!(
        even <= LIMIT,
        "{even} admitted across three gateways; the limit is {LIMIT}"
    );
    assert!(even >= LIMIT * 2 / 3, "only {even} admitted");
    let (uuid, key) = user(dir.path(), "uneven");
    let uneven_who = (uuid.as_str(), key.as_str());
    create(&http, &gateways[0], uneven_who).await;
    let uneven = offer(&http, &gateways, uneven_who, |i| match i % 20 {
        0 => 1,
        1 => 2,
        _ => 0,
    })
    .await;
    assert!(
        uneven <= LIMIT,
        "{uneven} admitted 90/5/5; the limit is {LIMIT}"
    );
    assert!(uneven >= LIMIT * 2 / 3, "only {uneven} admitted 90/5/5");

    // Another namespace, used through one gateway only, gets almost all of its limit there once
    // the routers have reported (a second at most): an equal part first, then the rest.
    let (uuid, key) = user(dir.path(), "solo");
    let solo = (uuid.as_str(), key.as_str());
    create(&http, &gateways[1], solo).await;
    let mut admitted = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while admitted < LIMIT - 2 {
        assert!(
            Instant::now() < deadline,
            "only {admitted} of {LIMIT} admitted through one gateway"
        );
        match invoke(&http, &gateways[1], solo).await {
            200 => admitted += 1,
            // Refused until the shares moved to this gateway.
            429 => tokio::time::sleep(Duration::from_millis(100)).await,
            s => panic!("status {s}"),
        }
    }

    // The concurrency limit holds across gateways too: four concurrent invokes on each of the
    // three, for a namespace allowed three at a time.
    let (uuid, key) = user(dir.path(), "narrow");
    admin(
        dir.path(),
        &["limits", "set", "narrow", "--concurrent-invocations", "3"],
    );
    let narrow = (uuid.as_str(), key.as_str());
    create_with(
        &http,
        &gateways[2],
        narrow,
        "function main() { return new Promise((r) => setTimeout(() => r({}), 3000)); }",
    )
    .await;
    let calls = (0..12).map(|i| {
        let (http, gateway) = (http.clone(), gateways[i % 3].clone());
        let (uuid, key) = (uuid.clone(), key.clone());
        tokio::spawn(async move { invoke(&http, &gateway, (&uuid, &key)).await })
    });
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let ran = statuses.iter().filter(|s| **s == 200).count();
    assert!(ran <= 3, "{ran} ran at once across gateways: {statuses:?}");
    assert!(ran >= 1, "none ran: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );

    // Routers killed and restarted rejoin: they resubscribe, report, and serve their share.
    let up_pid = up.pid().expect("whisk up's pid");
    let routers = children(up_pid, "whisk-router");
    assert_eq!(routers.len(), 3, "{routers:?}");
    let (uuid, key) = user(dir.path(), "rejoin");
    let rejoin = (uuid.as_str(), key.as_str());
    create(&http, &gateways[2], rejoin).await;
    for &pid in &routers {
        // SAFETY: kill(2) on a pid just read from /proc; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    }
    healed(up_pid, "whisk-router", routers[0], &gateways[2], &http).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while children(up_pid, "whisk-router")
        .iter()
        .filter(|p| !routers.contains(p))
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "not every router came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut admitted = 0;
    while admitted < LIMIT - 2 {
        assert!(
            Instant::now() < deadline,
            "only {admitted} of {LIMIT} admitted after the routers rejoined"
        );
        match invoke(&http, &gateways[2], rejoin).await {
            200 => admitted += 1,
            429 => tokio::time::sleep(Duration::from_millis(100)).await,
            // Until this gateway's router serves again.
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    up.stop(Duration::from_secs(15)).await;
}
