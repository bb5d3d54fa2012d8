//! The Kubernetes backend against the stand-in API server and kubelet (`whisk-kube-standin`),
//! which runs each pod's container proxy as a local process: cold start through the backend and
//! through the control plane, stop and shutdown deleting pods, a crashed pod reported as exited,
//! a re-list after 410 Gone, and every API error giving a clear start error without a hang.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api as KubeApi, PostParams};
use serde_json::json;
use whisk_controlplane::backend::kubernetes::{
    CONTAINER_LABEL, KubeBackendConfig, KubernetesBackend, STACK_LABEL,
};
use whisk_controlplane::backend::{Backend, BackendEvent, UnitSpec};
use whisk_controlplane::pool::State;
use whisk_kube_standin::{Fault, KubeStandin, StandinConfig, Verb};
use whisk_proto::controlplane::v1 as pb;
use whisk_vocab::now_ms;

const NS: &str = "whisk-actions";
const PROXY_IMAGE: &str = "ghcr.io/example/whisk-container-proxy:test";
const TOKEN: &str = "test-token-123";
/// An image whose pull fails on the stand-in.
const UNPULLABLE: &str = "registry.invalid/nothing:1";

/// The stand-in plus a kube client for it; the stand-in kills its processes on drop.
struct Cluster {
    standin: KubeStandin,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Self {
        Self::with(StandinConfig::new(TOKEN)).await
    }

