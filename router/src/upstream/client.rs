//! An HTTP/1.1 keep-alive client to container proxies: one invoke, with the context headers and
//! the container's token (the proxy refuses requests without it), and the proxy's answer.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::KeptRequest;
use super::context::context_headers;
use crate::domain::endpoints::Endpoint;
use crate::domain::invocation::Invocation;
use crate::domain::retry_after;
use whisk_vocab::token::CONTAINER_TOKEN_HEADER;

/// Tells a proxy the argument is a web request's, made by the router (`__ow_*` allowed).
pub const WEB_HEADER: &str = "x-whisk-web";

/// A keep-alive HTTP/1.1 client to container proxies.
#[derive(Clone)]
pub struct ProxyClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for ProxyClient {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        }
    }
}

/// What a proxy answered.
#[derive(Debug)]
pub struct ProxyAnswer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// The proxy's `Cache-Control` (an action's caching directive), passed on to the client.
    pub cache_control: Option<String>,
    pub body: Bytes,
}

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("could not reach the container: {0}")]
    Unreachable(String),
    #[error("the container did not answer in time")]
    Timeout,
}

impl ProxyClient {
    /// Waits up to `bound` for activation `id` to end on the proxy of `endpoint`
    /// (`GET /_whisk/activations/{id}/end`). True once it ended — or once nothing more can be
    /// learnt (the proxy is gone, or does not know the endpoint) — false if it still runs.
    pub async fn await_end(&self, endpoint: &Endpoint, id: &str, bound: Duration) -> bool {
        let uri = format!(
            "http://{}/_whisk/activations/{id}/end?wait_ms={}",
            endpoint.address,
            bound.as_millis()
        );
        let Ok(req) = hyper::Request::get(uri)
            .header(CONTAINER_TOKEN_HEADER, endpoint.token.expose())
            .body(Full::new(Bytes::new()))
        else {
            return true;
        };
        match tokio::time::timeout(bound + Duration::from_secs(1), self.client.request(req)).await {
            Ok(Ok(resp)) => resp.status() != hyper::StatusCode::ACCEPTED,
            Ok(Err(_)) => true,
            Err(_) => false,
        }
    }

    /// POSTs one invoke of `inv` with the context headers to the proxy of `endpoint`.
    pub async fn call(
        &self,
        endpoint: &Endpoint,
        inv: &Invocation,
        request: &KeptRequest,
        body: Bytes,
        timeout: Duration,
    ) -> Result<ProxyAnswer, CallError> {
        let uri = format!(
            "http://{}/api/v1/namespaces/{}/actions/{}",
            endpoint.address,
            inv.namespace,
            inv.action.fqn.split_once('/').map_or("", |(_, rest)| rest)
        );
        let mut req = hyper::Request::post(uri)
            .header("content-type", "application/json")
            .header(CONTAINER_TOKEN_HEADER, endpoint.token.expose());
        for (k, v) in context_headers(inv, &request.transaction_id) {
            req = req.header(k, v);
        }
        if let Some(a) = &request.authorization {
            req = req.header("authorization", a);
        }
        if request.web {
            req = req.header(WEB_HEADER, "true");
        }
        if let Some(cause) = &inv.cause {
            req = req.header("x-whisk-cause", cause);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        let resp = tokio::time::timeout(timeout, self.client.request(req))
            .await
            .map_err(|_| CallError::Timeout)?
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header("retry-after").and_then(|v| retry_after::parse(&v));
        let cache_control = header("cache-control");
        let body = tokio::time::timeout(timeout, resp.into_body().collect())
            .await
            .map_err(|_| CallError::Timeout)?
            .map_err(|e| CallError::Unreachable(e.to_string()))?
            .to_bytes();
        Ok(ProxyAnswer {
            status,
            retry_after,
            cache_control,
            body,
        })
    }
}
