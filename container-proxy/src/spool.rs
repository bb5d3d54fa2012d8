//! The proxy's on-disk spool of reports the control plane has not acknowledged yet.
//!
//! A finished activation record is never dropped: when the in-memory report queue is full or the
//! control plane is unreachable, reports are appended here and replayed, in order, until the
//! control plane acknowledges each one. The file (`reports.spool` in the proxy's spool
//! directory, created owner-only) holds one JSON entry per line; a line is only ever appended
//! whole, so a torn last write left by a kill has no trailing newline and is cut off when the
//! spool is opened again. An entry is removed only after its acknowledgement (the acknowledged
//! prefix is truncated away once the whole file is delivered, or compacted when it grows large),
//! so a crash can replay a report twice, which is fine: the control plane's store ignores a
//! second copy of an activation id.
//!
//! The spool is bounded (`max_bytes`): above 80 % a warning is logged, and an entry that would
//! cross the bound is refused ([`SpoolError::Full`]); the caller then stops taking invokes (see
//! `report.rs`). Writes are not fsync'd: a killed proxy loses nothing (the page cache outlives
//! it), a machine crash may lose the last entries.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};

/// The spool file's name inside the spool directory.
pub const FILE: &str = "reports.spool";
/// The acknowledged prefix is compacted away once it is larger than this (and half the file).
const COMPACT_AT: u64 = 4 << 20;

/// One spooled report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// A finished activation record (`json` is the stored record).
    Activation { id: String, json: String },
    /// "This container cannot serve any more."
    Unusable { reason: String },
}

/// Why an entry could not be spooled or the spool opened.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the report spool is full ({bytes} of {max} bytes)")]
    Full { bytes: u64, max: u64 },
    #[error("report spool {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("report spool {0} is in use by another process")]
    Locked(PathBuf),
}

/// Gauges the spool keeps current.
#[derive(Debug, Clone, Default)]
pub struct SpoolGauges {
    /// Entries not acknowledged yet.
    pub records: Gauge,
    /// Bytes of the spool file.
    pub bytes: Gauge,
}

#[derive(Debug)]
struct Inner {
    file: File,
    /// Length of the file (everything written).
    len: u64,
    /// Start of the first entry not acknowledged.
    acked: u64,
    /// Entries from `acked` on.
    pending: u64,
    /// The 80 % warning was given (reset below 80 %).
    warned: bool,
}

/// The spool of one proxy; shared by the reporter and its background task.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    max_bytes: u64,
    gauges: SpoolGauges,
    inner: Mutex<Inner>,
}

impl Spool {
    /// Opens (or creates) the spool in `dir` (created 0700 if missing) and takes an exclusive
    /// lock on it, so two live proxies never share one spool. Entries left by a previous proxy
    /// are kept for replay; a torn last line is cut off.
    pub fn open(dir: &Path, max_bytes: u64, gauges: SpoolGauges) -> Result<Self, SpoolError> {
        let path = dir.join(FILE);
        let io = |source| SpoolError::Io {
            path: path.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        lock(&file).map_err(|_| SpoolError::Locked(path.clone()))?;
        let data = std::fs::read(&path).map_err(io)?;
        let whole = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < data.len() {
            tracing::warn!(
                path = %path.display(),
                torn_bytes = data.len() - whole,
                "report spool ends with a torn write; cutting it off"
            );
            file.set_len(whole as u64).map_err(io)?;
        }
        let pending = data[..whole].iter().filter(|&&b| b == b'\n').count() as u64;
        if pending > 0 {
            tracing::info!(path = %path.display(), pending, "replaying reports left in the spool");
        }
        let spool = Spool {
            path,
            max_bytes,
            gauges,
            inner: Mutex::new(Inner {
                file,
                len: whole as u64,
                acked: 0,
                pending,
                warned: false,
            }),
        };
        spool.publish(&spool.lock_inner());
        Ok(spool)
    }

    /// The spool file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, inner: &Inner) {
        self.gauges
            .records
            .set(i64::try_from(inner.pending).unwrap_or(i64::MAX));
        self.gauges
            .bytes
            .set(i64::try_from(inner.len).unwrap_or(i64::MAX));
    }

