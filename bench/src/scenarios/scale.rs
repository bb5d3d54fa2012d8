//! Scenario j — the router holding big tables: N actions, M endpoints, K identities (flags).
//!
//! The stand-in generates the tables while streaming them. Measured: the time from the router's
//! `Subscribe` until `/readyz` reports the snapshot's revision, the router's resident memory
//! after loading (and its peak), the time one endpoint delta and one identity delta take to
//! apply, and the warm-path latency through Envoy with the loaded router, to compare with c's
//! unloaded one.
//!
//! The real control plane sends a snapshot as one message. In `auto` mode that is tried first;
//! if the router cannot take it (gRPC message limits), the error is recorded and the same tables
//! are loaded again as a split snapshot, so the rest of the scenario still measures a loaded
//! router.

use std::time::{Duration, Instant};

use whisk_proto::controlplane::v1 as pb;
use whisk_stack::envoy::{self, EnvoySpec};

use super::rig::{self, ACTION};
use super::{
    Options, ScenarioError, ScenarioReport, SnapshotMode, Tools, measure, router_revision,
    wait_revision, warm_up,
};
use crate::loadgen::{Mode, Target};
use crate::procstat::{self, Component};
use crate::standin::{self, Split, StandIn, Synthetic};

const TITLE: &str = "Scale: router with large tables";

fn setup(opts: &Options) -> String {
    format!(
        "The router subscribed to the stand-in holding {} actions, {} endpoints and {} identities \
         (generated; 1000 namespaces) plus c's guest tables; snapshot mode {:?} (split messages: \
         {} entries). Then c's closed-loop steps through the gateway Envoy.",
        opts.scale_actions,
        opts.scale_endpoints,
        opts.scale_identities,
        opts.scale_snapshot,
        opts.scale_chunk_entries
    )
}

pub async fn run(tools: &Tools, opts: &Options) -> ScenarioReport {
    let setup = setup(opts);
    let mut report = ScenarioReport::new('j', TITLE, &setup);
    match measure_scale(tools, opts, &mut report).await {
        Ok(()) => report,
        Err(e) => {
            let mut failed = ScenarioReport::failed('j', TITLE, &setup, e.to_string());
            failed.extra = report.extra;
            failed.samples_us = report.samples_us;
            failed
        }
    }
}

/// The last line of the router's log that explains a failed subscription.
fn subscription_error(log: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .find(|l| l.contains("subscription failed") || l.contains("too large"))
        .map(|l| strip_ansi(l).chars().take(400).collect())
}

