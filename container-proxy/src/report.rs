//! Hands finished activation records (`ReportActivation`) and "this container cannot serve any
//! more" (`ReportUnusable`) to the control plane, and never drops a record.
//!
//! Reports go through a bounded in-memory queue drained by one background task, so an
//! activation never waits on the control plane (the fast path). When the queue is full, or a
//! report fails because the control plane is unreachable, reports go to the on-disk spool
//! ([`crate::spool`]) instead; the task replays the spool in order, with exponential backoff
//! (100 ms doubling to 5 s), until the control plane acknowledges each entry, and while the
//! control plane is down it moves whatever reaches the queue into the spool too, so a proxy
//! killed during an outage leaves its records on disk for its successor or the control plane's
//! sweep. Duplicates after a crash are harmless: the store ignores a second copy of an id.
//!
//! At the spool's bound a record is **refused**: [`Reporter::activation`] returns `false` (the
//! proxy then answers that activation with 500 rather than a result nobody can look up), an
//! error names the activation id and the count, and the proxy stops taking invokes
//! ([`Reporter::accepting`]) until the spool has drained below 80 %. Without a control plane URL
//! records are only logged (id and status) and nothing is spooled.
//!
//! Every report carries the container's token (`authorization: Bearer <token>` metadata): the
//! control plane stores only what the container it started reports. A report the control plane
//! refuses (bad record, wrong token, not this container's action) can never succeed: it is
//! logged and dropped, not retried.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use whisk_proto::controlplane::v1::{
    ReportActivationRequest, ReportUnusableRequest, control_plane_client::ControlPlaneClient,
};
use whisk_vocab::ContainerToken;

use crate::spool::{Entry, Spool, SpoolError, SpoolGauges};

/// Default capacity of the in-memory report queue.
pub const BUFFER: usize = 1024;
/// Default bound of the spool.
pub const SPOOL_MAX_BYTES: u64 = 256 << 20;
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// One report call may take this long (a stopped control plane must not hang the task).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// At shutdown, how long moving the queue to the spool may take.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

/// How the reporter is set up.
#[derive(Debug, Clone)]
pub struct ReporterConfig {
    /// gRPC URL of the control plane, or `None` to only log.
    pub controlplane: Option<String>,
    pub container_id: String,
    /// Authenticates the reports.
    pub token: ContainerToken,
    /// In-memory queue size.
    pub capacity: usize,
    /// The spool directory; `None` = a private temporary directory (0700).
    pub spool_dir: Option<PathBuf>,
    pub spool_max_bytes: u64,
    pub gauges: SpoolGauges,
}

impl ReporterConfig {
    /// Defaults for everything but the control plane, container and token.
    pub fn new(controlplane: Option<String>, container_id: String, token: ContainerToken) -> Self {
        ReporterConfig {
            controlplane,
            container_id,
            token,
            capacity: BUFFER,
            spool_dir: None,
            spool_max_bytes: SPOOL_MAX_BYTES,
            gauges: SpoolGauges::default(),
        }
    }
}

/// Cheap to clone; every clone feeds the same background task.
#[derive(Debug, Clone)]
pub struct Reporter {
    tx: mpsc::Sender<Entry>,
    container_id: Arc<str>,
    spool: Option<Arc<Spool>>,
    /// The default temporary spool directory (removed at shutdown when empty).
    temp_dir: Option<Arc<PathBuf>>,
    /// Reports dropped (no spool) or refused (spool full).
    dropped: Arc<AtomicU64>,
    /// A record was refused at the bound; cleared once the spool drains below 80 %.
    full: Arc<AtomicBool>,
    /// Set at shutdown: the task moves the queue to the spool and stops; later reports go
    /// straight to the spool.
    stop: Arc<watch::Sender<bool>>,
    /// Set by the task once it has stopped.
    stopped: watch::Receiver<bool>,
}

