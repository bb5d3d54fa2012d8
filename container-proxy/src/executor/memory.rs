//! The memory limit of local actions (`limits.memory`). On Kubernetes the runtime container's
//! memory limit is the kernel's to enforce; a local container is a process tree on this machine,
//! where an action allocating 1 GiB under a 256 MB limit would otherwise run to completion.
//!
//! The enforcement is a watchdog: while an activation runs (or the code initialises), the
//! resident memory of its runtime process and everything under it
//! (`whisk_stack::leftovers::tree_rss_bytes`, from `/proc`) is sampled every [`SAMPLE_EVERY`];
//! above the limit the run is given up, the process tree killed and replaced (as after any
//! crash), and the activation is OpenWhisk's developer error "The action exhausted its memory and
//! was aborted." (an init fails with the same text). The limit covers the runtime's own baseline, as
//! a container's does (measured idle: node 20 42 MB, python 3.11 14 MB resident).
//! It is an approximation of a cgroup: memory allocated faster than one sample interval can
//! overshoot the limit briefly, and a process that left the tree (double fork) is not counted —
//! it dies with the container (`leftovers::kill_user`). With `limits.concurrency > 1` each
//! runtime process of the pool is held to the limit on its own. Virtual-memory rlimits are not used:
//! node reserves far more address space than it uses.

use std::time::Duration;

/// How often a running activation's memory is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// Resolves, with what was measured, once the process tree under `pid` holds more than
/// `limit_bytes` resident. Never resolves for a limit of 0 (no limit) or a pid of 0 (a process
/// already reaped: nothing to watch).
pub async fn exceeded(pid: u32, limit_bytes: u64) -> u64 {
    if limit_bytes == 0 || pid == 0 {
        return std::future::pending().await;
    }
    loop {
        // First after one interval: most activations end before, and pay nothing.
        tokio::time::sleep(SAMPLE_EVERY).await;
        let held =
            tokio::task::spawn_blocking(move || whisk_stack::leftovers::tree_rss_bytes(pid, None))
                .await
                .unwrap_or(0);
        if held > limit_bytes {
            return held;
        }
    }
}
