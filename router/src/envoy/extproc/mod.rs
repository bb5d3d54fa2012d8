//! `envoy.service.ext_proc.v3.ExternalProcessor`: one bidirectional stream per invoke.
//!
//! A thin adapter: it reads Envoy's messages into the domain's terms, lets
//! [`Router`](crate::domain::pipeline::Router) decide, and writes the decision back. Per stream:
//! - [`stream`]: the stream's state machine ([`stream::Phase`]) and its message loop;
//! - [`request`]: request headers → `Router::decide` (holding Envoy while a cold start runs) →
//!   the route, an immediate answer, or a request the router runs itself; the request body, when
//!   the router needs it;
//! - [`response`]: response headers → `Router::on_response` → pass on, store in the cache, or
//!   replay a refused request elsewhere;
//! - [`web`]: web actions (`/api/v1/web/...`), which the router runs and answers itself;
//! - [`answers`]: every `ProcessingResponse` the router sends.
//!
//! The admission lives in the stream's task, so an upstream reset or a router error end the task
//! and release its slots; a forwarded request whose client went away keeps them until its
//! activation ends in the container (`upstream::lifetime`).

mod answers;
mod request;
mod response;
mod stream;
mod web;

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::ext_proc::v3::{
    ProcessingRequest, ProcessingResponse, external_processor_server::ExternalProcessor,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

pub use self::answers::{ACTIVATION_ID_HEADER, METADATA_NAMESPACE};
use crate::domain::pipeline::Router;
use crate::metrics::RouterMetrics;
use crate::upstream::client::ProxyClient;

pub struct ExtProc {
    router: Arc<Router>,
    client: ProxyClient,
    metrics: RouterMetrics,
}

impl ExtProc {
    pub fn new(router: Arc<Router>, metrics: RouterMetrics) -> Self {
        Self {
            router,
            client: ProxyClient::default(),
            metrics,
        }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalProcessor for ExtProc {
    type ProcessStream = ResponseStream;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(2);
        let stream = stream::InvokeStream::new(
            self.router.clone(),
            self.client.clone(),
            self.metrics.clone(),
            tx,
        );
        tokio::spawn(stream.run(inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
