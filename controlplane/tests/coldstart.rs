//! Cold starts over gRPC with a fake backend: stem cells, fresh starts, coalescing, errors,
//! deadlines, capacity and eviction, and retirement on update/delete/crash.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use whisk_controlplane::pool::State;
use whisk_proto::controlplane::v1 as pb;
use whisk_proto::controlplane::v1::cold_start_error::Code;
use whisk_proto::controlplane::v1::cold_start_response::Outcome;

async fn cold_start(
    cp: &whisk_controlplane::ControlPlaneHandle,
    fqn: &str,
    deadline_ms: u64,
) -> Outcome {
    let mut client = grpc(cp).await;
    client
        .cold_start(pb::ColdStartRequest {
            action_fqn: fqn.into(),
            deadline_unix_ms: deadline_ms,
            router_id: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap()
}

fn endpoint(o: Outcome) -> pb::Endpoint {
    match o {
        Outcome::Endpoint(e) => e,
        Outcome::Error(e) => panic!("expected an endpoint, got {e:?}"),
    }
}

fn error(o: Outcome) -> pb::ColdStartError {
    match o {
        Outcome::Error(e) => e,
        Outcome::Endpoint(e) => panic!("expected an error, got {e:?}"),
    }
}

use whisk_vocab::now_ms;

fn stems(cp: &whisk_controlplane::ControlPlaneHandle) -> usize {
    cp.plane()
        .container_ids()
        .iter()
        .filter(|(_, s, _)| *s == State::Stem)
        .count()
}

#[tokio::test]
async fn from_stem_cell_then_refill() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new(false);
    let mut config = test_config(dir.path());
    config.prewarm = vec![("nodejs:20".into(), 1)];
    let cp = start_fake(config, backend.clone()).await;
    wait_for("a stem cell", Duration::from_secs(5), || stems(&cp) == 1).await;
    assert_eq!(backend.starts(), 1);

    let guest = Api::new(&cp, Some("guest"));
    let (_, a) = guest
        .put(
            "/api/v1/namespaces/_/actions/hello",
            json!({ "exec": { "kind": "nodejs:default", "code": "x" } }),
        )
        .await;
    let ep = endpoint(cold_start(&cp, "guest/hello", 0).await);
    assert_eq!(ep.action_fqn, "guest/hello");
    assert_eq!(ep.state, pb::EndpointState::Ready as i32);
    assert_eq!(ep.capacity, 1);
    assert_eq!(
        ep.action_revision,
        cp.plane().hub.action("guest/hello").unwrap().revision
    );
    assert_eq!(a["version"], "0.0.1");
    assert_eq!(backend.inits(), 1);
    // The stem cell was used (its id), and the pool is refilled in the background.
    assert_eq!(cp.plane().hub.endpoint(&ep.container_id).unwrap(), ep);
    wait_for("the stem pool to refill", Duration::from_secs(5), || {
        stems(&cp) == 1
    })
    .await;
    assert_eq!(backend.starts(), 2);
    cp.shutdown().await;
    assert_eq!(backend.live_count(), 0);
}

#[tokio::test]
async fn without_stem_cell_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new(false);
    let cp = start_fake(test_config(dir.path()), backend.clone()).await;
    let guest = Api::new(&cp, Some("guest"));
    guest
        .put(
            "/api/v1/namespaces/_/actions/py",
            json!({ "exec": { "kind": "python:default", "code": "x" } }),
        )
        .await;
    let ep = endpoint(cold_start(&cp, "guest/py", now_ms() + 10_000).await);
    assert_eq!(backend.starts(), 1);
    assert_eq!(backend.inits(), 1);
    assert!(ep.address.starts_with("127.0.0.1:"));
    cp.shutdown().await;
}

#[tokio::test]
async fn concurrent_cold_starts_are_coalesced() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new(true);
    let cp = start_fake(test_config(dir.path()), backend.clone()).await;
    Api::new(&cp, Some("guest"))
        .put("/api/v1/namespaces/_/actions/a", nodejs_action("x"))
        .await;

    let mut calls = Vec::new();
    for _ in 0..5 {
        let (url, token) = (
            cp.grpc_url(),
            RouterToken::from_file(cp.router_token_file()),
        );
        calls.push(tokio::spawn(async move {
            let mut c = grpc_at(url, token).await;
            c.cold_start(pb::ColdStartRequest {
                action_fqn: "guest/a".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .outcome
            .unwrap()
        }));
    }
    // All five are waiting on the one start held at the gate.
    wait_for("the start to be requested", Duration::from_secs(5), || {
        cp.plane()
            .container_ids()
            .iter()
            .any(|(_, s, _)| *s == State::Starting)
    })
    .await;
    backend.release(1);
    let mut ids = std::collections::HashSet::new();
    for c in calls {
        ids.insert(endpoint(c.await.unwrap()).container_id);
    }
    assert_eq!(ids.len(), 1, "one container for all callers");
    assert_eq!(backend.starts(), 1);
    assert_eq!(backend.inits(), 1);
    cp.shutdown().await;
}

#[tokio::test]
async fn unknown_action_and_init_failure() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new(false);
    let cp = start_fake(test_config(dir.path()), backend.clone()).await;
    let e = error(cold_start(&cp, "guest/nope", 0).await);
    assert_eq!(e.code, Code::UnknownAction as i32);
    assert_eq!(
        e.message,
        "The requested resource 'guest/nope' does not exist."
    );

    Api::new(&cp, Some("guest"))
        .put(
            "/api/v1/namespaces/_/actions/bad",
            nodejs_action("SYNTAX_ERROR"),
        )
        .await;
    let e = error(cold_start(&cp, "guest/bad", 0).await);
    assert_eq!(e.code, Code::InitFailed as i32);
    assert_eq!(e.message, "Initialization has failed due to: SyntaxError");
    // What the action printed during init reaches the router, for the activation record.
    assert_eq!(e.logs, vec!["booting".to_string()]);
    wait_for(
        "the failed container to be stopped",
        Duration::from_secs(5),
        || backend.live_count() == 0,
    )
    .await;
    assert!(cp.plane().container_ids().is_empty());
    cp.shutdown().await;
}

