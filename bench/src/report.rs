//! The report: every scenario's numbers, the ratios between scenarios, and the issue's targets
//! marked met or missed, written as JSON (for machines and the smoke test) and Markdown (for
//! people) into the output directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::loadgen::Mode;
use crate::scenarios::edge::closed_label;
use crate::scenarios::seqcache;
use crate::scenarios::{Options, ScenarioReport, Step};

pub const JSON_FILE: &str = "report.json";
pub const MARKDOWN_FILE: &str = "report.md";
pub const PLOT_FILE: &str = "latency-vs-load.svg";

/// Scenarios the router does not support yet (none at the moment).
pub const NOT_AVAILABLE: &[(&str, &str)] = &[];

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub mem_total_mib: u64,
    /// `/proc/loadavg` when the run started and ended: other work on a shared machine shows here.
    pub loadavg_start: String,
    pub loadavg_end: String,
}

/// The first three fields of `/proc/loadavg`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

impl Machine {
    /// The machine now; `loadavg_start` is what was read when the run began.
    pub fn detect(loadavg_start: String) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let mem_total_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
            / 1024;
        Self {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            kernel,
            mem_total_mib,
            loadavg_start,
            loadavg_end: loadavg(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratio {
    pub name: String,
    pub value: Option<f64>,
    pub how: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetCheck {
    pub name: String,
    /// e.g. "≤ 25 µs".
    pub target: String,
    pub measured: Option<f64>,
    pub unit: String,
    /// None when not measured.
    pub met: Option<bool>,
    /// "met by …" / "missed by …" / why it could not be judged.
    pub verdict: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub generated_unix_s: u64,
    pub total_seconds: f64,
    pub machine: Machine,
    pub options: Options,
    pub scenarios: Vec<ScenarioReport>,
    pub ratios: Vec<Ratio>,
    pub targets: Vec<TargetCheck>,
    pub not_available: Vec<String>,
}

fn scenario<'a>(all: &'a [ScenarioReport], id: &str) -> Option<&'a ScenarioReport> {
    all.iter().find(|s| s.id == id && s.status == "ok")
}

fn step<'a>(all: &'a [ScenarioReport], id: &str, label: &str) -> Option<&'a Step> {
    scenario(all, id)?.step(label)
}

fn p50(all: &[ScenarioReport], id: &str, label: &str) -> Option<f64> {
    step(all, id, label).map(|s| s.result.latency.p50_us)
}

/// Successful (2xx) answers per second of a step.
fn rps(all: &[ScenarioReport], id: &str, label: &str) -> Option<f64> {
    step(all, id, label).map(|s| s.result.ok_rps)
}

fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// A target "measured ≤ limit" (or ≥ when `at_least`).
fn check(
    name: &str,
    measured: Option<f64>,
    limit: f64,
    unit: &str,
    at_least: bool,
    why_missing: &str,
) -> TargetCheck {
    let sign = if at_least { "≥" } else { "≤" };
    let target = format!("{sign} {limit} {unit}");
    let Some(m) = measured else {
        return TargetCheck {
            name: name.into(),
            target,
            measured: None,
            unit: unit.into(),
            met: None,
            verdict: format!("not measured: {why_missing}"),
        };
    };
    let met = if at_least { m >= limit } else { m <= limit };
    let gap = (m - limit).abs();
    let rel = if limit != 0.0 {
        gap / limit.abs() * 100.0
    } else {
        0.0
    };
    TargetCheck {
        name: name.into(),
        target,
        measured: Some(m),
        unit: unit.into(),
        met: Some(met),
        verdict: format!(
            "{} by {gap:.3} {unit} ({rel:.0} % of the target)",
            if met { "met" } else { "missed" }
        ),
    }
}

