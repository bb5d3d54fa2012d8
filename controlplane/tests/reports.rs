//! Authenticated reports over real gRPC: a container proxy's `ReportActivation` and
//! `ReportUnusable` count only with its container's token, only for the action it holds; records
//! are stored under the container's invoking namespace and never overwritten.

mod common;

use common::*;
use serde_json::{Value, json};
use whisk_controlplane::ControlPlaneHandle;
use whisk_controlplane::pool::Endpoint;
use whisk_proto::controlplane::v1 as pb;

fn record(id: &str, path: &str, namespace: &str, result: u32) -> String {
    json!({
        "namespace": namespace, "name": path.rsplit('/').next().unwrap(), "subject": namespace,
        "activationId": id, "start": 1000, "end": 1010, "duration": 10,
        "response": { "statusCode": 0, "result": { "n": result } }, "logs": [],
        "annotations": [{ "key": "path", "value": path }],
    })
    .to_string()
}

async fn report(
    cp: &ControlPlaneHandle,
    container_id: &str,
    token: Option<&str>,
    json: String,
) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(pb::ReportActivationRequest {
        container_id: container_id.into(),
        activation_json: json,
    });
    if let Some(t) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    grpc(cp).await.report_activation(request).await.map(|_| ())
}

fn stored(cp: &ControlPlaneHandle, namespace: &str, id: &str) -> Option<Value> {
    cp.plane().store.get_activation(namespace, id).unwrap()
}

/// A control plane with alice's container of guest's public `shared/count` and guest's
/// container of `private`.
async fn two_containers(dir: &std::path::Path) -> (ControlPlaneHandle, Endpoint, Endpoint) {
    let cp = start_fake(test_config(dir), FakeBackend::new(false)).await;
    let guest = Api::new(&cp, Some("guest"));
    publish_shared_count(&guest).await;
    guest
        .put("/api/v1/namespaces/_/actions/private", nodejs_action("x"))
        .await;
    let plane = cp.plane().clone();
    let alices =
        whisk_controlplane::coldstart::cold_start(&plane, "guest/shared/count", "alice", None)
            .await
            .unwrap();
    let guests = whisk_controlplane::coldstart::cold_start(&plane, "guest/private", "", None)
        .await
        .unwrap();
    (cp, alices, guests)
}

#[tokio::test]
async fn a_containers_report_counts_only_with_its_token_for_its_action() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, a, b) = two_containers(dir.path()).await;
    let id = "0123456789abcdef0123456789abcdef";
    let path = "guest/shared/count";

    // No token, or container B's token on container A: unauthenticated, nothing stored.
    let none = report(&cp, &a.container_id, None, record(id, path, "alice", 1)).await;
    assert_eq!(none.unwrap_err().code(), tonic::Code::Unauthenticated);
    let other = report(
        &cp,
        &a.container_id,
        Some(b.token.expose()),
        record(id, path, "alice", 1),
    )
    .await;
    assert_eq!(other.unwrap_err().code(), tonic::Code::Unauthenticated);
    let unknown = report(
        &cp,
        "wsk-nope",
        Some(a.token.expose()),
        record(id, path, "alice", 1),
    )
    .await;
    assert_eq!(unknown.unwrap_err().code(), tonic::Code::Unauthenticated);
    // The right token, but a record of an action the container does not hold.
    let foreign = report(
        &cp,
        &a.container_id,
        Some(a.token.expose()),
        record(id, "guest/private", "guest", 1),
    )
    .await;
    assert_eq!(foreign.unwrap_err().code(), tonic::Code::PermissionDenied);
    for ns in ["alice", "guest"] {
        assert!(stored(&cp, ns, id).is_none(), "stored in {ns}");
    }

    // A record claiming another namespace is stored under the container's invoking namespace.
    report(
        &cp,
        &a.container_id,
        Some(a.token.expose()),
        record(id, path, "guest", 1),
    )
    .await
    .unwrap();
    assert!(stored(&cp, "guest", id).is_none());
    let kept = stored(&cp, "alice", id).expect("stored under alice");
    assert_eq!(kept["namespace"], "alice");
    assert_eq!(kept["response"]["result"]["n"], 1);

    // A repeat of the id is acknowledged and ignored: the first record stays.
    report(
        &cp,
        &a.container_id,
        Some(a.token.expose()),
        record(id, path, "alice", 2),
    )
    .await
    .unwrap();
    assert_eq!(
        stored(&cp, "alice", id).unwrap()["response"]["result"]["n"],
        1
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn a_record_the_router_produced_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, a, _) = two_containers(dir.path()).await;
    let id = "fedcba9876543210fedcba9876543210";
    report(
        &cp,
        &a.container_id,
        Some(a.token.expose()),
        record(id, "guest/shared/count", "alice", 1),
    )
    .await
    .unwrap();
    // Without a container (the router's path): accepted, but the stored record stays.
    report(&cp, "", None, record(id, "guest/shared/count", "alice", 9))
        .await
        .unwrap();
    assert_eq!(
        stored(&cp, "alice", id).unwrap()["response"]["result"]["n"],
        1
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn unusable_reports_with_a_wrong_token_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, a, b) = two_containers(dir.path()).await;
    let unusable = |token: Option<String>| {
        let mut request = tonic::Request::new(pb::ReportUnusableRequest {
            container_id: a.container_id.clone(),
            reason: "test".into(),
        });
        if let Some(t) = token {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        request
    };
    let mut client = grpc(&cp).await;
    let wrong = client
        .report_unusable(unusable(Some(b.token.expose().to_string())))
        .await;
    assert_eq!(wrong.unwrap_err().code(), tonic::Code::Unauthenticated);
    let alive = |cp: &ControlPlaneHandle| {
        cp.plane()
            .container_ids()
            .iter()
            .any(|(id, _, _)| *id == a.container_id)
    };
    assert!(alive(&cp), "a refused report removes nothing");
    client
        .report_unusable(unusable(Some(a.token.expose().to_string())))
        .await
        .unwrap();
    assert!(!alive(&cp));
    cp.shutdown().await;
}

