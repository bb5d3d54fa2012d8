//! `whisk-bench`: the load-test harness. Runs every scenario beside its baseline in one
//! invocation on loopback and writes `report.json`, `report.md` and `latency-vs-load.svg`.
//!
//! The same binary also plays two parts of the system under test, so they run as separate
//! processes whose CPU can be measured: `whisk-bench upstream` (the minimal upstream) and
//! `whisk-bench noop-extproc` (scenario b's ext_proc). See `bench/README.md`.

mod envoy_min;
mod hist;
mod loadgen;
mod noop_extproc;
mod plot;
mod procstat;
mod report;
mod scenarios;
mod standin;
mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use scenarios::{Options, ScenarioReport, SnapshotMode, Tools};

#[derive(Debug, Parser)]
#[command(
    name = "whisk-bench",
    about = "Measures the router beside its baselines (Envoy alone, a no-op ext_proc), the full stack, cold starts and scale"
)]
struct Cli {
    #[command(subcommand)]
    part: Option<Part>,
    #[command(flatten)]
    run: RunArgs,
}

/// Parts of the system under test that this binary plays (started by the bench itself).
#[derive(Debug, Subcommand)]
enum Part {
    /// The minimal HTTP/1.1 upstream.
    #[command(hide = true)]
    Upstream {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// What it answers: a fixed body, a container proxy's activation record, or a cacheable
        /// answer.
        #[arg(long, value_enum, default_value_t = upstream::Mode::Plain)]
        mode: upstream::Mode,
    },
    /// The no-op ext_proc server.
    #[command(hide = true)]
    NoopExtproc {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// The address set as `whisk.router.dst`.
        #[arg(long)]
        dst: SocketAddr,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Where the report goes (created if missing).
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// A few seconds in total: tiny steps, tiny scale; checks the harness, not the numbers.
    #[arg(long)]
    smoke: bool,
    /// Seconds per measured step [default: 3; smoke 0.3].
    #[arg(long)]
    step_secs: Option<f64>,
    /// Seconds of unreported warm-up before each scenario's steps [default: 1; smoke 0.2].
    #[arg(long)]
    warmup_secs: Option<f64>,
    /// Open-loop offered rates for a, b, c (requests/s, comma-separated)
    /// [default: 250,500,1000,1500,2000,3000; smoke 100].
    #[arg(long, value_delimiter = ',')]
    rates: Option<Vec<f64>>,
    /// Connections the open loop may use.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Closed-loop concurrency of the saturation step.
    #[arg(long, default_value_t = 16)]
    saturate_concurrency: usize,
    /// Cold-start samples per variant (e) [default: 8; smoke 1].
    #[arg(long)]
    cold_samples: Option<usize>,
    /// Endpoint updates per second pushed during g.
    #[arg(long, default_value_t = 100.0)]
    churn_per_sec: f64,
    /// Actions in the router's tables for j [default: 100000; smoke 100].
    #[arg(long)]
    scale_actions: Option<usize>,
    /// Endpoints for j [default: 1000000; smoke 1000].
    #[arg(long)]
    scale_endpoints: Option<usize>,
    /// Identities for j [default: 1000000; smoke 1000].
    #[arg(long)]
    scale_identities: Option<usize>,
    /// How j's snapshot is sent: one message (auto falls back to split messages if the router
    /// refuses it), or split from the start.
    #[arg(long, value_enum, default_value_t = SnapshotMode::Auto)]
    scale_snapshot: SnapshotMode,
    /// Entries per message when j's snapshot is split (keeps each message under gRPC's 4 MiB).
    #[arg(long, default_value_t = 20_000)]
    scale_chunk_entries: usize,
    /// The longest j waits for the router to load its tables.
    #[arg(long, default_value_t = 300)]
    scale_timeout_secs: u64,
    /// `whisk up --flavour` for d and e.
    #[arg(long, default_value = "gateway", value_parser = ["gateway", "sidecar"])]
    stack_flavour: String,
    /// Only these scenarios (letters, comma-separated: a,b,c,d,e,f,g,h,i,j,k,l,m,w; l needs --baseline-router).
    #[arg(long, value_delimiter = ',')]
    only: Vec<char>,
    /// Directory holding whisk-router, whisk and whisk-container-proxy [default: next to this
    /// binary].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Another build of whisk-router to measure beside this one (scenario l: c's set-up and
    /// closed-loop steps with that binary), e.g. the last release or the commit before a change.
    #[arg(long)]
    baseline_router: Option<PathBuf>,
    /// Envoy binary [default: $WHISK_ENVOY, .venv/bin/envoy, or envoy on the PATH].
    #[arg(long)]
    envoy: Option<PathBuf>,
}

impl RunArgs {
    fn options(&self) -> Options {
        let s = self.smoke;
        let pick =
            |v: Option<usize>, full: usize, smoke: usize| v.unwrap_or(if s { smoke } else { full });
        Options {
            smoke: s,
            step_secs: self.step_secs.unwrap_or(if s { 0.3 } else { 3.0 }),
            warmup_secs: self.warmup_secs.unwrap_or(if s { 0.2 } else { 1.0 }),
            rates: self.rates.clone().unwrap_or_else(|| {
                if s {
                    vec![100.0]
                } else {
                    vec![250.0, 500.0, 1000.0, 1500.0, 2000.0, 3000.0]
                }
            }),
            connections: self.connections,
            saturate_concurrency: self.saturate_concurrency,
            cold_samples: pick(self.cold_samples, 8, 1),
            churn_per_sec: self.churn_per_sec,
            scale_actions: pick(self.scale_actions, 100_000, 100),
            scale_endpoints: pick(self.scale_endpoints, 1_000_000, 1000),
            scale_identities: pick(self.scale_identities, 1_000_000, 1000),
            scale_snapshot: self.scale_snapshot,
            scale_chunk_entries: self.scale_chunk_entries,
            scale_timeout_secs: self.scale_timeout_secs,
            stack_flavour: self.stack_flavour.clone(),
            only: self.only.clone(),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.part {
        Some(Part::Upstream { listen, mode }) => upstream::run(listen, mode).context("upstream"),
        Some(Part::NoopExtproc { listen, dst }) => {
            noop_extproc::run(listen, dst).context("no-op ext_proc")
        }
        None => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("tokio runtime")?;
            rt.block_on(run(cli.run))
        }
    }
}

fn find_tools(args: &RunArgs, work: &Path) -> anyhow::Result<Tools> {
    let bench = std::env::current_exe().context("locating this binary")?;
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => bench
            .parent()
            .map(Path::to_path_buf)
            .context("this binary has no directory")?,
    };
    let need = |name: &str| -> anyhow::Result<PathBuf> {
        let p = bin_dir.join(name);
        if !p.is_file() {
            let profile = if bin_dir.ends_with("release") {
                " --release"
            } else {
                ""
            };
            bail!(
                "{} not found; build the binaries first: cargo build{profile} --bins \
                 -p whisk-router -p whisk-controlplane -p whisk-container-proxy (or pass --bin-dir)",
                p.display()
            );
        }
        Ok(p)
    };
    let router = need("whisk-router")?;
    let whisk = need("whisk")?;
    need("whisk-container-proxy")?;
    let envoy = match &args.envoy {
        Some(p) => p.clone(),
        None => whisk_stack::envoy::find_envoy()?,
    };
    Ok(Tools {
        envoy,
        bench,
        router,
        whisk,
        work: work.to_path_buf(),
    })
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let loadavg_start = report::loadavg();
    let opts = args.options();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let work = tempfile::Builder::new()
        .prefix("whisk-bench-")
        .tempdir()
        .context("scratch directory")?;
    let tools = find_tools(&args, work.path())?;
    eprintln!(
        "whisk-bench: {} run, scratch {} (logs there while it runs)",
        if opts.smoke { "smoke" } else { "full" },
        work.path().display()
    );
    let mut all: Vec<ScenarioReport> = Vec::new();
    let note = |r: &ScenarioReport| {
        eprintln!(
            "  {}. {} — {} ({} samples){}",
            r.id,
            r.title,
            r.status,
            r.sample_count(),
            r.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    };
    if opts.wants('a') {
        let r = scenarios::edge::floor(&tools, &opts).await;
        note(&r);
        all.push(r);
    }
    if opts.wants('b') {
        let r = scenarios::edge::noop(&tools, &opts).await;
        note(&r);
        all.push(r);
    }
    if opts.wants('c') || opts.wants('f') || opts.wants('g') {
        for r in scenarios::edge::router(&tools, &opts).await {
            if opts.wants(r.id.chars().next().unwrap_or('c')) {
                note(&r);
                all.push(r);
            }
        }
    }
    if opts.wants('h') {
        let r = scenarios::edge::sidecar(&tools, &opts).await;
        note(&r);
        all.push(r);
    }
    if opts.wants('k') {
        let r = scenarios::edge::with_kept_bodies(&tools, &opts).await;
        note(&r);
        all.push(r);
    }
    if let Some(baseline) = &args.baseline_router
        && opts.wants('l')
    {
        let r = scenarios::edge::baseline(&tools, &opts, baseline).await;
        note(&r);
        all.push(r);
    }
    if opts.wants('i') {
        let r = scenarios::seqcache::run(&tools, &opts).await;
        note(&r);
        all.push(r);
    }
    if opts.wants('d') || opts.wants('e') || opts.wants('w') {
        for r in scenarios::stack::run(&tools, &opts).await {
            note(&r);
            all.push(r);
        }
    }
    if opts.wants('m') {
        let r = scenarios::gateways::run(&tools, &opts).await;
        note(&r);
        all.push(r);
    }
    if opts.wants('j') {
        let r = scenarios::scale::run(&tools, &opts).await;
        note(&r);
        all.push(r);
    }
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let report = report::Report::build(
        report::Machine::detect(loadavg_start),
        opts,
        all,
        started.elapsed().as_secs_f64(),
    );
    report.write(&args.out).context("writing the report")?;
    if let Err(e) = plot::write(&args.out.join(report::PLOT_FILE), &report.scenarios) {
        eprintln!("whisk-bench: {e}");
    }
    if !report.scenarios.iter().all(|s| s.status == "ok") {
        // Keep the scratch directory: its logs explain the failure.
        let kept = work.keep();
        eprintln!(
            "whisk-bench: some scenarios failed; logs kept in {}",
            kept.display()
        );
    }
    for t in &report.targets {
        eprintln!("  target {}: {}", t.name, t.verdict);
    }
    eprintln!(
        "whisk-bench: report in {} ({:.0} s)",
        args.out.join(report::MARKDOWN_FILE).display(),
        report.total_seconds
    );
    Ok(())
}
