//! Identities and namespace limits (`wskadmin user ...`, `wskadmin limits ...`) as HTTP endpoints
//! under `/_whisk/admin/...` on the control plane's HTTP port. Envoy never routes `/_whisk/*`,
//! so only someone on the control plane's host reaches them.
//!
//! Callers must present the control plane's admin token (`Authorization: Bearer <token>`): the
//! token is written on first start into the data directory, readable by its owner only, so being
//! on the host is not enough, reading the data directory is needed (`whisk admin` does that).
//!
//! Keys are stored as digests (`model::IdentityDoc`): the answer to `POST /users` is the only
//! place a key ever appears, every other answer shows the identity without it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::api::{ApiError, AppState, check_namespace, from_value, ok, parse_object};
use crate::model::{IdentityDoc, NamespaceDoc, NamespaceLimits, digest_key};
use crate::plane::Plane;
use whisk_vocab::credentials::{is_key, is_uuid, uuid_v4};

#[derive(Debug, Deserialize)]
struct CreateUser {
    namespace: String,
    subject: Option<String>,
    uuid: Option<String>,
    key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SetLimits {
    #[serde(rename = "invocationsPerMinute")]
    invocations_per_minute: Option<u32>,
    #[serde(rename = "concurrentInvocations")]
    concurrent_invocations: Option<u32>,
    #[serde(rename = "maxPayloadSize")]
    max_payload_bytes: Option<u64>,
}

/// Name of the token file in the control plane's data directory.
pub use crate::config::TOKEN_FILE;

/// Read the token at `path` (the admin token; `credentials` reads the router token with it too),
/// or create it (64 random hex characters, owner-only) if there is none. An existing file is made
/// owner-only too.
pub fn load_or_create_token(path: &std::path::Path) -> std::io::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let token = existing.trim().to_string();
        if !token.is_empty() {
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0
                && let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                // A read-only mount only the owner and its group can read (a Kubernetes Secret
                // mounted with the pod's fsGroup) is acceptable; readable by others is not.
                && mode & 0o007 != 0
            {
                return Err(e);
            }
            return Ok(token);
        }
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    Ok(token)
}

/// Equal without revealing, through timing, how long a common prefix is.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses every request without the admin token (401, OpenWhisk's texts).
async fn require_token(token: Arc<str>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or("").trim().to_string());
    match presented {
        None => ApiError::unauthenticated().into_response(),
        Some(p) if same_secret(p.as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => ApiError::unauthorized().into_response(),
    }
}

/// The admin router; every route requires `token`.
pub fn router(plane: AppState, token: Arc<str>) -> Router {
    Router::new()
        .route("/_whisk/admin/users", post(create_user))
        .route(
            "/_whisk/admin/users/{uuid}",
            get(get_user).delete(delete_user),
        )
        .route("/_whisk/admin/namespaces/{ns}/users", get(list_users))
        .route(
            "/_whisk/admin/namespaces/{ns}/limits",
            get(get_limits).put(set_limits).delete(delete_limits),
        )
        .route_layer(middleware::from_fn(move |req: Request, next: Next| {
            require_token(token.clone(), req, next)
        }))
        .with_state(plane)
}

fn random_key() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..64)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn random_uuid() -> String {
    uuid_v4(rand::random())
}

fn ensure_namespace(plane: &Plane, ns: &str) -> Result<NamespaceDoc, ApiError> {
    if let Some(doc) = plane.store.get_namespace(ns)? {
        return Ok(doc);
    }
    let doc = NamespaceDoc {
        name: ns.to_string(),
        limits: Default::default(),
    };
    plane.store.put_namespace(&doc)?;
    plane.namespace_written(&doc);
    Ok(doc)
}

/// An identity as the admin API shows it: never with its key (which is not stored).
fn identity_json(id: &IdentityDoc) -> serde_json::Value {
    json!({ "uuid": id.uuid, "namespace": id.namespace, "subject": id.subject })
}

async fn create_user(State(plane): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: CreateUser = from_value(parse_object(&body)?)?;
    if req.namespace == "_" {
        return Err(ApiError::bad_request(crate::api::errors::NAMESPACE_ILLEGAL));
    }
    check_namespace(&req.namespace)?;
    let uuid = req.uuid.unwrap_or_else(random_uuid);
    let key = req.key.unwrap_or_else(random_key);
    // The shapes the router and the management API accept: anything else could never be used.
    if !is_uuid(&uuid) {
        return Err(ApiError::bad_request(
            "uuid must be a UUID: 8-4-4-4-12 hexadecimal digits",
        ));
    }
    if !is_key(&key) {
        return Err(ApiError::bad_request(
            "key must be 64 alphanumeric characters",
        ));
    }
    if plane.store.get_identity(&uuid)?.is_some() {
        return Err(ApiError::conflict(format!(
            "an identity with uuid {uuid} already exists"
        )));
    }
    ensure_namespace(&plane, &req.namespace)?;
    let id = IdentityDoc {
        subject: req.subject.unwrap_or_else(|| req.namespace.clone()),
        namespace: req.namespace,
        uuid,
        key_sha256: digest_key(&key),
    };
    plane.store.put_identity(&id)?;
    plane.identity_written(&id);
    // The one answer that carries the key: it is not stored, so it cannot be shown again.
    let mut shown = identity_json(&id);
    shown["key"] = serde_json::Value::String(key);
    Ok(ok(shown))
}

async fn get_user(
    State(plane): State<AppState>,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    let id = plane
        .store
        .get_identity(&uuid)?
        .ok_or_else(ApiError::not_found)?;
    Ok(ok(identity_json(&id)))
}

async fn delete_user(
    State(plane): State<AppState>,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    let id = plane
        .store
        .delete_identity(&uuid)?
        .ok_or_else(ApiError::not_found)?;
    plane.identity_deleted(&uuid);
    Ok(ok(identity_json(&id)))
}

async fn list_users(
    State(plane): State<AppState>,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    let ids: Vec<_> = plane
        .store
        .list_identities()?
        .iter()
        .filter(|i| i.namespace == ns)
        .map(identity_json)
        .collect();
    Ok(ok(serde_json::Value::Array(ids)))
}

async fn get_limits(
    State(plane): State<AppState>,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    let doc = plane
        .store
        .get_namespace(&ns)?
        .ok_or_else(ApiError::not_found)?;
    Ok(ok(json!(doc.limits)))
}

async fn set_limits(
    State(plane): State<AppState>,
    Path(ns): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_namespace(&ns)?;
    let req: SetLimits = from_value(parse_object(&body)?)?;
    let mut doc = ensure_namespace(&plane, &ns)?;
    if req.invocations_per_minute.is_some() {
        doc.limits.invocations_per_minute = req.invocations_per_minute;
    }
    if req.concurrent_invocations.is_some() {
        doc.limits.concurrent_invocations = req.concurrent_invocations;
    }
    if req.max_payload_bytes.is_some() {
        doc.limits.max_payload_bytes = req.max_payload_bytes;
    }
    plane.store.put_namespace(&doc)?;
    plane.namespace_written(&doc);
    Ok(ok(json!(doc.limits)))
}

async fn delete_limits(
    State(plane): State<AppState>,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    let mut doc = plane
        .store
        .get_namespace(&ns)?
        .ok_or_else(ApiError::not_found)?;
    doc.limits = NamespaceLimits::default();
    plane.store.put_namespace(&doc)?;
    plane.namespace_written(&doc);
    Ok(ok(json!(doc.limits)))
}
