//! The scenarios and what they share: the options of a run, where the binaries are, how one
//! measured step is taken (load + CPU of every component around it), and the shape of a
//! scenario's result.
//!
//! * [`edge`] — a (Envoy alone), b (Envoy + no-op ext_proc), c (Envoy + router), f (throttled),
//!   g (endpoint churn), h (sidecar flavour), k (the router keeping every body): Envoy in front of
//!   the bench's minimal upstream.
//! * [`stack`] — d (warm invoke through `whisk up`) and e (cold starts with/without stem cell).
//! * [`seqcache`] — i (sequences run by the router; response-cache hits).
//! * [`scale`] — j (the router loaded with large tables).

pub mod edge;
pub mod gateways;
pub mod rig;
pub mod scale;
pub mod seqcache;
pub mod stack;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::loadgen::{self, Mode, StepResult, Target};
use crate::procstat::{Component, ComponentCost, CpuSnapshot};

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{0}")]
    Load(#[from] loadgen::LoadError),
    #[error("load thread: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("{what}: {source}")]
    Child {
        what: &'static str,
        source: whisk_stack::child::ChildError,
    },
    #[error("envoy: {0}")]
    Envoy(#[from] whisk_stack::envoy::EnvoyError),
    #[error("{0}")]
    StandIn(#[from] crate::standin::StandInError),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    #[error("{0}")]
    Unexpected(String),
}

/// Everything a run is configured with (from the command line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    pub smoke: bool,
    pub step_secs: f64,
    pub warmup_secs: f64,
    /// Open-loop offered rates (requests/s) for a, b and c.
    pub rates: Vec<f64>,
    /// Connections the open loop may use.
    pub connections: usize,
    /// Closed-loop concurrency used to find the saturated throughput.
    pub saturate_concurrency: usize,
    pub cold_samples: usize,
    pub churn_per_sec: f64,
    pub scale_actions: usize,
    pub scale_endpoints: usize,
    pub scale_identities: usize,
    pub scale_snapshot: SnapshotMode,
    pub scale_chunk_entries: usize,
    pub scale_timeout_secs: u64,
    /// `whisk up --flavour` for d and e: gateway or sidecar.
    pub stack_flavour: String,
    /// Scenarios to run (letters).
    pub only: Vec<char>,
}

impl Options {
    pub fn step(&self) -> Duration {
        Duration::from_secs_f64(self.step_secs)
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_secs)
    }

    pub fn wants(&self, id: char) -> bool {
        self.only.is_empty() || self.only.contains(&id)
    }
}

/// How scenario j sends its big snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// One message (as the real control plane sends it); if the router cannot take it, report
    /// why and load the same tables again as a split snapshot.
    Auto,
    /// One message only.
    Whole,
    /// A snapshot message and deltas of at most `--scale-chunk-entries` entries each.
    Chunked,
}

/// Where the programs under test are.
#[derive(Debug, Clone)]
pub struct Tools {
    pub envoy: PathBuf,
    /// This binary (it also runs the upstream and the no-op ext_proc).
    pub bench: PathBuf,
    pub router: PathBuf,
    pub whisk: PathBuf,
    /// Scratch space for configs and logs.
    pub work: PathBuf,
}

/// One measured step with the cost of each component during it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    #[serde(flatten)]
    pub result: StepResult,
    pub components: Vec<ComponentCost>,
}

impl Step {
    pub fn cost(&self, component: &str) -> Option<&ComponentCost> {
        self.components.iter().find(|c| c.name == component)
    }
}

/// The outcome of one scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// A letter: a … j.
    pub id: String,
    pub title: String,
    /// What it measures and how it was set up.
    pub setup: String,
    /// `ok`, `failed` or `not_available`.
    pub status: String,
    pub error: Option<String>,
    pub steps: Vec<Step>,
    /// Individually timed samples (cold starts, table loads), in microseconds, by name.
    pub samples_us: std::collections::BTreeMap<String, Vec<f64>>,
    /// Anything else worth keeping (sizes, RSS, revisions).
    pub extra: serde_json::Value,
}

impl ScenarioReport {
    pub fn new(id: char, title: &str, setup: &str) -> Self {
        Self {
            id: id.to_string(),
            title: title.to_owned(),
            setup: setup.to_owned(),
            status: "ok".into(),
            error: None,
            steps: Vec::new(),
            samples_us: Default::default(),
            extra: serde_json::json!({}),
        }
    }

    pub fn failed(id: char, title: &str, setup: &str, error: String) -> Self {
        Self {
            status: "failed".into(),
            error: Some(error),
            ..Self::new(id, title, setup)
        }
    }

    /// How many things this scenario measured (answered requests plus timed samples).
    pub fn sample_count(&self) -> u64 {
        self.steps.iter().map(|s| s.result.completed).sum::<u64>()
            + self
                .samples_us
                .values()
                .map(|v| v.len() as u64)
                .sum::<u64>()
    }

    pub fn step(&self, label: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.result.label == label)
    }

    pub fn set_extra(&mut self, key: &str, value: serde_json::Value) {
        if let Some(map) = self.extra.as_object_mut() {
            map.insert(key.to_owned(), value);
        }
    }
}

/// Runs one step of load against `target` and charges each component's CPU to it.
pub async fn measure(
    target: &Target,
    mode: Mode,
    duration: Duration,
    components: &[Component],
) -> Result<Step, ScenarioError> {
    let before = CpuSnapshot::take(components);
    let t = target.clone();
    let result = tokio::task::spawn_blocking(move || loadgen::run(&t, mode, duration)).await??;
    let after = CpuSnapshot::take(components);
    let costs = before.costs(&after, components, result.completed, result.elapsed_s);
    Ok(Step {
        result,
        components: costs,
    })
}

/// Load that is not reported (connections opened, caches and pools warm).
pub async fn warm_up(target: &Target, duration: Duration) -> Result<(), ScenarioError> {
    if duration.is_zero() {
        return Ok(());
    }
    let t = target.clone();
    tokio::task::spawn_blocking(move || {
        loadgen::run(&t, Mode::Closed { concurrency: 1 }, duration)
    })
    .await??;
    Ok(())
}

/// Waits for `cond` to hold, polling, until `timeout` (never a bare sleep as synchronisation).
pub async fn wait_for<F, Fut>(
    what: &str,
    timeout: Duration,
    mut cond: F,
) -> Result<(), ScenarioError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ScenarioError::Timeout(timeout, what.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The table revision a router reports on its admin port (None while it is unreachable):
/// `/tables` (current routers) or `/readyz` (earlier ones, which put the revision there).
pub async fn router_revision(http: &reqwest::Client, admin: std::net::SocketAddr) -> Option<u64> {
    for path in ["/tables", "/readyz"] {
        let Ok(r) = http.get(format!("http://{admin}{path}")).send().await else {
            return None;
        };
        if let Ok(v) = r.json::<serde_json::Value>().await
            && let Some(rev) = v["revision"].as_u64()
        {
            return Some(rev);
        }
    }
    None
}

/// Waits until the router at `admin` holds `revision`; returns when that was observed.
pub async fn wait_revision(
    http: &reqwest::Client,
    admin: std::net::SocketAddr,
    revision: u64,
    timeout: Duration,
) -> Result<Instant, ScenarioError> {
    wait_for(&format!("router revision {revision}"), timeout, || async {
        router_revision(http, admin)
            .await
            .is_some_and(|r| r >= revision)
    })
    .await?;
    Ok(Instant::now())
}
