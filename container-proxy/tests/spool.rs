//! Activation records survive a control plane that is down: the proxy spools what it cannot
//! deliver, replays it once the control plane is back, and a proxy killed meanwhile leaves its
//! records for its successor. At the spool's bound the proxy refuses instead of dropping.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const ECHO: &str = "function main(params) { return { echo: params.n }; }";

/// A control plane address that nothing listens on (a stub was there and is gone).
async fn stopped_control_plane() -> std::net::SocketAddr {
    let cp = ControlPlaneStub::start().await;
    let addr = cp.addr;
    drop(cp);
    addr
}

fn proxy(addr: std::net::SocketAddr, spool: &Path, extra: &[&str]) -> ProxyProcess {
    let url = format!("http://{addr}");
    let dir = spool.to_str().unwrap();
    let mut args = vec![
        "--kind",
        "nodejs:20",
        "--container-id",
        "c-test",
        "--controlplane",
        &url,
        "--spool-dir",
        dir,
    ];
    args.extend_from_slice(extra);
    ProxyProcess::spawn(&args, &[])
}

/// Runs `n` blocking activations; returns the ids answered 200.
async fn run(p: &ProxyProcess, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let inv = Invoke::blocking("guest/echo");
        let reply = p.invoke(&inv, json!({ "n": i })).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        ids.push(inv.activation_id);
    }
    ids
}

/// Entries in the spool file.
fn spooled(dir: &Path) -> usize {
    std::fs::read(dir.join("reports.spool"))
        .map(|d| d.iter().filter(|&&b| b == b'\n').count())
        .unwrap_or(0)
}

/// Polls `check` until it holds or the deadline passes.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_record_answered_during_an_outage_is_stored_exactly_once() {
    let addr = stopped_control_plane().await;
    let dir = tempfile::tempdir().unwrap();
    // A queue of 4 reports: 60 activations are far more than memory holds.
    let p = proxy(addr, dir.path(), &["--report-queue", "4"]);
    let (status, body) = p.init(action("echo", "nodejs:20", ECHO)).await;
    assert_eq!(status, 200, "{body}");
    let ids = run(&p, 60).await;
    assert!(spooled(dir.path()) > 4, "records went to the spool");
    let metrics = reqwest::get(p.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = metrics
        .lines()
        .find_map(|l| l.strip_prefix("whisk_proxy_spooled_records "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(gauge.is_some_and(|v| v > 4.0), "{metrics}");

    let cp = ControlPlaneStub::start_on(addr).await;
    let counts = cp.records_of_all(&ids).await;
    assert!(counts.iter().all(|&n| n == 1), "copies per id: {counts:?}");
    assert_eq!(cp.records().len(), ids.len());
    // Everything delivered is removed from the spool.
    until("an empty spool", || spooled(dir.path()) == 0).await;
}

#[tokio::test]
async fn records_of_a_killed_proxy_are_delivered_by_its_successor() {
    let addr = stopped_control_plane().await;
    let dir = tempfile::tempdir().unwrap();
    let mut first = proxy(addr, dir.path(), &["--report-queue", "4"]);
    let (status, body) = first.init(action("echo", "nodejs:20", ECHO)).await;
    assert_eq!(status, 200, "{body}");
    let ids = run(&first, 12).await;
    // While the control plane is down the queue is moved to disk.
    until("every record on disk", || spooled(dir.path()) == ids.len()).await;
    first.signal_and_wait(libc::SIGKILL);

    let cp = ControlPlaneStub::start_on(addr).await;
    let _second = proxy(addr, dir.path(), &[]);
    let counts = cp.records_of_all(&ids).await;
    assert!(counts.iter().all(|&n| n == 1), "copies per id: {counts:?}");
}

#[tokio::test]
async fn at_the_spool_bound_records_are_refused_and_invokes_stop_until_delivered() {
    let addr = stopped_control_plane().await;
    let dir = tempfile::tempdir().unwrap();
    let p = proxy(
        addr,
        dir.path(),
        &["--report-queue", "1", "--spool-max-bytes", "4000"],
    );
    let (status, body) = p.init(action("echo", "nodejs:20", ECHO)).await;
    assert_eq!(status, 200, "{body}");

    // Answered 200 while there is room; the first record that cannot be kept is a 500, never a
    // result without a record.
    let mut answered = Vec::new();
    let refused = loop {
        assert!(answered.len() < 200, "the spool bound was never reached");
        let inv = Invoke::blocking("guest/echo");
        let reply = p.invoke(&inv, json!({ "n": answered.len() })).await;
        match reply.status {
            200 => answered.push(inv.activation_id),
            _ => break reply,
        }
    };
    assert_eq!(refused.status, 500, "{}", refused.body);
    assert!(
        std::fs::metadata(dir.path().join("reports.spool"))
            .unwrap()
            .len()
            <= 4000
    );
    // The container takes no more invokes, and says so on /readyz.
    let reply = p.invoke(&Invoke::blocking("guest/echo"), json!({})).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    let ready = reqwest::get(p.url("/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);

    // Once the control plane is back every answered activation has its record, and the
    // container takes invokes again.
    let cp = ControlPlaneStub::start_on(addr).await;
    let counts = cp.records_of_all(&answered).await;
    assert!(counts.iter().all(|&n| n == 1), "copies per id: {counts:?}");
    until("an empty spool", || spooled(dir.path()) == 0).await;
    let inv = Invoke::blocking("guest/echo");
    let reply = p.invoke(&inv, json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    cp.record(&inv.activation_id).await;
}

#[tokio::test]
async fn records_queued_when_the_proxy_is_stopped_are_left_in_its_spool() {
    // A control plane that takes connections and never answers: reports hang in flight.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = hung.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut p = proxy(addr, dir.path(), &[]);
    let (status, body) = p.init(action("echo", "nodejs:20", ECHO)).await;
    assert_eq!(status, 200, "{body}");
    let ids = run(&p, 5).await;
    let exit = p.signal_and_wait(libc::SIGTERM);
    assert!(exit.success(), "{exit:?}");
    assert_eq!(
        spooled(dir.path()),
        ids.len(),
        "everything queued was spooled"
    );

    drop(hung);
    let cp = ControlPlaneStub::start_on(addr).await;
    let _successor = proxy(addr, dir.path(), &[]);
    let counts = cp.records_of_all(&ids).await;
    assert!(counts.iter().all(|&n| n == 1), "copies per id: {counts:?}");
}
