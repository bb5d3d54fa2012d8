//! OpenWhisk compatibility details the official clients trip on (issue 16), through the
//! management API over real sockets: zip code sent without `binary`, package listing and
//! deletion with OpenWhisk's codes and texts, kinds checked against the runtime manifest, and
//! writes to an action through a binding refused.

mod common;

use base64::Engine;
use common::*;
use serde_json::{Value, json};

/// A base64 zip as the JS client sends a Buffer (only the header matters to the control plane).
fn zip_b64() -> String {
    let mut bytes = b"PK\x03\x04\x14\x00\x00\x00\x00\x00".to_vec();
    bytes.extend_from_slice(b"index.js exports.main = () => ({});");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn binary_of(v: &Value) -> &Value {
    &v["exec"]["binary"]
}

#[tokio::test]
async fn zip_code_without_binary_is_stored_as_binary_on_create_and_update() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let path = "/api/v1/namespaces/_/actions/zipped";
    let zip = zip_b64();

    // Exactly the JS client's body for `actions.create({name, action: <Buffer>})`.
    let (s, created) = guest
        .put(
            path,
            json!({ "exec": { "kind": "nodejs:default", "code": zip }, "parameters": [] }),
        )
        .await;
    assert_eq!(s, 200, "{created}");
    assert_eq!(binary_of(&created), &json!(true));
    assert_eq!(created["exec"]["code"], zip);
    let (_, got) = guest.get(path).await;
    assert_eq!(binary_of(&got), &json!(true));
    let (_, list) = guest.get("/api/v1/namespaces/_/actions").await;
    assert_eq!(binary_of(&list[0]), &json!(true));

    // Update to source text: no longer binary; back to a zip: binary again.
    let (s, text) = guest
        .put(
            &format!("{path}?overwrite=true"),
            nodejs_action("function main() { return {}; }"),
        )
        .await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(binary_of(&text), &json!(false));
    let (_, back) = guest
        .put(
            &format!("{path}?overwrite=true"),
            json!({ "exec": { "kind": "python:3", "code": zip } }),
        )
        .await;
    assert_eq!(binary_of(&back), &json!(true));
    // An update without exec keeps the stored classification.
    let (_, kept) = guest
        .put(
            &format!("{path}?overwrite=true"),
            json!({ "limits": { "memory": 512 } }),
        )
        .await;
    assert_eq!(binary_of(&kept), &json!(true));

    // Base64-looking text that is not a zip stays text; `binary: true` is still honoured.
    let (_, b64text) = guest
        .put(
            "/api/v1/namespaces/_/actions/b64text",
            nodejs_action("abcd"),
        )
        .await;
    assert_eq!(binary_of(&b64text), &json!(false));
    let (_, explicit) = guest
        .put(
            "/api/v1/namespaces/_/actions/explicit",
            json!({ "exec": { "kind": "nodejs:20", "code": zip, "binary": true } }),
        )
        .await;
    assert_eq!(binary_of(&explicit), &json!(true));
    cp.shutdown().await;
}

#[tokio::test]
async fn package_lists_show_binding_false_and_force_deletes_contents() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let pkgs = "/api/v1/namespaces/_/packages";

    assert_eq!(guest.put(&format!("{pkgs}/tools"), json!({})).await.0, 200);
    let (s, b) = guest
        .put(
            &format!("{pkgs}/bound"),
            json!({ "binding": { "namespace": "_", "name": "tools" } }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, list) = guest.get(pkgs).await;
    let entry = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(entry("tools")["binding"], json!(false));
    assert_eq!(
        entry("bound")["binding"],
        json!({ "namespace": "guest", "name": "tools" })
    );
    // A single package still shows OpenWhisk's `{}`.
    assert_eq!(
        guest.get(&format!("{pkgs}/tools")).await.1["binding"],
        json!({})
    );

    for name in ["a", "b"] {
        let (s, a) = guest
            .put(
                &format!("/api/v1/namespaces/_/actions/tools/{name}"),
                nodejs_action("function main() { return {}; }"),
            )
            .await;
        assert_eq!(s, 200, "{a}");
    }
    assert!(cp.plane().hub.action("guest/tools/a").is_some());
    assert_error(
        &guest.delete(&format!("{pkgs}/tools")).await,
        409,
        "Package not empty (contains 2 entities). Set force param or delete package contents.",
    );
    assert_error(
        &guest.delete(&format!("{pkgs}/tools?force=false")).await,
        409,
        "Package not empty (contains 2 entities). Set force param or delete package contents.",
    );
    // A binding has no contents of its own: deleted without force.
    assert_eq!(guest.delete(&format!("{pkgs}/bound")).await.0, 200);

    let (s, deleted) = guest.delete(&format!("{pkgs}/tools?force=true")).await;
    assert_eq!(s, 200, "{deleted}");
    assert_eq!(deleted["name"], "tools");
    for path in [
        format!("{pkgs}/tools"),
        "/api/v1/namespaces/_/actions/tools/a".to_string(),
        "/api/v1/namespaces/_/actions/tools/b".to_string(),
    ] {
        assert_error(
            &guest.get(&path).await,
            404,
            "The requested resource does not exist.",
        );
    }
    assert!(cp.plane().hub.action("guest/tools/a").is_none());
    assert!(cp.plane().hub.action("guest/tools/b").is_none());
    // The name is free again, and empty.
    assert_eq!(guest.put(&format!("{pkgs}/tools"), json!({})).await.0, 200);
    let (_, listed) = guest.get("/api/v1/namespaces/_/actions/tools/").await;
    assert_eq!(listed, json!([]));
    cp.shutdown().await;
}

