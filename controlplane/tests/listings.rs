//! Lists and their query parameters as the official clients send them (issue 16, item 6), against
//! OpenWhisk's controller over real sockets: who sees which packages (and what `?public=true`
//! changes: nothing), counts after `skip`, the namespace's action list with packaged actions,
//! Boolean parameters read as Akka reads them, and the activation `name` filter keyed as
//! OpenWhisk's view keys it.

mod common;

use common::*;
use serde_json::{Value, json};
use whisk_proto::controlplane::v1::ReportActivationRequest;

fn names(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn package_lists_show_the_owner_everything_and_others_published_packages_only() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let alice = Api::new(&cp, Some("alice"));
    let pkgs = "/api/v1/namespaces/_/packages";

    for (name, body) in [
        ("open", json!({ "publish": true })),
        ("closed", json!({})),
        // A published binding is still a binding: OpenWhisk's public view leaves it out.
        (
            "openbinding",
            json!({ "publish": true, "binding": { "namespace": "_", "name": "open" } }),
        ),
        (
            "binding",
            json!({ "binding": { "namespace": "_", "name": "closed" } }),
        ),
    ] {
        let (s, b) = guest.put(&format!("{pkgs}/{name}"), body).await;
        assert_eq!(s, 200, "{name}: {b}");
    }
    let (s, b) = alice.put(&format!("{pkgs}/hers"), json!({})).await;
    assert_eq!(s, 200, "{b}");

    let all = ["binding", "closed", "open", "openbinding"];
    // The owner sees everything, with or without `public` (which OpenWhisk reads nowhere).
    for query in ["", "?public=true", "?public=false"] {
        let (s, list) = guest.get(&format!("{pkgs}{query}")).await;
        assert_eq!(s, 200, "{list}");
        assert_eq!(names(&list), all, "guest{query}");
        let (s, list) = guest
            .get(&format!("/api/v1/namespaces/guest/packages{query}"))
            .await;
        assert_eq!(s, 200, "{list}");
        assert_eq!(names(&list), all, "guest by name{query}");
    }
    // Another namespace shows its published packages only, bindings excluded.
    for query in ["", "?public=true"] {
        let (s, list) = alice
            .get(&format!("/api/v1/namespaces/guest/packages{query}"))
            .await;
        assert_eq!(s, 200, "{list}");
        assert_eq!(names(&list), ["open"], "alice lists guest{query}");
        assert_eq!(list[0]["binding"], json!(false));
        assert_eq!(list[0]["publish"], json!(true));
        assert_eq!(list[0]["namespace"], "guest");
    }
    assert_eq!(
        alice
            .get("/api/v1/namespaces/guest/packages?count=true")
            .await,
        (200, json!({ "packages": 1 }))
    );
    // `public=true` on one's own namespace lists one's own packages, not everyone's published ones.
    let (_, mine) = alice.get(&format!("{pkgs}?public=true")).await;
    assert_eq!(names(&mine), ["hers"]);
    // A namespace with nothing in it lists empty, for anyone.
    let (s, none) = alice.get("/api/v1/namespaces/nobody/packages").await;
    assert_eq!((s, none), (200, json!([])));
    cp.shutdown().await;
}

#[tokio::test]
async fn counts_are_what_is_left_after_skip() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    for name in ["a", "b", "c"] {
        assert_eq!(
            guest
                .put(&format!("/api/v1/namespaces/_/packages/p{name}"), json!({}))
                .await
                .0,
            200
        );
        assert_eq!(
            guest
                .put(
                    &format!("/api/v1/namespaces/_/actions/{name}"),
                    nodejs_action("x")
                )
                .await
                .0,
            200
        );
    }
    for (collection, expected) in [("actions", [3, 2, 0, 3]), ("packages", [3, 2, 0, 3])] {
        let count = |query: &'static str| {
            let path = format!("/api/v1/namespaces/_/{collection}?count=true{query}");
            let guest = &guest;
            async move { guest.get(&path).await }
        };
        let got = [
            count("").await,
            count("&skip=1").await,
            count("&skip=7").await,
            // `limit` does not bound a count.
            count("&limit=1").await,
        ];
        for (got, want) in got.iter().zip(expected) {
            assert_eq!(got, &(200, json!({ collection: want })), "{collection}");
        }
    }
    cp.shutdown().await;
}