impl Report {
    pub fn build(
        machine: Machine,
        options: Options,
        scenarios: Vec<ScenarioReport>,
        total_seconds: f64,
    ) -> Self {
        let c1 = closed_label(1);
        let cn = closed_label(options.saturate_concurrency);
        let s = &scenarios;
        let mut ratios = vec![
            Ratio {
                name: "c/b throughput".into(),
                value: div(rps(s, "c", &cn), rps(s, "b", &cn)),
                how: format!("2xx answers/s, {cn}: router ÷ no-op ext_proc"),
            },
            Ratio {
                name: "c/b p50 latency".into(),
                value: div(p50(s, "c", &c1), p50(s, "b", &c1)),
                how: format!("p50, {c1}"),
            },
            Ratio {
                name: "c/a throughput".into(),
                value: div(rps(s, "c", &cn), rps(s, "a", &cn)),
                how: format!("2xx answers/s, {cn}: router ÷ Envoy alone"),
            },
            Ratio {
                name: "c/a p50 latency".into(),
                value: div(p50(s, "c", &c1), p50(s, "a", &c1)),
                how: format!("p50, {c1}"),
            },
            Ratio {
                name: "d/a p50 latency".into(),
                value: div(p50(s, "d", &c1), p50(s, "a", &c1)),
                how: format!("p50, {c1}: full warm invoke ÷ Envoy alone"),
            },
            Ratio {
                name: "h gateway/sidecar p50 latency".into(),
                value: div(p50(s, "c", &c1), p50(s, "h", &c1)),
                how: format!("p50, {c1}: router over TCP (c) ÷ over a Unix socket (h)"),
            },
            Ratio {
                name: "h gateway/sidecar throughput".into(),
                value: div(rps(s, "c", &cn), rps(s, "h", &cn)),
                how: format!("2xx answers/s, {cn}"),
            },
            Ratio {
                name: "k kept/no kept bodies p50 latency".into(),
                value: div(p50(s, "k", &c1), p50(s, "c", &c1)),
                how: format!("p50, {c1}: --replay always (k) ÷ a lone router's auto (c)"),
            },
            Ratio {
                name: "k kept/no kept bodies throughput".into(),
                value: div(rps(s, "k", &cn), rps(s, "c", &cn)),
                how: format!("2xx answers/s, {cn}"),
            },
            Ratio {
                name: "c this/l baseline router p50 latency".into(),
                value: div(p50(s, "c", &c1), p50(s, "l", &c1)),
                how: format!("p50, {c1}: this build (c) ÷ the --baseline-router build (l)"),
            },
            Ratio {
                name: "c this/l baseline router throughput".into(),
                value: div(rps(s, "c", &cn), rps(s, "l", &cn)),
                how: format!("2xx answers/s, {cn}"),
            },
            Ratio {
                name: "f 429/c 200 p50 latency".into(),
                value: div(p50(s, "f", &c1), p50(s, "c", &c1)),
                how: format!("p50, {c1}: a throttled call ÷ a routed one"),
            },
            Ratio {
                name: "g churn/c p50 latency".into(),
                value: div(p50(s, "g", &c1), p50(s, "c", &c1)),
                how: format!("p50, {c1}: with endpoint churn ÷ without"),
            },
            Ratio {
                name: "j loaded/c unloaded p50 latency".into(),
                value: div(p50(s, "j", &c1), p50(s, "c", &c1)),
                how: format!("p50, {c1}: router with scale tables ÷ c"),
            },
        ];
        // i: sequences (per component, against a direct invoke) and cache hits (against c).
        let c1_mode = Mode::Closed { concurrency: 1 };
        let cn_mode = Mode::Closed {
            concurrency: options.saturate_concurrency,
        };
        let direct_p50 = p50(s, "i", &seqcache::label(seqcache::DIRECT, c1_mode));
        let seq_overhead = |n: usize| match (
            p50(s, "i", &seqcache::label(&seqcache::sequence(n), c1_mode)),
            direct_p50,
        ) {
            (Some(seq), Some(direct)) => Some((seq - direct) / n as f64),
            _ => None,
        };
        let longest = seqcache::SEQUENCE_LENGTHS
            .iter()
            .copied()
            .max()
            .unwrap_or(1);
        let hit_rps = rps(s, "i", &seqcache::label(seqcache::CACHE_HIT, cn_mode));
        let hit_p50 = p50(s, "i", &seqcache::label(seqcache::CACHE_HIT, c1_mode));
        let hits_reached_upstream = scenario(s, "i")
            .and_then(|i| i.extra.get("cache_upstream_requests"))
            .and_then(|v| v["during_hit_steps"].as_f64());
        for n in seqcache::SEQUENCE_LENGTHS {
            ratios.push(Ratio {
                name: format!("i seq{n} overhead per component (µs)"),
                value: seq_overhead(n),
                how: format!(
                    "(p50 of guest/seq{n} − p50 of a direct invoke of its component) ÷ {n}, {c1}"
                ),
            });
        }
        ratios.push(Ratio {
            name: "i cache-hit/c throughput".into(),
            value: div(hit_rps, rps(s, "c", &cn)),
            how: format!("2xx answers/s, {cn}: router cache hits ÷ the plain routed path"),
        });
        ratios.push(Ratio {
            name: "i cache-hit/c p50 latency".into(),
            value: div(hit_p50, p50(s, "c", &c1)),
            how: format!("p50, {c1}: a cache hit ÷ a routed call"),
        });
        let router_cpu = step(s, "c", &cn)
            .and_then(|st| st.cost("router"))
            .map(|c| c.cpu_us_per_request);
        let added = match (p50(s, "c", &c1), p50(s, "b", &c1)) {
            (Some(c), Some(b)) => Some(c - b),
            _ => None,
        };
        let stem_p50 = scenario(s, "e")
            .and_then(|e| e.extra.get("with_stem_cell_p50_us"))
            .and_then(|v| v.as_f64())
            .map(|us| us / 1000.0);
        let j_rss = scenario(s, "j")
            .and_then(|j| j.extra.get("router_peak_rss_mib"))
            .and_then(|v| v.as_f64());
        let j_slowdown = div(p50(s, "j", &c1), p50(s, "c", &c1)).map(|r| (r - 1.0) * 100.0);
        let mut targets = vec![
            check(
                "router throughput vs no-op ext_proc (c/b)",
                div(rps(s, "c", &cn), rps(s, "b", &cn)),
                0.9,
                "×",
                true,
                "needs b and c",
            ),
            check(
                &format!("router CPU per request (c, {cn})"),
                router_cpu,
                25.0,
                "µs",
                false,
                "needs c",
            ),
            check(
                &format!("added p50 over the no-op ext_proc (c − b, {c1})"),
                added,
                50.0,
                "µs",
                false,
                "needs b and c",
            ),
            check(
                &format!("warm end-to-end p50 (d, {c1})"),
                p50(s, "d", &c1).map(|us| us / 1000.0),
                1.5,
                "ms",
                false,
                "needs d",
            ),
            check(
                "cold start p50 with a stem cell (e)",
                stem_p50,
                50.0,
                "ms",
                false,
                "needs e",
            ),
            check(
                "router peak RSS at scale (j)",
                j_rss,
                1024.0,
                "MiB",
                false,
                "needs j",
            ),
            check(
                &format!("warm-path slowdown at scale (j vs c, p50 {c1})"),
                j_slowdown,
                10.0,
                "%",
                false,
                "needs c and j",
            ),
        ];
        targets.push(check(
            &format!("sequence overhead per component (i, seq{longest}, p50 {c1})"),
            seq_overhead(longest),
            150.0,
            "µs",
            false,
            "needs i",
        ));
        targets.push(check(
            &format!("cache-hit throughput ÷ plain routed path (i ÷ c, {cn})"),
            div(hit_rps, rps(s, "c", &cn)),
            1.0,
            "×",
            true,
            "needs c and i",
        ));
        targets.push(check(
            "upstream requests during the cache-hit steps (i)",
            hits_reached_upstream,
            0.0,
            "requests",
            false,
            "needs i",
        ));
        Self {
            generated_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            total_seconds,
            machine,
            options,
            scenarios,
            ratios,
            targets,
            not_available: NOT_AVAILABLE
                .iter()
                .map(|(id, why)| format!("{id}: {why}"))
                .collect(),
        }
    }

