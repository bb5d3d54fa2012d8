//! gRPC health checking on the router's gRPC port (what Envoy's router_grpc cluster probes).

mod common;

use common::*;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

#[tokio::test]
async fn serving_once_the_tables_are_loaded() {
    let b = Bench::start().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", b.router_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = HealthClient::new(channel);
    eventually(
        "health says SERVING",
        std::time::Duration::from_secs(5),
        || {
            let mut client = client.clone();
            async move {
                let status = client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .status();
                status == ServingStatus::Serving
            }
        },
    )
    .await;
}