    async fn with(cfg: StandinConfig) -> Self {
        let mut cfg = cfg.with_image(PROXY_IMAGE, proxy_bin());
        cfg.bookmark_interval = Duration::from_millis(200);
        cfg.unpullable.push(UNPULLABLE.into());
        let standin = KubeStandin::start(cfg).await.expect("stand-in starts");
        Self {
            standin,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn client_with_token(&self, url: &str, token: &str) -> kube::Client {
        let mut kc = kube::Config::new(url.parse().unwrap());
        kc.default_namespace = NS.into();
        // As the backend's `infer` does: API errors surface at once (the cold start is retried
        // by its caller), not after kube's 15 retries.
        kc.default_retry = false;
        let token_file = self.dir.path().join(format!("token-{}", token.len()));
        std::fs::write(&token_file, token).unwrap();
        kc.auth_info.token_file = Some(token_file.display().to_string());
        kube::Client::try_from(kc).expect("kube client")
    }

    fn client(&self) -> kube::Client {
        self.client_with_token(&self.standin.url(), TOKEN)
    }

    fn backend_config(&self) -> KubeBackendConfig {
        let mut c = KubeBackendConfig::new(NS, PROXY_IMAGE);
        c.start_timeout = Duration::from_secs(20);
        c.stop_grace = Duration::from_secs(2);
        c.api_timeout = Duration::from_secs(5);
        c
    }

    fn backend(&self) -> KubernetesBackend {
        KubernetesBackend::new(self.client(), self.backend_config())
    }

    fn pod_names(&self) -> Vec<String> {
        self.standin
            .pods(NS)
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect()
    }
}

/// The next unsolicited event, within `within`: the container and the reason it exited.
async fn next_exit(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<BackendEvent>,
    within: Duration,
) -> (String, String) {
    let ev = tokio::time::timeout(within, events.recv())
        .await
        .expect("an event in time")
        .expect("event stream open");
    let BackendEvent::Exited {
        container_id,
        reason,
    } = ev;
    (container_id, reason)
}

fn spec(id: &str) -> UnitSpec {
    UnitSpec {
        container_id: id.into(),
        kind: "nodejs:20".into(),
        memory_mb: 256,
        controlplane_url: "http://127.0.0.1:1".into(),
        env: Vec::new(),
        image: None,
        token: whisk_vocab::ContainerToken::generate(),
    }
}

/// Alive = exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

async fn health(address: &str) -> u16 {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{address}/_whisk/health"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_is_a_ready_pod_and_stop_deletes_it() {
    let cluster = Cluster::start().await;
    let backend = cluster.backend();
    let unit = tokio::time::timeout(Duration::from_secs(30), backend.start(spec("wsk-aaa111")))
        .await
        .expect("start answers")
        .expect("pod starts");
    assert_eq!(unit.container_id, "wsk-aaa111");
    assert!(unit.address.starts_with("127.0.0.1:"), "{}", unit.address);
    assert_eq!(
        health(&unit.address).await,
        200,
        "the proxy in the pod serves"
    );

    let pod = cluster
        .standin
        .pod(NS, "whisk-wsk-aaa111")
        .expect("the pod");
    let labels = pod.metadata.labels.clone().unwrap();
    assert_eq!(labels[STACK_LABEL], "whisk");
    assert_eq!(labels[CONTAINER_LABEL], "wsk-aaa111");
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.containers.len(), 2);
    let status = pod.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));

    let pid = cluster
        .standin
        .pid(NS, "whisk-wsk-aaa111")
        .expect("a process");
    backend.stop("wsk-aaa111".into()).await;
    wait_for("the pod to be deleted", Duration::from_secs(10), || {
        cluster.standin.pod(NS, "whisk-wsk-aaa111").is_none()
    })
    .await;
    wait_for(
        "the pod's process to be gone",
        Duration::from_secs(10),
        || !alive(pid),
    )
    .await;
    let mut events = backend.take_events().unwrap();
    assert!(
        events.try_recv().is_err(),
        "a stopped unit is not reported as exited"
    );
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_pod_is_reported_exited() {
    let cluster = Cluster::start().await;
    let backend = cluster.backend();
    let mut events = backend.take_events().unwrap();
    backend.start(spec("wsk-bbb222")).await.expect("pod starts");
    assert!(cluster.standin.kill_process(NS, "whisk-wsk-bbb222"));
    let (container_id, reason) = next_exit(&mut events, Duration::from_secs(10)).await;
    assert_eq!(container_id, "wsk-bbb222");
    assert!(reason.contains("failed"), "{reason}");
    backend.shutdown().await;
    assert!(cluster.pod_names().is_empty(), "{:?}", cluster.pod_names());
    // A backend that shut down starts nothing (no stem-cell refill races the shutdown).
    let e = backend.start(spec("wsk-bbb333")).await.unwrap_err().0;
    assert!(e.contains("shutting down"), "{e}");
    assert!(cluster.pod_names().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_while_the_watch_was_gone_is_found_by_the_relist() {
    let cluster = Cluster::start().await;
    let backend = cluster.backend();
    let mut events = backend.take_events().unwrap();
    backend.start(spec("wsk-ccc333")).await.expect("pod starts");
    backend.start(spec("wsk-ccc444")).await.expect("pod starts");
    // The history is compacted, the watch cut, and a pod deleted behind the backend's back: the
    // watch resumes from a version that is gone (410), re-lists, and misses one pod.
    cluster.standin.inject(Fault {
        verb: Verb::Watch,
        code: 503,
        times: 1,
    });
    cluster.standin.expire_history();
    cluster.standin.drop_watches();
    let pods: KubeApi<Pod> = KubeApi::namespaced(cluster.client(), NS);
    pods.delete(
        "whisk-wsk-ccc333",
        &kube::api::DeleteParams::default().grace_period(0),
    )
    .await
    .expect("deleted");
    assert_eq!(
        next_exit(&mut events, Duration::from_secs(15)).await,
        (
            "wsk-ccc333".to_string(),
            "pod whisk-wsk-ccc333: the pod was deleted".to_string()
        )
    );
    assert!(
        cluster.standin.gone_answers() >= 1,
        "the watch resumed from a compacted version"
    );
    // The other unit is still fine, and new starts work after the re-list.
    let unit = backend.start(spec("wsk-ccc555")).await.expect("pod starts");
    assert_eq!(health(&unit.address).await, 200);
    assert!(
        events.try_recv().is_err(),
        "only the deleted pod is reported"
    );
    backend.shutdown().await;
    assert!(cluster.pod_names().is_empty());
}

/// Start one unit and expect a clear error within `within`.
async fn start_error(backend: &KubernetesBackend, id: &str, within: Duration) -> String {
    let started = Instant::now();
    let r = tokio::time::timeout(within, backend.start(spec(id)))
        .await
        .unwrap_or_else(|_| panic!("start of {id} hung"));
    let e = r.expect_err("the start fails").0;
    assert!(started.elapsed() < within);
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_become_clear_start_errors() {
    let cluster = Cluster::start().await;
    let backend = cluster.backend();
    let limit = Duration::from_secs(25);

    cluster.standin.inject(Fault {
        verb: Verb::Create,
        code: 403,
        times: 1,
    });
    let e = start_error(&backend, "wsk-e403", limit).await;
    assert!(e.contains("403") && e.contains("exceeded quota"), "{e}");

    cluster.standin.inject(Fault {
        verb: Verb::Create,
        code: 503,
        times: 1,
    });
    let e = start_error(&backend, "wsk-e503", limit).await;
    assert!(e.contains("503") && e.contains("unavailable"), "{e}");

    // 409: a pod of that name exists already.
    let pods: KubeApi<Pod> = KubeApi::namespaced(cluster.client(), NS);
    let squatter = cluster.backend_config().pod(&spec("wsk-e409")).unwrap();
    pods.create(&PostParams::default(), &squatter)
        .await
        .expect("the first create succeeds");
    let e = start_error(&backend, "wsk-e409", limit).await;
    assert!(e.contains("409") && e.contains("already exists"), "{e}");

    // 422: the stand-in validates the spec as the API server does.
    let mut bad = cluster.backend_config();
    bad.proxy_image = " ".into();
    let invalid = KubernetesBackend::new(cluster.client(), bad);
    let e = start_error(&invalid, "wsk-e422", limit).await;
    assert!(
        e.contains("422") && e.contains("spec.containers[1].image"),
        "{e}"
    );

    // 401: wrong credentials.
    let wrong = KubernetesBackend::new(
        cluster.client_with_token(&cluster.standin.url(), "not-the-token"),
        cluster.backend_config(),
    );
    let e = start_error(&wrong, "wsk-e401", limit).await;
    assert!(e.contains("401"), "{e}");

    // No server at all.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let unreachable = KubernetesBackend::new(
        cluster.client_with_token(&closed, TOKEN),
        cluster.backend_config(),
    );
    let e = start_error(&unreachable, "wsk-enet", limit).await;
    assert!(e.contains("cannot be reached"), "{e}");

    // An image that cannot be pulled: the pod is deleted, the error says why.
    drop((invalid, wrong, unreachable));
    let e = {
        let mut cfg = cluster.backend_config();
        cfg.runtime_images
            .insert("nodejs:20".into(), UNPULLABLE.into());
        let b = KubernetesBackend::new(cluster.client(), cfg);
        start_error(&b, "wsk-epull", limit).await
    };
    assert!(e.contains("ErrImagePull"), "{e}");
    wait_for(
        "the unpullable pod to be deleted",
        Duration::from_secs(10),
        || cluster.standin.pod(NS, "whisk-wsk-epull").is_none(),
    )
    .await;

    backend.shutdown().await;
    assert!(cluster.pod_names().is_empty(), "{:?}", cluster.pod_names());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_pending_past_the_deadline_is_deleted() {
    let cluster = Cluster::start().await;
    let mut cfg = cluster.backend_config();
    cfg.start_timeout = Duration::from_secs(2);
    // The watch never works: the backend never sees the pod ready.
    for verb in [Verb::List, Verb::Watch] {
        cluster.standin.inject(Fault {
            verb,
            code: 503,
            times: 100_000,
        });
    }
    let backend = KubernetesBackend::new(cluster.client(), cfg);
    let e = start_error(&backend, "wsk-slow", Duration::from_secs(15)).await;
    assert!(e.contains("not ready within"), "{e}");
    wait_for(
        "the pending pod to be deleted",
        Duration::from_secs(10),
        || cluster.standin.pod(NS, "whisk-wsk-slow").is_none(),
    )
    .await;
}

/// Invoke `guest/hello` at a container as the router would (Contract 2).
async fn invoke(ep: &pb::Endpoint, revision: u64, name: &str) -> serde_json::Value {
    let address = &ep.address;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = http
        .post(format!(
            "http://{address}/api/v1/namespaces/guest/actions/hello?blocking=true"
        ))
        .header("x-whisk-container-token", &ep.container_token)
        .header("content-type", "application/json")
        .header(
            "x-whisk-activation-id",
            format!("{:032x}", rand::random::<u128>()),
        )
        .header("x-whisk-transaction-id", "tid-k8s")
        .header("x-whisk-namespace", "guest")
        .header("x-whisk-subject", "guest")
        .header("x-whisk-action", "guest/hello")
        .header("x-whisk-action-revision", revision.to_string())
        .header("x-whisk-blocking", "true")
        .header("x-whisk-result", "false")
        .header("x-whisk-deadline", (now_ms() + 30_000).to_string())
        .header("x-whisk-received-at", now_ms().to_string())
        .body(json!({ "name": name }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

/// Create `guest/hello` and cold-start it; returns the endpoint and the revision.
async fn hello_endpoint(cp: &whisk_controlplane::ControlPlaneHandle) -> (pb::Endpoint, u64) {
    let guest = Api::new(cp, Some("guest"));
    let code = "function main(params) { return { greeting: 'hello ' + params.name }; }";
    let (s, created) = guest
        .put(
            "/api/v1/namespaces/_/actions/hello?overwrite=true",
            json!({ "exec": { "kind": "nodejs:default", "code": code } }),
        )
        .await;
    assert_eq!(s, 200, "{created}");
    let revision = cp.plane().hub.action("guest/hello").unwrap().revision;
    let mut client = grpc(cp).await;
    let outcome = client
        .cold_start(pb::ColdStartRequest {
            action_fqn: "guest/hello".into(),
            deadline_unix_ms: now_ms() + 30_000,
            router_id: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    match outcome {
        pb::cold_start_response::Outcome::Endpoint(e) => (e, revision),
        pb::cold_start_response::Outcome::Error(e) => panic!("cold start failed: {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_cold_starts_through_pods() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.prewarm = vec![("nodejs:20".into(), 1)];
    let backend = Arc::new(cluster.backend());
    let cp = whisk_controlplane::start_with_backend(config, backend.clone())
        .await
        .unwrap();
    let stems = || {
        cp.plane()
            .container_ids()
            .iter()
            .filter(|(_, s, _)| *s == State::Stem)
            .count()
    };
    wait_for("a nodejs stem-cell pod", Duration::from_secs(30), || {
        stems() == 1
    })
    .await;
    assert_eq!(cluster.pod_names().len(), 1);
    let stem_id = cp.plane().container_ids()[0].0.clone();

    let (ep, revision) = hello_endpoint(&cp).await;
    assert_eq!(
        ep.container_id, stem_id,
        "initialised from the stem-cell pod"
    );
    let record = invoke(&ep, revision, "pod").await;
    assert_eq!(
        record["response"]["result"],
        json!({ "greeting": "hello pod" }),
        "{record}"
    );
    let pod_of = |id: &str| {
        cluster
            .standin
            .pods(NS)
            .into_iter()
            .find(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(CONTAINER_LABEL))
                    .map(String::as_str)
                    == Some(id)
            })
            .and_then(|p| p.metadata.name)
    };
    let annotations = cluster
        .standin
        .pod(NS, &pod_of(&ep.container_id).unwrap())
        .and_then(|p| p.metadata.annotations)
        .unwrap();
    assert_eq!(annotations["whisk.apache.org/action"], "guest/hello");
    let labels = cluster
        .standin
        .pod(NS, &pod_of(&ep.container_id).unwrap())
        .and_then(|p| p.metadata.labels)
        .unwrap();
    assert_eq!(labels["whisk.apache.org/action"], "guest.hello");
    assert_eq!(
        labels["whisk.apache.org/action-revision"],
        revision.to_string()
    );
    wait_for("the stem pool to refill", Duration::from_secs(30), || {
        stems() == 1
    })
    .await;

    // GC: idle past the keep-alive, marked, swept: the pod is deleted.
    let keep_alive = Duration::from_secs(600);
    let t0 = Instant::now();
    let r = cp
        .plane()
        .gc_tick_at(t0 + keep_alive + Duration::from_secs(1));
    assert_eq!(r.marked, vec![ep.container_id.clone()]);
    let r = cp
        .plane()
        .gc_tick_at(t0 + keep_alive + Duration::from_secs(60));
    assert_eq!(r.swept, vec![ep.container_id.clone()]);
    wait_for(
        "the swept pod to be deleted",
        Duration::from_secs(10),
        || pod_of(&ep.container_id).is_none(),
    )
    .await;

    // A crashed pod's endpoint is removed.
    let (ep, _) = hello_endpoint(&cp).await;
    let pod = pod_of(&ep.container_id).expect("the warm container's pod");
    assert!(cluster.standin.kill_process(NS, &pod));
    wait_for(
        "the crashed pod's container to be removed",
        Duration::from_secs(10),
        || {
            !cp.plane()
                .container_ids()
                .iter()
                .any(|(id, _, _)| *id == ep.container_id)
        },
    )
    .await;

    cp.shutdown().await;
    assert!(
        cluster.pod_names().is_empty(),
        "no pods after a clean shutdown: {:?}",
        cluster.pod_names()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_backend_adopts_ready_pods_and_deletes_the_rest() {
    let cluster = Cluster::start().await;
    let first = cluster.backend();
    first.start(spec("wsk-ddd111")).await.expect("pod starts");
    first.start(spec("wsk-ddd222")).await.expect("pod starts");
    // The control plane dies without shutting down: its pods stay; one of them then fails.
    drop(first);
    assert!(cluster.standin.kill_process(NS, "whisk-wsk-ddd222"));
    wait_for("the pod to fail", Duration::from_secs(10), || {
        cluster
            .standin
            .pod(NS, "whisk-wsk-ddd222")
            .and_then(|p| p.status?.phase)
            .as_deref()
            == Some("Failed")
    })
    .await;
    // Another stack's pod in the same namespace is not ours to touch.
    let mut other = cluster.backend_config();
    other.stack = "other".into();
    let other = KubernetesBackend::new(cluster.client(), other);
    other.start(spec("wsk-ddd333")).await.expect("pod starts");

    let second = cluster.backend();
    let mut events = second.take_events().unwrap();
    let adopted = second.adopt().await;
    assert_eq!(adopted.len(), 1, "{adopted:?}");
    assert_eq!(adopted[0].container_id, "wsk-ddd111");
    assert_eq!(adopted[0].kind, "nodejs:20");
    assert_eq!(adopted[0].memory_mb, 256);
    assert_eq!(adopted[0].action, None);
    assert_eq!(health(&adopted[0].address).await, 200);
    wait_for(
        "the failed pod to be deleted",
        Duration::from_secs(10),
        || cluster.standin.pod(NS, "whisk-wsk-ddd222").is_none(),
    )
    .await;
    assert!(cluster.standin.pod(NS, "other-wsk-ddd333").is_some());
    // The adopted pod is watched like one this backend started.
    assert!(cluster.standin.kill_process(NS, "whisk-wsk-ddd111"));
    let (container_id, _) = next_exit(&mut events, Duration::from_secs(10)).await;
    assert_eq!(container_id, "wsk-ddd111");
    second.shutdown().await;
    other.shutdown().await;
    assert!(cluster.pod_names().is_empty(), "{:?}", cluster.pod_names());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_control_plane_adopts_its_warm_pods() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = test_config(dir.path());
        c.prewarm = vec![("nodejs:20".into(), 1)];
        c
    };
    let cp = whisk_controlplane::start_with_backend(config(), Arc::new(cluster.backend()))
        .await
        .unwrap();
    let (ep, revision) = hello_endpoint(&cp).await;
    wait_for("two pods (warm + stem)", Duration::from_secs(30), || {
        cluster.pod_names().len() == 2
    })
    .await;
    let before = cluster.pod_names();
    // The control plane is replaced without a clean shutdown (an upgrade, a crash).
    drop(cp);

    let deadline = Instant::now() + Duration::from_secs(10);
    let cp = loop {
        match whisk_controlplane::start_with_backend(config(), Arc::new(cluster.backend())).await {
            Ok(cp) => break cp,
            Err(e) => {
                assert!(Instant::now() < deadline, "restart failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let containers = cp.plane().container_ids();
    assert!(
        containers.iter().any(|(id, s, a)| *id == ep.container_id
            && *s == State::Ready
            && a.as_deref() == Some("guest/hello")),
        "the warm pod is adopted as a warm container: {containers:?}"
    );
    assert!(
        containers.iter().any(|(_, s, _)| *s == State::Stem),
        "the stem cell is adopted: {containers:?}"
    );
    assert_eq!(cluster.pod_names(), before, "no pod was started or deleted");
    let record = invoke(&ep, revision, "again").await;
    assert_eq!(
        record["response"]["result"],
        json!({ "greeting": "hello again" })
    );
    cp.shutdown().await;
    assert!(cluster.pod_names().is_empty(), "{:?}", cluster.pod_names());
}

/// `whisk controlplane` and its children, killed on drop.
struct Whisk(std::process::Child);

impl Drop for Whisk {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisk_controlplane_backend_kubernetes_finds_the_cluster_in_kubeconfig() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, cluster.standin.kubeconfig(NS)).unwrap();
    let mut whisk = Whisk(
        std::process::Command::new(env!("CARGO_BIN_EXE_whisk"))
            .args(["controlplane", "--backend", "kubernetes", "--proxy-image"])
            .arg(PROXY_IMAGE)
            .args([
                "--kube-namespace",
                NS,
                "--prewarm",
                "nodejs:20=1",
                "--gc-interval-secs",
                "0",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", dir.path())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("whisk starts"),
    );
    let ready = || {
        cluster.standin.pods(NS).iter().any(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
    };
    wait_for("a ready stem-cell pod", Duration::from_secs(30), ready).await;
    // SIGTERM: a clean shutdown deletes the pods.
    // SAFETY: kill(2) on the child this test started and has not reaped.
    unsafe {
        libc::kill(whisk.0.id() as libc::pid_t, libc::SIGTERM);
    }
    wait_for("no pods after shutdown", Duration::from_secs(20), || {
        cluster.pod_names().is_empty()
    })
    .await;
    // The servers get up to 5 s each to finish gracefully.
    let deadline = Instant::now() + Duration::from_secs(30);
    while whisk.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "whisk did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_pod_is_reported_exited() {
    let cluster = Cluster::start().await;
    let backend = cluster.backend();
    let mut events = backend.take_events().unwrap();
    backend.start(spec("wsk-fff111")).await.expect("pod starts");
    assert!(cluster.standin.evict(NS, "whisk-wsk-fff111"));
    let (container_id, reason) = next_exit(&mut events, Duration::from_secs(10)).await;
    assert_eq!(container_id, "wsk-fff111");
    assert!(reason.contains("Evicted"), "{reason}");
    wait_for(
        "the evicted pod to be deleted",
        Duration::from_secs(10),
        || cluster.standin.pod(NS, "whisk-wsk-fff111").is_none(),
    )
    .await;
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exceeded_quota_is_a_clear_cold_start_error() {
    let mut cfg = StandinConfig::new(TOKEN);
    cfg.pod_quota = Some(1);
    let cluster = Cluster::with(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.prewarm = vec![("python:3".into(), 1)];
    let cp = whisk_controlplane::start_with_backend(config, Arc::new(cluster.backend()))
        .await
        .unwrap();
    wait_for("the python stem-cell pod", Duration::from_secs(30), || {
        cp.plane()
            .container_ids()
            .iter()
            .any(|(_, s, _)| *s == State::Stem)
    })
    .await;
    // The nodejs action needs a new pod; the namespace's quota is used up.
    let guest = Api::new(&cp, Some("guest"));
    let (s, b) = guest
        .put(
            "/api/v1/namespaces/_/actions/hello",
            json!({ "exec": { "kind": "nodejs:default", "code": "function main() { return {}; }" } }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut client = grpc(&cp).await;
    let started = Instant::now();
    let outcome = client
        .cold_start(pb::ColdStartRequest {
            action_fqn: "guest/hello".into(),
            deadline_unix_ms: now_ms() + 30_000,
            router_id: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");
    match outcome {
        pb::cold_start_response::Outcome::Error(e) => {
            assert!(
                e.message.contains("403") && e.message.contains("exceeded quota"),
                "{e:?}"
            );
        }
        pb::cold_start_response::Outcome::Endpoint(e) => panic!("started beyond the quota: {e:?}"),
    }
    cp.shutdown().await;
    assert!(cluster.pod_names().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_bigger_than_the_stem_cell_gets_its_own_pod() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.prewarm = vec![("nodejs:20".into(), 1)];
    let cp = whisk_controlplane::start_with_backend(config, Arc::new(cluster.backend()))
        .await
        .unwrap();
    wait_for("a nodejs stem-cell pod", Duration::from_secs(30), || {
        cp.plane()
            .container_ids()
            .iter()
            .any(|(_, s, _)| *s == State::Stem)
    })
    .await;
    let stem_id = cp.plane().container_ids()[0].0.clone();
    let guest = Api::new(&cp, Some("guest"));
    let (s, b) = guest
        .put(
            "/api/v1/namespaces/_/actions/big",
            json!({
                "exec": { "kind": "nodejs:20", "code": "function main() { return { ok: true }; }" },
                "limits": { "memory": 512 }
            }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut client = grpc(&cp).await;
    let outcome = client
        .cold_start(pb::ColdStartRequest {
            action_fqn: "guest/big".into(),
            deadline_unix_ms: now_ms() + 30_000,
            router_id: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    let pb::cold_start_response::Outcome::Endpoint(ep) = outcome else {
        panic!("cold start failed: {outcome:?}");
    };
    assert_ne!(
        ep.container_id, stem_id,
        "a 256 MB stem cell cannot hold 512 MB"
    );
    let pod = cluster
        .standin
        .pod(NS, &format!("whisk-{}", ep.container_id))
        .expect("the action's pod");
    let runtime = &pod.spec.unwrap().containers[0];
    assert_eq!(
        runtime.resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"].0,
        "512Mi"
    );
    cp.shutdown().await;
    assert!(cluster.pod_names().is_empty());
}