#[tokio::test]
async fn the_namespace_action_list_includes_actions_in_its_packages() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    guest
        .put("/api/v1/namespaces/_/packages/tools", json!({}))
        .await;
    for path in ["top", "tools/inner"] {
        let (s, b) = guest
            .put(
                &format!("/api/v1/namespaces/_/actions/{path}"),
                nodejs_action("x"),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let (s, list) = guest.get("/api/v1/namespaces/_/actions").await;
    assert_eq!(s, 200);
    assert_eq!(names(&list), ["inner", "top"]);
    let inner = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "inner")
        .unwrap();
    assert_eq!(inner["namespace"], "guest/tools");
    assert_eq!(
        guest.get("/api/v1/namespaces/_/actions?count=true").await,
        (200, json!({ "actions": 2 }))
    );
    // The package's own list still holds only its actions.
    let (_, in_pkg) = guest.get("/api/v1/namespaces/_/actions/tools/").await;
    assert_eq!(names(&in_pkg), ["inner"]);
    cp.shutdown().await;
}

#[tokio::test]
async fn boolean_parameters_read_as_akka_reads_them_and_refuse_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let action = "/api/v1/namespaces/_/actions/flagged";
    assert_eq!(guest.put(action, nodejs_action("x")).await.0, 200);

    for yes in ["true", "TRUE", "yes", "on", "1"] {
        assert_eq!(
            guest
                .get(&format!("/api/v1/namespaces/_/actions?count={yes}"))
                .await,
            (200, json!({ "actions": 1 })),
            "count={yes}"
        );
    }
    for no in ["false", "no", "off", "0", ""] {
        let (s, list) = guest
            .get(&format!("/api/v1/namespaces/_/actions?count={no}"))
            .await;
        assert_eq!(s, 200);
        assert!(list.is_array(), "count={no}: {list}");
    }
    let (_, without) = guest.get(&format!("{action}?code=no")).await;
    assert!(without["exec"].get("code").is_none(), "{without}");
    let (_, with) = guest.get(&format!("{action}?code=")).await;
    assert_eq!(with["exec"]["code"], "x");
    let (s, updated) = guest
        .put(&format!("{action}?overwrite=yes"), nodejs_action("y"))
        .await;
    assert_eq!(s, 200, "{updated}");

    assert_error(
        &guest
            .put(&format!("{action}?overwrite=maybe"), nodejs_action("z"))
            .await,
        400,
        "The query parameter 'overwrite' was malformed:\n'maybe' is not a valid Boolean value",
    );
    assert_error(
        &guest.get("/api/v1/namespaces/_/packages?count=Sure").await,
        400,
        "The query parameter 'count' was malformed:\n'sure' is not a valid Boolean value",
    );
    assert_error(
        &guest.get("/api/v1/namespaces/_/activations?docs=2").await,
        400,
        "The query parameter 'docs' was malformed:\n'2' is not a valid Boolean value",
    );
    assert_error(
        &guest.get("/api/v1/namespaces/_/packages?skip=x").await,
        400,
        "The query parameter 'skip' was malformed:\nThe value 'x' is not an integer for packages.",
    );
    assert_error(
        &guest.get("/api/v1/namespaces/_/activations?skip=-1").await,
        400,
        "The query parameter 'skip' was malformed:\nThe value '-1' is not greater than or equal to 0 for activations.",
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn the_activation_name_filter_matches_as_openwhisk_keys_records() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let mut client = grpc(&cp).await;

    // (id, path annotation, binding annotation): one action name, reached three ways.
    let records = [
        (1u32, "guest/echo", None),
        (2, "guest/tools/echo", None),
        (3, "alice/shared/echo", Some("guest/mine")),
        (4, "guest/other", None),
    ];
    for (i, path, binding) in records {
        let name = path.rsplit('/').next().unwrap();
        let mut annotations = vec![json!({ "key": "path", "value": path })];
        if let Some(b) = binding {
            annotations.push(json!({ "key": "binding", "value": b }));
        }
        let record = json!({
            "namespace": "guest", "name": name, "subject": "guest",
            "activationId": format!("{i:032x}"), "start": 1000 + i, "end": 1010 + i,
            "duration": 10, "response": { "statusCode": 0, "result": {} }, "logs": [],
            "version": "0.0.1", "publish": false, "annotations": annotations,
        });
        client
            .report_activation(ReportActivationRequest {
                container_id: String::new(),
                activation_json: record.to_string(),
            })
            .await
            .unwrap();
    }
    let ids = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap_or_else(|| panic!("a list: {list}"))
            .iter()
            .map(|a| a["activationId"].as_str().unwrap()[28..].to_string())
            .collect()
    };
    let list = "/api/v1/namespaces/_/activations";
    for (filter, want) in [
        ("echo", vec!["0001"]),
        ("tools/echo", vec!["0002"]),
        ("mine/echo", vec!["0003"]),
        // Through a binding, the bound package's name is not the key.
        ("shared/echo", vec![]),
        ("other", vec!["0004"]),
        // Blank is no filter.
        ("%20", vec!["0004", "0003", "0002", "0001"]),
    ] {
        let (s, got) = guest.get(&format!("{list}?name={filter}")).await;
        assert_eq!(s, 200, "{got}");
        assert_eq!(ids(&got), want, "name={filter}");
    }
    assert_eq!(
        guest.get(&format!("{list}?count=true&skip=1")).await,
        (200, json!({ "activations": 3 }))
    );
    assert_eq!(
        guest.get(&format!("{list}?count=true&name=echo")).await,
        (200, json!({ "activations": 1 }))
    );
    let (_, since) = guest.get(&format!("{list}?since=1003&upto=1004")).await;
    assert_eq!(ids(&since), ["0004", "0003"]);

    assert_error(
        &guest.get(&format!("{list}?name=a/b/c")).await,
        400,
        "The query parameter 'name' was malformed:\nParameter may be a 'simple' name or 'package-name/simple' name: a/b/c",
    );
    assert_error(
        &guest.get(&format!("{list}?since=yesterday")).await,
        400,
        "The query parameter 'since' was malformed:\nParameter is not a valid value for epoch seconds: yesterday",
    );
    assert_error(
        &guest.get(&format!("{list}?count=true&docs=true")).await,
        400,
        "The parameter 'docs' is not permitted with 'count'.",
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn trigger_and_rule_lists_are_empty_for_the_owner_and_forbidden_to_others() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    let anon = Api::new(&cp, None);
    for collection in ["triggers", "rules"] {
        let own = format!("/api/v1/namespaces/_/{collection}");
        assert_eq!(guest.get(&own).await, (200, json!([])), "{collection}");
        assert_eq!(
            guest
                .get(&format!("/api/v1/namespaces/guest/{collection}?limit=5"))
                .await,
            (200, json!([]))
        );
        assert_eq!(
            guest.get(&format!("{own}?count=true")).await,
            (200, json!({ collection: 0 }))
        );
        assert_error(
            &guest.get(&format!("{own}?limit=500")).await,
            400,
            &format!(
                "The query parameter 'limit' was malformed:\nThe value '500' is not in the range of 0 to 200 for {collection}."
            ),
        );
        assert_error(
            &guest
                .get(&format!("/api/v1/namespaces/alice/{collection}"))
                .await,
            403,
            "The supplied authentication is not authorized to access 'alice'.",
        );
        assert_eq!(anon.get(&own).await.0, 401);
        // Only the lists exist: one trigger or rule is not found, and none can be made.
        assert_error(
            &guest.get(&format!("{own}/t")).await,
            404,
            "The requested resource does not exist.",
        );
        assert_error(
            &guest.put(&format!("{own}/t"), json!({})).await,
            404,
            "The requested resource does not exist.",
        );
    }
    cp.shutdown().await;
}
