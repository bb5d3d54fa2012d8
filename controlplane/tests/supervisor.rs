//! `whisk up` heals: a part that dies is started again, however often it dies, until the user
//! stops the stack — the router, Envoy and the control plane alike. (It used to stop everything
//! for good after six deaths in a minute, and the control plane's death was the stack's.)

use std::time::{Duration, Instant};

mod common;

use common::whisk_up;

const GUEST: (&str, &str) = (
    whisk_controlplane::plane::GUEST_UUID,
    whisk_controlplane::plane::GUEST_KEY,
);

/// Pids of the live children of `parent` whose command name is `comm`.
fn children(parent: u32, comm: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces, so split at the last ')'.
            let Some((head, tail)) = stat.rsplit_once(')') else {
                return false;
            };
            let name = head.split_once('(').map(|(_, n)| n).unwrap_or_default();
            let mut fields = tail.split_whitespace();
            let state = fields.next().unwrap_or("Z");
            let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
            name == comm && ppid == Some(parent) && state != "Z"
        })
        .collect()
}

/// Waits until `whisk up` has a `comm` child other than `old` and the API answers an
/// authenticated call (through Envoy and the router's ext_authz); returns the new pid.
async fn healed(up: u32, comm: &str, old: u32, apihost: &str, http: &reqwest::Client) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "{comm} was not restarted");
        if let Some(&pid) = children(up, comm).iter().find(|&&p| p != old) {
            let ok = http
                .get(format!("{apihost}/api/v1/namespaces"))
                .basic_auth(GUEST.0, Some(GUEST.1))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return pid;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_killed_again_and_again_are_restarted_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let (mut up, apihost) = whisk_up(dir.path(), &["--prewarm", "nodejs:20=0"]).await;
    let up_pid = up.pid().expect("whisk up's pid");
    let http = reqwest::Client::new();
    let mut router = healed(up_pid, "whisk-router", 0, &apihost, &http).await;
    // More deaths in a minute than the old supervisor tolerated (six), router and Envoy alike.
    for _ in 0..8 {
        // SAFETY: kill(2) on a pid this test just read from /proc; no memory is involved.
        assert_eq!(unsafe { libc::kill(router as i32, libc::SIGKILL) }, 0);
        router = healed(up_pid, "whisk-router", router, &apihost, &http).await;
    }
    let envoy = healed(up_pid, "envoy", 0, &apihost, &http).await;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(envoy as i32, libc::SIGKILL) }, 0);
    healed(up_pid, "envoy", envoy, &apihost, &http).await;
    // The control plane is a process of its own: killed, it comes back on its addresses, and the
    // API (management through Envoy, authentication by the resubscribed router) answers again.
    let controlplane = healed(up_pid, "whisk", 0, &apihost, &http).await;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(controlplane as i32, libc::SIGKILL) }, 0);
    healed(up_pid, "whisk", controlplane, &apihost, &http).await;
    let r = http
        .get(format!("{apihost}/api/v1/namespaces/_/actions"))
        .basic_auth(GUEST.0, Some(GUEST.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the store survived the restart");
    assert!(
        up.process.try_wait().unwrap().is_none(),
        "whisk up is still running"
    );
    up.stop(Duration::from_secs(15)).await;
}
