//! Observability of the control plane: exact Prometheus counts (cold starts by source and
//! outcome, stem cells, containers by state, subscribers, activation records, GC marks / unmarks /
//! sweeps), `/healthz` + `/readyz`, and the `cold_start` span exported over OTLP as part of the
//! caller's trace — against the real `whisk controlplane` binary and real container proxies.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use whisk_proto::controlplane::v1 as pb;
use whisk_proto::controlplane::v1::cold_start_response::Outcome;
use whisk_telemetry::testing::OtlpReceiver;

fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn get(url: String) -> (u16, String) {
    let r = client().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Scrapes `base/metrics` until `cond` holds (state gauges change in the background).
async fn metrics_until(
    base: &str,
    what: &str,
    mut cond: impl FnMut(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = get(format!("{base}/metrics")).await;
        assert_eq!(status, 200);
        let m = samples(&text);
        if cond(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is(m: &HashMap<String, f64>, key: &str, want: f64) -> bool {
    m.get(key) == Some(&want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_metrics_health_and_cold_start_trace() {
    use tokio::io::AsyncBufReadExt;
    let bin = proxy_bin();
    let dir = tempfile::tempdir().unwrap();
    let mut otlp = OtlpReceiver::start().await.unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_whisk"))
        .arg("controlplane")
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--proxy-bin")
        .arg(&bin)
        .arg("--prewarm")
        .arg("nodejs:20=1")
        .arg("--gc-interval-secs")
        .arg("0")
        .arg("--otlp-endpoint")
        .arg(otlp.endpoint())
        .arg("--trace-sample-ratio")
        .arg("0")
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut http, mut grpc_addr) = (None, None);
    while http.is_none() || grpc_addr.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("the binary prints its addresses");
        if let Some(a) = line.strip_prefix("WHISK_CONTROLPLANE_HTTP ") {
            http = Some(format!("http://{a}"));
        }
        if let Some(a) = line.strip_prefix("WHISK_CONTROLPLANE_GRPC ") {
            grpc_addr = Some(format!("http://{a}"));
        }
    }
    let (http, grpc_url) = (http.unwrap(), grpc_addr.unwrap());
    assert_eq!(get(format!("{http}/healthz")).await.0, 200);
    assert_eq!(get(format!("{http}/readyz")).await.0, 200);

    metrics_until(&http, "a stem cell", |m| {
        is(m, "whisk_controlplane_stem_cells{kind=\"nodejs:20\"}", 1.0)
    })
    .await;

    let guest = Api {
        base: http.clone(),
        client: client(),
        namespace: Some("guest".into()),
        authorization: Some(whisk_testkit::creds::guest_auth()),
    };
    let (status, body) = guest
        .put(
            "/api/v1/namespaces/_/actions/hello",
            nodejs_action("function main(p) { return { hi: p.name }; }"),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let mut grpc = grpc_at(
        grpc_url,
        RouterToken::from_file(&dir.path().join("router-token")),
    )
    .await;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let router_span = "b7ad6b7169203331";
    let mut req = tonic::Request::new(pb::ColdStartRequest {
        action_fqn: "guest/hello".into(),
        deadline_unix_ms: 0,
        router_id: "t".into(),
        ..Default::default()
    });
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{router_span}-01").parse().unwrap(),
    );
    let ep = match grpc.cold_start(req).await.unwrap().into_inner().outcome {
        Some(Outcome::Endpoint(ep)) => ep,
        other => panic!("expected an endpoint, got {other:?}"),
    };
    let missing = grpc
        .cold_start(pb::ColdStartRequest {
            action_fqn: "guest/nope".into(),
            deadline_unix_ms: 0,
            router_id: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .outcome;
    assert!(matches!(missing, Some(Outcome::Error(_))), "{missing:?}");

    // One activation on the container, reported back by its proxy.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let resp = client()
        .post(format!(
            "http://{}/api/v1/namespaces/guest/actions/hello?blocking=true",
            ep.address
        ))
        .header("x-whisk-container-token", &ep.container_token)
        .header("x-whisk-activation-id", "0123456789abcdef0123456789abcdef")
        .header("x-whisk-transaction-id", "tid-1")
        .header("x-whisk-namespace", "guest")
        .header("x-whisk-subject", "guest")
        .header("x-whisk-action", "guest/hello")
        .header("x-whisk-action-revision", ep.action_revision.to_string())
        .header("x-whisk-blocking", "true")
        .header("x-whisk-deadline", (now + 60_000).to_string())
        .header("x-whisk-received-at", now.to_string())
        .body(r#"{"name":"you"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // A router subscribed.
    let mut stream = grpc
        .subscribe(pb::SubscribeRequest {
            router_id: "r1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().unwrap().snapshot);

    let m = metrics_until(&http, "the refilled stem cell and the stored record", |m| {
        is(m, "whisk_controlplane_stem_cells{kind=\"nodejs:20\"}", 1.0)
            && is(m, "whisk_controlplane_activations_stored", 1.0)
    })
    .await;
    let at = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("{k} missing: {m:?}"))
    };
    assert_eq!(
        at("whisk_controlplane_cold_starts_total{outcome=\"success\",source=\"stem_cell\"}"),
        1.0
    );
    assert_eq!(
        at("whisk_controlplane_cold_starts_total{outcome=\"unknown_action\",source=\"none\"}"),
        1.0
    );
    assert_eq!(
        at("whisk_controlplane_cold_start_duration_seconds_count{source=\"stem_cell\"}"),
        1.0
    );
    assert_eq!(at("whisk_controlplane_containers{state=\"ready\"}"), 1.0);
    assert_eq!(at("whisk_controlplane_containers{state=\"stem\"}"), 1.0);
    assert_eq!(at("whisk_controlplane_containers{state=\"marked\"}"), 0.0);
    assert_eq!(at("whisk_controlplane_activations_recorded_total"), 1.0);
    assert_eq!(at("whisk_controlplane_subscribers"), 1.0);
    assert!(at("whisk_controlplane_push_lag_deltas") >= 0.0);
    assert_eq!(at("whisk_controlplane_push_resyncs_total"), 0.0);
    assert_eq!(at("whisk_controlplane_gc_marks_total"), 0.0);
    // The store's page cache holds what was written, within its default bound (16 MiB).
    let cache = at("whisk_controlplane_store_cache_bytes");
    assert!(cache > 0.0 && cache <= 16.0 * 1024.0 * 1024.0, "{cache}");

    // The start is a `cold_start` span under the gRPC server span, in the router's trace.
    let found = otlp
        .wait_for(Duration::from_secs(30), |spans| {
            let rpc = spans.iter().find(|s| {
                s.trace_id == trace_id && s.name == "whisk.controlplane.v1.ControlPlane/ColdStart"
            })?;
            let start = spans
                .iter()
                .find(|s| s.trace_id == trace_id && s.name == "cold_start")?;
            Some((rpc.clone(), start.clone()))
        })
        .await;
    let (rpc, start) = found.unwrap_or_else(|| panic!("spans: {:?}", otlp.spans()));
    assert_eq!(rpc.service, "whisk-controlplane");
    assert_eq!(rpc.parent_span_id, router_span);
    assert_eq!(start.parent_span_id, rpc.span_id);
    assert_eq!(start.attr("faas.name"), Some("guest/hello"));
    assert_eq!(start.attr("faas.coldstart"), Some("true"));
    assert_eq!(start.attr("whisk.source"), Some("stem_cell"));
    assert_eq!(start.attr("whisk.outcome"), Some("success"));
    assert_eq!(
        start.attr("whisk.container_id"),
        Some(ep.container_id.as_str())
    );

    drop(stream);
    // SAFETY: SIGTERM to the child this test started.
    unsafe {
        libc::kill(child.id().unwrap() as libc::pid_t, libc::SIGTERM);
    }
    let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
}

#[tokio::test]
async fn gc_marks_unmarks_and_sweeps_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::new(false);
    let cp = start_fake(test_config(dir.path()), backend.clone()).await;
    let guest = Api::new(&cp, Some("guest"));
    let (status, _) = guest
        .put("/api/v1/namespaces/_/actions/hello", nodejs_action("x"))
        .await;
    assert_eq!(status, 200);
    let ep = whisk_controlplane::coldstart::cold_start(cp.plane(), "guest/hello", "", None)
        .await
        .unwrap();
    let plane = cp.plane().clone();
    let t0 = Instant::now();
    assert_eq!(
        plane.gc_tick_at(t0 + Duration::from_secs(601)).marked.len(),
        1
    );
    plane.report_traffic(&ep.container_id);
    let t1 = Instant::now();
    assert_eq!(
        plane.gc_tick_at(t1 + Duration::from_secs(601)).marked.len(),
        1
    );
    assert_eq!(
        plane.gc_tick_at(t1 + Duration::from_secs(632)).swept.len(),
        1
    );

    let (status, text) = get(format!("{}/metrics", cp.http_url())).await;
    assert_eq!(status, 200);
    let m = samples(&text);
    assert_eq!(m["whisk_controlplane_gc_marks_total"], 2.0);
    assert_eq!(m["whisk_controlplane_gc_unmarks_total"], 1.0);
    assert_eq!(m["whisk_controlplane_gc_sweeps_total"], 1.0);
    assert_eq!(
        m["whisk_controlplane_cold_starts_total{outcome=\"success\",source=\"new_container\"}"],
        1.0
    );
    assert_eq!(m["whisk_controlplane_containers{state=\"ready\"}"], 0.0);
    cp.shutdown().await;
}
