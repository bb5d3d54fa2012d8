//! The response cache for web requests: a `GET` of an action that caches is answered from the
//! cache, as the owner's activation, without a container (see `domain::cache`, which owns the
//! store and its rules).
//!
//! What makes a web request distinct is its key: the action revision and owner (the cache's own
//! key), the extension and path (they shape the answer), the raw query, the caller (`__ow_user`)
//! and the headers an answer may depend on — credentials, cookies and content negotiation. Any
//! other header (request ids, user agents, forwarding) is left out, or no two browsers would ever
//! share an entry.
//!
//! An answer may be kept when the action allowed it: the proxy's `Cache-Control` (an action
//! returning `__ow_cache_max_age`), or a `Cache-Control` header in its `.http` result.

use serde_json::{Map, Value, json};

use super::admit::WebTicket;
use super::result::WebResponse;
use crate::domain::cache::ResponseCache;
use crate::domain::pipeline::Router;
use crate::domain::records;
use crate::domain::tables::ActionMeta;

/// The request headers a cached answer may vary by.
const VARY: [&str; 6] = [
    "authorization",
    "cookie",
    "accept",
    "accept-language",
    "x-require-whisk-auth",
    "content-type",
];

/// The cache key of a `GET`; `None` for other methods and for sequences.
pub fn key(ticket: &WebTicket, method: &str, headers: &[(String, String)]) -> Option<String> {
    if method != "GET" || ticket.invocation.action.is_sequence() {
        return None;
    }
    let varied: Map<String, Value> = headers
        .iter()
        .filter(|(k, _)| VARY.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let material = json!({
        "web": format!("{:?}", ticket.path.extension),
        "path": ticket.path.rest,
        "query": ticket.path.query,
        "user": ticket.user.as_deref(),
        "headers": varied,
    });
    ResponseCache::key(
        &ticket.invocation.action,
        &ticket.invocation.namespace,
        material.to_string().as_bytes(),
    )
}

impl Router {
    /// A cached result for a web request with `key`: recorded as the owner's activation.
    pub fn web_cache_hit(&self, ticket: &WebTicket, key: &str) -> Option<Value> {
        if !self.cache.is_cacheable(&ticket.invocation.action) {
            return None;
        }
        let hit = self.cache.get(key)?;
        let record = records::cached(&ticket.invocation, hit.result.clone());
        self.control().report_activation(record);
        Some(hit.result.clone())
    }

    /// Keeps a successful web activation's `result` under `key` when the action allowed it.
    pub fn web_cache_store(
        &self,
        action: &ActionMeta,
        key: String,
        result: Value,
        proxy_cache_control: Option<&str>,
        response: &WebResponse,
    ) {
        let answered = response
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("cache-control"))
            .map(|(_, v)| v.as_str());
        let Some(cache_control) = proxy_cache_control.or(answered) else {
            return;
        };
        let size = result.to_string().len() as u64;
        if let Some(ttl) = self.cache.storable(
            action,
            true,
            response.status,
            Some(cache_control),
            Some(size),
        ) {
            self.cache.put_result(key, result, ttl);
        }
    }
}
