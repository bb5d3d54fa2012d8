//! Scenario i — two things the router does itself instead of forwarding:
//!
//! * **Sequences**: `guest/seq1`, `guest/seq5`, `guest/seq10` (kind `sequence`, 1, 5 and 10 times
//!   the trivial component `guest/unit`), run by the router component by component, each a
//!   blocking call to the component's endpoint — the bench upstream in `proxy` mode, answering
//!   like a container proxy (an activation record). Measured at closed c=1 beside a direct invoke
//!   of the component; the overhead per component is
//!   (p50 of the sequence − p50 of the direct invoke) ÷ components.
//! * **Response-cache hits**: a second set-up whose upstream (`cache` mode) answers every invoke
//!   with `cache-control: max-age=600`, so after the first call (which teaches the router the
//!   action caches) and the second (which stores the answer) every identical call is a hit
//!   answered by the router. Measured at closed c=1 and c=N; the upstream's own request count is
//!   read before and after the hit steps to show that none reached it.

use std::time::Duration;

use whisk_proto::controlplane::v1 as pb;

use super::rig::{self, BODY, Front, GUEST_KEY, GUEST_UUID, Rig};
use super::{Options, ScenarioError, ScenarioReport, Tools, measure, warm_up};
use crate::loadgen::{Mode, Target};
use crate::{standin, upstream};

/// The sequences' component: a trivial action whose container is the upstream.
pub const COMPONENT: &str = "guest/unit";
/// Components per measured sequence.
pub const SEQUENCE_LENGTHS: [usize; 3] = [1, 5, 10];
/// Label prefix of the direct invoke of the component.
pub const DIRECT: &str = "direct";
/// Label prefix of the cache-hit steps.
pub const CACHE_HIT: &str = "cache-hit";

fn invoke_path(name: &str) -> String {
    format!("/api/v1/namespaces/_/actions/{name}?blocking=true&result=true")
}

/// The label of a step of scenario i: what was invoked, then the load mode.
pub fn label(what: &str, mode: Mode) -> String {
    format!("{what} {}", mode.label())
}

/// The label prefix of the sequence of `n` components.
pub fn sequence(n: usize) -> String {
    format!("seq{n}")
}

pub async fn run(tools: &Tools, opts: &Options) -> ScenarioReport {
    let (title, setup) = (
        "Sequences and response-cache hits",
        "c's set-up (gateway.yaml, whisk-router over TCP, stand-in tables). Sequences: the \
         upstream answers like a container proxy (activation record); guest/seq1, seq5, seq10 run \
         1, 5, 10 × guest/unit, compared with a direct invoke of guest/unit (closed c=1). Cache: \
         a second set-up whose upstream answers cache-control: max-age=600; after the teaching \
         and storing calls every identical invoke of guest/bench is a hit answered by the router \
         (closed c=1 and c=N), the upstream's request count read around the hit steps.",
    );
    let mut report = ScenarioReport::new('i', title, setup);
    let run = async {
        sequences(tools, opts, &mut report).await?;
        cache_hits(tools, opts, &mut report).await
    };
    match run.await {
        Ok(()) => report,
        Err(e) => ScenarioReport::failed('i', title, setup, e.to_string()),
    }
}

/// One blocking invoke through Envoy; fails unless it answers 200 with the component's result.
async fn check_invoke(rig: &Rig, path: &str) -> Result<(), ScenarioError> {
    let resp = rig
        .http
        .post(format!("http://{}{path}", rig.envoy_listen))
        .basic_auth(GUEST_UUID, Some(GUEST_KEY))
        .header("content-type", "application/json")
        .body(BODY)
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    let ok = serde_json::from_str::<serde_json::Value>(&text)
        .is_ok_and(|v| v["ok"] == serde_json::Value::Bool(true));
    if status != 200 || !ok {
        return Err(ScenarioError::Unexpected(format!(
            "{path} answered {status}: {text}"
        )));
    }
    Ok(())
}

