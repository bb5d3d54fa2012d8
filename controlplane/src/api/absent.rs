//! `GET /api/v1/namespaces/{ns}/triggers` and `.../rules`: collections OpenWhisk has and this
//! stack does not. Clients that read a whole namespace ask for them beside actions and packages
//! (the JS client's `namespaces.get()`, `aio rt namespace get`) and fail outright on a 404, so
//! their lists answer what is true here: nothing, with OpenWhisk's checks of the namespace,
//! `skip`, `limit` and `count`. Anything else about triggers or rules stays a 404.

use axum::response::Response;
use serde_json::json;

use super::{ApiError, ApiQuery, OwnNamespace, count_response, ok, query_bool, skip_limit};

fn empty(collection: &str, q: &super::QueryMap) -> Result<Response, ApiError> {
    let (skip, _) = skip_limit(q, collection)?;
    if query_bool(q, "count")? {
        return Ok(count_response(collection, 0, skip));
    }
    Ok(ok(json!([])))
}

/// `GET .../triggers[?skip=&limit=&count=]`: always empty; only the namespace's owner may ask.
pub async fn triggers(_: OwnNamespace, ApiQuery(q): ApiQuery) -> Result<Response, ApiError> {
    empty("triggers", &q)
}

/// `GET .../rules[?skip=&limit=&count=]`: always empty; only the namespace's owner may ask.
pub async fn rules(_: OwnNamespace, ApiQuery(q): ApiQuery) -> Result<Response, ApiError> {
    empty("rules", &q)
}
