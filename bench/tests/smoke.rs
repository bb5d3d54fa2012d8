//! The harness must never rot: run the real `whisk-bench --smoke` into a temporary directory and
//! check that the report files exist, parse, and that every scenario produced samples. No timing
//! is ever asserted (smoke numbers mean nothing).
//!
//! `whisk-bench` drives the other binaries (`whisk-router`, `whisk`, `whisk-container-proxy`);
//! they are looked up next to this test's executable (`target/<profile>/`) and built with
//! `cargo build --bins` when missing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/`: the test executable lives in its `deps/`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps directory");
    deps.parent().expect("profile directory").to_path_buf()
}

fn ensure_binaries(dir: &Path) {
    let wanted = ["whisk-router", "whisk", "whisk-container-proxy"];
    if wanted.iter().all(|b| dir.join(b).is_file()) {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["build", "--bins"])
        .args([
            "-p",
            "whisk-router",
            "-p",
            "whisk-controlplane",
            "-p",
            "whisk-container-proxy",
        ]);
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build");
    assert!(status.success(), "cargo build --bins failed");
    for b in wanted {
        assert!(
            dir.join(b).is_file(),
            "{b} still missing in {}",
            dir.display()
        );
    }
}

#[test]
fn smoke_run_writes_a_complete_report() {
    let dir = bin_dir();
    ensure_binaries(&dir);
    let out = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_whisk-bench"))
        .arg("--smoke")
        .arg("--out")
        .arg(out.path())
        .arg("--bin-dir")
        .arg(&dir)
        .output()
        .expect("running whisk-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "whisk-bench failed:\n{stderr}");

    let md = std::fs::read_to_string(out.path().join("report.md")).expect("report.md");
    assert!(md.starts_with("# whisk-bench report"), "{md}");
    let svg = std::fs::read_to_string(out.path().join("latency-vs-load.svg")).expect("the plot");
    assert!(svg.contains("<svg"), "not an SVG");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("report.json")).expect("report.json"),
    )
    .expect("report.json parses");

    let scenarios = json["scenarios"].as_array().expect("scenarios");
    let ids: Vec<&str> = scenarios.iter().filter_map(|s| s["id"].as_str()).collect();
    for id in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "m", "w"] {
        assert!(
            ids.contains(&id),
            "scenario {id} missing from {ids:?}\n{stderr}"
        );
    }
    for s in scenarios {
        let id = s["id"].as_str().unwrap_or("?");
        assert_eq!(s["status"], "ok", "scenario {id}: {}\n{stderr}", s["error"]);
        let answered: u64 = s["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|st| st["completed"].as_u64())
            .sum();
        let timed: usize = s["samples_us"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|v| v.as_array().map(Vec::len))
            .sum();
        assert!(
            answered + timed as u64 > 0,
            "scenario {id} produced no samples"
        );
    }
    // Every answer was a success, but where a scenario measures a refusal on purpose (f: the
    // namespace's rate limit answers 429; m's metered step: the limit shared by three gateways).
    let mut answers_checked = 0u64;
    for s in scenarios {
        let id = s["id"].as_str().unwrap_or("?");
        for st in s["steps"].as_array().into_iter().flatten() {
            let metered = id == "m"
                && st["label"]
                    .as_str()
                    .is_some_and(|l| l.starts_with("metered"));
            let expected_refusal = (id == "f" || metered).then_some("429");
            for (status, count) in st["statuses"].as_object().into_iter().flatten() {
                answers_checked += count.as_u64().unwrap_or(0);
                let ok = status.starts_with('2') || Some(status.as_str()) == expected_refusal;
                assert!(
                    ok,
                    "scenario {id}, step {}: {count} answers with status {status}\n{stderr}",
                    st["label"]
                );
            }
        }
    }
    assert!(answers_checked > 0, "no step reported its statuses");
    // Three gateways never admit a namespace past its limit.
    let m = scenarios
        .iter()
        .find(|s| s["id"] == "m")
        .expect("scenario m");
    let accuracy = m["extra"]["throttle_accuracy"]
        .as_f64()
        .expect("m measures the throttle");
    assert!(
        accuracy <= 1.0,
        "three gateways admitted {accuracy} × the limit"
    );
    // Every step's latency summary is present and consistent with its count.
    for st in scenarios
        .iter()
        .flat_map(|s| s["steps"].as_array().into_iter().flatten())
    {
        assert_eq!(st["latency"]["count"], st["completed"], "{st}");
    }
    assert!(json["targets"].as_array().is_some_and(|t| !t.is_empty()));
    assert!(json["ratios"].as_array().is_some_and(|r| !r.is_empty()));
    assert!(
        json["not_available"].as_array().is_some_and(|n| !n
            .iter()
            .any(|l| l.as_str().is_some_and(|l| l.starts_with("i:")))),
        "scenario i is measured now, not listed as not available"
    );
    // Scenario i: every sequence and the cache hits were measured, and no hit reached the
    // upstream (a count, not a timing).
    let i = scenarios
        .iter()
        .find(|s| s["id"] == "i")
        .expect("scenario i");
    let labels: Vec<&str> = i["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|st| st["label"].as_str())
        .collect();
    for want in ["direct", "seq1", "seq5", "seq10", "cache-hit"] {
        assert!(
            labels.iter().any(|l| l.starts_with(&format!("{want} "))),
            "scenario i has no {want} step: {labels:?}"
        );
    }
    assert_eq!(
        i["extra"]["cache_upstream_requests"]["during_hit_steps"], 0,
        "cache hits reached the upstream: {}",
        i["extra"]
    );
}
