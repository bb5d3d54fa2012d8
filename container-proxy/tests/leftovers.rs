//! Nothing of a container outlives it: children an action detached from its process tree die
//! when the proxy stops, and the temporary directories the proxy made (launchers, the action's
//! code) are removed when it stops. After a proxy was killed (SIGKILL: no cleanup), the next
//! proxy to start kills what its actions left running and removes its directories.

mod common;

use std::path::Path;
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

fn wait_dead(pid: u32, what: &str) {
    let deadline = Instant::now() + WAIT;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} ({pid}) outlived its container"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Starts a `sleep 1000` detached from the action (`spawn(..., {detached: true}).unref()`: its
/// own session), and one that also left the tree (its parent shell exited: a double fork, adopted
/// by init). Answers both pids.
const DETACHING: &str = r#"
const { spawn, execSync } = require('child_process');
function main() {
  const detached = spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' });
  detached.unref();
  const orphan = parseInt(execSync('setsid sleep 1000 >/dev/null 2>&1 & echo $!').toString());
  return { detached: detached.pid, orphan };
}"#;

/// A temporary directory the proxies of a test write in, writable by isolated action users.
fn shared_tmp() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    tmp
}

fn whisk_dirs(tmp: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(tmp)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("whisk-launchers-") || n.starts_with("whisk-action-"))
        .collect();
    names.sort();
    names
}

async fn detaching_proxy(cp: &ControlPlaneStub, tmp: &Path) -> (ProxyProcess, u32, u32) {
    let proxy = ProxyProcess::spawn(
        &["--kind", "nodejs:20", "--controlplane", &cp.url()],
        &[("TMPDIR", tmp.to_str().unwrap())],
    );
    let (status, body) = proxy.init(action("detach", "nodejs:20", DETACHING)).await;
    assert_eq!(status, 200, "{body}");
    let reply = proxy
        .invoke(&Invoke::blocking("guest/detach"), json!({}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let result = &reply.body["response"]["result"];
    let pid = |k: &str| result[k].as_u64().unwrap() as u32;
    (proxy, pid("detached"), pid("orphan"))
}

#[tokio::test(flavor = "multi_thread")]
async fn detached_children_of_an_action_die_when_its_container_stops() {
    let cp = ControlPlaneStub::start().await;
    let tmp = shared_tmp();
    let (mut proxy, detached, orphan) = detaching_proxy(&cp, tmp.path()).await;
    assert!(alive(detached) && alive(orphan));
    assert!(proxy.signal_and_wait(libc::SIGTERM).success());
    wait_dead(detached, "a detached child");
    if root() {
        // Out of the tree, it is reached through the action's own user (only when the proxy
        // runs as root are actions a user of their own).
        wait_dead(orphan, "a double-forked child");
    } else {
        unsafe { libc::kill(orphan as i32, libc::SIGKILL) };
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn temp_dirs_are_removed_at_stop() {
    let cp = ControlPlaneStub::start().await;
    let tmp = shared_tmp();
    let (mut proxy, detached, orphan) = detaching_proxy(&cp, tmp.path()).await;
    let pid = proxy.pid();
    let made = whisk_dirs(tmp.path());
    assert_eq!(made.len(), 2, "launchers and code: {made:?}");
    assert!(
        made.iter().all(|n| n.contains(&format!("-{pid}-"))),
        "{made:?}"
    );
    assert!(proxy.signal_and_wait(libc::SIGTERM).success());
    assert_eq!(whisk_dirs(tmp.path()), Vec::<String>::new());
    for p in [detached, orphan] {
        unsafe { libc::kill(p as i32, libc::SIGKILL) };
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_killed_proxy_left_is_swept_by_the_next() {
    let cp = ControlPlaneStub::start().await;
    let tmp = shared_tmp();
    let (mut killed, detached, orphan) = detaching_proxy(&cp, tmp.path()).await;
    killed.signal_and_wait(libc::SIGKILL);
    // SIGKILL runs no destructor: the directories stay, and so do processes that left the tree.
    assert_eq!(whisk_dirs(tmp.path()).len(), 2);
    assert!(
        alive(detached) && alive(orphan),
        "still running after the kill"
    );
    let next = ProxyProcess::spawn(
        &["--kind", "nodejs:20", "--controlplane", &cp.url()],
        &[("TMPDIR", tmp.path().to_str().unwrap())],
    );
    let left = whisk_dirs(tmp.path());
    let own = format!("-{}-", next.pid());
    assert!(
        left.iter().all(|n| n.contains(&own)),
        "only the new proxy's directories are left: {left:?}"
    );
    // Its actions' processes, which worked in those directories, are gone too.
    wait_dead(detached, "a detached child of a killed proxy's action");
    wait_dead(orphan, "a double-forked child of a killed proxy's action");
}
