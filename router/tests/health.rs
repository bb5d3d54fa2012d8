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

/// Sends raw bytes to Envoy and returns what it answered before closing (empty if it just
/// closed the connection). The answer is read while the request is still being written: Envoy
/// may answer and close before it has read everything.
async fn raw_exchange(b: &Bench, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = tokio::net::TcpStream::connect(b.envoy.listen)
        .await
        .unwrap();
    let (mut rd, mut wr) = sock.into_split();
    let reader = tokio::spawn(async move {
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        answer
    });
    let _ = wr.write_all(request).await;
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn an_http_1_0_client_gets_an_answer() {
    let b = Bench::start().await;
    let request = "POST /api/v1/namespaces/_/actions/a?blocking=true HTTP/1.0\r\nhost: l\r\n\
                   content-length: 0\r\n\r\n";
    let answer = raw_exchange(&b, request.as_bytes()).await;
    // Unauthenticated: OpenWhisk's 401, in HTTP/1.0 — not a closed connection.
    assert!(answer.starts_with("HTTP/1.0 401"), "{answer:?}");
    assert!(
        answer.contains(
            "The resource requires authentication, which was not supplied with the request"
        ),
        "{answer:?}"
    );
}

/// Requests Envoy refuses before any route is chosen still get an answer, not a closed
/// connection: ext_proc sees response headers only on invoke routes, so it does not stand in the
/// way of Envoy's own local replies.
#[tokio::test]
async fn oversized_headers_and_unknown_methods_get_an_answer() {
    let b = Bench::start().await;
    let path = "/api/v1/namespaces/_/actions/a?blocking=true";
    let huge = format!(
        "POST {path} HTTP/1.1\r\nhost: l\r\nx-big: {}\r\ncontent-length: 0\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let many = format!("POST {path} HTTP/1.1\r\nhost: l\r\n{many}content-length: 0\r\n\r\n");
    for (what, request, status) in [
        ("a 70 KiB header", huge, "431"),
        ("150 headers", many, "431"),
        (
            "an unknown method",
            format!("FROB {path} HTTP/1.1\r\nhost: l\r\n\r\n"),
            "400",
        ),
    ] {
        let answer = raw_exchange(&b, request.as_bytes()).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {answer:?}"
        );
    }
    // HTTP/1.0 without a Host header is served by the default virtual host.
    let answer = raw_exchange(&b, b"GET /nothing HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.0 404"), "{answer:?}");
    // Invokes still go through the router, response phase included (activation id header).
    let u = Upstream::start("a").await;
    b.one_action("a", &u, 1).await;
    let r = b.invoke("a").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-openwhisk-activation-id"));
}

/// With the control plane's HTTP API down (restarting, upgrading), management calls get
/// OpenWhisk's 503 with a Retry-After, not Envoy's plain-text connection error; invokes are not
/// affected (the router's tables serve them).
#[tokio::test]
async fn management_calls_get_openwhisk_503_with_retry_after_while_the_control_plane_is_down() {
    let b = Bench::start_with_management_down().await;
    let r = b
        .http
        .get(b.url("/api/v1/namespaces/_/actions"))
        .header("authorization", guest_auth())
        .header("x-request-id", "tid-down")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "error": "The server is currently unavailable (because it is overloaded or down for maintenance).",
            "code": "tid-down"
        })
    );
    // Warm invokes keep working.
    let u = Upstream::start("a").await;
    b.one_action("a", &u, 1).await;
    assert_eq!(b.invoke("a").await.status(), 200);
}
