//! Sequences run by the router: chained results, stop on error, the component limit, nesting,
//! and the records of the sequence and its components.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use whisk_proto::controlplane::v1 as pb;

fn inc(v: Value) -> Value {
    json!({ "n": v["n"].as_i64().unwrap_or(0) + 1 })
}

fn double(v: Value) -> Value {
    json!({ "n": v["n"].as_i64().unwrap_or(0) * 2 })
}

fn fail(_: Value) -> Value {
    json!({ "error": "component failed" })
}

fn sequence(fqn: &str, components: &[&str]) -> pb::Action {
    pb::Action {
        kind: "sequence".into(),
        components: components.iter().map(|c| c.to_string()).collect(),
        ..action(fqn, 1)
    }
}

struct Actions {
    inc: Upstream,
    double: Upstream,
    fail: Upstream,
}

async fn setup(b: &Bench, sequences: Vec<pb::Action>) -> Actions {
    let a = Actions {
        inc: Upstream::action("inc", inc).await,
        double: Upstream::action("double", double).await,
        fail: Upstream::action("fail", fail).await,
    };
    let mut actions = vec![
        action("guest/inc", 10),
        action("guest/double", 10),
        action("guest/fail", 10),
    ];
    actions.extend(sequences);
    b.apply(pb::TableUpdate {
        actions_upsert: actions,
        endpoints_upsert: vec![
            endpoint("c-inc", "guest/inc", a.inc.addr, 10),
            endpoint("c-double", "guest/double", a.double.addr, 10),
            endpoint("c-fail", "guest/fail", a.fail.addr, 10),
        ],
        ..Default::default()
    })
    .await;
    a
}