async fn step(
    rig: &Rig,
    target: &Target,
    what: &str,
    mode: Mode,
    opts: &Options,
    report: &mut ScenarioReport,
) -> Result<f64, ScenarioError> {
    let mut s = measure(target, mode, opts.step(), &rig.components).await?;
    s.result.label = label(what, mode);
    let p50 = s.result.latency.p50_us;
    report.steps.push(s);
    Ok(p50)
}

async fn sequences(
    tools: &Tools,
    opts: &Options,
    report: &mut ScenarioReport,
) -> Result<(), ScenarioError> {
    let rig = rig::start_with(
        tools,
        Front::Router {
            sidecar: false,
            keep_bodies: false,
        },
        "i-sequences",
        upstream::Mode::Proxy,
    )
    .await?;
    let mut actions = vec![standin::action(COMPONENT, 100_000)];
    for n in SEQUENCE_LENGTHS {
        let mut a = standin::action(&format!("guest/{}", sequence(n)), 100_000);
        a.kind = "sequence".into();
        a.components = vec![COMPONENT.to_owned(); n];
        actions.push(a);
    }
    rig.apply(pb::TableUpdate {
        actions_upsert: actions,
        endpoints_upsert: vec![standin::endpoint(
            "bench-i-unit",
            COMPONENT,
            rig.upstream,
            100_000,
        )],
        ..Default::default()
    })
    .await?;
    let component = COMPONENT.split_once('/').map_or(COMPONENT, |(_, n)| n);
    check_invoke(&rig, &invoke_path(component)).await?;
    for n in SEQUENCE_LENGTHS {
        check_invoke(&rig, &invoke_path(&sequence(n))).await?;
    }
    let c1 = Mode::Closed { concurrency: 1 };
    let direct = rig.target_path(&invoke_path(component));
    warm_up(&direct, opts.warmup()).await?;
    let direct_p50 = step(&rig, &direct, DIRECT, c1, opts, report).await?;
    let cn = Mode::Closed {
        concurrency: opts.saturate_concurrency,
    };
    step(&rig, &direct, DIRECT, cn, opts, report).await?;
    let mut overhead = serde_json::Map::new();
    for n in SEQUENCE_LENGTHS {
        let target = rig.target_path(&invoke_path(&sequence(n)));
        warm_up(&target, opts.warmup()).await?;
        let p50 = step(&rig, &target, &sequence(n), c1, opts, report).await?;
        overhead.insert(
            n.to_string(),
            serde_json::json!((p50 - direct_p50) / n as f64),
        );
    }
    report.set_extra(
        "sequence_overhead_per_component_us",
        serde_json::Value::Object(overhead),
    );
    Ok(())
}

async fn cache_hits(
    tools: &Tools,
    opts: &Options,
    report: &mut ScenarioReport,
) -> Result<(), ScenarioError> {
    // Starting the rig made the first call (the router learns that guest/bench caches).
    let rig = rig::start_with(
        tools,
        Front::Router {
            sidecar: false,
            keep_bodies: false,
        },
        "i-cache",
        upstream::Mode::Cache,
    )
    .await?;
    let path = rig::INVOKE_PATH;
    // The second call stores the answer; the third is a hit (checked below by the count).
    check_invoke(&rig, path).await?;
    let target = rig.target();
    warm_up(&target, opts.warmup()).await?;
    check_invoke(&rig, path).await?;
    let before = rig.upstream_requests().await?;
    for mode in [
        Mode::Closed { concurrency: 1 },
        Mode::Closed {
            concurrency: opts.saturate_concurrency,
        },
    ] {
        step(&rig, &target, CACHE_HIT, mode, opts, report).await?;
    }
    let after = rig.upstream_requests().await?;
    report.set_extra(
        "cache_upstream_requests",
        serde_json::json!({
            "before_hit_steps": before,
            "after_hit_steps": after,
            "during_hit_steps": after.saturating_sub(before),
        }),
    );
    Ok(())
}
