//! Hands finished activation records (`ReportActivation`) and "this container cannot serve any
//! more" (`ReportUnusable`) to the control plane.
//!
//! Reports go through a bounded buffer ([`BUFFER`] entries) drained by one background task, so
//! an activation never waits on the control plane. While the control plane is unreachable the
//! task retries the same report with exponential backoff (100 ms doubling to 5 s). When the buffer
//! is full the report is **dropped**: a warning names the activation id (never the record, which
//! may hold results) and [`Reporter::dropped`] counts it. Without a control plane URL records are
//! only logged (id and status).
//!
//! Every report carries the container's token (`authorization: Bearer <token>` metadata): the
//! control plane stores only what the container it started reports. A report the control plane
//! refuses (bad record, wrong token, not this container's action) is not retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use whisk_proto::controlplane::v1::{
    ReportActivationRequest, ReportUnusableRequest, control_plane_client::ControlPlaneClient,
};
use whisk_vocab::ContainerToken;

/// Capacity of the report buffer.
pub const BUFFER: usize = 1024;
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum Report {
    Activation { id: String, json: String },
    Unusable { reason: String },
}

/// Cheap to clone; every clone feeds the same background task.
#[derive(Debug, Clone)]
pub struct Reporter {
    tx: mpsc::Sender<Report>,
    container_id: Arc<str>,
    dropped: Arc<AtomicU64>,
}

impl Reporter {
    /// Starts the background task. `controlplane` = gRPC URL, or `None` to only log; `token`
    /// authenticates the reports.
    pub fn start(
        controlplane: Option<String>,
        container_id: String,
        token: ContainerToken,
    ) -> Self {
        Self::with_capacity(controlplane, container_id, token, BUFFER)
    }

    /// Same with an explicit buffer size.
    pub fn with_capacity(
        controlplane: Option<String>,
        container_id: String,
        token: ContainerToken,
        capacity: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let container_id: Arc<str> = container_id.into();
        tokio::spawn(drain(rx, controlplane, container_id.clone(), token));
        Reporter {
            tx,
            container_id,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues one stored activation record (JSON with `response.statusCode`).
    pub fn activation(&self, activation_id: &str, record_json: String) {
        let report = Report::Activation {
            id: activation_id.to_string(),
            json: record_json,
        };
        if self.tx.try_send(report).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                activation_id,
                dropped_total = n,
                "report buffer full: activation record dropped"
            );
        }
    }

    /// Queues "this container cannot serve any more".
    pub fn unusable(&self, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::error!(container_id = %self.container_id, %reason, "container unusable");
        if self.tx.try_send(Report::Unusable { reason }).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("report buffer full: unusable report dropped");
        }
    }

    /// Reports dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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

async fn drain(
    mut rx: mpsc::Receiver<Report>,
    url: Option<String>,
    container_id: Arc<str>,
    token: ContainerToken,
) {
    let Some(url) = url else {
        while let Some(report) = rx.recv().await {
            match report {
                Report::Activation { id, .. } => {
                    tracing::info!(activation_id = %id, "activation finished (no control plane)")
                }
                Report::Unusable { reason } => {
                    tracing::info!(%reason, "unusable (no control plane)")
                }
            }
        }
        return;
    };
    let mut client: Option<ControlPlaneClient<tonic::transport::Channel>> = None;
    while let Some(report) = rx.recv().await {
        let mut backoff = BACKOFF_START;
        loop {
            if client.is_none() {
                match ControlPlaneClient::connect(url.clone()).await {
                    Ok(c) => client = Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "control plane unreachable; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
            let Some(c) = client.as_mut() else { continue };
            let result = match &report {
                Report::Activation { json, .. } => c
                    .report_activation(authenticated(
                        ReportActivationRequest {
                            container_id: container_id.to_string(),
                            activation_json: json.clone(),
                        },
                        &token,
                    ))
                    .await
                    .map(|_| ()),
                Report::Unusable { reason } => c
                    .report_unusable(authenticated(
                        ReportUnusableRequest {
                            container_id: container_id.to_string(),
                            reason: reason.clone(),
                        },
                        &token,
                    ))
                    .await
                    .map(|_| ()),
            };
            match result {
                Ok(()) => break,
                Err(status)
                    if matches!(
                        status.code(),
                        tonic::Code::InvalidArgument
                            | tonic::Code::Unauthenticated
                            | tonic::Code::PermissionDenied
                    ) =>
                {
                    tracing::warn!(%status, "control plane refused a report; not retrying");
                    break;
                }
                Err(status) => {
                    tracing::warn!(%status, "report failed; retrying");
                    client = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_buffer_drops_and_counts() {
        // Nothing listens on port 9 of loopback: the drain task keeps retrying its first report.
        let reporter = Reporter::with_capacity(
            Some("http://127.0.0.1:9".into()),
            "c".into(),
            ContainerToken::generate(),
            1,
        );
        for i in 0..5 {
            reporter.activation(&format!("{i:032x}"), "{}".into());
        }
        // At most one report is being retried and one is buffered.
        assert!(reporter.dropped() >= 3, "dropped {}", reporter.dropped());
    }
}