impl Reporter {
    /// Opens the spool (with a control plane) and starts the background task.
    pub fn start(config: ReporterConfig) -> Result<Self, SpoolError> {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let container_id: Arc<str> = config.container_id.into();
        let (spool, temp_dir) = match &config.controlplane {
            None => (None, None),
            Some(_) => {
                let (dir, temp) = match config.spool_dir {
                    Some(dir) => (dir, None),
                    None => {
                        let dir = tempfile::Builder::new()
                            .prefix("whisk-spool-")
                            .tempdir()
                            .map_err(|source| SpoolError::Io {
                                path: std::env::temp_dir(),
                                source,
                            })?
                            .keep();
                        (dir.clone(), Some(Arc::new(dir)))
                    }
                };
                let spool = Spool::open(&dir, config.spool_max_bytes, config.gauges)?;
                (Some(Arc::new(spool)), temp)
            }
        };
        let spool_for_task = spool.clone();
        let sender = config.controlplane.map(|url| Sender {
            url,
            client: None,
            container_id: container_id.clone(),
            token: config.token,
        });
        let (stop, stop_rx) = watch::channel(false);
        let (stopped_tx, stopped) = watch::channel(false);
        tokio::spawn(async move {
            drain(rx, sender, spool_for_task, stop_rx).await;
            let _ = stopped_tx.send(true);
        });
        Ok(Reporter {
            stop: Arc::new(stop),
            stopped,
            tx,
            container_id,
            spool,
            temp_dir,
            dropped: Arc::new(AtomicU64::new(0)),
            full: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Queues one stored activation record (JSON with `response.statusCode`). `false` when it
    /// could not be kept (the spool is full): the caller must not answer as if it were recorded.
    pub fn activation(&self, activation_id: &str, record_json: String) -> bool {
        self.queue(Entry::Activation {
            id: activation_id.to_string(),
            json: record_json,
        })
    }

    /// Queues "this container cannot serve any more".
    pub fn unusable(&self, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::error!(container_id = %self.container_id, %reason, "container unusable");
        self.queue(Entry::Unusable { reason });
    }

    fn queue(&self, entry: Entry) -> bool {
        let entry = if *self.stop.borrow() && self.spool.is_some() {
            entry
        } else {
            match self.tx.try_send(entry) {
                Ok(()) => return true,
                Err(TrySendError::Full(e) | TrySendError::Closed(e)) => e,
            }
        };
        let id = match &entry {
            Entry::Activation { id, .. } => id.as_str(),
            Entry::Unusable { .. } => "",
        };
        let Some(spool) = &self.spool else {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                activation_id = id,
                dropped_total = n,
                "report queue full (no control plane): report dropped"
            );
            return false;
        };
        match spool.append(&entry) {
            Ok(()) => true,
            Err(e) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                self.full.store(true, Ordering::Relaxed);
                tracing::error!(
                    activation_id = id,
                    refused_total = n,
                    error = %e,
                    "activation record refused: the report spool cannot take it; this container \
                     takes no invokes until the control plane has acknowledged its records"
                );
                false
            }
        }
    }

    /// Whether the proxy may take invokes: not while the spool is at its bound (cleared once it
    /// has drained below 80 %).
    pub fn accepting(&self) -> bool {
        if !self.full.load(Ordering::Relaxed) {
            return true;
        }
        match &self.spool {
            Some(s) if s.bytes().saturating_mul(5) < s.max_bytes().saturating_mul(4) => {
                self.full.store(false, Ordering::Relaxed);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// Reports dropped (queue full without a control plane) or refused (spool full).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Entries in the spool not acknowledged yet.
    pub fn spooled(&self) -> u64 {
        self.spool.as_ref().map_or(0, |s| s.pending())
    }

    /// At shutdown: moves what is still queued to the spool (briefly bounded), then removes the
    /// default temporary spool directory if nothing is left in it (a directory given with
    /// `--spool-dir` is left, with whatever is undelivered, for a successor or the control
    /// plane's sweep).
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let mut stopped = self.stopped.clone();
        if tokio::time::timeout(SHUTDOWN_FLUSH, stopped.wait_for(|s| *s))
            .await
            .is_err()
        {
            tracing::warn!("the report task did not stop in time");
        }
        if let (Some(dir), Some(spool)) = (&self.temp_dir, &self.spool) {
            if spool.pending() == 0 {
                let _ = std::fs::remove_dir_all(dir.as_path());
            } else {
                tracing::warn!(
                    dir = %dir.display(),
                    pending = spool.pending(),
                    "unreported activation records left in the spool"
                );
            }
        }
    }
}

/// What became of one report call.
enum Outcome {
    /// Acknowledged, or refused for good (logged): either way done with it.
    Done,
    /// The control plane is unreachable or failed: try again later.
    Retry,
}

/// The gRPC side: one lazily (re)connected client.
struct Sender {
    url: String,
    client: Option<ControlPlaneClient<tonic::transport::Channel>>,
    container_id: Arc<str>,
    token: ContainerToken,
}

impl Sender {
    async fn send(&mut self, entry: &Entry) -> Outcome {
        match tokio::time::timeout(CALL_TIMEOUT, self.call(entry)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::warn!("report timed out; will retry");
                self.client = None;
                Outcome::Retry
            }
        }
    }

    async fn call(&mut self, entry: &Entry) -> Outcome {
        if self.client.is_none() {
            match ControlPlaneClient::connect(self.url.clone()).await {
                Ok(c) => self.client = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "control plane unreachable; will retry");
                    return Outcome::Retry;
                }
            }
        }
        let Some(c) = self.client.as_mut() else {
            return Outcome::Retry;
        };
        let result = match entry {
            Entry::Activation { json, .. } => c
                .report_activation(authenticated(
                    ReportActivationRequest {
                        container_id: self.container_id.to_string(),
                        activation_json: json.clone(),
                    },
                    &self.token,
                ))
                .await
                .map(|_| ()),
            Entry::Unusable { reason } => c
                .report_unusable(authenticated(
                    ReportUnusableRequest {
                        container_id: self.container_id.to_string(),
                        reason: reason.clone(),
                    },
                    &self.token,
                ))
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => Outcome::Done,
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::InvalidArgument
                        | tonic::Code::Unauthenticated
                        | tonic::Code::PermissionDenied
                ) =>
            {
                let id = match entry {
                    Entry::Activation { id, .. } => id.as_str(),
                    Entry::Unusable { .. } => "",
                };
                tracing::warn!(activation_id = id, %status, "control plane refused a report; not retrying");
                Outcome::Done
            }
            Err(status) => {
                tracing::warn!(%status, "report failed; will retry");
                self.client = None;
                Outcome::Retry
            }
        }
    }
}

