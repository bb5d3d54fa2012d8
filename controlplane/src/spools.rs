//! Picks up activation records that local container proxies spooled and never delivered.
//!
//! A local proxy spools the reports the control plane has not acknowledged in
//! `<data_dir>/spool/<container-id>/reports.spool` (one JSON entry per line, whole lines only;
//! see the container proxy's `spool.rs`). A proxy killed with entries left — or one that died
//! with the previous control plane — leaves that file behind. The sweep, run at start and then
//! periodically, stores the records of every spool that no live proxy holds (a proxy keeps an
//! exclusive `flock` on its file; containers in the pool are skipped as well) and removes the
//! directory.
//!
//! The files are trusted as they are: they sit in the control plane's own owner-only data
//! directory, written by proxies it started. The record's own `namespace` is kept (as for a
//! router's record): after a restart nothing says which action a dead container held, so the
//! check a live container's report gets (its record is of its action, its namespace is the one
//! assigned) cannot be made here. A record already stored is ignored by the store.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::plane::{Plane, PlaneError};

/// The spool file of one proxy (as the container proxy names it).
const FILE: &str = "reports.spool";

/// Why one spool could not be swept (it is kept for the next sweep).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{0}: {1}")]
    Io(std::path::PathBuf, std::io::Error),
    #[error(transparent)]
    Store(#[from] PlaneError),
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Records stored (new ids).
    pub stored: usize,
    /// Spool directories emptied and removed.
    pub removed: usize,
}

/// Stores the records of every abandoned spool under `root` and removes those spools. A spool
/// directory younger than `min_age` is left for later: its proxy may be starting (between
/// creating the directory and locking the file).
pub fn sweep(plane: &Arc<Plane>, root: &Path, min_age: Duration) -> SweepReport {
    let mut report = SweepReport::default();
    let Ok(dirs) = std::fs::read_dir(root) else {
        return report;
    };
    for dir in dirs.flatten() {
        let name = dir.file_name();
        let Some(container_id) = name.to_str() else {
            continue;
        };
        if plane.pool().get(container_id).is_some() {
            continue;
        }
        let young = dir
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < min_age);
        if young {
            continue;
        }
        match sweep_one(plane, &dir.path()) {
            Ok(Some(stored)) => {
                report.stored += stored;
                report.removed += 1;
                if let Err(e) = std::fs::remove_dir_all(dir.path()) {
                    tracing::warn!(dir = %dir.path().display(), error = %e, "removing a swept spool");
                }
                if stored > 0 {
                    tracing::info!(%container_id, stored, "stored records left in a dead proxy's spool");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%container_id, error = %e, "sweeping a spool failed; will retry")
            }
        }
    }
    report
}

/// `None` when a live proxy holds the spool; otherwise how many records were new.
fn sweep_one(plane: &Arc<Plane>, dir: &Path) -> Result<Option<usize>, SweepError> {
    let path = dir.join(FILE);
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(0)),
        Err(e) => return Err(SweepError::Io(path, e)),
    };
    if !try_lock(&file) {
        return Ok(None);
    }
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) => return Err(SweepError::Io(path, e)),
    };
    let mut stored = 0;
    // Only whole lines: a torn last write (no newline) is what a kill mid-write leaves.
    let whole = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    for line in data[..whole].split(|&b| b == b'\n') {
        let Some(json) = activation_json(line) else {
            continue;
        };
        match plane.record_activation("", None, &json) {
            Ok(true) => stored += 1,
            Ok(false) => {}
            Err(PlaneError::BadRecord(m)) => {
                tracing::warn!(error = %m, "skipping a spooled record the store refuses")
            }
            // The store failed: keep the file for the next sweep.
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(stored))
}

/// The record of an `{"activation":{"id":…,"json":"…"}}` entry; other entries (unusable
/// reports of a container that is gone anyway) and unreadable lines are skipped.
fn activation_json(line: &[u8]) -> Option<String> {
    if line.is_empty() {
        return None;
    }
    let entry: Value = serde_json::from_slice(line).ok()?;
    entry
        .get("activation")?
        .get("json")?
        .as_str()
        .map(str::to_string)
}

/// An exclusive lock, if no live proxy holds one (released when `file` is closed).
fn try_lock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// How old a spool directory must be before a sweep takes it.
pub const MIN_AGE: Duration = Duration::from_secs(10);

/// Sweeps `root` now and then every `every` (if non-zero) while the plane lives.
pub(crate) fn spawn_sweeper(
    plane: &Arc<Plane>,
    root: std::path::PathBuf,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(plane);
    tokio::spawn(async move {
        loop {
            let Some(plane) = weak.upgrade() else { return };
            let root = root.clone();
            let _ = tokio::task::spawn_blocking(move || sweep(&plane, &root, MIN_AGE)).await;
            if every.is_zero() {
                return;
            }
            tokio::time::sleep(every).await;
        }
    })
}
