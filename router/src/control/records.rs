//! Delivers the activation records the router makes itself (sequences, cache hits, activations
//! it refused) to the control plane, retrying until each is acknowledged.
//!
//! Records go through a bounded in-memory queue ([`CAPACITY`]) so the request path never waits
//! on the control plane. A dispatcher hands each record to a delivery task (at most
//! [`IN_FLIGHT`] at once) that retries with exponential backoff (100 ms doubling to 5 s) while
//! the control plane is unreachable or failing, so a control-plane outage or restart loses
//! nothing the queue can hold; a second copy after a lost acknowledgement is harmless (the
//! store ignores a repeated id). A record the control plane refuses (bad record, wrong token)
//! can never succeed: it is logged and dropped. When the queue is full a record is dropped with
//! an error log and `whisk_router_records_dropped_total`; `whisk_router_records_pending` shows
//! how many wait. Records are not spooled to disk: a router killed during an outage loses its
//! queue.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Semaphore, mpsc};
use whisk_proto::controlplane::v1 as pb;

use super::credential::Client;

/// Records the queue holds before it drops.
pub const CAPACITY: usize = 10_000;
/// Deliveries in flight at once.
const IN_FLIGHT: usize = 16;
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// One call may take this long (a stopped control plane must not hold a delivery forever).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the queue reports on the router's metrics.
#[derive(Debug, Clone, Default)]
pub struct RecordMetrics {
    /// Records queued or being delivered.
    pub pending: Gauge,
    /// Records dropped because the queue was full.
    pub dropped: Counter,
}

/// The sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct RecordQueue {
    tx: mpsc::Sender<(String, String)>,
    metrics: RecordMetrics,
}

impl RecordQueue {
    /// Starts the dispatcher (needs a Tokio runtime).
    pub fn start(client: Client, capacity: usize, metrics: RecordMetrics) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(dispatch(rx, client, metrics.clone()));
        RecordQueue { tx, metrics }
    }

    /// Queues one stored record (`activation_id` for the logs).
    pub fn push(&self, activation_id: String, json: String) {
        // Counted before it can be delivered (and uncounted), so the gauge never dips below 0.
        self.metrics.pending.inc();
        if let Err(e) = self.tx.try_send((activation_id, json)) {
            self.metrics.pending.dec();
            let (id, _) = e.into_inner();
            let n = self.metrics.dropped.inc() + 1;
            tracing::error!(
                activation_id = %id,
                dropped_total = n,
                "router record queue full: activation record dropped"
            );
        }
    }
}

async fn dispatch(
    mut rx: mpsc::Receiver<(String, String)>,
    client: Client,
    metrics: RecordMetrics,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some((id, json)) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let client = client.clone();
        let pending = metrics.pending.clone();
        tokio::spawn(async move {
            deliver(client, &id, json).await;
            pending.dec();
            drop(slot);
        });
    }
}

/// Sends one record until it is acknowledged or refused for good.
async fn deliver(mut client: Client, id: &str, json: String) {
    let mut backoff = BACKOFF_START;
    loop {
        let req = pb::ReportActivationRequest {
            container_id: String::new(),
            activation_json: json.clone(),
        };
        let status = match tokio::time::timeout(CALL_TIMEOUT, client.report_activation(req)).await {
            Ok(Ok(_)) => return,
            Ok(Err(status)) => status,
            Err(_) => tonic::Status::deadline_exceeded("report timed out"),
        };
        if matches!(
            status.code(),
            tonic::Code::InvalidArgument
                | tonic::Code::Unauthenticated
                | tonic::Code::PermissionDenied
        ) {
            tracing::error!(activation_id = %id, %status, "control plane refused a router record; not retrying");
            return;
        }
        tracing::warn!(activation_id = %id, %status, "report activation failed; will retry");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::credential::{Bearer, ControlPlaneToken};
    use whisk_proto::controlplane::v1::control_plane_client::ControlPlaneClient;

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        // Nothing listens on port 9 of loopback: deliveries keep retrying.
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        let client =
            ControlPlaneClient::with_interceptor(channel, Bearer(ControlPlaneToken::none()));
        let metrics = RecordMetrics::default();
        let queue = RecordQueue::start(client, 1, metrics.clone());
        for i in 0..40 {
            queue.push(format!("{i:032x}"), "{}".into());
        }
        // At most IN_FLIGHT deliveries, one waiting for a slot and one queued.
        let dropped = metrics.dropped.get();
        assert!(dropped >= 40 - (IN_FLIGHT as u64 + 2), "dropped {dropped}");
        assert_eq!(metrics.pending.get() as u64 + dropped, 40);
    }
}
