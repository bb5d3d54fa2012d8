//! Scenarios d and e — the whole product, started the way users start it (`whisk up`): Envoy,
//! the router, the control plane, container proxies and real Node.js actions.
//!
//! * d — warm invokes of one nodejs:20 action at concurrency 1 (created through the management
//!   API with the guest key, invoked once to start its container, then measured).
//! * w — the same action exported as a web action (`web-export`), fetched with a plain `GET
//!   /api/v1/web/guest/default/<name>.json` and no credentials at concurrency 1, in the same
//!   stack right after d: what the web path (the router runs the action itself and shapes the
//!   answer) costs beside an authenticated invoke forwarded by Envoy.
//! * e — cold starts: a new action per sample, the first invoke timed. With a stem cell
//!   (`--prewarm nodejs:20=1`; before each sample the bench waits until a stem cell is ready
//!   again, asking each container proxy's `/_whisk/health`) and without (`nodejs:20=0`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::process::Command;
use whisk_stack::child::{Child, spawn_announcing};

use super::rig::{GUEST_KEY, GUEST_UUID, guest};
use super::{Options, ScenarioError, ScenarioReport, Step, Tools, measure, wait_for, warm_up};
use crate::hist::median_us;
use crate::loadgen::{Mode, Target};
use crate::procstat::{self, Component};

const ACTION_CODE: &str = "function main(p){return {ok:true}}";
const COLD_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `whisk up`.
pub(super) struct Up {
    child: Child,
    pub(super) api: SocketAddr,
    /// The control plane's admin URL (`whisk admin --controlplane`).
    admin: String,
    /// The stack's data directory, where `whisk admin` finds the admin token.
    pub(super) data: std::path::PathBuf,
    pub(super) http: reqwest::Client,
}

impl Up {
    fn pid(&self) -> u32 {
        self.child.pid().unwrap_or(0)
    }

    /// Every gateway's API address (`whisk up --gateways N`; just `api` for one).
    pub(super) fn gateways(&self) -> Vec<SocketAddr> {
        self.child
            .address
            .split_whitespace()
            .find_map(|w| w.strip_prefix("gateways="))
            .map(|list| {
                list.split(',')
                    .filter_map(|a| {
                        a.strip_prefix("http://")?
                            .trim_end_matches('/')
                            .parse()
                            .ok()
                    })
                    .collect()
            })
            .filter(|v: &Vec<SocketAddr>| !v.is_empty())
            .unwrap_or_else(|| vec![self.api])
    }

