//! The routers' credential on the control plane's gRPC port, over real gRPC: every router call
//! (`Subscribe`, `ColdStart`, `Acknowledge`, `ReportTraffic`) is refused `UNAUTHENTICATED`
//! without the router token or with a wrong one, and works with it; the token file is
//! owner-only and the same after a restart.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use tonic::Code;
use whisk_proto::controlplane::v1 as pb;

/// The four router calls' status codes, made with `client`.
async fn router_calls(client: &mut Grpc) -> Vec<Code> {
    let code = |r: Result<(), tonic::Status>| r.map_or_else(|s| s.code(), |()| Code::Ok);
    let subscribe = client
        .subscribe(pb::SubscribeRequest {
            router_id: "r".into(),
        })
        .await
        .map(|_| ());
    let cold_start = client
        .cold_start(pb::ColdStartRequest {
            action_fqn: "guest/none".into(),
            deadline_unix_ms: 0,
            router_id: "r".into(),
            invoking_namespace: "guest".into(),
        })
        .await
        .map(|_| ());
    let acknowledge = client
        .acknowledge(pb::AcknowledgeRequest {
            router_id: "r".into(),
            revision: 1,
        })
        .await
        .map(|_| ());
    let traffic = client
        .report_traffic(pb::ReportTrafficRequest {
            container_id: "c".into(),
        })
        .await
        .map(|_| ());
    vec![
        code(subscribe),
        code(cold_start),
        code(acknowledge),
        code(traffic),
    ]
}

#[tokio::test]
async fn router_calls_without_a_token_are_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let mut client = grpc_at(cp.grpc_url(), RouterToken::none()).await;
    assert_eq!(router_calls(&mut client).await, [Code::Unauthenticated; 4]);
}

#[tokio::test]
async fn router_calls_with_a_wrong_token_are_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let real = std::fs::read_to_string(cp.router_token_file()).unwrap();
    // Same length, last character changed: refused all the same.
    let mut wrong = real.trim().to_string();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(wrong.len() - 1.., last);
    for token in [wrong.as_str(), "short", ""] {
        let mut client = grpc_at(cp.grpc_url(), RouterToken::new(token)).await;
        assert_eq!(
            router_calls(&mut client).await,
            [Code::Unauthenticated; 4],
            "token {token:?}"
        );
    }
}

#[tokio::test]
async fn router_calls_with_the_token_work() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let mut client = grpc(&cp).await;
    assert_eq!(router_calls(&mut client).await, [Code::Ok; 4]);
    // And the subscription delivers its snapshot.
    let mut stream = client
        .subscribe(pb::SubscribeRequest {
            router_id: "r".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(next_update(&mut stream).await.snapshot);
}

#[tokio::test]
async fn the_token_file_is_owner_only_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let path = cp.router_token_file().to_path_buf();
    assert_eq!(path, dir.path().join("router-token"));
    let token = std::fs::read_to_string(&path).unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    cp.shutdown().await;

    // Loosened by someone: made owner-only again on start, and still the same token.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), token);
    assert_eq!(mode(&path), 0o600);
    let mut client = grpc_at(cp.grpc_url(), RouterToken::new(&token)).await;
    assert_eq!(router_calls(&mut client).await, [Code::Ok; 4]);
}

#[tokio::test]
async fn a_given_token_file_is_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    let file = secret.join("token");
    std::fs::write(&file, "given-router-token\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut config = test_config(&dir.path().join("data"));
    config.router_token_file = Some(file.clone());
    let cp = start_fake(config, FakeBackend::new(false)).await;
    assert_eq!(cp.router_token_file(), file);
    assert!(!dir.path().join("data/router-token").exists());
    let mut client = grpc_at(cp.grpc_url(), RouterToken::new("given-router-token")).await;
    assert_eq!(router_calls(&mut client).await, [Code::Ok; 4]);
}