/// One spool entry as a container proxy writes it.
fn spool_entry(id: &str, path: &str, namespace: &str) -> String {
    json!({ "activation": { "id": id, "json": record(id, path, namespace, 7) } }).to_string()
}

#[tokio::test]
async fn records_left_in_a_dead_proxys_spool_are_stored_and_a_live_proxys_spool_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let root = dir.path().join("spool");
    let dead = root.join("c-dead");
    let live = root.join("c-live");
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::create_dir_all(&live).unwrap();
    let dead_id = "0123456789abcdef0123456789abcde1";
    let live_id = "0123456789abcdef0123456789abcde2";
    // A whole entry, then the torn write a kill mid-append leaves.
    std::fs::write(
        dead.join("reports.spool"),
        format!(
            "{}\n{{\"activation\":{{\"id\":\"tor",
            spool_entry(dead_id, "guest/private", "guest")
        ),
    )
    .unwrap();
    std::fs::write(
        live.join("reports.spool"),
        format!("{}\n", spool_entry(live_id, "guest/private", "guest")),
    )
    .unwrap();
    // A live proxy holds an exclusive lock on its spool.
    let held = std::fs::File::open(live.join("reports.spool")).unwrap();
    use std::os::fd::AsRawFd;
    assert_eq!(
        unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );

    // A spool younger than the minimum age may belong to a proxy that is starting: left alone.
    whisk_controlplane::spools::sweep(cp.plane(), &root, std::time::Duration::from_secs(3600));
    assert!(stored(&cp, "guest", dead_id).is_none());
    assert!(dead.exists());

    whisk_controlplane::spools::sweep(cp.plane(), &root, std::time::Duration::ZERO);

    assert!(stored(&cp, "guest", dead_id).is_some());
    assert!(!dead.exists(), "the swept spool is removed");
    assert!(stored(&cp, "guest", live_id).is_none());
    assert!(live.join("reports.spool").exists());
    drop(held);
    // Once its proxy is gone the next sweep takes it.
    whisk_controlplane::spools::sweep(cp.plane(), &root, std::time::Duration::ZERO);
    assert!(stored(&cp, "guest", live_id).is_some());
    assert!(!live.exists());
}

/// Records of no container (the router's: sequences, cache hits, failures) and reports of an
/// unusable container need a credential: the router token, or the container's own.
#[tokio::test]
async fn reports_without_any_credential_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, a, _) = two_containers(dir.path()).await;
    let anonymous = grpc_at(cp.grpc_url(), RouterToken::none()).await;
    let id = "00112233445566778899aabbccddeeff";
    let err = anonymous
        .clone()
        .report_activation(pb::ReportActivationRequest {
            container_id: String::new(),
            activation_json: record(id, "alice/forged", "alice", 1),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(stored(&cp, "alice", id).is_none(), "nothing was stored");
    let err = anonymous
        .clone()
        .report_unusable(pb::ReportUnusableRequest {
            container_id: a.container_id.clone(),
            reason: "forged".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(
        cp.plane()
            .container_ids()
            .iter()
            .any(|(id, _, _)| *id == a.container_id),
        "the container is still there"
    );
    cp.shutdown().await;
}
