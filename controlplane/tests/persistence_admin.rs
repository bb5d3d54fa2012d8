//! A restart loses nothing; `whisk admin` (the real binary) manages identities and limits; the
//! guest namespace is seeded on first start; a key is shown once, at creation, and is found
//! nowhere afterwards (store files, logs, admin and API answers); the admin API requires the
//! token the control plane keeps, owner-only, in its data directory.

mod common;

use sha2::Digest;
use tokio::process::Command;

use common::*;
use serde_json::json;
use whisk_proto::controlplane::v1 as pb;

const U1: &str = "0b0b0b0b-1111-4222-8333-000000000001";
const C1: &str = "0c0c0c0c-1111-4222-8333-000000000001";
const D1: &str = "0d0d0d0d-1111-4222-8333-000000000001";

async fn whisk_admin(
    cp: &whisk_controlplane::ControlPlaneHandle,
    args: &[&str],
) -> (bool, String, String) {
    // `whisk admin` finds the token by itself in the data directory.
    let out = Command::new(env!("CARGO_BIN_EXE_whisk"))
        .arg("admin")
        .arg("--controlplane")
        .arg(cp.http_url())
        .arg("--data-dir")
        .arg(&cp.plane().config.data_dir)
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
            U1,
            "--key",
            "k".repeat(64).as_str(),
        ],
    )
    .await;
    assert!(ok);
    assert_eq!(out, format!("{U1}:{}", "k".repeat(64)));
    let (ok, _, err) = whisk_admin(&cp, &["user", "create", "bob", "--uuid", U1]).await;
    assert!(!ok && err.contains("409"), "{err}");
    assert_eq!(
        whisk_admin(&cp, &["user", "get", U1]).await.1,
        format!("{U1} bob bob"),
        "the key is never shown again"
    );
    assert_eq!(
        whisk_admin(&cp, &["user", "list", "bob"]).await.1,
        format!("{U1} bob bob")
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

    let (ok, _, err) = whisk_admin(&cp, &["user", "delete", U1]).await;
    assert!(ok, "{err}");
    assert!(cp.plane().store.get_identity(U1).unwrap().is_none());
    assert!(
        !cp.plane()
            .hub
            .snapshot()
            .identities_upsert
            .iter()
            .any(|i| i.uuid == U1)
    );
    let (ok, _, _) = whisk_admin(&cp, &["user", "delete", U1]).await;
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
            container_id: String::new(),
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
                "--data-dir",
                cp.plane().config.data_dir.to_str().unwrap(),
                "user",
                "create",
                "carol",
                "--uuid",
                C1,
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
    assert!(cp.plane().store.get_identity(C1).unwrap().is_some());
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

/// Every byte sequence of `needle` in the files under `dir`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn keys_are_shown_once_and_stored_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let key = "Zq7secretKEYthatMustNeverLeak0123456789abcdefghijklmnopqrstuvwxy";
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let (ok, created, err) =
        whisk_admin(&cp, &["user", "create", "dana", "--uuid", D1, "--key", key]).await;
    assert!(ok, "{err}");
    assert_eq!(created, format!("{D1}:{key}"), "shown once, at creation");
    let (ok, random, err) = whisk_admin(&cp, &["user", "create", "dana"]).await;
    assert!(ok, "{err}");
    let (random_uuid, random_key) = random.split_once(':').unwrap();

    // The router gets the digest it matches Basic credentials against.
    let digest = sha2::Sha256::digest(key.as_bytes()).to_vec();
    assert!(
        cp.plane()
            .hub
            .snapshot()
            .identities_upsert
            .iter()
            .any(|i| i.uuid == D1 && i.key_sha256 == digest)
    );
    // The guest's well-known key is stored as a digest like any other.
    let guest = cp
        .plane()
        .store
        .get_identity(whisk_controlplane::plane::GUEST_UUID)
        .unwrap()
        .unwrap();
    assert_eq!(
        guest.key_sha256,
        hex::encode(sha2::Sha256::digest(
            whisk_controlplane::plane::GUEST_KEY.as_bytes()
        ))
    );

    // Use the namespace, then read back every answer that could carry a key.
    let dana = Api::new(&cp, Some("dana"));
    let mut answers = vec![
        dana.put("/api/v1/namespaces/_/actions/a", nodejs_action("code"))
            .await
            .1,
        dana.get("/api/v1/namespaces").await.1,
        dana.get("/api/v1/namespaces/_/actions").await.1,
        dana.get("/api/v1/namespaces/_/limits").await.1,
    ];
    let mut printed = String::new();
    for args in [
        &["user", "get", D1][..],
        &["user", "list", "dana"][..],
        &["user", "get", random_uuid][..],
        &["limits", "get", "dana"][..],
    ] {
        let (ok, out, err) = whisk_admin(&cp, args).await;
        assert!(ok, "{args:?}: {err}");
        printed.push_str(&out);
        printed.push_str(&err);
    }
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = admin_token(&cp);
    for path in [format!("users/{D1}"), "namespaces/dana/users".to_string()] {
        let v: serde_json::Value = http
            .get(format!("{}/_whisk/admin/{path}", cp.http_url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(v.to_string().contains(D1), "{v}");
        answers.push(v);
    }
    let (ok, out, err) = whisk_admin(&cp, &["user", "delete", D1]).await;
    assert!(ok, "{err}");
    printed.push_str(&out);
    for k in [key, random_key] {
        assert!(!printed.contains(k), "printed: {printed}");
        for a in &answers {
            assert!(!a.to_string().contains(k), "answer: {a}");
        }
    }
    cp.shutdown().await;
    for k in [key, random_key] {
        let found = files_containing(dir.path(), k.as_bytes());
        assert!(found.is_empty(), "the key is in {found:?}");
    }
}

fn admin_token(cp: &whisk_controlplane::ControlPlaneHandle) -> String {
    std::fs::read_to_string(cp.plane().config.resolved_admin_token_file())
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test]
async fn the_admin_api_requires_the_token_from_the_data_dir() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let file = dir.path().join("admin-token");
    assert_eq!(cp.plane().config.resolved_admin_token_file(), file);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "owner-only, got {mode:o}");
    let token = admin_token(&cp);
    assert_eq!(token.len(), 64);

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/_whisk/admin/namespaces/guest/limits", cp.http_url());
    let answer = |req: reqwest::RequestBuilder| async move {
        let resp = req.header("x-request-id", "tid-123").send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<serde_json::Value>().await.unwrap())
    };
    let none = answer(http.get(&url)).await;
    assert_error(
        &none,
        401,
        "The resource requires authentication, which was not supplied with the request",
    );
    assert!(none.1["code"].is_string(), "{}", none.1);
    let wrong = answer(http.get(&url).bearer_auth("0".repeat(64))).await;
    assert_error(&wrong, 401, "The supplied authentication is invalid");
    let basic = answer(http.get(&url).basic_auth(
        whisk_controlplane::plane::GUEST_UUID,
        Some(whisk_controlplane::plane::GUEST_KEY),
    ))
    .await;
    assert_error(&basic, 401, "The supplied authentication is invalid");
    let create = answer(
        http.post(format!("{}/_whisk/admin/users", cp.http_url()))
            .json(&json!({ "namespace": "mallory" })),
    )
    .await;
    assert_eq!(create.0, 401);
    assert!(cp.plane().store.get_namespace("mallory").unwrap().is_none());
    let valid = answer(http.get(&url).bearer_auth(&token)).await;
    assert_eq!(valid.0, 200, "{}", valid.1);

    // Without the data directory, `whisk admin` has no token and says where it looked.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_whisk"))
        .args(["admin", "--controlplane", &cp.http_url(), "--data-dir"])
        .arg(elsewhere.path())
        .args(["limits", "get", "guest"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no admin token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cp.shutdown().await;

    // The token survives a restart (so does a `whisk admin` pointed at the data directory), and a
    // token file someone opened up is made owner-only again.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    assert_eq!(admin_token(&cp), token);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "owner-only again, got {mode:o}");
    let (ok, out, err) = whisk_admin(&cp, &["limits", "get", "guest"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "{}");
    cp.shutdown().await;
}