/// The router colours its log lines; the report wants plain text.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (a letter).
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits until the router reaches `revision` or has resubscribed `give_up_after` more times
/// (its stream failed); returns how long the load took from the latest subscribe.
async fn wait_loaded(
    http: &reqwest::Client,
    admin: std::net::SocketAddr,
    s: &StandIn,
    revision: u64,
    give_up_after: u32,
    timeout: Duration,
) -> Result<Option<Duration>, ScenarioError> {
    let first = s.subscribes();
    let deadline = Instant::now() + timeout;
    loop {
        if router_revision(http, admin)
            .await
            .is_some_and(|r| r >= revision)
        {
            let done = Instant::now();
            let since = s.last_subscribe().unwrap_or(done);
            return Ok(Some(done.saturating_duration_since(since)));
        }
        if s.subscribes() >= first + give_up_after {
            return Ok(None);
        }
        if Instant::now() > deadline {
            return Err(ScenarioError::Timeout(
                timeout,
                format!("router revision {revision}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn measure_scale(
    tools: &Tools,
    opts: &Options,
    report: &mut ScenarioReport,
) -> Result<(), ScenarioError> {
    let dir = tools.work.join("j-scale");
    std::fs::create_dir_all(&dir)?;
    let up = rig::start_upstream(tools, &dir, crate::upstream::Mode::Plain).await?;
    let upstream: std::net::SocketAddr = up
        .address
        .parse()
        .map_err(|_| ScenarioError::Unexpected(format!("upstream announced {}", up.address)))?;
    let s = StandIn::new();
    s.push(rig::base_tables(upstream));
    let synthetic = Synthetic {
        actions: opts.scale_actions,
        endpoints: opts.scale_endpoints,
        identities: opts.scale_identities,
        dst: upstream,
    };
    let revision = s.set_synthetic(synthetic);
    let chunked = Split::Chunked(opts.scale_chunk_entries.max(1));
    s.set_split(match opts.scale_snapshot {
        SnapshotMode::Chunked => chunked,
        SnapshotMode::Auto | SnapshotMode::Whole => Split::Whole,
    });
    report.set_extra(
        "sizes",
        serde_json::json!({
            "actions": opts.scale_actions,
            "endpoints": opts.scale_endpoints,
            "identities": opts.scale_identities,
            "entries_total": synthetic.entries() + 4,
        }),
    );
    let (url, _server) = s.serve().await?;
    let timeout = Duration::from_secs(opts.scale_timeout_secs);
    let (router, link, admin, log) = rig::start_router(tools, &url, &dir, false, false).await?;
    let router_pid = router.pid().unwrap_or(0);
    let http = reqwest::Client::new();

    let mut loaded = wait_loaded(&http, admin, &s, revision, 2, timeout).await?;
    let mode_used;
    match (loaded, opts.scale_snapshot) {
        (Some(_), SnapshotMode::Chunked) => mode_used = "chunked",
        (Some(_), _) => mode_used = "whole",
        (None, SnapshotMode::Auto) => {
            let why = subscription_error(&log).unwrap_or_else(|| "unknown (see router.log)".into());
            report.set_extra(
                "whole_snapshot",
                serde_json::json!({"applied": false, "error": why}),
            );
            s.set_split(chunked);
            let before = s.subscribes();
            super::wait_for("the router to resubscribe", timeout, || async {
                s.subscribes() > before
            })
            .await?;
            loaded = wait_loaded(&http, admin, &s, revision, 3, timeout).await?;
            mode_used = "chunked (after the whole snapshot failed)";
        }
        (None, _) => {
            let why = subscription_error(&log).unwrap_or_else(|| "unknown (see router.log)".into());
            return Err(ScenarioError::Unexpected(format!(
                "the router did not apply the snapshot: {why}"
            )));
        }
    }
    let Some(load_time) = loaded else {
        let why = subscription_error(&log).unwrap_or_else(|| "unknown (see router.log)".into());
        return Err(ScenarioError::Unexpected(format!(
            "the router did not apply the split snapshot either: {why}"
        )));
    };
    report
        .samples_us
        .insert("snapshot_apply".into(), vec![load_time.as_secs_f64() * 1e6]);
    report.set_extra("snapshot_mode_used", serde_json::json!(mode_used));
    let rss_loaded = procstat::rss_kib(router_pid).unwrap_or(0);
    report.set_extra(
        "router_rss_after_load_mib",
        serde_json::json!(rss_loaded as f64 / 1024.0),
    );

    // One delta of each kind, timed until the router reports it.
    let delta = |u: pb::TableUpdate| {
        let t = Instant::now();
        (s.push(u), t)
    };
    let (r1, t1) = delta(pb::TableUpdate {
        endpoints_upsert: vec![standin::endpoint("scale-extra", "scale-0/a0", upstream, 1)],
        ..Default::default()
    });
    let done1 = wait_revision(&http, admin, r1, timeout).await?;
    let (r2, t2) = delta(pb::TableUpdate {
        identities_upsert: vec![standin::identity(
            "5ca1e000-0000-4000-8000-000000000001",
            "scale-0",
            "scale-extra-key",
        )],
        ..Default::default()
    });
    let done2 = wait_revision(&http, admin, r2, timeout).await?;
    report.samples_us.insert(
        "endpoint_delta_apply".into(),
        vec![(done1 - t1).as_secs_f64() * 1e6],
    );
    report.samples_us.insert(
        "identity_delta_apply".into(),
        vec![(done2 - t2).as_secs_f64() * 1e6],
    );

    // The warm path with the loaded router, as in c.
    let spec = EnvoySpec {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        router: link,
        controlplane_api: upstream,
        access_log: dir.join("envoy-access.log"),
        ingress_token: None,
        request_timeout: None,
    };
    let envoy = envoy::start(&tools.envoy, &spec, &dir, Duration::from_secs(30)).await?;
    let components = vec![
        Component::new("envoy", envoy.process.id().unwrap_or(0)),
        Component::new("router", router_pid),
        Component::new("upstream", up.pid().unwrap_or(0)),
        Component::new("loadgen", std::process::id()),
    ];
    let target = Target::post_json(
        envoy.listen,
        rig::INVOKE_PATH,
        Some(&rig::guest()),
        rig::BODY,
    );
    let url = format!("http://{}{}", envoy.listen, rig::INVOKE_PATH);
    super::wait_for("a 200 through Envoy", Duration::from_secs(30), || async {
        http.post(&url)
            .basic_auth(rig::GUEST_UUID, Some(rig::GUEST_KEY))
            .body(rig::BODY)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await?;
    warm_up(&target, opts.warmup()).await?;
    for mode in [
        Mode::Closed { concurrency: 1 },
        Mode::Closed {
            concurrency: opts.saturate_concurrency,
        },
    ] {
        report
            .steps
            .push(measure(&target, mode, opts.step(), &components).await?);
    }
    report.set_extra(
        "router_peak_rss_mib",
        serde_json::json!(procstat::peak_rss_kib(router_pid).unwrap_or(0) as f64 / 1024.0),
    );
    report.set_extra(
        "router_rss_end_mib",
        serde_json::json!(procstat::rss_kib(router_pid).unwrap_or(0) as f64 / 1024.0),
    );
    report.set_extra("warm_action", serde_json::json!(ACTION));
    drop(envoy);
    drop(router);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn strips_colours() {
        assert_eq!(
            super::strip_ansi("\u{1b}[2mtime\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x"),
            "time  WARN x"
        );
    }
}