#[tokio::test]
async fn deadline_is_honoured_and_start_continues() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new(true);
    let cp = start_fake(test_config(dir.path()), backend.clone()).await;
    Api::new(&cp, Some("guest"))
        .put("/api/v1/namespaces/_/actions/a", nodejs_action("x"))
        .await;

    let e = error(cold_start(&cp, "guest/a", now_ms() - 1).await);
    assert_eq!(e.code, Code::DeadlineExceeded as i32);
    let e = error(cold_start(&cp, "guest/a", now_ms() + 200).await);
    assert_eq!(e.code, Code::DeadlineExceeded as i32);
    // The start goes on for whoever comes next.
    backend.release(1);
    wait_for(
        "the container to become ready",
        Duration::from_secs(5),
        || {
            cp.plane()
                .container_ids()
                .iter()
                .any(|(_, s, _)| *s == State::Ready)
        },
    )
    .await;
    cp.shutdown().await;
}

#[tokio::test]
async fn capacity_eviction_and_exhaustion() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new(false);
    let mut config = test_config(dir.path());
    config.max_containers = 1;
    config.evict_min_idle = Duration::ZERO;
    let cp = start_fake(config, backend.clone()).await;
    let guest = Api::new(&cp, Some("guest"));
    guest
        .put("/api/v1/namespaces/_/actions/a", nodejs_action("x"))
        .await;
    guest
        .put("/api/v1/namespaces/_/actions/b", nodejs_action("x"))
        .await;

    let a = endpoint(cold_start(&cp, "guest/a", 0).await);
    let b = endpoint(cold_start(&cp, "guest/b", 0).await);
    assert!(
        cp.plane().hub.endpoint(&a.container_id).is_none(),
        "LRU container evicted"
    );
    assert!(cp.plane().hub.endpoint(&b.container_id).is_some());
    wait_for("the evicted unit to stop", Duration::from_secs(5), || {
        backend.live_count() == 1
    })
    .await;
    cp.shutdown().await;

    // Nothing idle long enough to evict: exhausted, with a retry hint.
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.max_containers = 1;
    config.evict_min_idle = Duration::from_secs(3600);
    let cp = start_fake(config, FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    guest
        .put("/api/v1/namespaces/_/actions/a", nodejs_action("x"))
        .await;
    guest
        .put("/api/v1/namespaces/_/actions/b", nodejs_action("x"))
        .await;
    endpoint(cold_start(&cp, "guest/a", 0).await);
    let e = error(cold_start(&cp, "guest/b", 0).await);
    assert_eq!(e.code, Code::CapacityExhausted as i32);
    assert!(e.retry_after_ms > 0);
    cp.shutdown().await;
}

#[tokio::test]
async fn update_delete_crash_and_unusable_retire_containers() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new(false);
    let cp = start_fake(test_config(dir.path()), backend.clone()).await;
    let guest = Api::new(&cp, Some("guest"));
    let mut client = grpc(&cp).await;
    guest
        .put("/api/v1/namespaces/_/actions/a", nodejs_action("x"))
        .await;

    // Update retires the old revision's container.
    let ep = endpoint(cold_start(&cp, "guest/a", 0).await);
    guest
        .put(
            "/api/v1/namespaces/_/actions/a?overwrite=true",
            nodejs_action("y"),
        )
        .await;
    assert!(cp.plane().hub.endpoint(&ep.container_id).is_none());
    wait_for("the retired unit to stop", Duration::from_secs(5), || {
        backend.live_count() == 0
    })
    .await;

    // A unit that dies on its own disappears.
    let ep = endpoint(cold_start(&cp, "guest/a", 0).await);
    backend.crash(&ep.container_id);
    wait_for("the crashed endpoint to go", Duration::from_secs(5), || {
        cp.plane().hub.endpoint(&ep.container_id).is_none()
    })
    .await;

    // ReportUnusable removes it.
    let ep = endpoint(cold_start(&cp, "guest/a", 0).await);
    client
        .report_unusable(pb::ReportUnusableRequest {
            container_id: ep.container_id.clone(),
            reason: "dead".into(),
        })
        .await
        .unwrap();
    assert!(cp.plane().hub.endpoint(&ep.container_id).is_none());

    // Delete retires too.
    let ep = endpoint(cold_start(&cp, "guest/a", 0).await);
    guest.delete("/api/v1/namespaces/_/actions/a").await;
    assert!(cp.plane().hub.endpoint(&ep.container_id).is_none());
    wait_for("all units to stop", Duration::from_secs(5), || {
        backend.live_count() == 0
    })
    .await;
    cp.shutdown().await;
}

