//! The management API (`/api/v1/...`), OpenWhisk-compatible, as an axum router over [`Plane`].
//! Callers are identified by their own Basic credentials, verified here ([`authn`]); identity
//! headers are not believed. Every answer echoes `X-Request-ID`; errors carry it as `code`. Bodies are
//! accepted up to OpenWhisk's action code limit ([`MAX_BODY_BYTES`]), however they are framed.

pub mod absent;
pub mod actions;
pub mod activations;
pub mod authn;
pub mod code;
pub mod errors;
pub mod extract;
pub mod namespaces;
pub mod packages;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::model::{ActionDoc, PackageDoc};
use crate::names;
use crate::plane::Plane;
pub use errors::ApiError;
pub use extract::{ApiQuery, Caller, Namespace, OwnNamespace};

/// Shared state of the handlers.
pub type AppState = Arc<Plane>;

/// The transaction id of a request.
#[derive(Debug, Clone)]
pub struct TransactionId(pub String);

/// Reads (or makes up) the transaction id, echoes it, and renders error bodies with it.
async fn transaction(mut req: Request, next: Next) -> Response {
    let tid = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>()));
    req.extensions_mut().insert(TransactionId(tid.clone()));
    let resp = next.run(req).await;
    let mut resp = match resp.extensions().get::<ApiError>().cloned() {
        Some(err) => {
            let mut r = (err.status, axum::Json(json!({ "error": err.message, "code": tid }))).into_response();
            if err.status == StatusCode::UNAUTHORIZED {
                r.headers_mut()
                    .insert("www-authenticate", HeaderValue::from_static("Basic realm=\"OpenWhisk secure realm\""));
            }
            r
        }
        None if resp.status() == StatusCode::METHOD_NOT_ALLOWED => (
            StatusCode::METHOD_NOT_ALLOWED,
            axum::Json(json!({ "error": "The request method is not supported for the requested resource.", "code": tid })),
        )
            .into_response(),
        None => resp,
    };
    if let Ok(v) = HeaderValue::from_str(&tid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn fallback() -> ApiError {
    ApiError::not_found()
}

/// The management API router (`/api/v1/...`).
pub fn router(plane: AppState) -> Router {
    Router::new()
        .route("/api/v1", get(namespaces::info))
        .route("/api/v1/", get(namespaces::info))
        .route("/api/v1/namespaces", get(namespaces::list))
        .route("/api/v1/namespaces/{ns}/limits", get(namespaces::limits))
        .route("/api/v1/namespaces/{ns}/actions", get(actions::list_root))
        .route(
            "/api/v1/namespaces/{ns}/actions/{*path}",
            get(actions::get_any)
                .put(actions::put)
                .delete(actions::delete),
        )
        .route("/api/v1/namespaces/{ns}/packages", get(packages::list))
        .route("/api/v1/namespaces/{ns}/triggers", get(absent::triggers))
        .route("/api/v1/namespaces/{ns}/rules", get(absent::rules))
        .route(
            "/api/v1/namespaces/{ns}/packages/{name}",
            get(packages::get)
                .put(packages::put)
                .delete(packages::delete),
        )
        .route(
            "/api/v1/namespaces/{ns}/activations",
            get(activations::list),
        )
        .route(
            "/api/v1/namespaces/{ns}/activations/{id}",
            get(activations::get),
        )
        .route(
            "/api/v1/namespaces/{ns}/activations/{id}/{part}",
            get(activations::get_part),
        )
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(
            plane.clone(),
            authn::authenticate,
        ))
        .with_state(plane)
}

/// How long a write waits for the routers to apply it.
pub const WRITE_BARRIER: std::time::Duration = std::time::Duration::from_secs(3);