    /// `whisk admin ...` against this stack; its stdout.
    pub(super) async fn admin(
        &self,
        whisk: &std::path::Path,
        args: &[&str],
    ) -> Result<String, ScenarioError> {
        let out = Command::new(whisk)
            .args(["admin", "--controlplane", &self.admin, "--data-dir"])
            .arg(&self.data)
            .args(args)
            .output()
            .await?;
        if !out.status.success() {
            return Err(ScenarioError::Unexpected(format!(
                "whisk admin {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    pub(super) async fn create_action(&self, name: &str) -> Result<(), ScenarioError> {
        self.create(name, serde_json::json!([])).await
    }

    async fn create(
        &self,
        name: &str,
        annotations: serde_json::Value,
    ) -> Result<(), ScenarioError> {
        let body = serde_json::json!({
            "exec": {"kind": "nodejs:20", "code": ACTION_CODE},
            "annotations": annotations,
        });
        let r = self
            .http
            .put(self.url(&format!(
                "/api/v1/namespaces/_/actions/{name}?overwrite=true"
            )))
            .basic_auth(GUEST_UUID, Some(GUEST_KEY))
            .json(&body)
            .send()
            .await?;
        if !r.status().is_success() {
            return Err(ScenarioError::Unexpected(format!(
                "creating {name}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            )));
        }
        Ok(())
    }

    pub(super) fn invoke_path(name: &str) -> String {
        format!("/api/v1/namespaces/_/actions/{name}?blocking=true&result=true")
    }

    pub(super) async fn invoke(&self, name: &str) -> Result<u16, ScenarioError> {
        let r = self
            .http
            .post(self.url(&Self::invoke_path(name)))
            .basic_auth(GUEST_UUID, Some(GUEST_KEY))
            .json(&serde_json::json!({}))
            .timeout(COLD_TIMEOUT)
            .send()
            .await?;
        Ok(r.status().as_u16())
    }

    /// The stack's processes as components (by command name), the control plane included.
    pub(super) fn components(&self) -> Vec<Component> {
        let mut by_name: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        by_name.insert("controlplane".into(), vec![self.pid()]);
        for (pid, comm) in procstat::descendants(self.pid()) {
            let name = match comm.as_str() {
                "envoy" => "envoy".to_owned(),
                "whisk-router" => "router".to_owned(),
                c if c.starts_with("whisk-containe") => "container-proxy".to_owned(),
                "node" | "nodejs" => "node-runtime".to_owned(),
                other => other.to_owned(),
            };
            by_name.entry(name).or_default().push(pid);
        }
        let mut out: Vec<Component> = by_name
            .into_iter()
            .map(|(name, pids)| Component { name, pids })
            .collect();
        out.push(Component::new("loadgen", std::process::id()));
        out
    }

    /// True when some container proxy is a ready stem cell (no action yet).
    async fn stem_cell_ready(&self) -> bool {
        for (pid, comm) in procstat::descendants(self.pid()) {
            if !comm.starts_with("whisk-containe") {
                continue;
            }
            for port in procstat::listening_ports(pid) {
                let url = format!("http://127.0.0.1:{port}/_whisk/health");
                let Ok(r) = self
                    .http
                    .get(url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                else {
                    continue;
                };
                let Ok(v) = r.json::<serde_json::Value>().await else {
                    continue;
                };
                if v["ready"] == true && v["initialized"] == false {
                    return true;
                }
            }
        }
        false
    }

    /// The router's admin address: whichever of its ports answers `/readyz`.
    async fn router_admin(&self) -> Option<SocketAddr> {
        for (pid, comm) in procstat::descendants(self.pid()) {
            if comm != "whisk-router" {
                continue;
            }
            for port in procstat::listening_ports(pid) {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                if super::router_revision(&self.http, addr).await.is_some() {
                    return Some(addr);
                }
            }
        }
        None
    }

    /// Lifts the guest's throttles (OpenWhisk's defaults would turn a measurement into 429s)
    /// with `whisk admin`, and waits until the router has the change.
    async fn lift_guest_limits(&self, whisk: &std::path::Path) -> Result<(), ScenarioError> {
        let admin = self.router_admin().await.ok_or_else(|| {
            ScenarioError::Unexpected("the stack's router has no admin port".into())
        })?;
        let before = super::router_revision(&self.http, admin).await.unwrap_or(0);
        let out = Command::new(whisk)
            .args(["admin", "--controlplane", &self.admin, "--data-dir"])
            .arg(&self.data)
            .args(["limits", "set", "guest"])
            .args([
                "--invocations-per-minute",
                "100000000",
                "--concurrent-invocations",
                "10000",
            ])
            .output()
            .await?;
        if !out.status.success() {
            return Err(ScenarioError::Unexpected(format!(
                "whisk admin limits set: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        super::wait_revision(&self.http, admin, before + 1, Duration::from_secs(10)).await?;
        Ok(())
    }

    pub(super) async fn stop(self) {
        self.child.stop(Duration::from_secs(15)).await;
    }
}

pub(super) async fn whisk_up(
    tools: &Tools,
    opts: &Options,
    name: &str,
    prewarm: &str,
) -> Result<Up, ScenarioError> {
    whisk_up_with(tools, opts, name, prewarm, &[]).await
}

/// [`whisk_up`] with more `whisk up` flags.
pub(super) async fn whisk_up_with(
    tools: &Tools,
    opts: &Options,
    name: &str,
    prewarm: &str,
    extra: &[&str],
) -> Result<Up, ScenarioError> {
    let dir = tools.work.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut cmd = Command::new(&tools.whisk);
    cmd.args(["up", "--port", "0", "--flavour", &opts.stack_flavour])
        .args(["--prewarm", prewarm])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--envoy")
        .arg(&tools.envoy)
        .args(extra)
        // Per-request logging is not part of what is measured.
        .env("RUST_LOG", "warn");
    let child = spawn_announcing(
        cmd,
        "WHISK_UP_READY",
        &dir.join("whisk-up.log"),
        Duration::from_secs(120),
    )
    .await
    .map_err(|source| ScenarioError::Child {
        what: "whisk up",
        source,
    })?;
    // `apihost=http://127.0.0.1:PORT admin=http://…`
    let api = child
        .address
        .split_whitespace()
        .find_map(|w| w.strip_prefix("apihost=http://"))
        .and_then(|a| a.trim_end_matches('/').parse().ok())
        .ok_or_else(|| {
            ScenarioError::Unexpected(format!("whisk up announced {:?}", child.address))
        })?;
    let admin = child
        .address
        .split_whitespace()
        .find_map(|w| w.strip_prefix("admin="))
        .map(str::to_owned)
        .ok_or_else(|| {
            ScenarioError::Unexpected(format!("whisk up announced {:?}", child.address))
        })?;
    let up = Up {
        child,
        api,
        admin,
        data: dir.join("data"),
        http: reqwest::Client::new(),
    };
    up.lift_guest_limits(&tools.whisk).await?;
    Ok(up)
}

const D_TITLE: &str = "Full warm invoke through `whisk up`";
const D_SETUP: &str = "whisk up (--stack-flavour, gateway by default; prewarm nodejs:20=1, RUST_LOG=warn): Envoy → \
     router → container proxy → a nodejs:20 action `function main(p){return {ok:true}}`, blocking \
     with result, guest key (its throttles lifted with `whisk admin limits set`); one invoke to start \
     the container, then measured at concurrency 1.";
const W_TITLE: &str = "Warm web action (no credentials) through `whisk up`";
const W_SETUP: &str = "The stack of d, right after it: the same action created with \
     `web-export: true`, fetched with `GET /api/v1/web/guest/default/bench-web.json` (no credentials; \
     the router runs the action and shapes the answer itself) at concurrency 1, after one GET to \
     start its container. Compare with d (an authenticated invoke Envoy forwards).";
const E_TITLE: &str = "Cold start with and without a stem cell";
const E_SETUP: &str = "A new nodejs:20 action per sample, its first blocking invoke timed \
     (creation not included; the bench waits until the router holds the new action). With: whisk up --prewarm nodejs:20=1, a ready stem cell awaited \
     before each sample. Without: --prewarm nodejs:20=0.";

/// d and e (whichever are wanted).
pub async fn run(tools: &Tools, opts: &Options) -> Vec<ScenarioReport> {
    let mut out = Vec::new();
    let mut e = ScenarioReport::new('e', E_TITLE, E_SETUP);
    let mut e_error: Option<String> = None;
    if opts.wants('d') || opts.wants('e') || opts.wants('w') {
        match whisk_up(tools, opts, "de-prewarm", "nodejs:20=1").await {
            Ok(up) => {
                if opts.wants('d') {
                    let mut d = ScenarioReport::new('d', D_TITLE, D_SETUP);
                    if let Err(err) = warm(&up, opts, &mut d).await {
                        d = ScenarioReport::failed('d', D_TITLE, D_SETUP, err.to_string());
                    }
                    out.push(d);
                }
                if opts.wants('w') {
                    let mut w = ScenarioReport::new('w', W_TITLE, W_SETUP);
                    if let Err(err) = web(&up, opts, &mut w).await {
                        w = ScenarioReport::failed('w', W_TITLE, W_SETUP, err.to_string());
                    }
                    out.push(w);
                }
                if opts.wants('e') {
                    match cold(&up, opts, true).await {
                        Ok((samples, statuses)) => {
                            e.set_extra("with_stem_cell_statuses", serde_json::json!(statuses));
                            e.samples_us.insert("with_stem_cell".into(), samples);
                        }
                        Err(err) => e_error = Some(format!("with stem cell: {err}")),
                    }
                }
                up.stop().await;
            }
            Err(err) => {
                if opts.wants('d') {
                    out.push(ScenarioReport::failed(
                        'd',
                        D_TITLE,
                        D_SETUP,
                        err.to_string(),
                    ));
                }
                e_error = Some(format!("whisk up (prewarm 1): {err}"));
            }
        }
    }
    if opts.wants('e') {
        if e_error.is_none() {
            match whisk_up(tools, opts, "e-no-prewarm", "nodejs:20=0").await {
                Ok(up) => {
                    match cold(&up, opts, false).await {
                        Ok((samples, statuses)) => {
                            e.set_extra("without_stem_cell_statuses", serde_json::json!(statuses));
                            e.samples_us.insert("without_stem_cell".into(), samples);
                        }
                        Err(err) => e_error = Some(format!("without stem cell: {err}")),
                    }
                    up.stop().await;
                }
                Err(err) => e_error = Some(format!("whisk up (prewarm 0): {err}")),
            }
        }
        for key in ["with_stem_cell", "without_stem_cell"] {
            let p50 = e.samples_us.get(key).and_then(|v| {
                median_us(
                    &v.iter()
                        .map(|us| Duration::from_secs_f64(us / 1e6))
                        .collect::<Vec<_>>(),
                )
            });
            e.set_extra(&format!("{key}_p50_us"), serde_json::json!(p50));
        }
        if let Some(err) = e_error {
            e.status = "failed".into();
            e.error = Some(err);
        }
        out.push(e);
    }
    out
}

async fn warm(up: &Up, opts: &Options, report: &mut ScenarioReport) -> Result<(), ScenarioError> {
    let name = "bench-warm";
    up.create_action(name).await?;
    let status = up.invoke(name).await?;
    if status != 200 {
        return Err(ScenarioError::Unexpected(format!(
            "the first invoke of {name} answered {status}"
        )));
    }
    let target = Target::post_json(up.api, &Up::invoke_path(name), Some(&guest()), "{}");
    report.set_extra(
        "processes",
        serde_json::json!(
            up.components()
                .iter()
                .map(|c| (c.name.clone(), c.pids.len()))
                .collect::<BTreeMap<_, _>>()
        ),
    );
    report.steps.push(warm_step(up, &target, opts).await?);
    Ok(())
}

/// Warms `target` up, then measures it at concurrency 1 with the stack's processes' costs.
async fn warm_step(up: &Up, target: &Target, opts: &Options) -> Result<Step, ScenarioError> {
    warm_up(target, opts.warmup()).await?;
    measure(
        target,
        Mode::Closed { concurrency: 1 },
        opts.step(),
        &up.components(),
    )
    .await
}

/// Scenario w: the warm web action at concurrency 1.
async fn web(up: &Up, opts: &Options, report: &mut ScenarioReport) -> Result<(), ScenarioError> {
    let name = "bench-web";
    up.create(
        name,
        serde_json::json!([{"key": "web-export", "value": true}]),
    )
    .await?;
    let path = format!("/api/v1/web/guest/default/{name}.json");
    let first = up
        .http
        .get(up.url(&path))
        .timeout(COLD_TIMEOUT)
        .send()
        .await?
        .status()
        .as_u16();
    if first != 200 {
        return Err(ScenarioError::Unexpected(format!(
            "the first GET of {path} answered {first}"
        )));
    }
    let target = Target::get(up.api, &path);
    report.steps.push(warm_step(up, &target, opts).await?);
    Ok(())
}

/// Times `opts.cold_samples` first invokes; returns them (µs) and the statuses seen.
async fn cold(
    up: &Up,
    opts: &Options,
    stem_cell: bool,
) -> Result<(Vec<f64>, BTreeMap<u16, u32>), ScenarioError> {
    let mut samples = Vec::new();
    let mut statuses = BTreeMap::new();
    let router_admin = up
        .router_admin()
        .await
        .ok_or_else(|| ScenarioError::Unexpected("the stack's router has no admin port".into()))?;
    for k in 0..opts.cold_samples.max(1) {
        if stem_cell {
            wait_for("a ready stem cell", COLD_TIMEOUT, || up.stem_cell_ready()).await?;
        }
        let name = format!("cold-{}-{k}", if stem_cell { "stem" } else { "nostem" });
        // The router learns of the new action by a push: wait for it, or the invoke may be a 404.
        let before = super::router_revision(&up.http, router_admin)
            .await
            .unwrap_or(0);
        up.create_action(&name).await?;
        super::wait_revision(&up.http, router_admin, before + 1, Duration::from_secs(10)).await?;
        let t = Instant::now();
        let status = up.invoke(&name).await?;
        let took = t.elapsed();
        *statuses.entry(status).or_insert(0) += 1;
        if status == 200 {
            samples.push(took.as_secs_f64() * 1e6);
        }
    }
    if samples.is_empty() {
        return Err(ScenarioError::Unexpected(format!(
            "no cold start answered 200: {statuses:?}"
        )));
    }
    Ok((samples, statuses))
}
