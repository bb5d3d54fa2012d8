//! The edge scenarios — everything in front of one minimal upstream, measured the same way so
//! they can be divided by one another:
//!
//! * a — Envoy alone (the floor); b — Envoy + no-op ext_proc via `ORIGINAL_DST`; c — Envoy + the
//!   real router (auth, throttle, routing, response phase; warm, keys cached). Each: a warm-up,
//!   closed loop at concurrency 1 and at the saturating concurrency, then the open-loop rates.
//! * f — the cost of a 429: c's set-up called with the key of a namespace allowed 1 invoke a
//!   minute (the first call spends it).
//! * g — c's measurement while the stand-in pushes endpoint upserts and removals for the very
//!   action being invoked, at a fixed rate.
//! * h — the sidecar flavour (router on a Unix socket) measured like c's closed-loop steps.
//! * k — c's closed-loop steps with the router keeping every forwarded body for a replay after a
//!   429 (`--replay always`, what `auto` does when several routers share the containers); c is
//!   the default for a lone router, which keeps none.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use whisk_proto::controlplane::v1 as pb;

use super::rig::{self, ACTION, Front, Rig};
use super::{Options, ScenarioError, ScenarioReport, Tools, measure, router_revision, warm_up};
use crate::loadgen::Mode;
use crate::standin;

pub const THROTTLED_UUID: &str = "7f1e0000-71f6-4ed5-8c54-816aa4f8c502";

/// The throttled namespace's key (OpenWhisk's shape: 64 alphanumerics).
fn throttled_key() -> String {
    format!("ThrottledKey{:052}", 1)
}

/// The labels of the standard steps.
pub fn closed_label(concurrency: usize) -> String {
    Mode::Closed { concurrency }.label()
}

/// Warm-up, closed c=1, closed c=N, then each open-loop rate.
async fn standard_steps(
    rig: &Rig,
    opts: &Options,
    report: &mut ScenarioReport,
    open_loop: bool,
) -> Result<(), ScenarioError> {
    let target = rig.target();
    warm_up(&target, opts.warmup()).await?;
    let mut modes = vec![
        Mode::Closed { concurrency: 1 },
        Mode::Closed {
            concurrency: opts.saturate_concurrency,
        },
    ];
    if open_loop {
        modes.extend(opts.rates.iter().map(|&rate| Mode::Open {
            rate,
            connections: opts.connections,
        }));
    }
    for mode in modes {
        let step = measure(&target, mode, opts.step(), &rig.components).await?;
        report.steps.push(step);
    }
    Ok(())
}

pub async fn floor(tools: &Tools, opts: &Options) -> ScenarioReport {
    let (title, setup) = (
        "Envoy alone → upstream (the floor)",
        "The bench's own minimal Envoy config: one route to a static cluster (HTTP/1.1), no \
         ext_proc, no access log; Envoy --concurrency 1.",
    );
    let mut report = ScenarioReport::new('a', title, setup);
    let run = async {
        let rig = rig::start(tools, Front::Floor, "a-floor").await?;
        standard_steps(&rig, opts, &mut report, true).await
    };
    match run.await {
        Ok(()) => report,
        Err(e) => ScenarioReport::failed('a', title, setup, e.to_string()),
    }
}

pub async fn noop(tools: &Tools, opts: &Options) -> ScenarioReport {
    let (title, setup) = (
        "Envoy + no-op ext_proc → upstream (ORIGINAL_DST)",
        "The shipped envoy/gateway.yaml with router_grpc pointing at the bench's no-op ext_proc \
         (request + response headers SEND, replies CONTINUE, sets whisk.router.dst); access log on, \
         as in c.",
    );
    let mut report = ScenarioReport::new('b', title, setup);
    let run = async {
        let rig = rig::start(tools, Front::Noop, "b-noop").await?;
        standard_steps(&rig, opts, &mut report, true).await
    };
    match run.await {
        Ok(()) => report,
        Err(e) => ScenarioReport::failed('b', title, setup, e.to_string()),
    }
}

