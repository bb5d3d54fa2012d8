//! `/api/v1/namespaces/{ns}/activations[/{id}[/result|/logs]]`: the records container proxies
//! hand in through `ReportActivation`, in OpenWhisk's API form.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use whisk_vocab::record::{api_json_of, summary_json_of};

use super::{
    ApiError, ApiQuery, AppState, Namespace, OwnNamespace, QueryMap, count_response,
    malformed_param, ok, query_bool, skip_limit,
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

/// `since` / `upto`: epoch milliseconds (OpenWhisk's `Instant.ofEpochMilli`, despite its text).
fn epoch(q: &QueryMap, key: &str) -> Result<Option<i64>, ApiError> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            malformed_param(
                key,
                &format!("Parameter is not a valid value for epoch seconds: {v}"),
            )
        }),
    }
}

/// The `name` filter: `action` or `package/action`; blank means no filter.
fn name_filter(q: &QueryMap) -> Result<Option<String>, ApiError> {
    let Some(n) = q.get("name").filter(|n| !n.trim().is_empty()) else {
        return Ok(None);
    };
    let parts: Vec<&str> = n.split('/').collect();
    if parts.len() > 2 || parts.iter().any(|p| !crate::names::is_valid_entity_name(p)) {
        return Err(malformed_param(
            "name",
            &format!("Parameter may be a 'simple' name or 'package-name/simple' name: {n}"),
        ));
    }
    Ok(Some(n.clone()))
}

/// What a `name` filter matches a record by, as OpenWhisk's `whisks-filters` view keys it: the
/// binding's name and the action's through a binding, the package's and the action's for an
/// action in a package, else the action's name alone. So `?name=echo` finds only activations
/// of an action outside any package; `?name=pkg/echo` those of `pkg/echo`.
fn filter_key(r: &Value) -> Option<String> {
    let name = r.get("name")?.as_str()?;
    let package = match annotation(r, "binding") {
        Some(binding) => binding.split('/').nth(1).map(str::to_string),
        None => annotation(r, "path").and_then(|path| {
            let segments: Vec<&str> = path.split('/').collect();
            (segments.len() == 3).then(|| segments[1].to_string())
        }),
    };
    Some(match package {
        Some(p) => format!("{p}/{name}"),
        None => name.to_string(),
    })
}

/// `GET .../activations?name=&skip=&limit=&docs=&since=&upto=&count=`, newest first.
pub async fn list(
    State(plane): State<AppState>,
    OwnNamespace(Namespace { name: ns, .. }): OwnNamespace,
    ApiQuery(q): ApiQuery,
) -> Result<Response, ApiError> {
    let (skip, limit) = skip_limit(&q, "activations")?;
    let docs = query_bool(&q, "docs")?;
    let count = query_bool(&q, "count")?;
    let name = name_filter(&q)?;
    let since = epoch(&q, "since")?;
    let upto = epoch(&q, "upto")?;
    if docs && count {
        return Err(ApiError::bad_request(
            "The parameter 'docs' is not permitted with 'count'.",
        ));
    }
    let filter = |r: &Value| {
        let start = r.get("start").and_then(Value::as_i64).unwrap_or(0);
        if since.is_some_and(|s| start < s) || upto.is_some_and(|u| start > u) {
            return false;
        }
        name.as_ref()
            .is_none_or(|n| filter_key(r).as_deref() == Some(n.as_str()))
    };
    if count {
        let all = plane.store.list_activations(&ns, &filter, 0, usize::MAX)?;
        return Ok(count_response("activations", all.len(), skip));
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

/// The string value of a record's annotation.
fn annotation<'a>(r: &'a Value, key: &str) -> Option<&'a str> {
    r.get("annotations")?
        .as_array()?
        .iter()
        .find(|kv| kv.get("key").and_then(Value::as_str) == Some(key))?
        .get("value")?
        .as_str()
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
