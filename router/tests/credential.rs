//! The router presents a token to the control plane (`--controlplane-token-file`): with the right
//! one it gets its tables; with a wrong one it gets none, says so in its log and keeps trying,
//! re-reading the file, so fixing (rotating) the file is enough to recover.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use whisk_proto::controlplane::v1 as pb;

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Setup {
    cp: FakeControlPlane,
    router: whisk_stack::child::Child,
    admin: std::net::SocketAddr,
    token_file: std::path::PathBuf,
    dir: tempfile::TempDir,
}

/// A fake control plane demanding [`TOKEN`], and a router presenting `presented`.
async fn setup(presented: &str) -> Setup {
    let cp = FakeControlPlane::new();
    cp.push(pb::TableUpdate {
        namespaces_upsert: vec![namespace("guest", 1000, 100)],
        identities_upsert: vec![identity(GUEST_UUID, "guest", GUEST_KEY)],
        ..Default::default()
    });
    cp.require_token(TOKEN);
    let url = cp.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("controlplane-token");
    std::fs::write(&token_file, format!("{presented}\n")).unwrap();
    let router = start_router(
        &url,
        "127.0.0.1:0",
        dir.path(),
        None,
        &[
            "--controlplane-token-file".to_owned(),
            token_file.display().to_string(),
        ],
    )
    .await;
    let (_, admin) = addresses(&router);
    Setup {
        cp,
        router,
        admin,
        token_file,
        dir,
    }
}

async fn tables(admin: std::net::SocketAddr) -> serde_json::Value {
    reqwest::get(format!("http://{admin}/tables"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn ready(admin: std::net::SocketAddr) -> bool {
    tables(admin).await["ready"] == true
}

fn log(s: &Setup) -> String {
    std::fs::read_to_string(s.dir.path().join("router.log")).unwrap_or_default()
}

#[tokio::test]
async fn a_router_with_the_right_token_gets_its_tables() {
    let s = setup(TOKEN).await;
    eventually(
        "the router holds its tables",
        Duration::from_secs(10),
        || ready(s.admin),
    )
    .await;
    let t = tables(s.admin).await;
    assert_eq!(t["identities"], 1, "{t}");
    assert_eq!(s.cp.refused.load(Ordering::SeqCst), 0);
    assert_eq!(s.cp.subscribes.load(Ordering::SeqCst), 1);
    drop(s.router);
}

#[tokio::test]
async fn a_router_with_a_wrong_token_gets_no_tables_and_logs_why() {
    let s = setup("not-the-token").await;
    // It keeps trying (with backoff) and says why it is refused.
    eventually("two refused attempts", Duration::from_secs(15), || async {
        s.cp.refused.load(Ordering::SeqCst) >= 2
    })
    .await;
    eventually("the refusal in the log", Duration::from_secs(5), || async {
        log(&s).contains("refused this router's credential")
    })
    .await;
    let t = tables(s.admin).await;
    assert_eq!(t["ready"], false, "{t}");
    assert_eq!(t["identities"], 0, "{t}");
    assert_eq!(s.cp.subscribes.load(Ordering::SeqCst), 0);
    assert!(!log(&s).contains(TOKEN), "the log never carries a token");
}

#[tokio::test]
async fn a_refused_router_recovers_once_its_token_file_is_fixed() {
    let s = setup("an-old-token").await;
    eventually("a refused attempt", Duration::from_secs(10), || async {
        s.cp.refused.load(Ordering::SeqCst) >= 1
    })
    .await;
    // A rotated Secret: the router reads the file again before it resubscribes.
    std::fs::write(&s.token_file, TOKEN).unwrap();
    eventually(
        "the router holds its tables",
        Duration::from_secs(15),
        || ready(s.admin),
    )
    .await;
}