    /// Appends one entry, or refuses it when it would cross the bound.
    pub fn append(&self, entry: &Entry) -> Result<(), SpoolError> {
        let mut line = serde_json::to_vec(entry).map_err(|e| SpoolError::Io {
            path: self.path.clone(),
            source: e.into(),
        })?;
        line.push(b'\n');
        let mut inner = self.lock_inner();
        if inner.len + line.len() as u64 > self.max_bytes && inner.acked > 0 {
            // Make room from what was already delivered before refusing.
            self.compact(&mut inner)?;
        }
        let after = inner.len + line.len() as u64;
        if after > self.max_bytes {
            return Err(SpoolError::Full {
                bytes: inner.len,
                max: self.max_bytes,
            });
        }
        if let Err(source) = inner.file.write_all(&line) {
            // Never leave a partial line that the next entry would be glued to.
            let _ = inner.file.set_len(inner.len);
            return Err(SpoolError::Io {
                path: self.path.clone(),
                source,
            });
        }
        inner.len = after;
        inner.pending += 1;
        if !inner.warned && after.saturating_mul(5) >= self.max_bytes.saturating_mul(4) {
            inner.warned = true;
            tracing::warn!(
                path = %self.path.display(),
                bytes = after,
                max_bytes = self.max_bytes,
                pending = inner.pending,
                "report spool is 80 % full: the control plane has not acknowledged activation records"
            );
        }
        self.publish(&inner);
        Ok(())
    }

    /// The first entry not acknowledged and where the next one starts (to pass to
    /// [`Self::ack`]). Lines that are not an entry are skipped with a warning.
    pub fn peek(&self) -> Option<(Entry, u64)> {
        let mut inner = self.lock_inner();
        loop {
            if inner.acked >= inner.len {
                return None;
            }
            let (line, next) = match read_line(&inner.file, inner.acked, inner.len) {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "reading the report spool");
                    return None;
                }
            };
            match serde_json::from_slice::<Entry>(&line) {
                Ok(entry) => return Some((entry, next)),
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), offset = inner.acked, error = %e, "skipping an unreadable spool entry");
                    inner.acked = next;
                    inner.pending = inner.pending.saturating_sub(1);
                    self.settle(&mut inner);
                }
            }
        }
    }

    /// The entry that [`Self::peek`] returned (ending at `next`) was acknowledged.
    pub fn ack(&self, next: u64) {
        let mut inner = self.lock_inner();
        if next <= inner.acked || next > inner.len {
            return;
        }
        inner.acked = next;
        inner.pending = inner.pending.saturating_sub(1);
        self.settle(&mut inner);
    }

    /// Truncates a fully delivered file; compacts a large acknowledged prefix.
    fn settle(&self, inner: &mut Inner) {
        let result = if inner.acked >= inner.len {
            inner.file.set_len(0).map(|()| {
                inner.len = 0;
                inner.acked = 0;
                inner.pending = 0;
            })
        } else if inner.acked >= COMPACT_AT && inner.acked >= inner.len / 2 {
            self.compact(inner).map_err(std::io::Error::other)
        } else {
            Ok(())
        };
        if let Err(e) = result {
            tracing::error!(path = %self.path.display(), error = %e, "settling the report spool");
        }
        if inner.warned && inner.len.saturating_mul(5) < self.max_bytes.saturating_mul(4) {
            inner.warned = false;
        }
        self.publish(inner);
    }

    /// Rewrites the file without its acknowledged prefix (a new file renamed over the old one,
    /// so a crash leaves either the old or the new file, both complete).
    fn compact(&self, inner: &mut Inner) -> Result<(), SpoolError> {
        let io = |source| SpoolError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("compact");
        let mut rest = vec![0; (inner.len - inner.acked) as usize];
        inner
            .file
            .read_exact_at(&mut rest, inner.acked)
            .map_err(io)?;
        let mut out = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        out.set_len(0).map_err(io)?;
        out.write_all(&rest).map_err(io)?;
        lock(&out).map_err(|_| SpoolError::Locked(tmp.clone()))?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        inner.file = out;
        inner.len = rest.len() as u64;
        inner.acked = 0;
        Ok(())
    }

    /// Entries not acknowledged yet.
    pub fn pending(&self) -> u64 {
        self.lock_inner().pending
    }

    /// Bytes of the spool file.
    pub fn bytes(&self) -> u64 {
        self.lock_inner().len
    }

    /// The bound.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}