    pub fn write(&self, dir: &Path) -> Result<(), ReportError> {
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| ReportError::Write { path, source })
        };
        write(JSON_FILE, serde_json::to_string_pretty(self)?)?;
        write(MARKDOWN_FILE, self.markdown())?;
        Ok(())
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "# whisk-bench report\n");
        let _ = writeln!(
            md,
            "Machine: {} × {} ({} MiB, Linux {}); load average {} at the start, {} at the end. \
             Mode: {}. Total run time {:.0} s. All traffic on 127.0.0.1; everything (load \
             generator included) shares these CPUs, so compare scenarios within this report, not \
             across machines.\n",
            m.nproc,
            m.cpu_model,
            m.mem_total_mib,
            m.kernel,
            m.loadavg_start,
            m.loadavg_end,
            if self.options.smoke {
                "smoke (numbers meaningless)"
            } else {
                "full"
            },
            self.total_seconds
        );
        let _ = writeln!(
            md,
            "Latency: open-loop steps are measured from each request's *intended* send time \
             (coordinated-omission-correct); closed-loop steps from the send. CPU µs/req = \
             (utime+stime during the step) ÷ answered requests, per process group.\n"
        );
        let _ = writeln!(md, "![p50/p99 vs offered rate]({PLOT_FILE})\n");
        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(
            md,
            "| target | goal | measured | verdict |\n|---|---|---|---|"
        );
        for t in &self.targets {
            let mark = match t.met {
                Some(true) => "✅",
                Some(false) => "❌",
                None => "—",
            };
            let measured = t
                .measured
                .map(|v| format!("{v:.3} {}", t.unit))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                md,
                "| {} | {} | {measured} | {mark} {} |",
                t.name, t.target, t.verdict
            );
        }
        let _ = writeln!(md, "\n## Ratios\n\n| ratio | value | how |\n|---|---|---|");
        for r in &self.ratios {
            let v = r
                .value
                .map(|v| format!("{v:.3}"))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(md, "| {} | {v} | {} |", r.name, r.how);
        }
        let _ = writeln!(md, "\n## Scenarios\n");
        for s in &self.scenarios {
            let _ = writeln!(md, "### {}. {}\n\n{}\n", s.id, s.title, s.setup);
            if let Some(e) = &s.error {
                let _ = writeln!(md, "**{}**: {e}\n", s.status.to_uppercase());
            }
            if !s.steps.is_empty() {
                md.push_str(&steps_table(&s.steps));
            }
            for (name, v) in &s.samples_us {
                let ms: Vec<String> = v.iter().map(|us| format!("{:.1}", us / 1000.0)).collect();
                let _ = writeln!(md, "\n* {name} (ms): {}", ms.join(", "));
            }
            if s.extra.as_object().is_some_and(|o| !o.is_empty()) {
                let _ = writeln!(
                    md,
                    "\n```json\n{}\n```",
                    serde_json::to_string_pretty(&s.extra).unwrap_or_default()
                );
            }
            md.push('\n');
        }
        for line in &self.not_available {
            let _ = writeln!(md, "### {line}\n");
        }
        let _ = writeln!(
            md,
            "## Options\n\n```json\n{}\n```",
            serde_json::to_string_pretty(&self.options).unwrap_or_default()
        );
        md
    }
}

