//! Process lifecycle: launchers die with the proxy, and reports survive a control plane that
//! comes up late.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie is dead.
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_proxy_and_its_launchers() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"function main() { return { pid: process.pid }; }"#;
    let mut proxy = ready_proxy(&cp, "nodejs:20", action("hello", "nodejs:20", code)).await;
    let reply = proxy
        .invoke(&Invoke::blocking("guest/hello"), json!({}))
        .await;
    let pid = reply.body["response"]["result"]["pid"].as_u64().unwrap() as u32;
    assert!(alive(pid));
    let status = proxy.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    let deadline = Instant::now() + WAIT;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "launcher {pid} outlived the proxy"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_the_proxy_takes_the_launchers_too() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"function main() { return { pid: process.pid }; }"#;
    // A killed proxy cannot remove its temporary files: keep them in a directory of the test.
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().to_str().unwrap().to_string();
    let mut proxy = ProxyProcess::spawn(
        &["--kind", "nodejs:20", "--controlplane", &cp.url()],
        &[("TMPDIR", &tmp_path)],
    );
    assert_eq!(proxy.init(action("hello", "nodejs:20", code)).await.0, 200);
    let reply = proxy
        .invoke(&Invoke::blocking("guest/hello"), json!({}))
        .await;
    let pid = reply.body["response"]["result"]["pid"].as_u64().unwrap() as u32;
    proxy.signal_and_wait(libc::SIGKILL);
    let deadline = Instant::now() + WAIT;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "launcher {pid} outlived the proxy"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_are_retried_until_the_control_plane_is_up() {
    // Reserve a port, free it, and start the control plane there only after the activation.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = ProxyProcess::spawn(
        &[
            "--kind",
            "nodejs:20",
            "--container-id",
            "late",
            "--controlplane",
            &format!("http://{addr}"),
        ],
        &[],
    );
    let (status, _) = proxy
        .init(action(
            "hello",
            "nodejs:20",
            "function main() { return {late: 1}; }",
        ))
        .await;
    assert_eq!(status, 200);
    let inv = Invoke::blocking("guest/hello");
    let reply = proxy.invoke(&inv, json!({})).await;
    assert_eq!(reply.status, 200);
    let cp = ControlPlaneStub::start_on(addr).await;
    let (container, record) = cp.record(&inv.activation_id).await;
    assert_eq!(container, "late");
    assert_eq!(record["response"]["result"], json!({"late": 1}));
}
