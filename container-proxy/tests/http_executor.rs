//! `--executor http`: an OpenWhisk runtime speaking `/init` + `/run`, played by a tiny in-test
//! axum server.

mod common;

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::http::StatusCode;
use axum::routing::post;
use common::*;
use serde_json::{Value, json};

#[derive(Default)]
struct Runtime {
    init: Option<Value>,
    runs: Vec<Value>,
}

async fn start_runtime() -> (String, Arc<Mutex<Runtime>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_runtime_on(listener)
}

fn start_runtime_on(listener: tokio::net::TcpListener) -> (String, Arc<Mutex<Runtime>>) {
    let state = Arc::new(Mutex::new(Runtime::default()));
    let s_init = state.clone();
    let s_run = state.clone();
    let app = axum::Router::new()
        .route(
            "/init",
            post(move |Json(body): Json<Value>| {
                let state = s_init.clone();
                async move {
                    let mut st = state.lock().unwrap();
                    if st.init.is_some() {
                        return (
                            StatusCode::FORBIDDEN,
                            Json(json!({"error": "Cannot initialize the action more than once."})),
                        );
                    }
                    if body["value"]["code"] == "broken" {
                        return (
                            StatusCode::BAD_GATEWAY,
                            Json(json!({"error": "Initialization has failed due to: broken"})),
                        );
                    }
                    st.init = Some(body);
                    (StatusCode::OK, Json(json!({"ok": true})))
                }
            }),
        )
        .route(
            "/run",
            post(move |Json(body): Json<Value>| {
                let state = s_run.clone();
                async move {
                    let mut st = state.lock().unwrap();
                    if st.init.is_none() {
                        return (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(json!({"error": "System not initialized."})),
                        );
                    }
                    st.runs.push(body.clone());
                    match body["value"]["mode"].as_str() {
                        Some("fail") => (
                            StatusCode::BAD_GATEWAY,
                            Json(json!({"error": "An error has occurred: boom"})),
                        ),
                        Some("unavailable") => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(json!({"error": "System not initialized."})),
                        ),
                        _ => (
                            StatusCode::OK,
                            Json(json!({"echo": body["value"], "id": body["activation_id"]})),
                        ),
                    }
                }
            }),
        );
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

#[tokio::test(flavor = "multi_thread")]
async fn http_runtime_init_and_run() {
    let cp = ControlPlaneStub::start().await;
    let (url, runtime) = start_runtime().await;
    let proxy = ProxyProcess::spawn(
        &[
            "--executor",
            "http",
            "--runtime-url",
            &url,
            "--controlplane",
            &cp.url(),
            "--kind",
            "nodejs:20",
        ],
        &[],
    );
    let mut act = action("hello", "nodejs:20", "the code");
    act["parameters"] = json!([{"key": "token", "value": "t", "init": true}]);
    let (status, body) = proxy.init(act).await;
    assert_eq!(status, 200, "{body}");
    let init = runtime.lock().unwrap().init.clone().unwrap();
    assert_eq!(init["value"]["name"], "/guest/hello");
    assert_eq!(init["value"]["main"], "main");
    assert_eq!(init["value"]["binary"], false);
    assert_eq!(init["value"]["code"], "the code");
    assert_eq!(init["value"]["env"]["token"], "t");
    assert_eq!(init["value"]["env"]["__OW_ACTION_NAME"], "/guest/hello");

    let inv = Invoke::blocking("guest/hello");
    let reply = proxy.invoke(&inv, json!({"x": 1})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["response"]["result"],
        json!({"echo": {"x": 1}, "id": inv.activation_id})
    );
    let run = runtime.lock().unwrap().runs[0].clone();
    assert_eq!(run["action_name"], "/guest/hello");
    assert_eq!(run["namespace"], "caller");
    assert_eq!(run["action_version"], "0.0.1");
    assert!(run["deadline"].is_string());
    assert!(run.get("api_key").is_none());

    let reply = proxy
        .invoke(&Invoke::blocking("guest/hello"), json!({"mode": "fail"}))
        .await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.body["response"]["status"], "action developer error");
    assert_eq!(
        reply.body["response"]["result"],
        json!({"error": "An error has occurred: boom"})
    );

    let inv = Invoke::blocking("guest/hello");
    let reply = proxy.invoke(&inv, json!({"mode": "unavailable"})).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body["response"]["status"], "whisk internal error");
    let (_, stored) = cp.record(&inv.activation_id).await;
    assert_eq!(stored["response"]["statusCode"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_runtime_init_failure_is_502() {
    let cp = ControlPlaneStub::start().await;
    let (url, _runtime) = start_runtime().await;
    let proxy = ProxyProcess::spawn(
        &[
            "--executor",
            "http",
            "--runtime-url",
            &url,
            "--controlplane",
            &cp.url(),
        ],
        &[],
    );
    let (status, body) = proxy.init(action("hello", "nodejs:20", "broken")).await;
    assert_eq!(status, 502);
    // The runtime's output is its own container's: the proxy has no init logs to add.
    assert_eq!(
        body,
        json!({"error": "Initialization has failed due to: broken", "logs": []})
    );
}

/// A sidecar proxy may be asked to initialise before the runtime container listens: `/init`
/// waits for it.
#[tokio::test(flavor = "multi_thread")]
async fn http_runtime_init_waits_for_the_runtime_to_listen() {
    let cp = ControlPlaneStub::start().await;
    // A port nobody listens on yet (the runtime binds it later).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}");
    let proxy = ProxyProcess::spawn(
        &[
            "--executor",
            "http",
            "--runtime-url",
            &url,
            "--controlplane",
            &cp.url(),
            "--kind",
            "nodejs:20",
        ],
        &[],
    );
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let late_runtime = tokio::spawn(async move {
        // Started only once the proxy has been asked to initialise.
        started_rx.await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        start_runtime_on(listener)
    });
    let init = proxy.init(action("hello", "nodejs:20", "the code"));
    let _ = started_tx.send(());
    let (status, body) = init.await;
    assert_eq!(status, 200, "{body}");
    let (_, runtime) = late_runtime.await.unwrap();
    assert!(runtime.lock().unwrap().init.is_some());
}
