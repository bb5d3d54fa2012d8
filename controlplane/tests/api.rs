//! The management API against OpenWhisk's codes, bodies and texts, over real sockets.

mod common;

use common::*;
use serde_json::{Value, json};
use whisk_proto::controlplane::v1::ReportActivationRequest;

fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v["annotations"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

const NO_CREDENTIALS: &str =
    "The resource requires authentication, which was not supplied with the request";

/// The management port believes credentials, never identity headers: anyone who reaches it
/// directly (without Envoy) is whoever their key proves, or nobody.
#[tokio::test]
async fn the_management_port_verifies_credentials_and_ignores_identity_headers() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let alice = Api::new(&cp, Some("alice"));
    let bob = Api::new(&cp, Some("bob"));
    let (s, v) = alice
        .put("/api/v1/namespaces/_/actions/secret", nodejs_action("code"))
        .await;
    assert_eq!(s, 200, "{v}");

    // Alice's action, asked for with identity headers claiming alice and the given credentials.
    let url = format!("{}/api/v1/namespaces/alice/actions/secret", cp.http_url());
    let forged = async |authorization: Option<String>| {
        let mut req = alice
            .client
            .get(&url)
            .header("x-request-id", "tid-123")
            .header("x-whisk-auth-namespace", "alice")
            .header("x-whisk-auth-uuid", test_identity("alice").0)
            .header("x-whisk-auth-subject", "alice");
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap())
    };

    // Forged headers alone: no credentials.
    assert_error(&forged(None).await, 401, NO_CREDENTIALS);
    // Forged headers with alice's uuid and a wrong key, or malformed credentials: invalid.
    let wrong = whisk_testkit::creds::basic(&test_identity("alice").0, &"x".repeat(64));
    for bad in [wrong, "Basic !!!".to_string()] {
        assert_error(
            &forged(Some(bad)).await,
            401,
            "The supplied authentication is invalid",
        );
    }
    // Forged headers with bob's valid key: bob, who may not read alice's action.
    assert_error(
        &forged(bob.authorization.clone()).await,
        403,
        "The supplied authentication is not authorized to access 'alice/secret'.",
    );
    assert_eq!(bob.get("/api/v1/namespaces").await, (200, json!(["bob"])));
    // Alice's own key: alice.
    let (s, v) = alice.get("/api/v1/namespaces/_/actions/secret").await;
    assert_eq!((s, v["namespace"].clone()), (200, json!("alice")), "{v}");
    // A deleted key stops working at once.
    cp.plane()
        .store
        .delete_identity(&test_identity("bob").0)
        .unwrap();
    assert_error(
        &bob.get("/api/v1/namespaces").await,
        401,
        "The supplied authentication is invalid",
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn info_namespaces_auth_and_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let anon = Api::new(&cp, None);
    let guest = Api::new(&cp, Some("guest"));

    let (s, info) = anon.get("/api/v1").await;
    assert_eq!(s, 200);
    assert_eq!(info["description"], "OpenWhisk API");
    assert_eq!(info["api_version_path"], "v1");

    assert_error(&anon.get("/api/v1/namespaces").await, 401, NO_CREDENTIALS);
    assert_error(
        &anon.get("/api/v1/namespaces/_/actions").await,
        401,
        NO_CREDENTIALS,
    );

    assert_eq!(
        guest.get("/api/v1/namespaces").await,
        (200, json!(["guest"]))
    );
    let (s, limits) = guest.get("/api/v1/namespaces/_/limits").await;
    assert_eq!(s, 200);
    assert_eq!(limits["invocationsPerMinute"], 60);
    assert_eq!(limits["concurrentInvocations"], 30);

    assert_error(
        &guest.get("/api/v1/nothing/here").await,
        404,
        "The requested resource does not exist.",
    );
    assert_error(
        &guest.get("/api/v1/namespaces/_/actions/missing").await,
        404,
        "The requested resource does not exist.",
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn action_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let path = "/api/v1/namespaces/_/actions/hello";

    // Create (the JS client's body).
    let body = json!({
        "exec": { "kind": "nodejs:default", "code": "function main(p) { return p; }" },
        "parameters": [{ "key": "name", "value": "world" }],
        "annotations": [{ "key": "web-export", "value": true }],
        "limits": { "timeout": 3000 },
    });
    let (s, created) = guest.put(path, body.clone()).await;
    assert_eq!(s, 200, "{created}");
    assert_eq!(created["namespace"], "guest");
    assert_eq!(created["name"], "hello");
    assert_eq!(created["version"], "0.0.1");
    assert_eq!(created["exec"]["kind"], "nodejs:20");
    assert_eq!(created["exec"]["binary"], false);
    assert_eq!(
        created["limits"],
        json!({ "timeout": 3000, "memory": 256, "logs": 10, "concurrency": 1 })
    );
    assert_eq!(created["publish"], false);
    assert!(created["updated"].as_i64().unwrap() > 0);
    assert_eq!(annotation(&created, "exec"), Some(&json!("nodejs:20")));
    assert_eq!(annotation(&created, "provide-api-key"), Some(&json!(false)));
    assert_eq!(annotation(&created, "web-export"), Some(&json!(true)));
    // Pushed to routers.
    let pushed = cp.plane().hub.action("guest/hello").expect("action pushed");
    assert_eq!(pushed.kind, "nodejs:20");
    assert_eq!(pushed.limits.unwrap().timeout_ms, 3000);
    assert_eq!(
        pushed
            .annotations
            .get("provide-api-key")
            .map(String::as_str),
        Some("false")
    );

    // Exists without overwrite.
    assert_error(
        &guest.put(path, body.clone()).await,
        409,
        "resource already exists",
    );

    // Get, with and without code.
    let (s, got) = guest.get(path).await;
    assert_eq!(s, 200);
    assert_eq!(got["exec"]["code"], "function main(p) { return p; }");
    assert_eq!(
        got["parameters"],
        json!([{ "key": "name", "value": "world" }])
    );
    let (_, nocode) = guest.get(&format!("{path}?code=false")).await;
    assert!(nocode["exec"].get("code").is_none());
    assert_eq!(nocode["exec"]["kind"], "nodejs:20");

    // Update: version bumps, revision increases, unspecified fields kept, limits merged.
    let before = cp.plane().hub.action("guest/hello").unwrap().revision;
    let (s, updated) = guest
        .put(
            &format!("{path}?overwrite=true"),
            json!({ "limits": { "memory": 512 } }),
        )
        .await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["version"], "0.0.2");
    assert_eq!(updated["limits"]["memory"], 512);
    assert_eq!(updated["limits"]["timeout"], 3000);
    assert_eq!(updated["exec"]["code"], "function main(p) { return p; }");
    assert_eq!(
        updated["parameters"],
        json!([{ "key": "name", "value": "world" }])
    );
    let after = cp.plane().hub.action("guest/hello").unwrap();
    assert!(after.revision > before);
    assert_eq!(after.version, "0.0.2");

    // List and count.
    guest
        .put(
            "/api/v1/namespaces/guest/actions/second",
            nodejs_action("x"),
        )
        .await;
    let (s, list) = guest.get("/api/v1/namespaces/_/actions").await;
    assert_eq!(s, 200);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(list[0].get("exec").is_some() && list[0]["exec"].get("code").is_none());
    assert_eq!(
        guest.get("/api/v1/namespaces/_/actions?count=true").await,
        (200, json!({ "actions": 2 }))
    );
    let (_, page) = guest
        .get("/api/v1/namespaces/_/actions?limit=1&skip=1")
        .await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_error(
        &guest.get("/api/v1/namespaces/_/actions?limit=201").await,
        400,
        "The query parameter 'limit' was malformed:\nThe value '201' is not in the range of 0 to 200 for actions.",
    );

    // Delete returns the action; then it is gone (and unpushed).
    let (s, deleted) = guest.delete(path).await;
    assert_eq!(s, 200);
    assert_eq!(deleted["name"], "hello");
    assert_eq!(deleted["version"], "0.0.2");
    assert_error(
        &guest.get(path).await,
        404,
        "The requested resource does not exist.",
    );
    assert_error(
        &guest.delete(path).await,
        404,
        "The requested resource does not exist.",
    );
    assert!(cp.plane().hub.action("guest/hello").is_none());
    cp.shutdown().await;
}

