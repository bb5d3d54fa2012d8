//! End to end with the real `whisk-container-proxy` binary (local backend): a nodejs action
//! initialised from a stem cell, invoked with Contract 2 headers, its activation record reported
//! back, a proxy that dies on its own detected, and no process left after shutdown.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::json;
use whisk_controlplane::LocalBackend;
use whisk_controlplane::pool::State;
use whisk_proto::controlplane::v1 as pb;

/// Process ids of our descendants (children, grandchildren, ...).
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
            {
                out.push(c);
                stack.push(c);
            }
        }
    }
    out
}

/// Alive = exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

use whisk_vocab::now_ms;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodejs_action_from_stem_cell_end_to_end() {
    let bin = proxy_bin();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.prewarm = vec![("nodejs:20".into(), 1)];
    config.proxy_bin = Some(bin.clone());
    let backend = Arc::new(LocalBackend::new(
        bin,
        dir.path().join("logs"),
        config.api_host.clone(),
        Duration::from_secs(30),
    ));
    let cp = whisk_controlplane::start_with_backend(config, backend.clone())
        .await
        .unwrap();
    let stems = || {
        cp.plane()
            .container_ids()
            .iter()
            .filter(|(_, s, _)| *s == State::Stem)
            .count()
    };
    wait_for("a nodejs stem cell", Duration::from_secs(30), || {
        stems() == 1
    })
    .await;
    let stem_id = cp
        .plane()
        .container_ids()
        .into_iter()
        .find(|(_, s, _)| *s == State::Stem)
        .unwrap()
        .0;

    let guest = Api::new(&cp, Some("guest"));
    let code = "function main(params) { console.log('hello from the action'); return { greeting: 'hello ' + params.name }; }";
    let (s, created) = guest
        .put(
            "/api/v1/namespaces/_/actions/hello",
            json!({ "exec": { "kind": "nodejs:default", "code": code }, "parameters": [{ "key": "name", "value": "stranger" }] }),
        )
        .await;
    assert_eq!(s, 200, "{created}");
    let revision = cp.plane().hub.action("guest/hello").unwrap().revision;

    let mut client = grpc(&cp).await;
    let outcome = client
        .cold_start(pb::ColdStartRequest {
            action_fqn: "guest/hello".into(),
            deadline_unix_ms: now_ms() + 30_000,
            router_id: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    let ep = match outcome {
        pb::cold_start_response::Outcome::Endpoint(e) => e,
        pb::cold_start_response::Outcome::Error(e) => panic!("cold start failed: {e:?}"),
    };
    assert_eq!(ep.container_id, stem_id, "initialised from the stem cell");
    assert_eq!(ep.action_revision, revision);

    // Invoke as the router would (Contract 2).
    let activation_id = format!("{:032x}", rand_id());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = http
        .post(format!(
            "http://{}/api/v1/namespaces/guest/actions/hello?blocking=true",
            ep.address
        ))
        .header("x-whisk-container-token", &ep.container_token)
        .header("content-type", "application/json")
        .header("x-whisk-activation-id", &activation_id)
        .header("x-whisk-transaction-id", "tid-e2e")
        .header("x-whisk-namespace", "guest")
        .header("x-whisk-subject", "guest")
        .header("x-whisk-action", "guest/hello")
        .header("x-whisk-action-revision", revision.to_string())
        .header("x-whisk-blocking", "true")
        .header("x-whisk-result", "false")
        .header("x-whisk-deadline", (now_ms() + 30_000).to_string())
        .header("x-whisk-received-at", now_ms().to_string())
        .body(r#"{"name":"world"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let record: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        record["response"]["result"],
        json!({ "greeting": "hello world" }),
        "{record}"
    );

    // The proxy reports the record; the API serves it.
    let path = format!("/api/v1/namespaces/_/activations/{activation_id}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let stored = loop {
        let (s, body) = guest.get(&path).await;
        if s == 200 {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "activation record never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        stored["response"]["result"],
        json!({ "greeting": "hello world" })
    );
    assert!(stored["response"].get("statusCode").is_none());
    // The container token is in no record and no log (the proxy's, under logs/).
    assert!(!stored.to_string().contains(&ep.container_token));
    for entry in std::fs::read_dir(dir.path().join("logs")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            !text.contains(&ep.container_token),
            "the token is in {}",
            path.display()
        );
    }

    // The stem pool is refilled; a proxy that exits on its own is detected and removed.
    wait_for("the stem pool to refill", Duration::from_secs(30), || {
        stems() == 1
    })
    .await;
    assert!(
        dir.path()
            .join("logs")
            .join(format!("{}.log", ep.container_id))
            .exists()
    );
    let pids_before = backend.pids();
    assert_eq!(pids_before.len(), 2);
    let me = std::process::id();
    let tree = descendants(me);
    assert!(
        tree.len() >= 2,
        "proxies (and their runtimes) are our descendants: {tree:?}"
    );
    let victim = backend
        .pid_of(&ep.container_id)
        .expect("pid of the warm container");
    // SAFETY: SIGKILL to a child process this test's control plane started.
    unsafe {
        libc::kill(victim as libc::pid_t, libc::SIGKILL);
    }
    wait_for(
        "the dead proxy's endpoint to be removed",
        Duration::from_secs(10),
        || cp.plane().hub.endpoint(&ep.container_id).is_none(),
    )
    .await;

    // Shutdown leaves nothing behind.
    let tree = descendants(me);
    cp.shutdown().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<u32> = tree.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "processes left after shutdown: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rand_id() -> u128 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    t ^ ((std::process::id() as u128) << 64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_kills_every_proxy() {
    let bin = proxy_bin();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.prewarm = vec![("nodejs:20".into(), 2)];
    config.proxy_bin = Some(bin);
    let cp = whisk_controlplane::start(config).await.unwrap();
    wait_for("two stem cells", Duration::from_secs(30), || {
        cp.plane()
            .container_ids()
            .iter()
            .filter(|(_, s, _)| *s == State::Stem)
            .count()
            == 2
    })
    .await;
    let tree = descendants(std::process::id());
    assert!(tree.len() >= 2, "{tree:?}");
    drop(cp);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<u32> = tree.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "processes left after drop: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisk_controlplane_binary_stops_its_proxies_on_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let bin = proxy_bin();
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_whisk"))
        .arg("controlplane")
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--proxy-bin")
        .arg(&bin)
        .arg("--prewarm")
        .arg("nodejs:20=1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut http = None;
    while let Some(line) = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
    {
        if let Some(addr) = line.strip_prefix("WHISK_CONTROLPLANE_HTTP ") {
            http = Some(addr.to_string());
            break;
        }
    }
    let http = http.expect("the binary prints its HTTP address");
    let (s, info) = {
        let r = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://{http}/api/v1"))
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().await.unwrap(),
        )
    };
    assert_eq!(
        (s, info["description"].as_str()),
        (200, Some("OpenWhisk API"))
    );
    wait_for(
        "a stem-cell proxy under the control plane",
        Duration::from_secs(30),
        || {
            descendants(pid).iter().any(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains("whisk-container-proxy"))
            })
        },
    )
    .await;
    let tree = descendants(pid);
    // SAFETY: SIGTERM to the child this test started.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<u32> = tree.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "processes left after SIGTERM: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn invoke(
    ep: &pb::Endpoint,
    fqn: &str,
    revision: u64,
    body: &str,
) -> (u16, serde_json::Value) {
    let address = &ep.address;
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!(
            "http://{address}/api/v1/namespaces/guest/actions/x?blocking=true"
        ))
        .header("x-whisk-container-token", &ep.container_token)
        .header("content-type", "application/json")
        .header("x-whisk-activation-id", format!("{:032x}", rand_id()))
        .header("x-whisk-transaction-id", "tid-e2e")
        .header("x-whisk-namespace", "guest")
        .header("x-whisk-subject", "guest")
        .header("x-whisk-action", fqn)
        .header("x-whisk-action-revision", revision.to_string())
        .header("x-whisk-blocking", "true")
        .header("x-whisk-result", "true")
        .header("x-whisk-deadline", (now_ms() + 30_000).to_string())
        .header("x-whisk-received-at", now_ms().to_string())
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_python_start_and_real_init_failure() {
    let bin = proxy_bin();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.proxy_bin = Some(bin);
    let cp = whisk_controlplane::start(config).await.unwrap();
    let guest = Api::new(&cp, Some("guest"));
    let mut client = grpc(&cp).await;

    // No stem cell: a fresh proxy is started for a python action.
    let code = "def main(args):\n    return {'sum': args.get('a', 0) + args.get('b', 0)}\n";
    let (s, body) = guest
        .put(
            "/api/v1/namespaces/_/actions/add",
            json!({ "exec": { "kind": "python:default", "code": code } }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let revision = cp.plane().hub.action("guest/add").unwrap().revision;
    let outcome = client
        .cold_start(pb::ColdStartRequest {
            action_fqn: "guest/add".into(),
            deadline_unix_ms: now_ms() + 30_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    let ep = match outcome {
        pb::cold_start_response::Outcome::Endpoint(e) => e,
        pb::cold_start_response::Outcome::Error(e) => panic!("cold start failed: {e:?}"),
    };
    let (status, result) = invoke(&ep, "guest/add", revision, r#"{"a":2,"b":3}"#).await;
    assert_eq!((status, result), (200, json!({ "sum": 5 })));

    // Code that does not initialise: CODE_INIT_FAILED with the proxy's developer-error text and
    // what the code printed before it failed, and the container is gone.
    let broken = r#"console.log("booting"); eval("function main( {");"#;
    guest
        .put(
            "/api/v1/namespaces/_/actions/broken",
            json!({ "exec": { "kind": "nodejs:20", "code": broken } }),
        )
        .await;
    let before = cp.plane().container_ids().len();
    let outcome = client
        .cold_start(pb::ColdStartRequest {
            action_fqn: "guest/broken".into(),
            deadline_unix_ms: now_ms() + 30_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    match outcome {
        pb::cold_start_response::Outcome::Error(e) => {
            assert_eq!(
                e.code,
                pb::cold_start_error::Code::InitFailed as i32,
                "{e:?}"
            );
            assert!(
                e.message
                    .starts_with("Initialization has failed due to: SyntaxError"),
                "{e:?}"
            );
            assert!(
                e.logs.iter().any(|l| l.ends_with("stdout: booting")),
                "{e:?}"
            );
        }
        other => panic!("expected an init failure, got {other:?}"),
    }
    assert_eq!(cp.plane().container_ids().len(), before);
    cp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_local_proxy_spools_under_the_data_dir() {
    let bin = proxy_bin();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.prewarm = vec![("nodejs:20".into(), 1)];
    config.proxy_bin = Some(bin);
    let cp = whisk_controlplane::start(config).await.unwrap();
    wait_for("a stem cell", Duration::from_secs(30), || {
        cp.plane()
            .container_ids()
            .iter()
            .any(|(_, s, _)| *s == State::Stem)
    })
    .await;
    let (stem_id, _, _) = cp
        .plane()
        .container_ids()
        .into_iter()
        .find(|(_, s, _)| *s == State::Stem)
        .unwrap();
    let spool = dir.path().join("spool").join(&stem_id);
    assert!(spool.join("reports.spool").is_file(), "{}", spool.display());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&spool).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the spool directory is owner-only");
    cp.shutdown().await;
}

/// Starts a `sleep 1000` detached from the action (its own session) and one that left the tree
/// (its parent shell exited: a double fork); answers both pids.
const DETACHING: &str = r#"
const { spawn, execSync } = require('child_process');
function main() {
  const detached = spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' });
  detached.unref();
  const orphan = parseInt(execSync('setsid sleep 1000 >/dev/null 2>&1 & echo $!').toString());
  return { detached: detached.pid, orphan };
}"#;

/// The temporary directories (launchers, code) a proxy with pid `pid` made.
fn temp_dirs_of(pid: u32) -> Vec<std::path::PathBuf> {
    let mark = format!("-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.starts_with("whisk-") && name.contains(&mark)
        })
        .map(|e| e.path())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_proxys_detached_children_and_temp_dirs_are_removed() {
    let bin = proxy_bin();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.proxy_bin = Some(bin.clone());
    let backend = Arc::new(LocalBackend::new(
        bin,
        dir.path().join("logs"),
        config.api_host.clone(),
        Duration::from_secs(30),
    ));
    let cp = whisk_controlplane::start_with_backend(config, backend.clone())
        .await
        .unwrap();
    let guest = Api::new(&cp, Some("guest"));
    let (s, created) = guest
        .put(
            "/api/v1/namespaces/_/actions/detach",
            nodejs_action(DETACHING),
        )
        .await;
    assert_eq!(s, 200, "{created}");
    let revision = cp.plane().hub.action("guest/detach").unwrap().revision;
    let ep = whisk_controlplane::coldstart::cold_start(cp.plane(), "guest/detach", "", None)
        .await
        .unwrap();
    let endpoint = pb::Endpoint {
        container_id: ep.container_id.clone(),
        address: ep.address.clone(),
        container_token: ep.token.expose().to_string(),
        ..Default::default()
    };
    let (status, result) = invoke(&endpoint, "guest/detach", revision, "{}").await;
    assert_eq!(status, 200, "{result}");
    let pid = |k: &str| result[k].as_u64().unwrap() as u32;
    let (detached, orphan) = (pid("detached"), pid("orphan"));
    assert!(alive(detached) && alive(orphan));
    let proxy = backend.pid_of(&ep.container_id).expect("the proxy's pid");
    assert_eq!(temp_dirs_of(proxy).len(), 2, "launchers and code");

    // SAFETY: SIGKILL to a child process this test's control plane started.
    unsafe {
        libc::kill(proxy as libc::pid_t, libc::SIGKILL);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = (alive(detached), alive(orphan), temp_dirs_of(proxy));
        if !left.0 && !left.1 && left.2.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left after the proxy was killed (detached, double-forked, dirs): {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cp.shutdown().await;
}
