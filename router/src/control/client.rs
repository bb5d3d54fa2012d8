//! The domain's [`ControlPlane`] over gRPC: `ColdStart`, and fire-and-forget reports.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use whisk_proto::controlplane::v1::{
    self as pb, cold_start_error::Code, cold_start_response::Outcome,
    control_plane_client::ControlPlaneClient,
};

use whisk_vocab::ActivationRecord;

use super::convert;
use super::credential::{Bearer, Client, ControlPlaneToken};
use super::records::{self, RecordMetrics, RecordQueue};
use crate::config::MAX_SNAPSHOT_BYTES;
use crate::domain::endpoints::EndpointSpec;
use crate::domain::ports::{ColdStartFailure, ControlPlane, InitFailure};

pub struct GrpcControlPlane {
    client: Client,
    router_id: String,
    /// The router's own records, retried until acknowledged.
    records: RecordQueue,
}

impl GrpcControlPlane {
    /// A lazily connected client: the router starts even while the control plane is down. Every
    /// call presents `token`. Starts the record queue (needs a Tokio runtime).
    pub fn new(
        url: &str,
        router_id: String,
        token: Arc<ControlPlaneToken>,
        record_metrics: RecordMetrics,
    ) -> Result<Self, tonic::transport::Error> {
        let channel = tonic::transport::Endpoint::from_shared(url.to_owned())?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect_lazy();
        // Snapshots of large installations (1M endpoints) are far beyond tonic's 4 MiB default.
        let client = ControlPlaneClient::with_interceptor(channel, Bearer(token))
            .max_decoding_message_size(MAX_SNAPSHOT_BYTES);
        Ok(Self {
            records: RecordQueue::start(client.clone(), records::CAPACITY, record_metrics),
            client,
            router_id,
        })
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }
}

impl ControlPlane for GrpcControlPlane {
    fn cold_start(
        &self,
        fqn: Arc<str>,
        namespace: Arc<str>,
        deadline_ms: u64,
    ) -> BoxFuture<'static, Result<EndpointSpec, ColdStartFailure>> {
        let mut client = self.client.clone();
        let req = pb::ColdStartRequest {
            action_fqn: fqn.to_string(),
            deadline_unix_ms: deadline_ms,
            router_id: self.router_id.clone(),
            invoking_namespace: namespace.to_string(),
        };
        Box::pin(async move {
            let unavailable = |ms: u32| ColdStartFailure::Unavailable {
                retry_after: Duration::from_millis(ms.max(1000) as u64),
            };
            let resp = match client.cold_start(req).await {
                Ok(r) => r.into_inner(),
                Err(status) => {
                    tracing::warn!(action = %fqn, %status, "cold start call failed");
                    return Err(unavailable(1000));
                }
            };
            match resp.outcome {
                Some(Outcome::Endpoint(e)) => Ok(convert::endpoint(e)),
                Some(Outcome::Error(e)) => {
                    tracing::info!(action = %fqn, code = ?e.code(), message = %e.message, "cold start refused");
                    Err(match e.code() {
                        Code::UnknownAction => ColdStartFailure::UnknownAction,
                        Code::InitFailed => ColdStartFailure::InitFailed(InitFailure {
                            message: e.message,
                            logs: e.logs,
                            duration_ms: e.duration_ms,
                        }),
                        Code::KindDeprecated => ColdStartFailure::KindDeprecated(e.message),
                        _ => unavailable(e.retry_after_ms),
                    })
                }
                None => Err(unavailable(1000)),
            }
        })
    }

    fn report_traffic(&self, container_id: Arc<str>) {
        let mut client = self.client.clone();
        tokio::spawn(async move {
            let req = pb::ReportTrafficRequest {
                container_id: container_id.to_string(),
            };
            if let Err(status) = client.report_traffic(req).await {
                tracing::warn!(container = %container_id, %status, "report traffic failed");
            }
        });
    }

    fn report_unusable(&self, container_id: Arc<str>, reason: String) {
        let mut client = self.client.clone();
        tokio::spawn(async move {
            let req = pb::ReportUnusableRequest {
                container_id: container_id.to_string(),
                reason,
            };
            if let Err(status) = client.report_unusable(req).await {
                tracing::warn!(container = %container_id, %status, "report unusable failed");
            }
        });
    }

    fn report_activation(&self, record: ActivationRecord) {
        self.records.push(
            record.activation_id.clone(),
            record.to_stored_json().to_string(),
        );
    }
}