/// Makes successful writes (anything but GET/HEAD) answer only once every connected router has
/// applied them (see [`crate::acks`]).
pub fn with_write_barrier(router: Router, hub: Arc<crate::push::PushHub>) -> Router {
    router.layer(middleware::from_fn(
        move |req: axum::extract::Request, next: middleware::Next| {
            let hub = hub.clone();
            async move {
                let write = !matches!(
                    *req.method(),
                    axum::http::Method::GET | axum::http::Method::HEAD
                );
                let resp = next.run(req).await;
                if write && resp.status().is_success() {
                    hub.flush();
                    let revision = hub.revision();
                    if !hub.acks.wait_for(revision, WRITE_BARRIER).await {
                        tracing::warn!(revision, "not every router applied the write in time");
                    }
                }
                resp
            }
        },
    ))
}

/// OpenWhisk's `exec-size-limit` (48 MB): the largest management request body accepted.
pub const MAX_BODY_BYTES: usize = 48 * 1024 * 1024;

fn too_large(size: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request larger than allowed: {size} > {MAX_BODY_BYTES} bytes."),
    )
}

/// Reads the body up to [`MAX_BODY_BYTES`], declared (`content-length`) or not (chunked): a larger
/// one gets OpenWhisk's 413 and reaches no handler.
async fn limit_body(req: Request, next: Next) -> Response {
    use futures::StreamExt;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared
        && n > MAX_BODY_BYTES as u64
    {
        return too_large(n).into_response();
    }
    let (parts, body) = req.into_parts();
    let mut stream = body.into_data_stream();
    let mut buf = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return ApiError::malformed("the request body could not be read").into_response();
        };
        let total = buf.len() + chunk.len();
        if total > MAX_BODY_BYTES {
            return too_large(total as u64).into_response();
        }
        buf.extend_from_slice(&chunk);
    }
    next.run(Request::from_parts(parts, Body::from(buf))).await
}

/// Wrap a router (the API plus admin) in the transaction middleware and the body limit.
pub fn with_transactions(router: Router) -> Router {
    router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(limit_body))
        .layer(middleware::from_fn(transaction))
}

// ---- helpers shared by the handlers ------------------------------------------------------

/// The body as a JSON object (empty body = `{}`); anything else is a 400.
pub fn parse_object(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(body).map_err(ApiError::malformed)?;
    if !v.is_object() {
        return Err(ApiError::malformed("expected a JSON object"));
    }
    Ok(v)
}

/// Deserialize a JSON object into `T`, with 400 on shape errors.
pub fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(ApiError::malformed)
}

pub type QueryMap = HashMap<String, String>;

/// Akka's text for a query parameter its unmarshaller refused (OpenWhisk answers it as is).
pub fn malformed_param(key: &str, detail: &str) -> ApiError {
    ApiError::bad_request(format!(
        "The query parameter '{key}' was malformed:\n{detail}"
    ))
}

/// A Boolean query parameter as OpenWhisk (Akka) reads it: `true`/`yes`/`on`/`1` or
/// `false`/`no`/`off`/`0` in any case; absent or empty is `default`; anything else is a 400.
pub fn query_flag(q: &QueryMap, key: &str, default: bool) -> Result<bool, ApiError> {
    let Some(v) = q.get(key) else {
        return Ok(default);
    };
    match v.to_lowercase().as_str() {
        "" => Ok(default),
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        other => Err(malformed_param(
            key,
            &format!("'{other}' is not a valid Boolean value"),
        )),
    }
}

/// [`query_flag`] of a parameter that defaults to false (`count`, `docs`, `overwrite`, `force`).
pub fn query_bool(q: &QueryMap, key: &str) -> Result<bool, ApiError> {
    query_flag(q, key, false)
}

/// `skip` and `limit` of a collection listing, with OpenWhisk's checks and texts.
pub fn skip_limit(q: &QueryMap, collection: &str) -> Result<(usize, usize), ApiError> {
    const MAX: i64 = 200;
    const DEFAULT: i64 = 30;
    let int = |key: &str, default: i64| -> Result<i64, ApiError> {
        match q.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse::<i64>().map_err(|_| {
                malformed_param(
                    key,
                    &format!("The value '{v}' is not an integer for {collection}."),
                )
            }),
        }
    };
    let skip = int("skip", 0)?;
    if skip < 0 {
        return Err(malformed_param(
            "skip",
            &format!("The value '{skip}' is not greater than or equal to 0 for {collection}."),
        ));
    }
    let limit = int("limit", DEFAULT)?;
    if !(0..=MAX).contains(&limit) {
        return Err(malformed_param(
            "limit",
            &format!("The value '{limit}' is not in the range of 0 to {MAX} for {collection}."),
        ));
    }
    let limit = if limit == 0 { MAX } else { limit };
    Ok((skip as usize, limit as usize))
}