fn steps_table(steps: &[Step]) -> String {
    let mut names: Vec<String> = Vec::new();
    for s in steps {
        for c in &s.components {
            if !names.contains(&c.name) {
                names.push(c.name.clone());
            }
        }
    }
    let mut md = String::new();
    let cpu_cols: String = names.iter().map(|n| format!(" CPU µs/req {n} |")).collect();
    let _ = writeln!(
        md,
        "| step | achieved rps | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | statuses | unsent |{cpu_cols}"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|{}",
        "---|".repeat(names.len())
    );
    for s in steps {
        let r = &s.result;
        let l = &r.latency;
        let mut statuses: Vec<String> =
            r.statuses.iter().map(|(k, v)| format!("{k}×{v}")).collect();
        if r.io_errors > 0 {
            statuses.push(format!("io-error×{}", r.io_errors));
        }
        let cpu: String = names
            .iter()
            .map(|n| {
                s.cost(n)
                    .map(|c| format!(" {:.1} |", c.cpu_us_per_request))
                    .unwrap_or_else(|| " — |".into())
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} |{cpu}",
            r.label,
            r.achieved_rps,
            l.p50_us,
            l.p90_us,
            l.p99_us,
            l.p999_us,
            l.max_us,
            statuses.join(" "),
            r.unsent
        );
    }
    let peak: Vec<String> = names
        .iter()
        .filter_map(|n| {
            steps
                .iter()
                .filter_map(|s| s.cost(n))
                .map(|c| c.peak_rss_mib)
                .reduce(f64::max)
                .map(|mib| format!("{n} {mib:.0} MiB"))
        })
        .collect();
    let _ = writeln!(md, "\nPeak RSS (VmHWM): {}", peak.join(", "));
    for s in steps {
        let l = &s.result.latency;
        if l.p50_us > 0.0 && l.p90_us > 10.0 * l.p50_us {
            let _ = writeln!(
                md,
                "\n⚠ {}: p90 is {:.0}× p50 — the latency is bimodal (some requests stall for \
                 ≈{:.0} ms), so its p50 can flip between the two modes from run to run.",
                s.result.label,
                l.p90_us / l.p50_us,
                l.p90_us / 1000.0
            );
        }
    }
    md
}
