//! The no-op ext_proc server: scenario b's baseline for the router.
//!
//! It does what the router does at the protocol level and nothing else: the same processing modes
//! (request and response headers sent, bodies and trailers not), one bidirectional stream per
//! request, `CONTINUE` on both phases, and the destination as dynamic metadata
//! `whisk.router.dst` (a fixed address: the bench's upstream) so Envoy's `ORIGINAL_DST` cluster
//! routes exactly as it does behind the router. The difference between b and c is therefore the
//! router's own work: authentication, throttling, routing, the response phase and its headers.
//!
//! Runs as its own process (`whisk-bench noop-extproc --dst ADDR`) on a multi-thread Tokio
//! runtime like the router's, announcing `WHISK_BENCH_EXTPROC <ip:port>`.

use std::net::SocketAddr;
use std::pin::Pin;

use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyResponse, HeadersResponse, ProcessingRequest, ProcessingResponse, TrailersResponse,
    external_processor_server::{ExternalProcessor, ExternalProcessorServer},
    processing_request, processing_response,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

pub const MARKER: &str = "WHISK_BENCH_EXTPROC";

#[derive(Debug, thiserror::Error)]
pub enum NoopError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("grpc server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

struct Noop {
    metadata: Struct,
}

type Out = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalProcessor for Noop {
    type ProcessStream = Out;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Out>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(2);
        let metadata = self.metadata.clone();
        tokio::spawn(async move {
            use processing_request::Request as R;
            use processing_response::Response as P;
            while let Ok(Some(msg)) = inbound.message().await {
                let (response, dynamic_metadata) = match msg.request {
                    Some(R::RequestHeaders(_)) => (
                        P::RequestHeaders(HeadersResponse::default()),
                        Some(metadata.clone()),
                    ),
                    Some(R::ResponseHeaders(_)) => {
                        (P::ResponseHeaders(HeadersResponse::default()), None)
                    }
                    Some(R::RequestBody(_)) => (P::RequestBody(BodyResponse::default()), None),
                    Some(R::ResponseBody(_)) => (P::ResponseBody(BodyResponse::default()), None),
                    Some(R::RequestTrailers(_)) => {
                        (P::RequestTrailers(TrailersResponse::default()), None)
                    }
                    Some(R::ResponseTrailers(_)) => {
                        (P::ResponseTrailers(TrailersResponse::default()), None)
                    }
                    None => continue,
                };
                let reply = ProcessingResponse {
                    response: Some(response),
                    dynamic_metadata,
                    ..Default::default()
                };
                if tx.send(Ok(reply)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// `{"whisk.router": {"dst": "<dst>"}}`, as the router sets it.
fn dst_metadata(dst: SocketAddr) -> Struct {
    let inner = Struct {
        fields: [(
            "dst".to_owned(),
            Value {
                kind: Some(Kind::StringValue(dst.to_string())),
            },
        )]
        .into(),
    };
    Struct {
        fields: [(
            "whisk.router".to_owned(),
            Value {
                kind: Some(Kind::StructValue(inner)),
            },
        )]
        .into(),
    }
}

/// Serves forever on `listen`, announcing the bound address.
pub fn run(listen: SocketAddr, dst: SocketAddr) -> Result<(), NoopError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        println!("{MARKER} {}", listener.local_addr()?);
        let svc = ExternalProcessorServer::new(Noop {
            metadata: dst_metadata(dst),
        });
        // `Server::tcp_nodelay` only applies to listeners tonic binds itself; on accepted
        // sockets from our own listener, Nagle's algorithm has to be turned off here.
        let incoming = TcpListenerStream::new(listener).map(|s| {
            let s = s?;
            s.set_nodelay(true)?;
            Ok::<_, std::io::Error>(s)
        });
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await?;
        Ok(())
    })
}