#[tokio::test]
async fn validation_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));

    assert_error(
        &guest
            .put("/api/v1/namespaces/_/actions/bad$name", nodejs_action("x"))
            .await,
        400,
        "The name of the entity contains illegal characters.",
    );
    assert_error(
        &guest
            .put("/api/v1/namespaces/_/actions/%20lead", nodejs_action("x"))
            .await,
        400,
        "The name of the entity contains illegal characters.",
    );
    let (s, body) = guest
        .raw(
            reqwest::Method::PUT,
            "/api/v1/namespaces/_/actions/a",
            "{not json",
        )
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("The request content was malformed")
    );
    assert_error(
        &guest.put("/api/v1/namespaces/_/actions/a", json!({})).await,
        400,
        "exec undefined",
    );
    let limits = |l: Value| json!({ "exec": { "kind": "nodejs:20", "code": "x" }, "limits": l });
    assert_error(
        &guest
            .put(
                "/api/v1/namespaces/_/actions/a",
                limits(json!({ "memory": 1024 })),
            )
            .await,
        400,
        "memory size 1024 MB exceeds allowed threshold of 512 MB",
    );
    assert_error(
        &guest
            .put(
                "/api/v1/namespaces/_/actions/a",
                limits(json!({ "timeout": 50 })),
            )
            .await,
        400,
        "duration 50 milliseconds below allowed threshold of 100 milliseconds",
    );
    assert_error(
        &guest
            .put(
                "/api/v1/namespaces/_/actions/a",
                limits(json!({ "concurrency": 5 })),
            )
            .await,
        400,
        "concurrency 5 exceeds allowed threshold of 1",
    );
    assert_error(
        &guest
            .put(
                "/api/v1/namespaces/_/actions/a",
                limits(json!({ "logs": 11 })),
            )
            .await,
        400,
        "log size 11 MB exceeds allowed threshold of 10 MB",
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn cross_namespace_is_forbidden_except_public_packages() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let alice = Api::new(&cp, Some("alice"));

    assert_eq!(
        alice
            .put("/api/v1/namespaces/_/actions/secret", nodejs_action("x"))
            .await
            .0,
        200
    );
    assert_error(
        &guest.get("/api/v1/namespaces/alice/actions/secret").await,
        403,
        "The supplied authentication is not authorized to access 'alice/secret'.",
    );
    assert_error(
        &guest
            .put("/api/v1/namespaces/alice/actions/x", nodejs_action("x"))
            .await,
        403,
        "The supplied authentication is not authorized to access 'alice/x'.",
    );
    assert_error(
        &guest.get("/api/v1/namespaces/alice/actions").await,
        403,
        "The supplied authentication is not authorized to access 'alice'.",
    );

    // A published package is readable by everyone; a private one is not.
    assert_eq!(
        alice
            .put(
                "/api/v1/namespaces/_/packages/pub",
                json!({ "publish": true })
            )
            .await
            .0,
        200
    );
    assert_eq!(
        alice
            .put("/api/v1/namespaces/_/packages/priv", json!({}))
            .await
            .0,
        200
    );
    assert_eq!(
        alice
            .put("/api/v1/namespaces/_/actions/pub/tool", nodejs_action("x"))
            .await
            .0,
        200
    );
    assert_eq!(
        alice
            .put("/api/v1/namespaces/_/actions/priv/tool", nodejs_action("x"))
            .await
            .0,
        200
    );
    let (s, pkg) = guest.get("/api/v1/namespaces/alice/packages/pub").await;
    assert_eq!(s, 200);
    assert_eq!(pkg["actions"][0]["name"], "tool");
    let (s, tool) = guest.get("/api/v1/namespaces/alice/actions/pub/tool").await;
    assert_eq!(s, 200);
    assert_eq!(tool["namespace"], "alice/pub");
    assert!(cp.plane().hub.action("alice/pub/tool").unwrap().public);
    assert!(!cp.plane().hub.action("alice/priv/tool").unwrap().public);
    assert_error(
        &guest.get("/api/v1/namespaces/alice/packages/priv").await,
        403,
        "The supplied authentication is not authorized to access 'alice/priv'.",
    );
    assert_error(
        &guest
            .get("/api/v1/namespaces/alice/actions/priv/tool")
            .await,
        403,
        "The supplied authentication is not authorized to access 'alice/priv'.",
    );
    let (_, listed) = guest.get("/api/v1/namespaces/alice/packages").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    cp.shutdown().await;
}

