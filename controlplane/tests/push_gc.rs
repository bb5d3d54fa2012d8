//! The router subscription over real gRPC (snapshot, ordered deltas, reconnect, slow subscriber)
//! and the garbage collector's mark -> traffic -> unmark and mark -> sweep, seen by a subscriber.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};
use whisk_controlplane::pool::Endpoint;
use whisk_controlplane::push::Delta;
use whisk_proto::controlplane::v1 as pb;

async fn subscribe(
    cp: &whisk_controlplane::ControlPlaneHandle,
) -> tonic::Streaming<pb::TableUpdate> {
    grpc(cp)
        .await
        .subscribe(pb::SubscribeRequest {
            router_id: "test".into(),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn snapshot_deltas_and_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_fake(test_config(dir.path()), FakeBackend::new(false)).await;
    let mut s = subscribe(&cp).await;
    let snap = next_update(&mut s).await;
    assert!(snap.snapshot);
    assert_eq!(
        snap.namespaces_upsert
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        vec!["guest"]
    );
    let id = &snap.identities_upsert[0];
    assert_eq!(id.uuid, "23bc46b1-71f6-4ed5-8c54-816aa4f8c502");
    assert_eq!(id.namespace, "guest");
    assert_eq!(
        id.key_sha256,
        Sha256::digest(b"123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP")
            .to_vec()
    );

    let mut rev = snap.revision;
    let guest = Api::new(&cp, Some("guest"));
    for name in ["a", "b", "c"] {
        guest
            .put(
                &format!("/api/v1/namespaces/_/actions/{name}"),
                nodejs_action("x"),
            )
            .await;
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 3 {
        let u = until_update(&mut s, &mut rev, |u| !u.actions_upsert.is_empty()).await;
        assert!(!u.snapshot);
        seen.extend(u.actions_upsert.iter().map(|a| a.fqn.clone()));
    }
    guest.delete("/api/v1/namespaces/_/actions/b").await;
    until_update(&mut s, &mut rev, |u| {
        u.actions_removed == vec!["guest/b".to_string()]
    })
    .await;

    // A reconnecting router gets a snapshot with everything so far.
    drop(s);
    let mut s2 = subscribe(&cp).await;
    let snap = next_update(&mut s2).await;
    assert!(snap.snapshot);
    // Later than what the first router saw: the routers coming and going are changes too.
    assert!(snap.revision >= rev, "{} < {rev}", snap.revision);
    let mut fqns: Vec<_> = snap.actions_upsert.iter().map(|a| a.fqn.as_str()).collect();
    fqns.sort();
    assert_eq!(fqns, vec!["guest/a", "guest/c"]);
    // Routers are counted: once the first one's stream is gone, the second hears it is alone.
    if snap.routers != Some(1) {
        let mut rev2 = snap.revision;
        until_update(&mut s2, &mut rev2, |u| u.routers == Some(1)).await;
    }
    cp.shutdown().await;
}

#[tokio::test]
async fn slow_subscriber_gets_a_fresh_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.push_buffer = 4;
    let cp = start_fake(config, FakeBackend::new(false)).await;
    let mut s = subscribe(&cp).await;
    let snap = next_update(&mut s).await;
    let mut rev = snap.revision;

    // Far more deltas than the buffer (and the HTTP/2 windows) while the router does not read.
    let hub = &cp.plane().hub;
    let bulky = "x".repeat(1000);
    for i in 0..3000 {
        let mut d = Delta::default();
        d.upsert_endpoint(&Endpoint {
            container_id: format!("e{i}"),
            action_fqn: bulky.clone(),
            action_revision: 0,
            address: String::new(),
            capacity: 0,
            marked: false,
            ..Default::default()
        });
        hub.publish(d);
        hub.flush();
    }
    let final_revision = hub.snapshot().revision;
    let mut resynced = false;
    loop {
        let u = next_update(&mut s).await;
        if u.snapshot {
            resynced = true;
            assert!(u.revision > rev);
        } else {
            assert_eq!(u.revision, rev + 1, "deltas must be revision + 1");
        }
        rev = u.revision;
        if rev == final_revision {
            if u.snapshot {
                assert_eq!(u.endpoints_upsert.len(), 3000);
            }
            break;
        }
    }
    assert!(
        resynced,
        "a lagging subscriber must be resynchronised with a snapshot"
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn gc_mark_traffic_unmark_then_mark_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new(false);
    let mut config = test_config(dir.path());
    config.keep_alive = Duration::from_secs(600);
    config.sweep_grace = Duration::from_secs(30);
    let cp = start_fake(config, backend.clone()).await;
    Api::new(&cp, Some("guest"))
        .put("/api/v1/namespaces/_/actions/a", nodejs_action("x"))
        .await;
    let mut client = grpc(&cp).await;
    let mut s = subscribe(&cp).await;
    let mut rev = next_update(&mut s).await.revision;

    let ep = match client
        .cold_start(pb::ColdStartRequest {
            action_fqn: "guest/a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap()
    {
        pb::cold_start_response::Outcome::Endpoint(e) => e,
        other => panic!("{other:?}"),
    };
    let id = ep.container_id.clone();
    until_update(&mut s, &mut rev, |u| {
        u.endpoints_upsert.iter().any(|e| e.container_id == id)
    })
    .await;
    let plane = cp.plane().clone();
    let t0 = Instant::now();

    // Not idle long enough: nothing happens.
    assert!(
        plane
            .gc_tick_at(t0 + Duration::from_secs(60))
            .marked
            .is_empty()
    );
    // Idle past the keep-alive: marked and pushed.
    let r = plane.gc_tick_at(t0 + Duration::from_secs(601));
    assert_eq!(r.marked, vec![id.clone()]);
    let state = |u: &pb::TableUpdate, st: pb::EndpointState| {
        u.endpoints_upsert
            .iter()
            .any(|e| e.container_id == id && e.state == st as i32)
    };
    until_update(&mut s, &mut rev, |u| {
        state(u, pb::EndpointState::MarkedForRemoval)
    })
    .await;

    // Traffic in the grace period: unmarked, pushed ready, not swept.
    client
        .report_traffic(pb::ReportTrafficRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
    until_update(&mut s, &mut rev, |u| state(u, pb::EndpointState::Ready)).await;
    let t1 = Instant::now();
    assert!(
        plane
            .gc_tick_at(t1 + Duration::from_secs(30))
            .swept
            .is_empty()
    );

    // Idle again: marked, then swept after the grace period.
    assert_eq!(
        plane.gc_tick_at(t1 + Duration::from_secs(601)).marked,
        vec![id.clone()]
    );
    until_update(&mut s, &mut rev, |u| {
        state(u, pb::EndpointState::MarkedForRemoval)
    })
    .await;
    assert!(
        plane
            .gc_tick_at(t1 + Duration::from_secs(620))
            .swept
            .is_empty()
    );
    assert_eq!(
        plane.gc_tick_at(t1 + Duration::from_secs(632)).swept,
        vec![id.clone()]
    );
    until_update(&mut s, &mut rev, |u| u.endpoints_removed.contains(&id)).await;
    wait_for("the swept unit to stop", Duration::from_secs(5), || {
        backend.live_count() == 0
    })
    .await;
    cp.shutdown().await;
}

#[tokio::test]
async fn activity_keeps_containers_and_package_updates_retire_them() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new(false);
    let cp = start_fake(test_config(dir.path()), backend.clone()).await;
    let guest = Api::new(&cp, Some("guest"));
    guest
        .put("/api/v1/namespaces/_/packages/p", serde_json::json!({}))
        .await;
    guest
        .put("/api/v1/namespaces/_/actions/p/a", nodejs_action("x"))
        .await;
    let plane = cp.plane().clone();
    let ep = whisk_controlplane::coldstart::cold_start(&plane, "guest/p/a", "", None)
        .await
        .unwrap();
    let t0 = Instant::now();

    // An activation reported by the container counts as activity.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut client = grpc(&cp).await;
    let record = serde_json::json!({
        "namespace": "guest", "name": "a", "activationId": "a".repeat(32), "start": 1,
        "annotations": [{ "key": "path", "value": "guest/p/a" }],
    });
    let mut report = tonic::Request::new(pb::ReportActivationRequest {
        container_id: ep.container_id.clone(),
        activation_json: record.to_string(),
    });
    report.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", ep.token.expose()).parse().unwrap(),
    );
    client.report_activation(report).await.unwrap();
    let keep_alive = plane.config.keep_alive;
    assert!(
        plane
            .gc_tick_at(t0 + keep_alive + Duration::from_millis(5))
            .marked
            .is_empty()
    );
    assert_eq!(
        plane
            .gc_tick_at(t0 + keep_alive + Duration::from_secs(1))
            .marked,
        vec![ep.container_id.clone()]
    );

    // A malformed record is refused.
    let err = client
        .report_activation(pb::ReportActivationRequest {
            container_id: String::new(),
            activation_json: "{".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // Updating the package (its parameters reach the container at init) retires its containers.
    guest
        .put(
            "/api/v1/namespaces/_/packages/p?overwrite=true",
            serde_json::json!({ "parameters": [{ "key": "k", "value": 1 }] }),
        )
        .await;
    assert!(plane.hub.endpoint(&ep.container_id).is_none());
    wait_for("the retired unit to stop", Duration::from_secs(5), || {
        backend.live_count() == 0
    })
    .await;
    cp.shutdown().await;
}
