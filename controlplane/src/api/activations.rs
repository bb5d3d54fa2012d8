//! `/api/v1/namespaces/{ns}/activations[/{id}[/result|/logs]]`: the records container proxies
//! hand in through `ReportActivation`, in OpenWhisk's API form.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use whisk_vocab::record::{api_json_of, summary_json_of};

use super::{
    ApiError, ApiQuery, AppState, Namespace, OwnNamespace, QueryMap, ok, query_bool, skip_limit,
};

/// OpenWhisk's `ActivationId.parse` checks and texts.
fn check_id(id: &str) -> Result<(), ApiError> {
    if id.len() != 32 {
        return Err(ApiError::bad_request(format!(
            "Activation id length is {} B but must be 32 B.",
            id.len()
        )));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ApiError::bad_request("The activation id is not valid."));
    }
    Ok(())
}

fn epoch(q: &QueryMap, key: &str) -> Result<Option<i64>, ApiError> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "Parameter is not a valid value for epoch seconds: {v}"
            ))
        }),
    }
}

/// `GET .../activations?name=&skip=&limit=&docs=&since=&upto=&count=`, newest first.
pub async fn list(
    State(plane): State<AppState>,
    OwnNamespace(Namespace { name: ns, .. }): OwnNamespace,
    ApiQuery(q): ApiQuery,
) -> Result<Response, ApiError> {
    let (skip, limit) = skip_limit(&q, "activations")?;
    let docs = query_bool(&q, "docs");
    let count = query_bool(&q, "count");
    if docs && count {
        return Err(ApiError::bad_request(
            "The parameter 'docs' is not permitted with 'count'.",
        ));
    }
    let name = q.get("name").filter(|n| !n.is_empty()).cloned();
    if let Some(n) = &name {
        let parts: Vec<&str> = n.split('/').collect();
        if parts.len() > 2 || parts.iter().any(|p| !crate::names::is_valid_entity_name(p)) {
            return Err(ApiError::bad_request(format!(
                "Parameter may be a 'simple' name or 'package-name/simple' name: {n}"
            )));
        }
    }
    let since = epoch(&q, "since")?;
    let upto = epoch(&q, "upto")?;
    let filter = |r: &Value| {
        let start = r.get("start").and_then(Value::as_i64).unwrap_or(0);
        if since.is_some_and(|s| start < s) || upto.is_some_and(|u| start > u) {
            return false;
        }
        match &name {
            None => true,
            Some(n) if n.contains('/') => path_of(r).is_some_and(|p| p.ends_with(&format!("/{n}"))),
            Some(n) => r.get("name").and_then(Value::as_str) == Some(n.as_str()),
        }
    };
    if count {
        let all = plane.store.list_activations(&ns, &filter, 0, usize::MAX)?;
        return Ok(ok(json!({ "activations": all.len() })));
    }
    let records = plane.store.list_activations(&ns, &filter, skip, limit)?;
    let out: Vec<Value> = records
        .iter()
        .map(|r| {
            if docs {
                api_json_of(r)
            } else {
                summary_json_of(r)
            }
        })
        .collect();
    Ok(ok(Value::Array(out)))
}

/// The `path` annotation of a record (`ns[/pkg]/name`).
fn path_of(r: &Value) -> Option<String> {
    r.get("annotations")?
        .as_array()?
        .iter()
        .find(|kv| kv.get("key").and_then(Value::as_str) == Some("path"))?
        .get("value")?
        .as_str()
        .map(str::to_string)
}

fn load(plane: &AppState, ns: &str, id: &str) -> Result<Value, ApiError> {
    check_id(id)?;
    plane
        .store
        .get_activation(ns, id)?
        .ok_or_else(ApiError::not_found)
}

/// `GET .../activations/{id}`: the extended record.
pub async fn get(
    State(plane): State<AppState>,
    OwnNamespace(ns): OwnNamespace,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let r = load(&plane, &ns.name, &id)?;
    Ok(ok(api_json_of(&r)))
}

/// `GET .../activations/{id}/result` and `.../logs`.
pub async fn get_part(
    State(plane): State<AppState>,
    OwnNamespace(ns): OwnNamespace,
    Path((_, id, part)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let r = load(&plane, &ns.name, &id)?;
    let ext = api_json_of(&r);
    match part.as_str() {
        "result" => Ok(ok(ext.get("response").cloned().unwrap_or(json!({})))),
        "logs" => Ok(ok(
            json!({ "logs": ext.get("logs").cloned().unwrap_or(json!([])) }),
        )),
        _ => Err(ApiError::not_found()),
    }
}
