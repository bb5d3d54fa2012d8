//! End to end with the Kubernetes backend: `whisk up --backend kubernetes` (real Envoy, the
//! router, the control plane) finds the stand-in cluster through `KUBECONFIG`, and OpenWhisk
//! clients' calls run in pods: create, invoke cold and warm, a sequence, a non-blocking invoke,
//! an API-server refusal answered 503, a crashed pod replaced, idle pods swept by the GC;
//! stopping the stack leaves no pod behind.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use whisk_kube_standin::{Fault, KubeStandin, StandinConfig, Verb};
use whisk_stack::child::spawn_announcing;

const GUEST: (&str, &str) = (
    "23bc46b1-71f6-4ed5-8c54-816aa4f8c502",
    "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP",
);
const NS: &str = "whisk-actions";
const PROXY_IMAGE: &str = "ghcr.io/example/whisk-container-proxy:e2e";

/// `target/debug/whisk-container-proxy` (what the stand-in runs for the proxy image).
fn proxy_bin() -> std::path::PathBuf {
    let bin =
        std::path::Path::new(env!("CARGO_BIN_EXE_whisk")).with_file_name("whisk-container-proxy");
    if !bin.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "whisk-container-proxy"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building whisk-container-proxy failed");
    }
    bin
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, url).basic_auth(GUEST.0, Some(GUEST.1));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openwhisk_calls_run_in_pods() {
    let standin =
        KubeStandin::start(StandinConfig::new("e2e-token").with_image(PROXY_IMAGE, proxy_bin()))
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, standin.kubeconfig(NS)).unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_whisk"));
    cmd.arg("up")
        .args(["--port", "0", "--prewarm", "nodejs:20=1"])
        .args(["--backend", "kubernetes", "--kube-namespace", NS])
        .args(["--proxy-image", PROXY_IMAGE])
        // GC quickly: idle 5 s → marked, swept 1 s later.
        .args([
            "--keep-alive-secs",
            "5",
            "--sweep-grace-secs",
            "1",
            "--gc-interval-secs",
            "1",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST");
    let up = spawn_announcing(
        cmd,
        "WHISK_UP_READY",
        &dir.path().join("up.log"),
        Duration::from_secs(120),
    )
    .await
    .expect("whisk up starts");
    let apihost = up
        .address
        .split_whitespace()
        .find_map(|w| w.strip_prefix("apihost="))
        .unwrap()
        .to_owned();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let actions = format!("{apihost}/api/v1/namespaces/_/actions");
    use reqwest::Method;

    for (name, code) in [
        (
            "hello",
            "function main(p) { return { greeting: 'hello ' + (p.name || 'world') }; }",
        ),
        (
            "shout",
            "function main(p) { return { greeting: p.greeting.toUpperCase() }; }",
        ),
    ] {
        let (s, b) = call(
            &http,
            Method::PUT,
            format!("{actions}/{name}?overwrite=true"),
            Some(json!({ "exec": { "kind": "nodejs:20", "code": code } })),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }

    // Cold (from the stem-cell pod), then warm.
    for who in ["pod", "again"] {
        let (s, b) = call(
            &http,
            Method::POST,
            format!("{actions}/hello?blocking=true&result=true"),
            Some(json!({ "name": who })),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b, json!({ "greeting": format!("hello {who}") }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while standin.pods(NS).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the warm container and a refilled stem cell are pods"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A sequence: hello then shout (a second cold start, in its own pod).
    let (s, b) = call(
        &http,
        Method::PUT,
        format!("{actions}/loud?overwrite=true"),
        Some(json!({ "exec": { "kind": "sequence", "components": ["/guest/hello", "/guest/shout"] } })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = call(
        &http,
        Method::POST,
        format!("{actions}/loud?blocking=true&result=true"),
        Some(json!({ "name": "seq" })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b, json!({ "greeting": "HELLO SEQ" }));

    // Non-blocking: 202 with an activation id; the record arrives.
    let (s, b) = call(
        &http,
        Method::POST,
        format!("{actions}/hello"),
        Some(json!({ "name": "later" })),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    let id = b["activationId"]
        .as_str()
        .expect("an activation id")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let record = loop {
        let (s, b) = call(
            &http,
            Method::GET,
            format!("{apihost}/api/v1/namespaces/_/activations/{id}"),
            None,
        )
        .await;
        if s == 200 {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "the record never arrived: {s} {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        record["response"]["result"],
        json!({ "greeting": "hello later" })
    );

    // The API server refuses the next pod (quota): the client gets an OpenWhisk-shaped 503 with
    // a Retry-After at once, not a hang. (No python stem cell: the action needs a new pod.)
    let (s, b) = call(
        &http,
        Method::PUT,
        format!("{actions}/py?overwrite=true"),
        Some(json!({ "exec": { "kind": "python:3", "code": "def main(a):\n    return a\n" } })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    standin.inject(Fault {
        verb: Verb::Create,
        code: 403,
        times: 1,
    });
    let started = Instant::now();
    let resp = http
        .post(format!("{actions}/py?blocking=true&result=true"))
        .basic_auth(GUEST.0, Some(GUEST.1))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(
        resp.headers().contains_key("retry-after"),
        "{:?}",
        resp.headers()
    );
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
    assert!(started.elapsed() < Duration::from_secs(20));

    // A warm pod that crashes: its endpoint goes, and the next invoke runs elsewhere.
    let hello_pods = || {
        standin
            .pods(NS)
            .into_iter()
            .filter(|p| {
                p.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("whisk.apache.org/action"))
                    .map(String::as_str)
                    == Some("guest/hello")
            })
            .filter_map(|p| p.metadata.name)
            .collect::<Vec<_>>()
    };
    let crashed = hello_pods();
    assert!(!crashed.is_empty());
    for pod in &crashed {
        assert!(standin.kill_process(NS, pod));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while hello_pods().iter().any(|p| crashed.contains(p)) {
        assert!(
            Instant::now() < deadline,
            "the crashed pods were never removed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, b) = call(
        &http,
        Method::POST,
        format!("{actions}/hello?blocking=true&result=true"),
        Some(json!({ "name": "elsewhere" })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b, json!({ "greeting": "hello elsewhere" }));
    assert!(hello_pods().iter().all(|p| !crashed.contains(p)));

    // GC: idle warm pods are swept (deleted); the stem cell stays.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !hello_pods().is_empty() {
        assert!(
            Instant::now() < deadline,
            "idle pods were never swept: {:?}",
            hello_pods()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    up.stop(Duration::from_secs(20)).await;
    assert!(
        standin.pods(NS).is_empty(),
        "no pod left after the stack stopped: {:?}",
        standin
            .pods(NS)
            .into_iter()
            .map(|p| p.metadata.name)
            .collect::<Vec<_>>()
    );
}
