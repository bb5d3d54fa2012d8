//! The gRPC server (Contract 1): a thin tonic adapter over [`Plane`]. No logic lives here beyond
//! translating requests and errors, and admitting callers: the router calls (`Subscribe`,
//! `ColdStart`, `Acknowledge`, `ReportTraffic`) need the router token ([`Credentials::router`]);
//! a container's reports carry its own bearer token, read from the metadata here.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use tracing::Instrument;
use whisk_proto::controlplane::v1 as pb;
use whisk_proto::controlplane::v1::control_plane_server::ControlPlane;

use crate::coldstart;
use crate::convert::{cold_start_error_pb, deadline_from_unix_ms, endpoint_pb};
use crate::credentials::Credentials;
use crate::plane::{Plane, PlaneError};

/// The tonic service.
pub struct GrpcService {
    plane: Arc<Plane>,
    credentials: Credentials,
}

impl GrpcService {
    pub fn new(plane: Arc<Plane>, credentials: Credentials) -> Self {
        Self { plane, credentials }
    }
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<pb::TableUpdate, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ControlPlane for GrpcService {
    type SubscribeStream = UpdateStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        self.credentials.router(request.metadata())?;
        let router_id = request.into_inner().router_id;
        tracing::info!(router_id = %router_id, "router subscribed");
        let hub = self.plane.hub.clone();
        hub.acks.connected(&router_id);
        // Unregisters the router's acknowledgements when its stream ends.
        struct Connected(Arc<crate::push::PushHub>, String);
        impl Drop for Connected {
            fn drop(&mut self) {
                self.0.acks.disconnected(&self.1);
            }
        }
        let guard = Connected(hub.clone(), router_id);
        let stream = hub.subscribe().map(move |u| {
            let _ = &guard;
            Ok((*u).clone())
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn acknowledge(
        &self,
        request: Request<pb::AcknowledgeRequest>,
    ) -> Result<Response<pb::AcknowledgeResponse>, Status> {
        self.credentials.router(request.metadata())?;
        let req = request.into_inner();
        self.plane.hub.acks.ack(&req.router_id, req.revision);
        Ok(Response::new(pb::AcknowledgeResponse {}))
    }

    async fn cold_start(
        &self,
        request: Request<pb::ColdStartRequest>,
    ) -> Result<Response<pb::ColdStartResponse>, Status> {
        self.credentials.router(request.metadata())?;
        let traceparent = request
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let req = request.into_inner();
        let deadline = deadline_from_unix_ms(req.deadline_unix_ms);
        // gRPC server span (semantic conventions), continuing the router's trace if it sent one.
        let span = tracing::info_span!(
            "ColdStart",
            otel.name = "whisk.controlplane.v1.ControlPlane/ColdStart",
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = "whisk.controlplane.v1.ControlPlane",
            rpc.method = "ColdStart",
            faas.name = %req.action_fqn,
        );
        whisk_telemetry::set_parent_from_traceparent(&span, traceparent.as_deref(), None);
        let outcome = match coldstart::cold_start(
            &self.plane,
            &req.action_fqn,
            &req.invoking_namespace,
            deadline,
        )
        .instrument(span)
        .await
        {
            Ok(ep) => pb::cold_start_response::Outcome::Endpoint(endpoint_pb(&ep)),
            Err(e) => pb::cold_start_response::Outcome::Error(cold_start_error_pb(e)),
        };
        Ok(Response::new(pb::ColdStartResponse {
            outcome: Some(outcome),
        }))
    }

    async fn report_traffic(
        &self,
        request: Request<pb::ReportTrafficRequest>,
    ) -> Result<Response<pb::ReportTrafficResponse>, Status> {
        self.credentials.router(request.metadata())?;
        self.plane.report_traffic(&request.get_ref().container_id);
        Ok(Response::new(pb::ReportTrafficResponse {}))
    }

    async fn report_usage(
        &self,
        request: Request<pb::UsageReport>,
    ) -> Result<Response<pb::UsageShares>, Status> {
        self.credentials.router(request.metadata())?;
        Ok(Response::new(self.plane.report_usage(request.into_inner())))
    }

    async fn report_activation(
        &self,
        request: Request<pb::ReportActivationRequest>,
    ) -> Result<Response<pb::ReportActivationResponse>, Status> {
        let token = bearer_token(&request);
        let from_router = self.credentials.router(request.metadata()).is_ok();
        let req = request.into_inner();
        // A record of no container (sequences, cache hits, failures the router answered) can
        // only come from a router; a container's record only with that container's token.
        if req.container_id.is_empty() && !from_router {
            return Err(Status::unauthenticated(
                "a record of no container must carry the router token",
            ));
        }
        self.plane
            .record_activation(&req.container_id, token.as_deref(), &req.activation_json)
            .map_err(status_of)?;
        Ok(Response::new(pb::ReportActivationResponse {}))
    }

    async fn report_unusable(
        &self,
        request: Request<pb::ReportUnusableRequest>,
    ) -> Result<Response<pb::ReportUnusableResponse>, Status> {
        // A router may report any container (connection failures); a proxy only its own.
        let from_router = self.credentials.router(request.metadata()).is_ok();
        let token = bearer_token(&request);
        if !from_router && token.is_none() {
            return Err(Status::unauthenticated(
                "a report must carry the router token or the container's token",
            ));
        }
        let req = request.into_inner();
        let token = if from_router { None } else { token };
        self.plane
            .report_unusable(&req.container_id, token.as_deref(), &req.reason)
            .map_err(status_of)?;
        Ok(Response::new(pb::ReportUnusableResponse {}))
    }
}

/// The token of the call's `authorization: Bearer <token>` metadata, if any.
fn bearer_token<T>(request: &Request<T>) -> Option<String> {
    let value = request.metadata().get("authorization")?.to_str().ok()?;
    whisk_vocab::token::bearer(value).map(str::to_string)
}

/// A plane error as the caller sees it.
fn status_of(e: PlaneError) -> Status {
    match e {
        PlaneError::BadRecord(m) => Status::invalid_argument(m),
        PlaneError::Unauthenticated(m) => Status::unauthenticated(m),
        PlaneError::PermissionDenied(m) => Status::permission_denied(m),
        other => Status::internal(other.to_string()),
    }
}
