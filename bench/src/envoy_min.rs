//! Scenario a's Envoy: the floor every other number is compared with.
//!
//! The shipped templates (`envoy/gateway.yaml`, `envoy/sidecar.yaml`) always route invokes
//! through ext_proc, so the floor needs its own config: one listener, one route, one static
//! cluster pointing at the bench's upstream, HTTP/1.1 on both sides, no filters but the router
//! filter and no access log. Envoy itself is started by `whisk_stack::envoy::start_config`, like
//! every other Envoy of the project, and owned by the bench (killed on drop).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use whisk_stack::envoy::{Envoy, EnvoyError};

const TEMPLATE: &str = r#"# whisk-bench scenario a: Envoy alone in front of a static upstream.
admin:
  address: {pipe: {path: "{{ADMIN_SOCKET}}", mode: 384}}
static_resources:
  listeners:
  - name: openwhisk_api
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench_floor
          route_config:
            name: floor
            virtual_hosts:
            - name: floor
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: upstream, timeout: 30s}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: {{UPSTREAM_ADDRESS}}, port_value: {{UPSTREAM_PORT}}}}}
"#;

/// The floor's config for an upstream.
pub fn render(upstream: SocketAddr) -> String {
    TEMPLATE
        .replace("{{UPSTREAM_ADDRESS}}", &upstream.ip().to_string())
        .replace("{{UPSTREAM_PORT}}", &upstream.port().to_string())
}

/// Writes the floor's config into `dir`, starts Envoy (as `whisk_stack` starts every Envoy)
/// and waits until its listener has a port.
pub async fn start(
    envoy: &Path,
    upstream: SocketAddr,
    dir: &Path,
    timeout: Duration,
) -> Result<Envoy, EnvoyError> {
    whisk_stack::envoy::start_config(envoy, &render(upstream), "envoy-floor", dir, timeout).await
}