/// A request with the container's token as bearer metadata.
fn authenticated<T>(message: T, token: &ContainerToken) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(v) = format!("Bearer {}", token.expose()).parse() {
        request.metadata_mut().insert("authorization", v);
    }
    request
}

/// Appends to the spool, or hands the entry back when the spool cannot take it (at the bound):
/// the task then holds it in memory and stops reading the queue, which fills up, so new records
/// are refused at the door ([`Reporter::activation`]) rather than dropped after an answer.
fn spool_or_hand_back(spool: &Spool, entry: Entry) -> Option<Entry> {
    match spool.append(&entry) {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(error = %e, "cannot spool a report; holding it until there is room");
            Some(entry)
        }
    }
}

/// Sends `entry`, giving up (to spool it) when the proxy stops.
async fn send_unless_stopping(
    sender: &mut Sender,
    entry: &Entry,
    stop: &mut watch::Receiver<bool>,
) -> Outcome {
    tokio::select! {
        outcome = sender.send(entry) => outcome,
        _ = stop.wait_for(|s| *s) => Outcome::Retry,
    }
}

/// At shutdown: everything still queued goes to the spool.
fn flush(rx: &mut mpsc::Receiver<Entry>, spool: &Spool, held: Option<Entry>) {
    rx.close();
    for entry in held
        .into_iter()
        .chain(std::iter::from_fn(|| rx.try_recv().ok()))
    {
        if let Err(e) = spool.append(&entry) {
            let id = match &entry {
                Entry::Activation { id, .. } => id.as_str(),
                Entry::Unusable { .. } => "",
            };
            tracing::error!(activation_id = id, error = %e, "stopping: a report could not be spooled and is lost");
        }
    }
}

