//! Only Envoy may speak ext_proc and ext_authz to the router over TCP: a caller that reaches the
//! router's gRPC port directly (action code on the same machine) without the ingress token gets
//! `UNAUTHENTICATED` and learns nothing — not a route, not a container's token.

mod common;

use common::*;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, attribute_context,
};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    HttpHeaders, ProcessingRequest, processing_request,
};
use std::sync::atomic::Ordering;

fn invoke_headers() -> ProcessingRequest {
    let header = |k: &str, v: &str| HeaderValue {
        key: k.into(),
        raw_value: v.as_bytes().to_vec(),
        ..Default::default()
    };
    ProcessingRequest {
        request: Some(processing_request::Request::RequestHeaders(HttpHeaders {
            headers: Some(HeaderMap {
                headers: vec![
                    header(":method", "POST"),
                    header(":path", "/api/v1/namespaces/_/actions/a?blocking=true"),
                    header("authorization", &guest_auth()),
                    header("content-length", "0"),
                ],
            }),
            end_of_stream: true,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// One ext_proc exchange (request headers) with the given ingress token, if any.
async fn ext_proc(b: &Bench, token: Option<&str>) -> Result<String, tonic::Status> {
    let mut client = ExternalProcessorClient::connect(format!("http://{}", b.router_addr))
        .await
        .unwrap();
    let mut req = tonic::Request::new(tokio_stream::iter(vec![invoke_headers()]));
    if let Some(t) = token {
        req.metadata_mut()
            .insert("x-whisk-ingress-token", t.parse().unwrap());
    }
    let mut answers = client.process(req).await?.into_inner();
    let first = answers.message().await?;
    Ok(format!("{first:?}"))
}

async fn ext_authz(b: &Bench, token: Option<&str>) -> Result<(), tonic::Status> {
    let mut client = AuthorizationClient::connect(format!("http://{}", b.router_addr))
        .await
        .unwrap();
    let mut req = tonic::Request::new(CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    method: "GET".into(),
                    path: "/api/v1/namespaces/_/actions".into(),
                    headers: [("authorization".to_string(), guest_auth())].into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    });
    if let Some(t) = token {
        req.metadata_mut()
            .insert("x-whisk-ingress-token", t.parse().unwrap());
    }
    client.check(req).await.map(|_| ())
}

#[tokio::test]
async fn the_routers_grpc_port_serves_only_envoy() {
    let b = Bench::start().await;
    let u = Upstream::start("a").await;
    b.one_action("a", &u, 1).await;

    for token in [None, Some("wrong"), Some("")] {
        let err = ext_proc(&b, token).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{token:?}");
        let err = ext_authz(&b, token).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{token:?}");
    }
    // With Envoy's token the router answers (a routing decision, container token included).
    let answer = ext_proc(&b, Some(INGRESS_TOKEN)).await.unwrap();
    assert!(answer.contains("x-whisk-container-token"), "{answer}");
    ext_authz(&b, Some(INGRESS_TOKEN)).await.unwrap();
    // And Envoy itself gets through.
    let served = u.requests.load(Ordering::SeqCst);
    assert_eq!(b.invoke("a").await.status(), 200);
    assert_eq!(u.requests.load(Ordering::SeqCst), served + 1);
}
