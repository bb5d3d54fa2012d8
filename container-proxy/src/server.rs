//! The HTTP front of the proxy (axum): routes `/_whisk/init`, `/_whisk/health`,
//! `/_whisk/activations/{id}/end` (the router waits there for an activation it stopped
//! waiting for), `/metrics`,
//! `/healthz`, `/readyz` and every other
//! `POST` (an invoke) to [`Proxy`], and writes its [`Answer`]s with `content-type:
//! application/json`. Init, invokes and the activation-end wait pass the proxy's
//! [`crate::gate::Gate`] first (the container token); health, readiness and metrics stay open.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::answer::Answer;
use crate::proxy::Proxy;

/// Largest request body read (init carries code up to OpenWhisk's 48 MB exec limit).
pub const MAX_BODY: usize = 64 * 1024 * 1024;

fn respond(answer: Answer) -> Response {
    let body = serde_json::to_vec(&answer.body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in answer.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    resp
}

async fn read_body(req: Request) -> Result<(axum::http::request::Parts, Vec<u8>), Response> {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => Ok((parts, b.to_vec())),
        Err(_) => Err(respond(Answer::json(
            413,
            json!({"error": format!("Request larger than allowed: more than {MAX_BODY} bytes.")}),
        ))),
    }
}

/// The container token a request presents (what [`crate::gate::Gate::admit`] checks).
fn presented(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(whisk_vocab::token::CONTAINER_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
}

async fn health(State(proxy): State<Arc<Proxy>>) -> Response {
    respond(Answer::json(200, proxy.health()))
}

async fn init(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    if let Err(refused) = proxy.gate().admit(presented(req.headers())) {
        return respond(refused);
    }
    match read_body(req).await {
        Ok((_, body)) => respond(proxy.init(&body).await),
        Err(resp) => resp,
    }
}

async fn other(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    if req.uri().path().starts_with("/_whisk/") {
        return respond(Answer::json(
            404,
            json!({"error": "The requested resource does not exist."}),
        ));
    }
    if req.method() != Method::POST {
        return respond(Answer::json(
            405,
            json!({"error": "HTTP method not allowed, supported methods: POST"}),
        ));
    }
    if let Err(refused) = proxy.gate().admit(presented(req.headers())) {
        return respond(refused);
    }
    let (parts, body) = match read_body(req).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let headers = &parts.headers;
    let answer = proxy
        .invoke(
            |name| headers.get(name).and_then(|v| v.to_str().ok()),
            &body,
        )
        .await;
    respond(answer)
}

/// How long `GET /_whisk/activations/{id}/end` waits at most, whatever the caller asks.
const MAX_END_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// `GET /_whisk/activations/{id}/end?wait_ms=N`: 204 once activation `id` is not running here
/// (ended, or never ran), 202 if it still runs after `wait_ms` (at most [`MAX_END_WAIT`]).
async fn activation_end(
    State(proxy): State<Arc<Proxy>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<EndQuery>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Err(refused) = proxy.gate().admit(presented(&headers)) {
        return respond(refused);
    }
    let bound = std::time::Duration::from_millis(q.wait_ms.unwrap_or(0)).min(MAX_END_WAIT);
    if proxy.running().wait_end(&id, bound).await {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::ACCEPTED.into_response()
    }
}

#[derive(serde::Deserialize)]
struct EndQuery {
    wait_ms: Option<u64>,
}

/// The proxy's routes, plus `/metrics`, `/healthz` (live) and `/readyz` (stem cell or initialised
/// without error) from `whisk-telemetry`. Envoy routes only `/api/v1/...` invokes here, so these
/// are reached by the control plane and scrapers on the pod network only.
pub fn router(proxy: Arc<Proxy>) -> Router {
    let ready_proxy = proxy.clone();
    let admin = whisk_telemetry::admin_routes(
        proxy.metrics().registry.clone(),
        Arc::new(move || ready_proxy.readiness()),
    );
    Router::new()
        .route("/_whisk/health", get(health))
        .route("/_whisk/init", post(init))
        .route("/_whisk/activations/{id}/end", get(activation_end))
        .fallback(other)
        .with_state(proxy)
        .merge(admin)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Without TCP_NODELAY, small responses wait for the peer's delayed ACK (~40 ms).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(proxy).into_make_service())
        .with_graceful_shutdown(shutdown)
        .await
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        respond(self)
    }
}