#[tokio::test]
async fn packages_and_bindings() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let pkgs = "/api/v1/namespaces/_/packages";

    let (s, p) = guest
        .put(
            &format!("{pkgs}/utils"),
            json!({ "parameters": [{ "key": "a", "value": 1 }] }),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["binding"], json!({}));
    assert_eq!(p["version"], "0.0.1");
    assert_error(
        &guest.put(&format!("{pkgs}/utils"), json!({})).await,
        409,
        "resource already exists",
    );
    let (_, p) = guest
        .put(
            &format!("{pkgs}/utils?overwrite=true"),
            json!({ "publish": true }),
        )
        .await;
    assert_eq!(p["version"], "0.0.2");
    assert_eq!(p["publish"], true);
    assert_eq!(p["parameters"], json!([{ "key": "a", "value": 1 }]));

    // Actions in a package; parameters inherited (package < action).
    let (s, a) = guest
        .put(
            "/api/v1/namespaces/_/actions/utils/echo",
            json!({ "exec": { "kind": "nodejs:20", "code": "x" }, "parameters": [{ "key": "b", "value": 2 }] }),
        )
        .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["namespace"], "guest/utils");
    let (_, a) = guest.get("/api/v1/namespaces/_/actions/utils/echo").await;
    assert_eq!(
        a["parameters"],
        json!([{ "key": "a", "value": 1 }, { "key": "b", "value": 2 }])
    );
    let (_, listed) = guest.get("/api/v1/namespaces/_/actions/utils/").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_error(
        &guest
            .put(
                "/api/v1/namespaces/_/actions/nopkg/echo",
                nodejs_action("x"),
            )
            .await,
        404,
        "The requested resource does not exist.",
    );

    // Bindings.
    assert_error(
        &guest
            .put(
                &format!("{pkgs}/b0"),
                json!({ "binding": { "namespace": "_", "name": "missing" } }),
            )
            .await,
        400,
        "Binding references a package that does not exist.",
    );
    let (s, b) = guest
        .put(
            &format!("{pkgs}/mybind"),
            json!({ "binding": { "namespace": "_", "name": "utils" }, "parameters": [{ "key": "a", "value": 9 }] }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["binding"],
        json!({ "namespace": "guest", "name": "utils" })
    );
    let (_, b) = guest.get(&format!("{pkgs}/mybind")).await;
    assert_eq!(b["parameters"], json!([{ "key": "a", "value": 9 }]));
    assert_eq!(b["actions"][0]["name"], "echo");
    let (s, via) = guest.get("/api/v1/namespaces/_/actions/mybind/echo").await;
    assert_eq!(s, 200);
    assert_eq!(
        via["parameters"],
        json!([{ "key": "a", "value": 9 }, { "key": "b", "value": 2 }])
    );
    assert_error(
        &guest
            .put(
                &format!("{pkgs}/b2"),
                json!({ "binding": { "namespace": "_", "name": "mybind" } }),
            )
            .await,
        400,
        "Cannot bind to another package binding.",
    );
    assert_error(
        &guest
            .put("/api/v1/namespaces/_/actions/mybind/x", nodejs_action("x"))
            .await,
        400,
        "Operation not permitted on package binding.",
    );
    assert_eq!(guest.put(&format!("{pkgs}/other"), json!({})).await.0, 200);
    assert_error(
        &guest
            .put(
                &format!("{pkgs}/utils?overwrite=true"),
                json!({ "binding": { "namespace": "_", "name": "other" } }),
            )
            .await,
        400,
        "Resource is a package and cannot be converted into a binding.",
    );

    // Delete: not while it holds actions.
    assert_error(
        &guest.delete(&format!("{pkgs}/utils")).await,
        409,
        "Package not empty (contains 1 entity). Set force param or delete package contents.",
    );
    assert_eq!(
        guest
            .delete("/api/v1/namespaces/_/actions/utils/echo")
            .await
            .0,
        200
    );
    let (s, d) = guest.delete(&format!("{pkgs}/utils")).await;
    assert_eq!(s, 200);
    assert_eq!(d["name"], "utils");
    assert_error(
        &guest.get(&format!("{pkgs}/utils")).await,
        404,
        "The requested resource does not exist.",
    );
    let (_, count) = guest.get(&format!("{pkgs}?count=true")).await;
    assert_eq!(count, json!({ "packages": 2 }));
    cp.shutdown().await;
}