async fn drain(
    mut rx: mpsc::Receiver<Entry>,
    sender: Option<Sender>,
    spool: Option<Arc<Spool>>,
    mut stop: watch::Receiver<bool>,
) {
    let (Some(mut sender), Some(spool)) = (sender, spool) else {
        loop {
            let report = tokio::select! {
                got = rx.recv() => match got {
                    Some(report) => report,
                    None => return,
                },
                _ = stop.wait_for(|s| *s) => return,
            };
            match report {
                Entry::Activation { id, .. } => {
                    tracing::info!(activation_id = %id, "activation finished (no control plane)")
                }
                Entry::Unusable { reason } => {
                    tracing::info!(%reason, "unusable (no control plane)")
                }
            }
        }
    };
    let mut backoff = BACKOFF_START;
    let mut open = true;
    let mut held: Option<Entry> = None;
    loop {
        // Stopping, or every reporter is gone (nothing can be queued any more).
        if *stop.borrow() || stop.has_changed().is_err() {
            flush(&mut rx, &spool, held.take());
            return;
        }
        if let Some(entry) = held.take() {
            held = spool_or_hand_back(&spool, entry);
            if let Some(entry) = held.take() {
                if spool.pending() > 0 {
                    held = Some(entry);
                } else {
                    // Larger than the whole spool: only a direct delivery can keep it.
                    if let Outcome::Retry =
                        send_unless_stopping(&mut sender, &entry, &mut stop).await
                    {
                        held = Some(entry);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                    continue;
                }
            }
        }
        // The spool first, in order.
        if let Some((entry, next)) = spool.peek() {
            match send_unless_stopping(&mut sender, &entry, &mut stop).await {
                Outcome::Done => {
                    spool.ack(next);
                    backoff = BACKOFF_START;
                }
                Outcome::Retry => {
                    // While waiting, move what reaches the queue to disk.
                    let wait = tokio::time::sleep(backoff);
                    tokio::pin!(wait);
                    loop {
                        tokio::select! {
                            _ = &mut wait => break,
                            _ = stop.wait_for(|s| *s) => break,
                            got = rx.recv(), if open && held.is_none() => match got {
                                Some(e) => held = spool_or_hand_back(&spool, e),
                                None => open = false,
                            },
                        }
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
            continue;
        }
        if held.is_some() {
            // The spool is full yet unreadable: keep the entry, take nothing new, try again.
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            continue;
        }
        // The fast path.
        if !open {
            return;
        }
        let entry = tokio::select! {
            got = rx.recv() => match got {
                Some(entry) => entry,
                None => return,
            },
            _ = stop.wait_for(|s| *s) => continue,
        };
        if let Outcome::Retry = send_unless_stopping(&mut sender, &entry, &mut stop).await {
            held = spool_or_hand_back(&spool, entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_spools_instead_of_dropping() {
        // Nothing listens on port 9 of loopback: every report goes to the spool.
        let dir = tempfile::tempdir().unwrap();
        let mut config = ReporterConfig::new(
            Some("http://127.0.0.1:9".into()),
            "c".into(),
            ContainerToken::generate(),
        );
        config.capacity = 1;
        config.spool_dir = Some(dir.path().to_path_buf());
        let reporter = Reporter::start(config).unwrap();
        for i in 0..50 {
            assert!(reporter.activation(&format!("{i:032x}"), "{}".into()));
        }
        assert_eq!(reporter.dropped(), 0);
        assert!(reporter.accepting());
    }
}
