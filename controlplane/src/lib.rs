//! `whisk-controlplane`: owns actions, identities and containers; answers cold starts, collects
//! idle containers, pushes every change to the routers, and serves the OpenWhisk management API.
//!
//! Embed it with [`start`] (or [`start_with_backend`]); the returned [`ControlPlaneHandle`] knows
//! the bound addresses and stops everything (including every process it started) on
//! [`ControlPlaneHandle::shutdown`] or drop.

pub mod acks;
pub mod admin;
pub mod api;
pub mod backend;
pub mod bindings;
pub mod cli;
pub mod coldstart;
pub mod config;
pub mod convert;
pub mod credentials;
pub mod gc;
pub mod grpc;
pub mod metrics;
pub mod model;
pub mod names;
pub mod plane;
pub mod pool;
pub mod push;
pub mod quotas;
pub mod runtimes;
pub mod spools;
pub mod starts;
pub mod store;
pub mod up;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use whisk_proto::controlplane::v1::control_plane_server::ControlPlaneServer;

pub use crate::backend::{Backend, LocalBackend};
pub use crate::config::Config;
pub use crate::gc::GcReport;
pub use crate::plane::Plane;
pub use crate::starts::ColdStartError;
use crate::store::{RedbStore, Store, StoreError};

/// Largest gRPC message the control plane accepts or sends (routers should allow as much).
pub const GRPC_MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot initialise: {0}")]
    Init(#[from] plane::PlaneError),
    #[error("cannot set up the execution backend: {0}")]
    Backend(String),
    #[error("cannot read or create the admin token {0}: {1}")]
    AdminToken(std::path::PathBuf, std::io::Error),
    #[error("cannot read or create the router token {0}: {1}")]
    RouterToken(std::path::PathBuf, std::io::Error),
}

/// A running control plane.
pub struct ControlPlaneHandle {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    router_token_file: std::path::PathBuf,
    plane: Arc<Plane>,
    stop: watch::Sender<bool>,
    /// Background loops (flusher, backend events, GC): aborted on shutdown.
    tasks: Vec<JoinHandle<()>>,
    /// The servers: given time to finish gracefully on shutdown.
    servers: Vec<JoinHandle<()>>,
    stopped: bool,
}

impl ControlPlaneHandle {
    /// The bound gRPC address (routers, container proxies).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }
    /// The bound HTTP address (management API and `/_whisk/admin`).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }
    /// `http://<grpc_addr>`.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }
    /// `http://<http_addr>`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }
    /// The file holding the token routers present (`whisk-router --controlplane-token-file`).
    pub fn router_token_file(&self) -> &std::path::Path {
        &self.router_token_file
    }
    /// The core, for in-process hosts and tests (e.g. `plane().gc_tick_at(..)`).
    pub fn plane(&self) -> &Arc<Plane> {
        &self.plane
    }

