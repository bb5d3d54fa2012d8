//! `whisk up` heals: a part that dies is started again, however often it dies, until the user
//! stops the stack — the router, Envoy and the control plane alike. (It used to stop everything
//! for good after six deaths in a minute, and the control plane's death was the stack's.)

use std::time::Duration;

mod common;

use common::{healed, whisk_up};

use common::GUEST;

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