/// An exclusive advisory lock held as long as the file is open.
fn lock(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The line starting at `from` (without its newline) and where the next line starts.
fn read_line(file: &File, from: u64, end: u64) -> std::io::Result<(Vec<u8>, u64)> {
    let mut line = Vec::new();
    let mut pos = from;
    let mut chunk = vec![0; 64 * 1024];
    while pos < end {
        let want = chunk.len().min((end - pos) as usize);
        let n = file.read_at(&mut chunk[..want], pos)?;
        if n == 0 {
            break;
        }
        if let Some(i) = chunk[..n].iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&chunk[..i]);
            return Ok((line, pos + i as u64 + 1));
        }
        line.extend_from_slice(&chunk[..n]);
        pos += n as u64;
    }
    // Only whole lines are counted in `len`; treat a missing newline as the end.
    Ok((line, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activation(i: u32) -> Entry {
        Entry::Activation {
            id: format!("{i:032x}"),
            json: format!("{{\"activationId\":\"{i:032x}\",\"note\":\"a\\nb\"}}"),
        }
    }

    #[test]
    fn entries_replay_in_order_and_are_removed_after_ack() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20, SpoolGauges::default()).unwrap();
        for i in 0..3 {
            spool.append(&activation(i)).unwrap();
        }
        for i in 0..3 {
            let (entry, next) = spool.peek().unwrap();
            assert_eq!(entry, activation(i));
            // Not acknowledged: the same entry again.
            assert_eq!(spool.peek().unwrap().0, activation(i));
            spool.ack(next);
        }
        assert!(spool.peek().is_none());
        assert_eq!(spool.bytes(), 0);
        assert_eq!(spool.pending(), 0);
    }

    #[test]
    fn a_torn_last_write_is_cut_off_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let spool = Spool::open(dir.path(), 1 << 20, SpoolGauges::default()).unwrap();
            spool.append(&activation(1)).unwrap();
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .unwrap();
        f.write_all(b"{\"activation\":{\"id\":\"tor").unwrap();
        drop(f);
        let spool = Spool::open(dir.path(), 1 << 20, SpoolGauges::default()).unwrap();
        assert_eq!(spool.pending(), 1);
        spool.append(&activation(2)).unwrap();
        let (first, next) = spool.peek().unwrap();
        assert_eq!(first, activation(1));
        spool.ack(next);
        assert_eq!(spool.peek().unwrap().0, activation(2));
    }

    #[test]
    fn an_entry_crossing_the_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 300, SpoolGauges::default()).unwrap();
        let mut stored = 0;
        loop {
            match spool.append(&activation(stored)) {
                Ok(()) => stored += 1,
                Err(SpoolError::Full { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(stored >= 1);
        assert!(spool.bytes() <= 300);
        assert_eq!(spool.pending(), u64::from(stored));
    }

    #[test]
    fn a_second_spool_on_the_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Spool::open(dir.path(), 1 << 20, SpoolGauges::default()).unwrap();
        assert!(matches!(
            Spool::open(dir.path(), 1 << 20, SpoolGauges::default()),
            Err(SpoolError::Locked(_))
        ));
    }
}