/// c, then f and g on the same set-up.
pub async fn router(tools: &Tools, opts: &Options) -> Vec<ScenarioReport> {
    let c = (
        "Envoy + router → upstream (warm path)",
        "The shipped envoy/gateway.yaml, the real whisk-router over TCP (RUST_LOG=warn), tables \
         pushed by the bench's control-plane stand-in: the guest identity, guest/bench and one \
         endpoint (the upstream). Keys cached and the path warm before measuring.",
    );
    let f = (
        "Throttled namespace (the cost of a 429)",
        "c's set-up; a namespace allowed 1 invoke per minute; its first call spends the allowance, \
         then every measured call is answered 429 by the router through Envoy.",
    );
    let g = (
        "Endpoint-table churn during c",
        "c's closed c=1 and one open-loop step repeated while the stand-in pushes endpoint \
         upserts/removals of the invoked action (every endpoint points at the upstream).",
    );
    let rig = match rig::start(
        tools,
        Front::Router {
            sidecar: false,
            keep_bodies: false,
        },
        "c-router",
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            let e = e.to_string();
            let mut out = vec![ScenarioReport::failed('c', c.0, c.1, e.clone())];
            if opts.wants('f') {
                out.push(ScenarioReport::failed('f', f.0, f.1, e.clone()));
            }
            if opts.wants('g') {
                out.push(ScenarioReport::failed('g', g.0, g.1, e));
            }
            return out;
        }
    };
    let mut out = Vec::new();
    let mut rc = ScenarioReport::new('c', c.0, c.1);
    if let Err(e) = standard_steps(&rig, opts, &mut rc, true).await {
        rc = ScenarioReport::failed('c', c.0, c.1, e.to_string());
    }
    out.push(rc);
    if opts.wants('f') {
        let mut rf = ScenarioReport::new('f', f.0, f.1);
        if let Err(e) = throttled(&rig, opts, &mut rf).await {
            rf = ScenarioReport::failed('f', f.0, f.1, e.to_string());
        }
        out.push(rf);
    }
    if opts.wants('g') {
        let mut rg = ScenarioReport::new('g', g.0, g.1);
        if let Err(e) = churn(&rig, opts, &mut rg).await {
            rg = ScenarioReport::failed('g', g.0, g.1, e.to_string());
        }
        out.push(rg);
    }
    out
}

async fn throttled(
    rig: &Rig,
    opts: &Options,
    report: &mut ScenarioReport,
) -> Result<(), ScenarioError> {
    rig.apply(pb::TableUpdate {
        namespaces_upsert: vec![standin::namespace("throttled", 1, 100)],
        identities_upsert: vec![standin::identity(
            THROTTLED_UUID,
            "throttled",
            &throttled_key(),
        )],
        ..Default::default()
    })
    .await?;
    let target = rig.target_as(&format!("{THROTTLED_UUID}:{}", throttled_key()));
    // Spends the allowance, caches the key, opens the connections.
    warm_up(&target, opts.warmup()).await?;
    for mode in [
        Mode::Closed { concurrency: 1 },
        Mode::Closed {
            concurrency: opts.saturate_concurrency,
        },
    ] {
        report
            .steps
            .push(measure(&target, mode, opts.step(), &rig.components).await?);
    }
    Ok(())
}

