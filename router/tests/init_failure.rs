//! An action whose code fails to initialise makes an activation, as in OpenWhisk: the control
//! plane's `ColdStart` answers `CODE_INIT_FAILED` with the init's text, logs and duration, and
//! the router makes the caller's activation record of it (action developer error), reports it,
//! and answers a blocking caller 502 with it (or the bare result with `result=true`), with
//! `x-openwhisk-activation-id`. A non-blocking invoke's stored record is the same developer error;
//! a sequence whose component fails to initialise ends with that error.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use whisk_proto::controlplane::v1 as pb;

const MESSAGE: &str = "Initialization has failed due to: SyntaxError: Unexpected identifier";

fn init_logs() -> Vec<String> {
    vec![
        "2026-12-04T21:00:00.000000001Z stdout: booting".to_string(),
        "2026-12-04T21:00:00.000000002Z stderr: about to fail".to_string(),
    ]
}

/// `guest/broken`, with no container, whose every cold start fails to initialise.
async fn broken_action(b: &Bench) {
    b.cp.fail_cold_start(
        "guest/broken",
        pb::ColdStartError {
            code: pb::cold_start_error::Code::InitFailed as i32,
            message: MESSAGE.into(),
            retry_after_ms: 0,
            logs: init_logs(),
            duration_ms: 42,
        },
    );
    b.apply(pb::TableUpdate {
        actions_upsert: vec![action("guest/broken", 1)],
        ..Default::default()
    })
    .await;
}

fn annotation(record: &Value, key: &str) -> Option<Value> {
    record["annotations"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| a["value"].clone())
}

/// The record the router reported for `id`, once it is there.
async fn reported(b: &Bench, id: &str) -> Value {
    eventually("the record reported", Duration::from_secs(5), || async {
        b.cp.records
            .lock()
            .unwrap()
            .iter()
            .any(|r| r["activationId"] == id)
    })
    .await;
    b.cp.records
        .lock()
        .unwrap()
        .iter()
        .find(|r| r["activationId"] == id)
        .cloned()
        .unwrap()
}

/// The stored form of a developer error made of the init failure.
fn assert_stored_init_failure(stored: &Value) {
    assert_eq!(stored["response"]["statusCode"], 2, "{stored}");
    assert_eq!(stored["response"]["result"], json!({ "error": MESSAGE }));
    assert_eq!(stored["logs"], json!(init_logs()));
    assert_eq!(stored["namespace"], "guest");
    assert_eq!(stored["name"], "broken");
    assert_eq!(stored["version"], "0.0.1");
    assert_eq!(annotation(stored, "initTime"), Some(json!(42)));
    assert_eq!(annotation(stored, "path"), Some(json!("guest/broken")));
    assert_eq!(annotation(stored, "kind"), Some(json!("nodejs:20")));
}

#[tokio::test]
async fn blocking_invoke_answers_502_with_the_developer_error_record_and_reports_it() {
    let b = Bench::start().await;
    broken_action(&b).await;

    let r = b.invoke("broken").await;
    assert_eq!(r.status(), 502);
    let id = r
        .headers()
        .get("x-openwhisk-activation-id")
        .expect("x-openwhisk-activation-id")
        .to_str()
        .unwrap()
        .to_owned();
    let record: Value = r.json().await.unwrap();
    assert_eq!(record["activationId"], id.as_str());
    assert_eq!(record["response"]["status"], "action developer error");
    assert_eq!(record["response"]["success"], false);
    assert!(record["response"].get("statusCode").is_none(), "{record}");
    assert_eq!(record["response"]["result"], json!({ "error": MESSAGE }));
    assert_eq!(record["logs"], json!(init_logs()));
    assert!(record["subject"].is_string(), "{record}");
    assert_eq!(annotation(&record, "initTime"), Some(json!(42)));

    assert_stored_init_failure(&reported(&b, &id).await);
}

#[tokio::test]
async fn blocking_result_invoke_answers_502_with_the_error_alone() {
    let b = Bench::start().await;
    broken_action(&b).await;

    let r = b
        .http
        .post(b.url("/api/v1/namespaces/_/actions/broken?blocking=true&result=true"))
        .header("authorization", guest_auth())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let id = r
        .headers()
        .get("x-openwhisk-activation-id")
        .expect("x-openwhisk-activation-id")
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({ "error": MESSAGE }));

    assert_stored_init_failure(&reported(&b, &id).await);
}

#[tokio::test]
async fn non_blocking_invoke_stores_the_developer_error_not_an_internal_error() {
    let b = Bench::start().await;
    broken_action(&b).await;

    let r = b
        .http
        .post(b.url("/api/v1/namespaces/_/actions/broken"))
        .header("authorization", guest_auth())
        .json(&json!({ "a": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    let id = body["activationId"].as_str().unwrap().to_owned();

    let stored = reported(&b, &id).await;
    assert_stored_init_failure(&stored);
    assert_ne!(stored["response"]["statusCode"], 3);
}

#[tokio::test]
async fn a_sequence_whose_component_fails_to_initialise_ends_with_that_error() {
    let b = Bench::start().await;
    broken_action(&b).await;
    let ok = Upstream::action("ok", |v| v).await;
    b.apply(pb::TableUpdate {
        actions_upsert: vec![
            action("guest/ok", 10),
            pb::Action {
                kind: "sequence".into(),
                components: vec!["guest/ok".into(), "guest/broken".into()],
                ..action("guest/seq", 1)
            },
        ],
        endpoints_upsert: vec![endpoint("c-ok", "guest/ok", ok.addr, 10)],
        ..Default::default()
    })
    .await;

    let r = b.invoke("seq").await;
    assert_eq!(r.status(), 502);
    let record: Value = r.json().await.unwrap();
    assert_eq!(record["response"]["status"], "action developer error");
    assert_eq!(record["response"]["result"], json!({ "error": MESSAGE }));
    // The sequence's logs are its components' ids; the broken one has its own record.
    let components = record["logs"].as_array().unwrap();
    assert_eq!(components.len(), 2, "{record}");
    let broken_id = components[1].as_str().unwrap();
    let stored = reported(&b, broken_id).await;
    assert_stored_init_failure(&stored);
    assert_eq!(stored["cause"], record["activationId"]);
    assert_eq!(annotation(&stored, "causedBy"), Some(json!("sequence")));
}

/// An action stored before its runtime was deprecated may be read and deleted, not invoked: the
/// control plane refuses its cold start with OpenWhisk's text and the caller gets 400 with it.
#[tokio::test]
async fn an_action_of_a_deprecated_kind_is_refused_with_400() {
    let b = Bench::start().await;
    let text = "The 'nodejs:14' runtime is no longer supported. You may read and delete but not update or invoke this action.";
    b.cp.fail_cold_start(
        "guest/old",
        pb::ColdStartError {
            code: pb::cold_start_error::Code::KindDeprecated as i32,
            message: text.into(),
            ..Default::default()
        },
    );
    b.apply(pb::TableUpdate {
        actions_upsert: vec![action("guest/old", 1)],
        ..Default::default()
    })
    .await;
    let r = b.invoke("old").await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], text, "{body}");
}
