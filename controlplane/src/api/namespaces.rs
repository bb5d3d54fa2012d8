//! `GET /api/v1` (unauthenticated info), `GET /api/v1/namespaces` and the effective limits of the
//! caller's namespace.

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use super::{ApiError, AppState, Caller, OwnNamespace, ok};

/// `GET /api/v1`, with the runtime manifest listed as OpenWhisk's info endpoint lists it.
pub async fn info() -> Response {
    ok(json!({
        "description": "OpenWhisk API",
        "api_version": "1.0.0",
        "api_version_path": "v1",
        "build": env!("CARGO_PKG_VERSION"),
        "buildno": env!("CARGO_PKG_VERSION"),
        "swagger_paths": { "ui": "/docs", "api-docs": "/api/v1/api-docs" },
        "runtimes": crate::runtimes::to_json(),
    }))
}

/// `GET /api/v1/namespaces`: the caller's namespace.
pub async fn list(caller: Caller) -> Response {
    ok(json!([caller.namespace]))
}

/// `GET /api/v1/namespaces/{ns}/limits`: effective values (system defaults filled in).
pub async fn limits(
    State(plane): State<AppState>,
    OwnNamespace(ns): OwnNamespace,
) -> Result<Response, ApiError> {
    let limits = plane
        .store
        .get_namespace(&ns.name)?
        .map(|d| d.limits)
        .unwrap_or_default();
    let max_conc = plane.config.max_action_concurrency.max(1);
    let d = plane.config.default_limits;
    Ok(ok(json!({
        "invocationsPerMinute": limits.invocations_per_minute.unwrap_or(d.invocations_per_minute),
        "concurrentInvocations": limits.concurrent_invocations.unwrap_or(d.concurrent_invocations),
        "firesPerMinute": 60,
        "maxPayloadSize": limits.max_payload_bytes.unwrap_or(d.max_payload_bytes),
        "minActionMemory": 128,
        "maxActionMemory": 512,
        "minActionLogs": 0,
        "maxActionLogs": 10,
        "minActionTimeout": 100,
        "maxActionTimeout": 300_000,
        "minActionConcurrency": 1,
        "maxActionConcurrency": max_conc,
        "maxParameterSize": 1_048_576,
    })))
}