async fn churn(
    rig: &Rig,
    opts: &Options,
    report: &mut ScenarioReport,
) -> Result<(), ScenarioError> {
    let (Some(standin), Some(admin)) = (rig.standin.clone(), rig.router_admin) else {
        return Err(ScenarioError::Unexpected("no router in this rig".into()));
    };
    let rate = opts.churn_per_sec.max(1.0);
    let stop = Arc::new(AtomicBool::new(false));
    let pushed = Arc::new(AtomicU64::new(0));
    let start_revision = standin.revision();
    let upstream = rig.upstream;
    let pusher = {
        let (stop, pushed, standin) = (stop.clone(), pushed.clone(), standin.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            let mut k: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                // Keep 32 extra endpoints alive: add one, retire the one added 32 updates ago.
                let add = format!("churn-{}", k % 64);
                let remove = format!("churn-{}", (k + 32) % 64);
                standin.push(pb::TableUpdate {
                    endpoints_upsert: vec![standin::endpoint(&add, ACTION, upstream, 100_000)],
                    endpoints_removed: vec![remove],
                    ..Default::default()
                });
                pushed.fetch_add(1, Ordering::Relaxed);
                k += 1;
            }
        })
    };
    let target = rig.target();
    let mid_rate = opts
        .rates
        .get(opts.rates.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(100.0);
    let mut result = Ok(());
    for mode in [
        Mode::Closed { concurrency: 1 },
        Mode::Open {
            rate: mid_rate,
            connections: opts.connections,
        },
    ] {
        match measure(&target, mode, opts.step(), &rig.components).await {
            Ok(s) => report.steps.push(s),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = pusher.await;
    let end_revision = standin.revision();
    let applied = router_revision(&rig.http, admin).await;
    report.set_extra("churn_updates_per_sec", serde_json::json!(rate));
    report.set_extra(
        "updates_pushed",
        serde_json::json!(pushed.load(Ordering::Relaxed)),
    );
    report.set_extra(
        "router_revision_lag_at_end",
        serde_json::json!(applied.map(|a| end_revision.saturating_sub(a))),
    );
    report.set_extra(
        "revisions",
        serde_json::json!({"start": start_revision, "end": end_revision}),
    );
    result
}

pub async fn sidecar(tools: &Tools, opts: &Options) -> ScenarioReport {
    let front = Front::Router {
        sidecar: true,
        keep_bodies: false,
    };
    closed_steps_of_c_variant(
        tools,
        opts,
        ('h', "h-sidecar", front),
        "Sidecar flavour (router on a Unix socket)",
        "As c, with envoy/sidecar.yaml and the router on --uds; compare with c's closed-loop steps \
         (gateway flavour, TCP).",
    )
    .await
}

pub async fn with_kept_bodies(tools: &Tools, opts: &Options) -> ScenarioReport {
    let front = Front::Router {
        sidecar: false,
        keep_bodies: true,
    };
    closed_steps_of_c_variant(
        tools,
        opts,
        ('k', "k-kept-bodies", front),
        "Router keeping every body (--replay always)",
        "As c, with the router started with --replay always: each forwarded invoke's body is \
         kept for a replay after a 429 (one more ext_proc message each way), as --replay auto \
         does while several routers share the containers. Compare with c's closed-loop steps \
         (a lone router, --replay auto: no body kept).",
    )
    .await
}

/// Scenario l: c's set-up with another build of the router (`--baseline-router`), so a change
/// to the router is measured beside the build it replaces, in the same run on the same machine.
pub async fn baseline(
    tools: &Tools,
    opts: &Options,
    baseline_router: &std::path::Path,
) -> ScenarioReport {
    let tools = Tools {
        router: baseline_router.to_path_buf(),
        ..tools.clone()
    };
    let front = Front::Router {
        sidecar: false,
        keep_bodies: false,
    };
    closed_steps_of_c_variant(
        &tools,
        opts,
        ('l', "l-baseline-router", front),
        "c with the baseline router build",
        &format!(
            "As c, with the router binary {} instead of this build's: compare with c's \
             closed-loop steps (run both in one invocation, repeat, and compare medians).",
            baseline_router.display()
        ),
    )
    .await
}

/// A variant of c's set-up measured with c's closed-loop steps only.
async fn closed_steps_of_c_variant(
    tools: &Tools,
    opts: &Options,
    (id, dir, front): (char, &str, Front),
    title: &str,
    setup: &str,
) -> ScenarioReport {
    let mut report = ScenarioReport::new(id, title, setup);
    let run = async {
        let rig = rig::start(tools, front, dir).await?;
        standard_steps(&rig, opts, &mut report, false).await
    };
    match run.await {
        Ok(()) => report,
        Err(e) => ScenarioReport::failed(id, title, setup, e.to_string()),
    }
}