#[tokio::test]
async fn sequences() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let seq = |c: Value| json!({ "exec": { "kind": "sequence", "components": c } });
    guest
        .put("/api/v1/namespaces/_/actions/a", nodejs_action("x"))
        .await;
    guest
        .put("/api/v1/namespaces/_/actions/b", nodejs_action("x"))
        .await;

    assert_error(
        &guest
            .put("/api/v1/namespaces/_/actions/s", seq(json!([])))
            .await,
        400,
        "No component specified for the sequence.",
    );
    assert_error(
        &guest
            .put(
                "/api/v1/namespaces/_/actions/s",
                seq(json!(["/_/a", "/_/nope"])),
            )
            .await,
        400,
        "Sequence component does not exist.",
    );
    assert_error(
        &guest
            .put("/api/v1/namespaces/_/actions/s", seq(json!(["/_/s"])))
            .await,
        400,
        "Sequence may not refer to itself.",
    );
    let too_many: Vec<String> = (0..51).map(|_| "/_/a".to_string()).collect();
    assert_error(
        &guest
            .put("/api/v1/namespaces/_/actions/s", seq(json!(too_many)))
            .await,
        400,
        "Too many actions in the sequence.",
    );

    let (s, created) = guest
        .put(
            "/api/v1/namespaces/_/actions/s",
            seq(json!(["/_/a", "/guest/b"])),
        )
        .await;
    assert_eq!(s, 200, "{created}");
    assert_eq!(
        created["exec"],
        json!({ "kind": "sequence", "components": ["/guest/a", "/guest/b"] })
    );
    assert_eq!(
        created["parameters"],
        json!([{ "key": "_actions", "value": ["/guest/a", "/guest/b"] }])
    );
    let pushed = cp.plane().hub.action("guest/s").unwrap();
    assert_eq!(pushed.kind, "sequence");
    assert_eq!(
        pushed.components,
        vec!["guest/a".to_string(), "guest/b".to_string()]
    );

    // A sequence of sequences: a cycle through the outer one is rejected on update.
    guest
        .put(
            "/api/v1/namespaces/_/actions/outer",
            seq(json!(["/_/s", "/_/a"])),
        )
        .await;
    assert_error(
        &guest
            .put(
                "/api/v1/namespaces/_/actions/s?overwrite=true",
                seq(json!(["/_/outer"])),
            )
            .await,
        400,
        "Sequence may not refer to itself.",
    );

    // Sequences are never cold-started.
    let err = whisk_controlplane::coldstart::cold_start(cp.plane(), "guest/s", "", None)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        whisk_controlplane::ColdStartError::UnknownAction(_)
    ));
    cp.shutdown().await;
}