    /// Stop serving, stop every container, close the store.
    pub async fn shutdown(mut self) {
        self.stopped = true;
        let _ = self.stop.send(true);
        self.plane.shutdown().await;
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        for t in self.servers.drain(..) {
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for ControlPlaneHandle {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let _ = self.stop.send(true);
        self.plane.backend.kill_all_now();
        self.plane.hub.close();
        self.plane.store.close();
        for t in self.tasks.iter().chain(&self.servers) {
            t.abort();
        }
    }
}

/// The Kubernetes backend's configuration from the control plane's.
pub fn kube_backend_config(config: &Config, k: config::KubeSettings) -> backend::KubeBackendConfig {
    let mut kc = backend::KubeBackendConfig::new(k.namespace, k.proxy_image);
    kc.stack = k.stack;
    kc.runtime_image_prefix = k.runtime_image_prefix;
    kc.runtime_image_tag = k.runtime_image_tag;
    kc.runtime_images = k.runtime_images.into_iter().collect();
    kc.api_host = config.api_host.clone();
    kc.start_timeout = config.start_timeout;
    kc.proxy_args = config.proxy_args.clone();
    kc
}

/// Start the control plane with the backend the configuration selects: pods in a Kubernetes
/// cluster (kubeconfig or in-cluster configuration) if `config.kubernetes` is set, else local
/// child processes.
pub async fn start(config: Config) -> Result<ControlPlaneHandle, StartError> {
    if let Some(k) = config.kubernetes.clone() {
        let kc = kube_backend_config(&config, k);
        let backend = backend::KubernetesBackend::infer(kc)
            .await
            .map_err(|e| StartError::Backend(e.to_string()))?;
        return start_with_backend(config, Arc::new(backend)).await;
    }
    let backend = Arc::new(
        LocalBackend::new(
            config.resolved_proxy_bin(),
            config.resolved_logs_dir(),
            config.api_host.clone(),
            config.start_timeout,
        )
        .with_proxy_args(config.proxy_args.clone())
        .with_spool_root(config.data_dir.join(SPOOL_DIR)),
    );
    start_with_backend(config, backend).await
}

/// Under the data directory: one spool directory per local container (`spool/<container-id>`).
pub const SPOOL_DIR: &str = "spool";
/// How often spools of dead proxies are swept (see `spools.rs`).
const SPOOL_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Makes the data directory owner-only: the store, tokens and logs in it are nobody else's, and
/// action processes run as other users (see the container proxy's `executor/user.rs`). A
/// directory the control plane does not own (e.g. a volume root) keeps its mode, with a warning.
pub(crate) fn restrict_to_owner(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot make the data directory owner-only");
    }
}

/// Start the control plane with any execution backend.
pub async fn start_with_backend(
    config: Config,
    backend: Arc<dyn Backend>,
) -> Result<ControlPlaneHandle, StartError> {
    let store: Arc<dyn Store> = Arc::new(RedbStore::open_with_cache(
        &config.data_dir,
        config.store_cache_bytes,
    )?);
    restrict_to_owner(&config.data_dir);
    let token_file = config.resolved_admin_token_file();
    let admin_token: Arc<str> = match admin::load_or_create_token(&token_file) {
        Ok(t) => t.into(),
        Err(e) => {
            store.close();
            return Err(StartError::AdminToken(token_file, e));
        }
    };
    let router_token_file = config.resolved_router_token_file();
    let credentials = match credentials::Credentials::load(&router_token_file) {
        Ok(c) => c,
        Err(e) => {
            store.close();
            return Err(StartError::RouterToken(router_token_file, e));
        }
    };
    let grpc_listener = tokio::net::TcpListener::bind(config.grpc_listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.grpc_listen,
            source,
        })?;
    let http_listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.http_listen,
            source,
        })?;
    let grpc_addr = grpc_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.grpc_listen,
            source,
        })?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.http_listen,
            source,
        })?;

    let advertised = config
        .grpc_advertise
        .clone()
        .unwrap_or_else(|| format!("http://{grpc_addr}"));
    let plane = Plane::new(config, store, backend);
    plane.set_controlplane_url(advertised);
    if let Err(e) = plane.bootstrap() {
        plane.store.close();
        return Err(e.into());
    }

    let (stop, _) = watch::channel(false);
    let mut tasks = vec![plane.hub.spawn_flusher()];
    tasks.extend(plane.spawn_event_loop());
    tasks.extend(plane.spawn_gc_loop());
    tasks.push(spools::spawn_sweeper(
        &plane,
        plane.config.data_dir.join(SPOOL_DIR),
        SPOOL_SWEEP_EVERY,
    ));

    // Activation records carry up to 10 MB of logs plus a 1 MB result; snapshots grow with the
    // number of actions and endpoints. tonic's 4 MB default is too small for either.
    let grpc = ControlPlaneServer::new(grpc::GrpcService::new(plane.clone(), credentials))
        .max_decoding_message_size(GRPC_MAX_MESSAGE)
        .max_encoding_message_size(GRPC_MAX_MESSAGE);
    let mut servers = Vec::new();
    let mut grpc_stop = stop.subscribe();
    servers.push(tokio::spawn(async move {
        // TCP_NODELAY: cold-start answers must not wait for a delayed ACK.
        let incoming =
            tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
        let result = tonic::transport::Server::builder()
            .add_service(grpc)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = grpc_stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "gRPC server failed");
        }
    }));

    let watched = Arc::downgrade(&plane);
    plane.metrics.watch(plane.hub.resyncs.clone(), move || {
        watched.upgrade().map(|p| p.state_snapshot())
    });
    let ready_plane = Arc::downgrade(&plane);
    let ops = whisk_telemetry::admin_routes(
        plane.metrics.registry.clone(),
        Arc::new(move || match ready_plane.upgrade() {
            Some(p) => p
                .store
                .activation_count()
                .map(|_| ())
                .map_err(|e| format!("store: {e}")),
            None => Err("shutting down".to_string()),
        }),
    );
    // `/metrics`, `/healthz`, `/readyz`: outside the API's middleware; Envoy never routes them.
    let app = api::with_write_barrier(
        api::with_transactions(
            api::router(plane.clone()).merge(admin::router(plane.clone(), admin_token)),
        ),
        plane.hub.clone(),
    )
    .merge(ops);
    let mut http_stop = stop.subscribe();
    servers.push(tokio::spawn(async move {
        use axum::serve::ListenerExt;
        let http_listener = http_listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let result = axum::serve(http_listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "HTTP server failed");
        }
    }));

    plane.adopt_units().await;
    plane.refill_stems();
    tracing::info!(%grpc_addr, %http_addr, "control plane started");
    Ok(ControlPlaneHandle {
        grpc_addr,
        http_addr,
        router_token_file,
        plane,
        stop,
        tasks,
        servers,
        stopped: false,
    })
}

/// Resolves on SIGTERM or SIGINT (for binaries hosting the control plane). The handlers are
/// installed when this is called, not when it is first awaited: call it before starting anything,
/// so a SIGTERM that arrives during start-up still means a clean shutdown.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(term) => {}
            _ = wait(int) => {}
        }
    }
}