async fn cold_start_for(
    cp: &whisk_controlplane::ControlPlaneHandle,
    fqn: &str,
    invoking_namespace: &str,
) -> Outcome {
    let mut client = grpc(cp).await;
    client
        .cold_start(pb::ColdStartRequest {
            action_fqn: fqn.into(),
            deadline_unix_ms: now_ms() + 10_000,
            router_id: "t".into(),
            invoking_namespace: invoking_namespace.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap()
}

#[tokio::test]
async fn each_caller_namespace_gets_its_own_container_of_a_public_action() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new(true);
    let cp = start_fake(test_config(dir.path()), backend.clone()).await;
    let guest = Api::new(&cp, Some("guest"));
    publish_shared_count(&guest).await;
    guest
        .put("/api/v1/namespaces/_/actions/private", nodejs_action("x"))
        .await;

    // Concurrent starts coalesce per (action, invoking namespace): two starts for two callers.
    let (g1, g2, o1) = {
        let g1 = cold_start_for(&cp, "guest/shared/count", "guest");
        let g2 = cold_start_for(&cp, "guest/shared/count", "guest");
        let o1 = cold_start_for(&cp, "guest/shared/count", "other");
        let release = async {
            wait_for(
                "two starts to wait at the gate",
                Duration::from_secs(5),
                || {
                    cp.plane()
                        .container_ids()
                        .iter()
                        .filter(|(_, s, _)| *s == State::Starting)
                        .count()
                        == 2
                },
            )
            .await;
            backend.release(2);
        };
        let (g1, g2, o1, ()) = tokio::join!(g1, g2, o1, release);
        (endpoint(g1), endpoint(g2), endpoint(o1))
    };
    assert_eq!(backend.starts(), 2);
    assert_eq!(g1.container_id, g2.container_id, "one start per namespace");
    assert_ne!(
        g1.container_id, o1.container_id,
        "never shared across namespaces"
    );
    assert_eq!(g1.invoking_namespace, "guest");
    assert_eq!(o1.invoking_namespace, "other");
    assert_ne!(g1.container_token, o1.container_token);
    assert_eq!(g1.container_token.len(), 64);

    // The owner's invokes default to the owner; another namespace cannot get a container of a
    // private action.
    backend.release(1);
    let own = endpoint(cold_start(&cp, "guest/private", 0).await);
    assert_eq!(own.invoking_namespace, "guest");
    let e = error(cold_start_for(&cp, "guest/private", "other").await);
    assert_eq!(e.code, Code::UnknownAction as i32);
    cp.shutdown().await;
}

#[tokio::test]
async fn a_stem_cell_gets_its_namespace_when_specialised() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new(false);
    let mut config = test_config(dir.path());
    config.prewarm = vec![("nodejs:20".into(), 1)];
    let cp = start_fake(config, backend.clone()).await;
    wait_for("a stem cell", Duration::from_secs(5), || stems(&cp) == 1).await;
    let stem_id = cp.plane().container_ids()[0].0.clone();
    let guest = Api::new(&cp, Some("guest"));
    publish_shared_count(&guest).await;
    let ep = endpoint(cold_start_for(&cp, "guest/shared/count", "other").await);
    assert_eq!(ep.container_id, stem_id);
    assert_eq!(ep.invoking_namespace, "other");
    assert_eq!(ep.container_token.len(), 64);
    cp.shutdown().await;
}

/// An action stored before its runtime was deprecated (the API refuses to create one now) is not
/// started: OpenWhisk's "no longer supported" text, and no unit is started for it.
#[tokio::test]
async fn an_action_of_a_deprecated_kind_is_not_started() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new(false);
    let cp = start_fake(test_config(dir.path()), backend.clone()).await;
    Api::new(&cp, Some("guest"))
        .put("/api/v1/namespaces/_/actions/old", nodejs_action("code"))
        .await;
    let store = &cp.plane().store;
    let mut old = store.get_action("guest/old").unwrap().unwrap();
    old.exec.kind = "nodejs:14".into();
    store.put_action(&old).unwrap();
    let starts = backend.starts();
    let e = error(cold_start(&cp, "guest/old", 0).await);
    assert_eq!(e.code, Code::KindDeprecated as i32);
    assert_eq!(
        e.message,
        "The 'nodejs:14' runtime is no longer supported. You may read and delete but not update or invoke this action."
    );
    assert_eq!(backend.starts(), starts, "nothing was started for it");
    cp.shutdown().await;
}