#[tokio::test]
async fn activations_from_report_activation() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.activations_per_namespace = 3;
    let cp = start_fake(config, FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let mut client = grpc(&cp).await;

    let record = |i: u32, name: &str| {
        json!({
            "namespace": "guest", "name": name, "subject": "guest",
            "activationId": format!("{:032x}", i), "start": 1000 + i, "end": 1010 + i, "duration": 10,
            "response": { "statusCode": 0, "result": { "n": i } },
            "logs": [format!("2024-01-01T00:00:00Z stdout: line {i}")],
            "version": "0.0.1", "publish": false,
            "annotations": [{ "key": "path", "value": format!("guest/{name}") }, { "key": "kind", "value": "nodejs:20" }],
        })
    };
    for i in 1..=4 {
        let name = if i % 2 == 0 { "even" } else { "odd" };
        client
            .report_activation(ReportActivationRequest {
                // No container: a record the router produced.
                container_id: String::new(),
                activation_json: record(i, name).to_string(),
            })
            .await
            .unwrap();
    }

    let id = format!("{:032x}", 4);
    let (s, got) = guest
        .get(&format!("/api/v1/namespaces/_/activations/{id}"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        got["response"],
        json!({ "status": "success", "success": true, "result": { "n": 4 } })
    );
    assert_eq!(got["activationId"], id);
    let (_, result) = guest
        .get(&format!("/api/v1/namespaces/_/activations/{id}/result"))
        .await;
    assert_eq!(result["result"], json!({ "n": 4 }));
    assert!(result.get("statusCode").is_none());
    let (_, logs) = guest
        .get(&format!("/api/v1/namespaces/_/activations/{id}/logs"))
        .await;
    assert_eq!(
        logs,
        json!({ "logs": ["2024-01-01T00:00:00Z stdout: line 4"] })
    );

    // Retention 3: the oldest is gone. Newest first.
    assert_error(
        &guest
            .get(&format!("/api/v1/namespaces/_/activations/{:032x}", 1))
            .await,
        404,
        "The requested resource does not exist.",
    );
    let (_, list) = guest.get("/api/v1/namespaces/_/activations").await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["activationId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            format!("{:032x}", 4),
            format!("{:032x}", 3),
            format!("{:032x}", 2)
        ]
    );
    assert!(list[0].get("response").is_none());
    let (_, docs) = guest
        .get("/api/v1/namespaces/_/activations?docs=true&limit=1")
        .await;
    assert_eq!(docs[0]["response"]["status"], "success");
    let (_, named) = guest.get("/api/v1/namespaces/_/activations?name=odd").await;
    assert_eq!(named.as_array().unwrap().len(), 1);
    assert_eq!(
        guest
            .get("/api/v1/namespaces/_/activations?count=true")
            .await
            .1,
        json!({ "activations": 3 })
    );

    assert_error(
        &guest.get("/api/v1/namespaces/_/activations/abc").await,
        400,
        "Activation id length is 3 B but must be 32 B.",
    );
    assert_error(
        &guest
            .get(&format!(
                "/api/v1/namespaces/_/activations/{}",
                "z".repeat(32)
            ))
            .await,
        400,
        "The activation id is not valid.",
    );
    assert_error(
        &guest.get("/api/v1/namespaces/alice/activations").await,
        403,
        "The supplied authentication is not authorized to access 'alice'.",
    );
    cp.shutdown().await;
}