/// The answer to `?count=true`: `{"<collection>": n}`, where `n` counts what is left after
/// `skip`, as OpenWhisk's stores count (the total less `skip`, never below 0).
pub fn count_response(collection: &str, total: usize, skip: usize) -> Response {
    ok(json!({ collection: total.saturating_sub(skip) }))
}

/// 400 unless `ns` is a valid namespace (or `_`).
pub fn check_namespace(ns: &str) -> Result<(), ApiError> {
    if ns == "_" || names::is_valid_namespace(ns) {
        Ok(())
    } else {
        Err(ApiError::bad_request(errors::NAMESPACE_ILLEGAL))
    }
}

/// 400 unless `name` is a valid entity name.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    if names::is_valid_entity_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(errors::ENTITY_NAME_ILLEGAL))
    }
}

/// The `updated` stamp of a write: OpenWhisk's epoch milliseconds, as the store keeps them.
pub fn now_ms() -> i64 {
    i64::try_from(whisk_vocab::now_ms()).unwrap_or(i64::MAX)
}

/// A package as a caller may read it: owned, or a published package. Another namespace's binding
/// is never readable, published or not (OpenWhisk's `PackageCollection`).
pub fn readable_package(
    plane: &Plane,
    caller: &Caller,
    ns: &str,
    name: &str,
) -> Result<PackageDoc, ApiError> {
    let pkg = plane.store.get_package(&format!("{ns}/{name}"))?;
    match pkg {
        Some(p) if ns == caller.namespace || (p.publish && p.binding.is_none()) => Ok(p),
        Some(_) => Err(ApiError::forbidden(&format!("{ns}/{name}"))),
        None if ns != caller.namespace => Err(ApiError::forbidden(&format!("{ns}/{name}"))),
        None => Err(ApiError::not_found()),
    }
}

/// Follow a package binding to the package it refers to (one level: bindings do not nest).
pub fn resolve_binding(
    plane: &Plane,
    caller: &Caller,
    pkg: PackageDoc,
) -> Result<(PackageDoc, Option<PackageDoc>), ApiError> {
    match &pkg.binding {
        None => Ok((pkg, None)),
        Some(b) => {
            let target = plane
                .store
                .get_package(&format!("{}/{}", b.namespace, b.name))?;
            match target {
                Some(t)
                    if t.namespace == caller.namespace
                        || t.publish
                        || t.namespace == pkg.namespace =>
                {
                    Ok((t, Some(pkg)))
                }
                Some(t) => Err(ApiError::forbidden(&t.fqn())),
                None => Err(ApiError::not_found()),
            }
        }
    }
}

/// Find the action `ns/[pkg/]name` as `caller` may read it, following a package binding.
/// Returns the action and the binding it was reached through, if any.
pub fn readable_action(
    plane: &Plane,
    caller: &Caller,
    ns: &str,
    pkg: Option<&str>,
    name: &str,
) -> Result<(ActionDoc, Option<PackageDoc>), ApiError> {
    let Some(pkg) = pkg else {
        if ns != caller.namespace {
            return Err(ApiError::forbidden(&format!("{ns}/{name}")));
        }
        return plane
            .store
            .get_action(&format!("{ns}/{name}"))?
            .map(|a| (a, None))
            .ok_or_else(ApiError::not_found);
    };
    let package = readable_package(plane, caller, ns, pkg)?;
    let (target, binding) = resolve_binding(plane, caller, package)?;
    let action = plane
        .store
        .get_action(&format!("{}/{}/{name}", target.namespace, target.name))?
        .ok_or_else(ApiError::not_found)?;
    Ok((action, binding))
}

/// Response helper: 200 with a JSON body.
pub fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}