#[tokio::test]
async fn kinds_are_checked_against_the_runtime_manifest_at_create() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let anon = Api::new(&cp, None);
    let action = |kind: &str| json!({ "exec": { "kind": kind, "code": "function main() {}" } });

    // Defaults resolve.
    let (s, a) = guest
        .put("/api/v1/namespaces/_/actions/n", action("nodejs:default"))
        .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["exec"]["kind"], "nodejs:20");
    let (_, p) = guest
        .put("/api/v1/namespaces/_/actions/p", action("python:default"))
        .await;
    assert_eq!(p["exec"]["kind"], "python:3");

    // A kind nobody runs: OpenWhisk's malformed-request 400, on create and on update.
    let (s, body) = guest
        .put("/api/v1/namespaces/_/actions/g", action("go:1.17"))
        .await;
    assert_eq!(s, 400, "{body}");
    let text = body["error"].as_str().unwrap();
    assert!(
        text.starts_with("The request content was malformed:\nkind 'go:1.17' not in Set("),
        "{text}"
    );
    assert!(
        text.contains("nodejs:20") && text.contains("sequence"),
        "{text}"
    );
    assert_eq!(
        guest
            .put(
                "/api/v1/namespaces/_/actions/n?overwrite=true",
                action("go:1.17"),
            )
            .await
            .0,
        400
    );
    assert_error(
        &guest.get("/api/v1/namespaces/_/actions/g").await,
        404,
        "The requested resource does not exist.",
    );

    // A deprecated kind: OpenWhisk's runtime text.
    assert_error(
        &guest
            .put("/api/v1/namespaces/_/actions/old", action("nodejs:14"))
            .await,
        400,
        "The 'nodejs:14' runtime is no longer supported. You may read and delete but not update or invoke this action.",
    );

    // `GET /api/v1` lists the runtimes as OpenWhisk's info endpoint does.
    let (s, info) = anon.get("/api/v1").await;
    assert_eq!(s, 200);
    let nodejs = info["runtimes"]["nodejs"].as_array().unwrap();
    let node20 = nodejs.iter().find(|r| r["kind"] == "nodejs:20").unwrap();
    assert_eq!(node20["default"], true);
    assert_eq!(node20["deprecated"], false);
    for field in ["image", "attached", "requireMain"] {
        assert!(node20.get(field).is_some(), "{field}");
    }
    let python = info["runtimes"]["python"].as_array().unwrap();
    assert!(
        python
            .iter()
            .any(|r| r["kind"] == "python:3" && r["default"] == true)
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn an_action_of_a_deprecated_kind_can_be_read_and_deleted_not_updated() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let path = "/api/v1/namespaces/_/actions/legacy";
    assert_eq!(
        guest
            .put(path, nodejs_action("function main() { return {}; }"))
            .await
            .0,
        200
    );
    // As a store written before the manifest could hold it.
    let store = &cp.plane().store;
    let mut doc = store.get_action("guest/legacy").unwrap().unwrap();
    doc.exec.kind = "nodejs:14".into();
    store.put_action(&doc).unwrap();

    let (s, got) = guest.get(path).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["exec"]["kind"], "nodejs:14");
    assert_error(
        &guest
            .put(
                &format!("{path}?overwrite=true"),
                json!({ "limits": { "memory": 512 } }),
            )
            .await,
        400,
        "The 'nodejs:14' runtime is no longer supported. You may read and delete but not update or invoke this action.",
    );
    let (s, deleted) = guest.delete(path).await;
    assert_eq!(s, 200, "{deleted}");
    cp.shutdown().await;
}