/// The preamble every handler shares (caller, namespace name, `_`, ownership), in one order:
/// 401 before 400 before 403, and 403 naming what was asked for.
#[tokio::test]
async fn the_handler_preamble_answers_in_one_order() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let anon = Api::new(&cp, None);
    let guest = Api::new(&cp, Some("guest"));
    const ILLEGAL: &str = "The namespace contains illegal characters.";

    assert_error(
        &anon.get("/api/v1/namespaces/%20a/actions").await,
        401,
        NO_CREDENTIALS,
    );
    for path in [
        "/api/v1/namespaces/%20a/actions",
        "/api/v1/namespaces/%20a/actions/x",
        "/api/v1/namespaces/%20a/packages",
        "/api/v1/namespaces/%20a/packages/p",
        "/api/v1/namespaces/%20a/activations",
        "/api/v1/namespaces/%20a/limits",
    ] {
        assert_error(&guest.get(path).await, 400, ILLEGAL);
    }
    for path in [
        "/api/v1/namespaces/alice/activations",
        "/api/v1/namespaces/alice/limits",
    ] {
        assert_error(
            &guest.get(path).await,
            403,
            "The supplied authentication is not authorized to access 'alice'.",
        );
    }
    assert_error(
        &guest
            .get(&format!(
                "/api/v1/namespaces/alice/activations/{}",
                "a".repeat(32)
            ))
            .await,
        403,
        "The supplied authentication is not authorized to access 'alice'.",
    );
    // Ownership is checked before the reserved package name.
    assert_error(
        &guest
            .put("/api/v1/namespaces/alice/packages/default", json!({}))
            .await,
        403,
        "The supplied authentication is not authorized to access 'alice/default'.",
    );
    assert_error(
        &guest.delete("/api/v1/namespaces/alice/actions/p/a").await,
        403,
        "The supplied authentication is not authorized to access 'alice/p/a'.",
    );
    // Anyone may list another namespace's (published) packages; `_` is the caller's own.
    assert_eq!(
        guest.get("/api/v1/namespaces/alice/packages").await,
        (200, json!([]))
    );
    assert_eq!(
        guest
            .get("/api/v1/namespaces/_/activations?count=true")
            .await,
        (200, json!({ "activations": 0 }))
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn a_client_chosen_version_saturates_instead_of_overflowing() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let api = Api::new(&cp, Some("guest"));
    let top = "0.0.18446744073709551615";
    let mut action = nodejs_action("code");
    action["version"] = json!(top);
    let (s, a) = api.put("/api/v1/namespaces/_/actions/v", action).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["version"], top);
    let (s, a) = api
        .put(
            "/api/v1/namespaces/_/actions/v?overwrite=true",
            nodejs_action("code-2"),
        )
        .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["version"], top);
    cp.shutdown().await;
}

