//! A restart loses nothing; `whisk admin` (the real binary) manages identities and limits; the
//! guest namespace is seeded on first start.

mod common;

use tokio::process::Command;

use common::*;
use serde_json::json;
use whisk_proto::controlplane::v1 as pb;

async fn whisk_admin(
    cp: &whisk_controlplane::ControlPlaneHandle,
    args: &[&str],
) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_whisk"))
        .arg("admin")
        .arg("--controlplane")
        .arg(cp.http_url())
        .args(args)
        .output()
        .await
        .expect("whisk runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn admin_cli_users_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;

    let (ok, out, err) = whisk_admin(&cp, &["user", "create", "alice"]).await;
    assert!(ok, "{err}");
    let (uuid, key) = out.split_once(':').expect("uuid:key");
    assert_eq!(key.len(), 64);
    let pushed = cp.plane().store.get_identity(uuid).unwrap().unwrap();
    assert_eq!(pushed.namespace, "alice");
    let snap = cp.plane().hub.snapshot();
    assert!(snap.namespaces_upsert.iter().any(|n| n.name == "alice"));
    assert!(
        snap.identities_upsert
            .iter()
            .any(|i| i.uuid == uuid && i.key_sha256.len() == 32)
    );

    let (ok, out, _) = whisk_admin(
        &cp,
        &[
            "user",
            "create",
            "bob",
            "--uuid",
            "u-1",
            "--key",
            "k".repeat(64).as_str(),
        ],
    )
    .await;
    assert!(ok);
    assert_eq!(out, format!("u-1:{}", "k".repeat(64)));
    let (ok, _, err) = whisk_admin(&cp, &["user", "create", "bob", "--uuid", "u-1"]).await;
    assert!(!ok && err.contains("409"), "{err}");
    assert_eq!(
        whisk_admin(&cp, &["user", "get", "u-1"]).await.1,
        format!("u-1:{}", "k".repeat(64))
    );

    let (ok, _, err) = whisk_admin(
        &cp,
        &[
            "limits",
            "set",
            "bob",
            "--invocations-per-minute",
            "7",
            "--concurrent-invocations",
            "3",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let ns = cp
        .plane()
        .hub
        .snapshot()
        .namespaces_upsert
        .into_iter()
        .find(|n| n.name == "bob")
        .unwrap();
    assert_eq!(
        ns.limits,
        Some(pb::NamespaceLimits {
            invocations_per_minute: Some(7),
            concurrent_invocations: Some(3),
            max_payload_bytes: None
        })
    );
    let (_, limits) = Api::new(&cp, Some("bob"))
        .get("/api/v1/namespaces/_/limits")
        .await;
    assert_eq!(limits["invocationsPerMinute"], 7);
    assert_eq!(limits["concurrentInvocations"], 3);

    let (ok, _, err) = whisk_admin(&cp, &["user", "delete", "u-1"]).await;
    assert!(ok, "{err}");
    assert!(cp.plane().store.get_identity("u-1").unwrap().is_none());
    assert!(
        !cp.plane()
            .hub
            .snapshot()
            .identities_upsert
            .iter()
            .any(|i| i.uuid == "u-1")
    );
    let (ok, _, _) = whisk_admin(&cp, &["user", "delete", "u-1"]).await;
    assert!(!ok);
    cp.shutdown().await;
}

#[tokio::test]
async fn restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    guest
        .put(
            "/api/v1/namespaces/_/packages/p",
            json!({ "publish": true }),
        )
        .await;
    guest
        .put("/api/v1/namespaces/_/actions/p/a", nodejs_action("code-a"))
        .await;
    let (_, a2) = guest
        .put(
            "/api/v1/namespaces/_/actions/p/a?overwrite=true",
            nodejs_action("code-b"),
        )
        .await;
    assert_eq!(a2["version"], "0.0.2");
    let revision = cp.plane().hub.action("guest/p/a").unwrap().revision;
    let mut client = grpc(&cp).await;
    let record = json!({
        "namespace": "guest", "name": "a", "activationId": "0123456789abcdef0123456789abcdef",
        "start": 5, "end": 6, "response": { "statusCode": 1, "result": { "error": "boom" } }, "logs": [],
    });
    client
        .report_activation(pb::ReportActivationRequest {
            container_id: "x".into(),
            activation_json: record.to_string(),
        })
        .await
        .unwrap();
    let (ok, _, err) = {
        let out = Command::new(env!("CARGO_BIN_EXE_whisk"))
            .args([
                "admin",
                "--controlplane",
                &cp.http_url(),
                "user",
                "create",
                "carol",
                "--uuid",
                "c-1",
            ])
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            (),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert!(ok, "{err}");
    drop(client);
    cp.shutdown().await;

    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let (s, a) = guest.get("/api/v1/namespaces/_/actions/p/a").await;
    assert_eq!(s, 200);
    assert_eq!(a["exec"]["code"], "code-b");
    assert_eq!(a["version"], "0.0.2");
    let pushed = cp
        .plane()
        .hub
        .action("guest/p/a")
        .expect("pushed after restart");
    assert_eq!(pushed.revision, revision);
    assert!(pushed.public);
    let (s, act) = guest
        .get("/api/v1/namespaces/_/activations/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(s, 200);
    assert_eq!(act["response"]["status"], "application error");
    assert!(cp.plane().store.get_identity("c-1").unwrap().is_some());
    assert!(
        cp.plane()
            .store
            .get_identity("23bc46b1-71f6-4ed5-8c54-816aa4f8c502")
            .unwrap()
            .is_some()
    );
    // Revisions keep increasing across restarts.
    guest
        .put(
            "/api/v1/namespaces/_/actions/p/a?overwrite=true",
            nodejs_action("code-c"),
        )
        .await;
    let after = cp.plane().hub.action("guest/p/a").unwrap();
    assert!(after.revision > revision);
    assert_eq!(after.version, "0.0.3");
    cp.shutdown().await;
}