/// A blackbox action's `image` is honoured where images run (the Kubernetes backend's pod takes
/// it as the runtime container: `backend::kubernetes` tests) and refused with a clear 400 where
/// they cannot (processes on this machine), except the skeleton image, whose code runs natively.
#[tokio::test]
async fn blackbox_images_are_refused_by_a_backend_that_runs_no_images() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let blackbox = |image: &str, code: Option<&str>| {
        let mut exec = json!({ "kind": "blackbox", "image": image });
        if let Some(c) = code {
            exec["code"] = json!(c);
        }
        json!({ "exec": exec })
    };

    let (s, body) = guest
        .put(
            "/api/v1/namespaces/_/actions/custom",
            blackbox("acme/thing:1", None),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(
        body["error"],
        "The image 'acme/thing:1' cannot be run: this stack's backend runs no container images. \
         Use the Kubernetes backend, or a native action (image 'openwhisk/dockerskeleton' with an \
         executable 'exec' as its code)."
    );
    assert_eq!(
        guest.get("/api/v1/namespaces/_/actions/custom").await.0,
        404,
        "nothing was stored"
    );
    // The skeleton needs code here.
    let (s, body) = guest
        .put(
            "/api/v1/namespaces/_/actions/native",
            blackbox("openwhisk/dockerskeleton", None),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("exec malformed: a 'openwhisk/dockerskeleton' action needs code"),
        "{body}"
    );
    // With code (any tag), it is a native action.
    let (s, body) = guest
        .put(
            "/api/v1/namespaces/_/actions/native",
            blackbox(
                "openwhisk/dockerskeleton:1.14.0",
                Some("#!/bin/sh\necho '{}'"),
            ),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["exec"]["image"], "openwhisk/dockerskeleton:1.14.0");
    cp.shutdown().await;
}

#[tokio::test]
async fn deleting_an_action_through_a_binding_is_refused_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    guest
        .put("/api/v1/namespaces/_/packages/real", json!({}))
        .await;
    let (s, b) = guest
        .put("/api/v1/namespaces/_/actions/real/act", nodejs_action("x"))
        .await;
    assert_eq!(s, 200, "{b}");
    guest
        .put(
            "/api/v1/namespaces/_/packages/alias",
            json!({ "binding": { "namespace": "_", "name": "real" } }),
        )
        .await;
    const TEXT: &str = "Operation not permitted on package binding.";
    assert_error(
        &guest.delete("/api/v1/namespaces/_/actions/alias/act").await,
        400,
        TEXT,
    );
    assert_error(
        &guest
            .put(
                "/api/v1/namespaces/_/actions/alias/act?overwrite=true",
                nodejs_action("y"),
            )
            .await,
        400,
        TEXT,
    );
    // The bound package's action is untouched, and still readable through the binding.
    let (s, got) = guest.get("/api/v1/namespaces/_/actions/alias/act").await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["exec"]["code"], "x");
    // A package that does not exist has no action to delete.
    assert_error(
        &guest
            .delete("/api/v1/namespaces/_/actions/nowhere/act")
            .await,
        404,
        "The requested resource does not exist.",
    );
    assert_eq!(
        guest
            .delete("/api/v1/namespaces/_/actions/real/act")
            .await
            .0,
        200
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn another_namespace_s_binding_is_unreadable_even_when_published() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let alice = Api::new(&cp, Some("alice"));
    guest
        .put(
            "/api/v1/namespaces/_/packages/lib",
            json!({ "publish": true }),
        )
        .await;
    guest
        .put("/api/v1/namespaces/_/actions/lib/f", nodejs_action("x"))
        .await;
    let (s, b) = guest
        .put(
            "/api/v1/namespaces/_/packages/libalias",
            json!({ "publish": true, "binding": { "namespace": "_", "name": "lib" } }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    // The published package itself is readable by anyone.
    assert_eq!(
        alice.get("/api/v1/namespaces/guest/packages/lib").await.0,
        200
    );
    for path in [
        "/api/v1/namespaces/guest/packages/libalias",
        "/api/v1/namespaces/guest/actions/libalias/f",
        "/api/v1/namespaces/guest/actions/libalias/",
    ] {
        assert_error(
            &alice.get(path).await,
            403,
            "The supplied authentication is not authorized to access 'guest/libalias'.",
        );
    }
    // Its owner reads it as before.
    assert_eq!(
        guest.get("/api/v1/namespaces/_/packages/libalias").await.0,
        200
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn binding_to_another_namespace_s_package_needs_it_published_and_reveals_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let alice = Api::new(&cp, Some("alice"));
    guest
        .put(
            "/api/v1/namespaces/_/packages/pub",
            json!({ "publish": true }),
        )
        .await;
    guest
        .put("/api/v1/namespaces/_/packages/priv", json!({}))
        .await;
    guest
        .put(
            "/api/v1/namespaces/_/packages/pubbind",
            json!({ "publish": true, "binding": { "namespace": "_", "name": "pub" } }),
        )
        .await;
    let bind = |target: &'static str| {
        let alice = &alice;
        async move {
            alice
                .put(
                    &format!("/api/v1/namespaces/_/packages/to{target}"),
                    json!({ "binding": { "namespace": "guest", "name": target } }),
                )
                .await
        }
    };
    // Missing, unpublished or a binding: the same 403, so nothing about guest's packages leaks.
    for target in ["missing", "priv", "pubbind"] {
        assert_error(
            &bind(target).await,
            403,
            &format!("The supplied authentication is not authorized to access 'guest/{target}'."),
        );
    }
    let (s, b) = bind("pub").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["binding"], json!({ "namespace": "guest", "name": "pub" }));
    cp.shutdown().await;
}