/// Sends `head` and then `body` on a fresh connection; returns the status and JSON body.
async fn raw_http(
    cp: &whisk_controlplane::ControlPlaneHandle,
    head: &str,
    body: &[u8],
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(cp.http_addr())
        .await
        .unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    // The answer is small and the server closes the connection after it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        assert!(std::time::Instant::now() < deadline, "no answer in time");
        let n = tokio::time::timeout(std::time::Duration::from_secs(20), s.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if let Some((headers, body)) = text.split_once("\r\n\r\n")
            && let Some(len) = headers.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_string)
            })
            && body.len() >= len.trim().parse::<usize>().unwrap()
        {
            break;
        }
    }
    let text = String::from_utf8_lossy(&out).to_string();
    let status: u16 = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_string())),
    )
}

#[tokio::test]
async fn management_bodies_up_to_48_mb_are_accepted_larger_get_413() {
    const MAX: usize = 48 * 1024 * 1024;
    assert_eq!(whisk_controlplane::api::MAX_BODY_BYTES, MAX);
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let auth = format!(
        "authorization: {}\r\nx-request-id: tid-123\r\n",
        Api::new(&cp, Some("guest")).authorization.unwrap()
    );

    // Exactly the limit: accepted.
    let envelope = r#"{"exec":{"kind":"nodejs:20","code":""}}"#;
    let code = "x".repeat(MAX - envelope.len());
    let body = format!(r#"{{"exec":{{"kind":"nodejs:20","code":"{code}"}}}}"#);
    assert_eq!(body.len(), MAX);
    let (s, v) = Api::new(&cp, Some("guest"))
        .raw_owned(
            reqwest::Method::PUT,
            "/api/v1/namespaces/_/actions/big",
            body,
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // One byte more, declared: 413 without reading it.
    let head = format!(
        "PUT /api/v1/namespaces/_/actions/bigger HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        MAX + 1
    );
    let got = raw_http(&cp, &head, b"").await;
    assert_error(
        &got,
        413,
        &format!("Request larger than allowed: {} > {MAX} bytes.", MAX + 1),
    );

    // One byte more, chunked (no declared length): 413 too.
    let head = format!(
        "PUT /api/v1/namespaces/_/actions/chunked HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
        MAX + 1
    );
    let got = raw_http(&cp, &head, &vec![b' '; MAX + 1]).await;
    assert_error(
        &got,
        413,
        &format!("Request larger than allowed: {} > {MAX} bytes.", MAX + 1),
    );
    let (s, _) = Api::new(&cp, Some("guest"))
        .get("/api/v1/namespaces/_/actions/chunked")
        .await;
    assert_eq!(s, 404, "nothing was created");
    cp.shutdown().await;
}

/// The system's default limits have one source, the control plane's configuration: its limits
/// endpoint reports them and every router gets them in its snapshot.
#[tokio::test]
async fn default_limits_come_from_the_configuration_and_reach_the_routers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.default_limits = whisk_controlplane::config::SystemLimits {
        invocations_per_minute: 7,
        concurrent_invocations: 3,
        max_payload_bytes: 4096,
    };
    let cp = start_fake(config, FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let (s, limits) = guest.get("/api/v1/namespaces/_/limits").await;
    assert_eq!(s, 200);
    assert_eq!(limits["invocationsPerMinute"], 7);
    assert_eq!(limits["concurrentInvocations"], 3);
    assert_eq!(limits["maxPayloadSize"], 4096);
    let pushed = cp
        .plane()
        .hub
        .snapshot()
        .default_limits
        .expect("in every snapshot");
    assert_eq!(pushed.invocations_per_minute, Some(7));
    assert_eq!(pushed.concurrent_invocations, Some(3));
    assert_eq!(pushed.max_payload_bytes, Some(4096));
}
