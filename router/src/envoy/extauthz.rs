//! `envoy.service.auth.v3.Authorization`: authentication for the management API.
//!
//! Management calls (actions, packages, activations, namespaces) only need to know who the caller
//! is; the control plane decides the rest. On success Envoy forwards the request with
//! `x-whisk-auth-namespace`, `x-whisk-auth-uuid` and `x-whisk-auth-subject`, overwriting anything
//! the client sent (informational: the control plane verifies the forwarded `Authorization`
//! itself and believes no header); on failure the client gets OpenWhisk's 401 at the edge.

use std::sync::Arc;

use envoy_types::pb::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
    authorization_server::Authorization, check_response::HttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::rpc;
use tonic::{Request, Response, Status};

use super::headers::text;
use crate::domain::pipeline::Router;
use crate::domain::rejection::{Rejection, WWW_AUTHENTICATE};

pub struct ExtAuthz {
    router: Arc<Router>,
}

impl ExtAuthz {
    pub fn new(router: Arc<Router>) -> Self {
        Self { router }
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let http = request
            .get_ref()
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let header = |name: &str| http.and_then(|h| h.headers.get(name)).map(String::as_str);
        let transaction_id = header("x-request-id").unwrap_or_default().to_owned();
        let tables = &self.router.tables;
        let outcome = if tables.is_ready() {
            self.router
                .authenticator()
                .authenticate(tables, header("authorization"))
        } else {
            Err(Rejection::Unavailable {
                retry_after: std::time::Duration::from_secs(1),
            })
        };
        let reply = match outcome {
            Ok(identity) => CheckResponse {
                status: Some(rpc::Status {
                    code: 0,
                    ..Default::default()
                }),
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                    headers: vec![
                        text("x-whisk-auth-namespace", &*identity.namespace),
                        text("x-whisk-auth-uuid", &*identity.uuid),
                        text("x-whisk-auth-subject", &*identity.subject),
                    ],
                    ..Default::default()
                })),
                ..Default::default()
            },
            Err(r) => denied(&r, &transaction_id),
        };
        Ok(Response::new(reply))
    }
}

fn denied(r: &Rejection, transaction_id: &str) -> CheckResponse {
    let mut headers = vec![text("content-type", "application/json")];
    if r.status() == 401 {
        headers.push(text("www-authenticate", WWW_AUTHENTICATE));
    }
    if let Some(secs) = r.retry_after_secs() {
        headers.push(text("retry-after", secs.to_string()));
    }
    CheckResponse {
        status: Some(rpc::Status {
            code: 16, // UNAUTHENTICATED
            message: r.reason().to_owned(),
            ..Default::default()
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: r.status() as i32,
            }),
            headers,
            body: r.body(transaction_id),
        })),
        ..Default::default()
    }
}
