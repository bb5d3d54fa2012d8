//! OpenWhisk compatibility details the official clients trip on (issue 16), through the
//! management API over real sockets: zip code sent without `binary`.

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