async fn call(b: &Bench, name: &str, query: &str, body: Value) -> reqwest::Response {
    b.http
        .post(b.url(&format!("/api/v1/namespaces/_/actions/{name}?{query}")))
        .header("authorization", guest_auth())
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn results_chain_through_the_components() {
    let b = Bench::start().await;
    let a = setup(
        &b,
        vec![sequence(
            "guest/seq",
            &["guest/inc", "guest/double", "guest/inc"],
        )],
    )
    .await;
    let r = call(&b, "seq", "blocking=true&result=true", json!({ "n": 1 })).await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-openwhisk-activation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({ "n": 5 }));
    assert_eq!(a.inc.requests.load(Ordering::SeqCst), 2);
    // Each component ran as its own activation caused by the sequence.
    let last = a.inc.last.lock().unwrap().clone();
    assert_eq!(last["headers"]["x-whisk-cause"], id.as_str());
    assert_ne!(last["headers"]["x-whisk-activation-id"], id.as_str());
    // The full record: response of the last component, logs = component ids, annotations.
    let r = call(&b, "seq", "blocking=true", json!({ "n": 1 })).await;
    assert_eq!(r.status(), 200);
    let record: Value = r.json().await.unwrap();
    assert_eq!(record["response"]["status"], "success");
    assert!(record["response"].get("statusCode").is_none());
    assert_eq!(record["logs"].as_array().unwrap().len(), 3);
    assert_eq!(record["duration"], 6);
    let ann: Vec<(String, Value)> = record["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["key"].as_str().unwrap().to_owned(), a["value"].clone()))
        .collect();
    assert!(ann.contains(&("topmost".into(), json!(true))));
    assert!(ann.contains(&("kind".into(), json!("sequence"))));
    assert!(ann.contains(&("path".into(), json!("guest/seq"))));
    // The router reported the sequence's record to the control plane.
    eventually("records reported", Duration::from_secs(5), || async {
        b.cp.records
            .lock()
            .unwrap()
            .iter()
            .any(|r| r["activationId"] == record["activationId"])
    })
    .await;
}

#[tokio::test]
async fn the_first_error_stops_the_sequence() {
    let b = Bench::start().await;
    let a = setup(
        &b,
        vec![sequence(
            "guest/seq",
            &["guest/inc", "guest/fail", "guest/double"],
        )],
    )
    .await;
    let r = call(&b, "seq", "blocking=true", json!({ "n": 1 })).await;
    assert_eq!(r.status(), 502);
    let record: Value = r.json().await.unwrap();
    assert_eq!(record["response"]["status"], "application error");
    assert_eq!(record["response"]["result"]["error"], "component failed");
    assert_eq!(record["logs"].as_array().unwrap().len(), 2);
    assert_eq!(a.double.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn nested_sequences_run_inline() {
    let b = Bench::start().await;
    let a = setup(
        &b,
        vec![
            sequence("guest/inner", &["guest/double", "guest/double"]),
            sequence("guest/outer", &["guest/inc", "guest/inner", "guest/inc"]),
        ],
    )
    .await;
    let r = call(&b, "outer", "blocking=true", json!({ "n": 1 })).await;
    assert_eq!(r.status(), 200);
    let record: Value = r.json().await.unwrap();
    assert_eq!(record["response"]["result"], json!({ "n": 9 }));
    // Direct components only: inc, inner (its own id), inc.
    assert_eq!(record["logs"].as_array().unwrap().len(), 3);
    assert_eq!(a.double.requests.load(Ordering::SeqCst), 2);
    let inner_id = record["logs"][1].as_str().unwrap().to_owned();
    eventually("nested record reported", Duration::from_secs(5), || async {
        b.cp.records.lock().unwrap().iter().any(|r| {
            r["activationId"] == inner_id.as_str()
                && r["cause"] == record["activationId"]
                && r["annotations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["key"] == "topmost" && a["value"] == false)
        })
    })
    .await;
}

#[tokio::test]
async fn more_than_fifty_atomic_actions_are_refused() {
    let b = Bench::start().await;
    let long: Vec<&str> = std::iter::repeat_n("guest/inc", 26).collect();
    let a = setup(
        &b,
        vec![
            sequence("guest/half", &long),
            sequence("guest/too-long", &["guest/half", "guest/half"]),
        ],
    )
    .await;
    let r = call(&b, "too-long", "blocking=true", json!({ "n": 0 })).await;
    assert_eq!(r.status(), 502);
    let record: Value = r.json().await.unwrap();
    assert_eq!(
        record["response"]["result"]["error"],
        "Too many actions in the sequence."
    );
    assert_eq!(a.inc.requests.load(Ordering::SeqCst), 50);
}

#[tokio::test]
async fn a_non_blocking_sequence_answers_202_and_runs() {
    let b = Bench::start().await;
    let a = setup(
        &b,
        vec![sequence("guest/seq", &["guest/inc", "guest/double"])],
    )
    .await;
    let r = call(&b, "seq", "", json!({ "n": 1 })).await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["activationId"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually("sequence ran", Duration::from_secs(5), || async {
        b.cp.records.lock().unwrap().iter().any(|r| {
            r["activationId"] == id.as_str() && r["response"]["result"] == json!({ "n": 4 })
        })
    })
    .await;
    assert_eq!(a.double.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_missing_component_is_an_application_error() {
    let b = Bench::start().await;
    setup(
        &b,
        vec![sequence("guest/seq", &["guest/inc", "guest/gone"])],
    )
    .await;
    let r = call(&b, "seq", "blocking=true&result=true", json!({ "n": 1 })).await;
    assert_eq!(r.status(), 502);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "error": "Sequence component does not exist." })
    );
}

#[tokio::test]
async fn a_component_unpublished_after_create_is_refused_at_invoke() {
    let b = Bench::start().await;
    let shared = Upstream::action("shared", inc).await;
    let mut published = action("other/pkg/inc", 10);
    published.public = true;
    b.apply(pb::TableUpdate {
        actions_upsert: vec![
            published.clone(),
            sequence("guest/uses-other", &["other/pkg/inc"]),
        ],
        // guest's own container of the public action (one caller namespace per container).
        endpoints_upsert: vec![pb::Endpoint {
            invoking_namespace: "guest".into(),
            ..endpoint("c-shared", "other/pkg/inc", shared.addr, 10)
        }],
        ..Default::default()
    })
    .await;
    let r = call(
        &b,
        "uses-other",
        "blocking=true&result=true",
        json!({ "n": 1 }),
    )
    .await;
    assert_eq!(r.status(), 200, "while the package is published");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({ "n": 2 }));
    let ran = shared.requests.load(std::sync::atomic::Ordering::SeqCst);
    // The owner unpublishes the package: the sequence gets the 403 a direct invoke gets.
    published.public = false;
    b.apply(pb::TableUpdate {
        actions_upsert: vec![published],
        ..Default::default()
    })
    .await;
    let r = call(
        &b,
        "uses-other",
        "blocking=true&result=true",
        json!({ "n": 1 }),
    )
    .await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"],
        "The supplied authentication is not authorized to access 'other/pkg/inc'."
    );
    assert_eq!(
        shared.requests.load(std::sync::atomic::Ordering::SeqCst),
        ran,
        "the component never ran"
    );
}
