//! Wires the router together and serves it over TCP (gateway flavour) and/or a Unix domain
//! socket (sidecar flavour, beside Envoy).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::ExternalProcessorServer;
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::TcpIncoming;

use crate::config::Config;
use crate::control::credential::{ControlPlaneToken, TokenError};
use crate::control::{client::GrpcControlPlane, sync};
use crate::domain::pipeline::Router;
use crate::domain::ports::ControlPlane;
use crate::domain::tables::Tables;
use crate::envoy::{extauthz::ExtAuthz, extproc::ExtProc, ingress::IngressGate};
use crate::metrics::RouterMetrics;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("nothing to listen on: give a TCP address or a socket path")]
    NoListener,
    #[error("control-plane address: {0}")]
    ControlPlane(#[from] tonic::transport::Error),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("ingress token file {0}: {1}")]
    IngressToken(PathBuf, std::io::Error),
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
}

/// A running router.
pub struct RouterHandle {
    pub tcp_addr: Option<SocketAddr>,
    pub uds_path: Option<PathBuf>,
    pub admin_addr: Option<SocketAddr>,
    pub router: Arc<Router>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RouterHandle {
    /// Stops serving and following the control plane.
    pub fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Resolves when any serving task ends (which only happens on error).
    pub async fn wait(&mut self) {
        if self.tasks.is_empty() {
            return;
        }
        let tasks = std::mem::take(&mut self.tasks);
        let (_, _, rest) = futures::future::select_all(tasks).await;
        self.tasks = rest;
    }
}

/// Binds, subscribes and serves in the background.
pub async fn start(config: Config) -> Result<RouterHandle, ServerError> {
    let listen = config.tcp_listener();
    if listen.is_none() && config.uds.is_none() {
        return Err(ServerError::NoListener);
    }
    let router_id = config.router_id();
    let tables = Arc::new(Tables::default());
    let token = match &config.controlplane_token_file {
        Some(path) => ControlPlaneToken::from_file(path)?,
        None => ControlPlaneToken::none(),
    };
    let metrics = RouterMetrics::new(tables.clone());
    let control = GrpcControlPlane::new(
        &config.controlplane,
        router_id.clone(),
        token.clone(),
        metrics.records.clone(),
    )?;
    let mut tasks = vec![
        tokio::spawn(sync::run(
            control.client(),
            tables.clone(),
            router_id.clone(),
            token,
        )),
        tokio::spawn(crate::control::usage::run(
            control.client(),
            tables.clone(),
            router_id,
        )),
    ];
    let control: Arc<dyn ControlPlane> = Arc::new(control);
    let router = Arc::new(Router::new(tables.clone(), control, config.policy));
    let mut admin_addr = None;
    if let Some(addr) = config.admin {
        let (bound, task) = crate::admin::start(addr, tables, &metrics).await?;
        admin_addr = Some(bound);
        tasks.push(task);
    }

    // gRPC health checking (Envoy's router_grpc cluster): serving once the tables are loaded.
    let reporter = HealthReporter::new();
    let health = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
    reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    tasks.push(tokio::spawn(report_readiness(
        reporter,
        router.tables.clone(),
    )));

    let tcp_gate = match &config.ingress_token_file {
        Some(path) => {
            IngressGate::from_file(path).map_err(|e| ServerError::IngressToken(path.clone(), e))?
        }
        None => {
            if listen.is_some() {
                tracing::warn!("no --ingress-token-file: the router's TCP port serves any caller");
            }
            IngressGate::open()
        }
    };
    let mut tcp_addr = None;
    if let Some(addr) = listen {
        let listener = TcpListener::bind(addr).await?;
        tcp_addr = Some(listener.local_addr()?);
        // `serve_with_incoming` ignores the builder's `tcp_nodelay`: without it every ext_proc
        // answer can wait ~40 ms for a delayed ACK.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let svc = services(&router, &metrics, &health, tcp_gate.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = svc.serve_with_incoming(incoming).await {
                tracing::error!(error = %e, "gRPC server (tcp) failed");
            }
        }));
    }
    if let Some(path) = &config.uds {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        let incoming = UnixListenerStream::new(listener);
        let svc = services(&router, &metrics, &health, IngressGate::open());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = svc.serve_with_incoming(incoming).await {
                tracing::error!(error = %e, "gRPC server (uds) failed");
            }
        }));
    }
    Ok(RouterHandle {
        tcp_addr,
        uds_path: config.uds,
        admin_addr,
        router,
        tasks,
    })
}

fn services(
    router: &Arc<Router>,
    metrics: &RouterMetrics,
    health: &HealthServer<HealthService>,
    gate: IngressGate,
) -> tonic::transport::server::Router {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(health.clone())
        .add_service(ExternalProcessorServer::with_interceptor(
            ExtProc::new(router.clone(), metrics.clone()),
            gate.clone(),
        ))
        .add_service(AuthorizationServer::with_interceptor(
            ExtAuthz::new(router.clone()),
            gate,
        ))
}

/// Flips the gRPC health status with the router's readiness (it holds a snapshot or not).
async fn report_readiness(reporter: HealthReporter, tables: Arc<Tables>) {
    let mut serving = false;
    loop {
        let ready = tables.is_ready();
        if ready != serving {
            let status = if ready {
                tonic_health::ServingStatus::Serving
            } else {
                tonic_health::ServingStatus::NotServing
            };
            reporter.set_service_status("", status).await;
            serving = ready;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
