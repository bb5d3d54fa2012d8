//! Activation logs: stdout/stderr lines of the runtime in OpenWhisk's format
//! (`"<ISO-8601 UTC with nanos>Z stdout: <line>"`), bounded by the action's log limit with
//! OpenWhisk's truncation line, and split per activation by the sentinel the launcher prints on
//! both streams after each run (the sentinel itself is never part of the logs).
//!
//! Memory stays bounded whatever the action prints: lines past the limit are dropped (the pipes
//! keep being drained), and a single line is cut at [`MAX_LINE_BYTES`].

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

/// Printed by launchers on stdout and stderr after every activation.
pub const SENTINEL: &str = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";
/// Longest line kept; the rest of a longer line is discarded.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// OpenWhisk's truncation text.
pub fn truncation_message(limit: usize) -> String {
    format!("Logs were truncated because the total bytes size exceeds the limit of {limit} bytes.")
}

/// Formats one line as OpenWhisk does (`LogLine.toFormattedString`).
pub fn format_line(time: chrono::DateTime<chrono::Utc>, stream: Stream, line: &str) -> String {
    let ts = time.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string();
    format!("{ts:<30} {}: {}", stream.name(), line.trim())
}

/// Collects the lines of one activation up to a byte limit.
#[derive(Debug, Default)]
pub struct LogCollector {
    limit: usize,
    used: usize,
    truncated: bool,
    lines: Vec<String>,
}

impl LogCollector {
    /// A collector keeping at most `limit` bytes of line text.
    pub fn new(limit: usize) -> Self {
        LogCollector {
            limit,
            ..Default::default()
        }
    }

    /// Adds a line (dropped once the limit is reached).
    pub fn push(&mut self, stream: Stream, line: &str) {
        self.push_at(chrono::Utc::now(), stream, line);
    }

    /// Adds a line stamped with `time`.
    pub fn push_at(&mut self, time: chrono::DateTime<chrono::Utc>, stream: Stream, line: &str) {
        if self.truncated {
            return;
        }
        let size = line.len();
        if self.used + size > self.limit {
            self.truncated = true;
            return;
        }
        self.used += size;
        self.lines.push(format_line(time, stream, line));
    }

    /// The lines, with OpenWhisk's truncation line when some were dropped.
    pub fn finish(self) -> Vec<String> {
        let mut lines = self.lines;
        if self.truncated {
            lines.push(format_line(
                chrono::Utc::now(),
                Stream::Stderr,
                &truncation_message(self.limit),
            ));
        }
        lines
    }
}

#[derive(Debug, Default)]
struct SinkState {
    collector: LogCollector,
    /// Per stream: the sentinel was seen (or the stream ended) since `begin`.
    done: [bool; 2],
    closed: [bool; 2],
}

/// Where the reader tasks of one runtime process put its output, and where a run takes the logs
/// of its activation from.
#[derive(Debug)]
pub struct LogSink {
    state: Mutex<SinkState>,
    changes: watch::Sender<u64>,
}

impl Default for LogSink {
    fn default() -> Self {
        Self::new()
    }
}

impl LogSink {
    pub fn new() -> Self {
        LogSink {
            state: Mutex::new(SinkState::default()),
            changes: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Starts a new activation with a fresh limit (output since the last one is discarded).
    pub fn begin(&self, limit: usize) {
        let mut s = self.lock();
        s.collector = LogCollector::new(limit);
        s.done = s.closed;
    }

    /// Starts the next activation's collection keeping what was collected so far: what a
    /// successful init printed belongs to the first activation's logs, as in OpenWhisk.
    pub fn resume(&self) {
        let mut s = self.lock();
        s.done = s.closed;
    }

    /// One line of output.
    pub fn line(&self, stream: Stream, line: &str) {
        let mut s = self.lock();
        if line.trim_end() == SENTINEL {
            s.done[stream.index()] = true;
            drop(s);
            self.bump();
        } else {
            s.collector.push(stream, line);
        }
    }

    /// The stream ended (the process exited).
    pub fn closed(&self, stream: Stream) {
        let mut s = self.lock();
        s.closed[stream.index()] = true;
        s.done[stream.index()] = true;
        drop(s);
        self.bump();
    }

    /// Waits (at most `grace`) for the end of the activation's output on both streams and takes
    /// its logs.
    pub async fn finish(&self, grace: Duration) -> Vec<String> {
        let mut rx = self.changes.subscribe();
        let wait = async {
            loop {
                if self.lock().done.iter().all(|d| *d) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(grace, wait).await;
        let mut s = self.lock();
        std::mem::take(&mut s.collector).finish()
    }
}

/// Reads `reader` to its end, handing every line (cut at [`MAX_LINE_BYTES`], lossily decoded)
/// to `sink`, then marks the stream closed.
pub async fn pump<R: AsyncRead + Unpin>(mut reader: R, stream: Stream, sink: &LogSink) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut line: Vec<u8> = Vec::new();
    let mut overflow = false;
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                sink.line(stream, &String::from_utf8_lossy(&line));
                line.clear();
                overflow = false;
            } else if line.len() < MAX_LINE_BYTES {
                line.push(b);
            } else if !overflow {
                overflow = true;
            }
        }
    }
    if !line.is_empty() {
        sink.line(stream, &String::from_utf8_lossy(&line));
    }
    sink.closed(stream);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn format_matches_openwhisk() {
        let t = chrono::Utc
            .timestamp_opt(1_700_000_000, 123_456_789)
            .single()
            .unwrap();
        assert_eq!(
            format_line(t, Stream::Stdout, "hello "),
            "2023-11-14T22:13:20.123456789Z stdout: hello"
        );
    }

    #[test]
    fn truncates_at_the_limit() {
        let mut c = LogCollector::new(10);
        c.push(Stream::Stdout, "12345");
        c.push(Stream::Stderr, "6789");
        c.push(Stream::Stdout, "too long");
        c.push(Stream::Stdout, "1");
        let lines = c.finish();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with("Z stdout: 12345"));
        assert!(lines[1].ends_with("Z stderr: 6789"));
        assert!(lines[2].ends_with(
            "Z stderr: Logs were truncated because the total bytes size exceeds the limit of 10 bytes."
        ));
    }

    #[tokio::test]
    async fn sentinel_ends_an_activation_and_is_not_logged() {
        let sink = LogSink::new();
        sink.begin(1000);
        let out: &[u8] = b"a\nXXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n";
        let err: &[u8] = b"b\nXXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n";
        pump(out, Stream::Stdout, &sink).await;
        pump(err, Stream::Stderr, &sink).await;
        let logs = sink.finish(Duration::from_secs(5)).await;
        assert_eq!(logs.len(), 2);
        assert!(logs.iter().all(|l| !l.contains(SENTINEL)));
    }

    #[tokio::test]
    async fn long_lines_are_cut() {
        let sink = LogSink::new();
        sink.begin(usize::MAX);
        let data = vec![b'x'; MAX_LINE_BYTES * 3];
        pump(&data[..], Stream::Stdout, &sink).await;
        pump(&b""[..], Stream::Stderr, &sink).await;
        let logs = sink.finish(Duration::from_secs(5)).await;
        assert_eq!(logs.len(), 1);
        assert!(logs[0].len() < MAX_LINE_BYTES + 64);
    }
}
