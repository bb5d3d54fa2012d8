//! The stand-in's API semantics on the wire, as a Kubernetes client sees them: bearer auth,
//! create with defaulting, 409 on a duplicate, 422 on an unknown field, get/404, list by label,
//! watch with bookmarks, graceful delete keeping the name taken, and 410 for a compacted version.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use whisk_kube_standin::{KubeStandin, StandinConfig};

const TOKEN: &str = "t0ken";
const IMAGE: &str = "example/stubborn:1";

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "labels": { "app": "demo", "n": name } },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": IMAGE,
                // Ignores SIGTERM, so a graceful delete lasts the whole grace period.
                "args": ["-c", "echo WHISK_PROXY_LISTENING 127.0.0.1:9; trap '' TERM; while :; do sleep 0.1; done"]
            }]
        }
    })
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/namespaces/ns{path}", self.base)
    }
    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.bearer_auth(TOKEN).send().await.unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }
    async fn create(&self, body: &Value) -> (u16, Value) {
        self.send(self.http.post(self.url("/pods")).json(body))
            .await
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(self.url(path))).await
    }
}

/// Read watch lines until `pred` holds for one; returns every line read.
async fn watch_until(
    resp: &mut reqwest::Response,
    within: Duration,
    mut pred: impl FnMut(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("watch condition not met; saw {seen:?}"))
            .unwrap();
        let Some(chunk) = chunk else {
            panic!("watch ended; saw {seen:?}");
        };
        buf.extend_from_slice(&chunk);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let v: Value = serde_json::from_slice(&line).unwrap();
            let done = pred(&v);
            seen.push(v);
            if done {
                return seen;
            }
        }
    }
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_follow_the_api_semantics() {
    let mut cfg = StandinConfig::new(TOKEN).with_image(IMAGE, "/bin/sh");
    cfg.bookmark_interval = Duration::from_millis(100);
    let standin = KubeStandin::start(cfg).await.unwrap();
    let c = Client {
        base: standin.url(),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    };

    let anon = c.http.get(c.url("/pods")).send().await.unwrap();
    assert_eq!(anon.status().as_u16(), 401);

    let (code, created) = c.create(&pod("p1")).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["status"]["phase"], "Pending");
    assert_eq!(created["spec"]["restartPolicy"], "Always");
    assert!(created["metadata"]["uid"].is_string());
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let (code, dup) = c.create(&pod("p1")).await;
    assert_eq!(code, 409);
    assert_eq!(dup["reason"], "AlreadyExists");
    assert_eq!(dup["message"], "pods \"p1\" already exists");

    let mut bad = pod("p2");
    bad["spec"]["containers"][0]["imagePullPolicyy"] = json!("Always");
    let (code, invalid) = c.create(&bad).await;
    assert_eq!(code, 422);
    assert_eq!(invalid["reason"], "Invalid");
    assert!(
        invalid["details"]["causes"][0]["message"]
            .as_str()
            .unwrap()
            .contains("imagePullPolicyy"),
        "{invalid}"
    );

    assert_eq!(c.get("/pods/nope").await.0, 404);
    let (_, list) = c.get("/pods?labelSelector=app%3Ddemo,n%3Dp1").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, list) = c.get("/pods?labelSelector=app%3Dother").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);

    // Watch from the creation: Pending → Running → Ready, and bookmarks.
    let mut w = c
        .http
        .get(c.url(&format!(
            "/pods?watch=true&allowWatchBookmarks=true&resourceVersion={rv}"
        )))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(w.status().as_u16(), 200);
    let seen = watch_until(&mut w, Duration::from_secs(10), |e| {
        e["type"] == "MODIFIED" && ready(&e["object"])
    })
    .await;
    assert!(
        seen.iter()
            .any(|e| e["object"]["status"]["phase"] == "Running")
    );
    let ready_pod = &seen.last().unwrap()["object"];
    assert_eq!(ready_pod["status"]["podIP"], "127.0.0.1");
    assert_eq!(ready_pod["spec"]["nodeName"], "standin-node");
    watch_until(&mut w, Duration::from_secs(5), |e| e["type"] == "BOOKMARK").await;

    // Graceful delete: the name stays taken until the kubelet is done.
    let (code, deleting) = c
        .send(
            c.http
                .delete(c.url("/pods/p1"))
                .json(&json!({ "gracePeriodSeconds": 1 })),
        )
        .await;
    assert_eq!(code, 200);
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(c.create(&pod("p1")).await.0, 409, "still terminating");
    let seen = watch_until(&mut w, Duration::from_secs(10), |e| e["type"] == "DELETED").await;
    assert!(seen.iter().any(
        |e| e["type"] == "MODIFIED" && e["object"]["metadata"]["deletionTimestamp"].is_string()
    ));
    assert_eq!(c.get("/pods/p1").await.0, 404);
    assert!(standin.pids().is_empty());

    // A compacted version: 200, then one ERROR event with 410.
    standin.expire_history();
    let mut old = c
        .http
        .get(c.url(&format!("/pods?watch=true&resourceVersion={rv}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(old.status().as_u16(), 200);
    let seen = watch_until(&mut old, Duration::from_secs(5), |e| e["type"] == "ERROR").await;
    assert_eq!(seen.last().unwrap()["object"]["code"], 410);
    assert_eq!(standin.gone_answers(), 1);
}
