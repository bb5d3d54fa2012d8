//! Response caching controlled by the action.
//!
//! An action opts in per response: a successful result carrying `__ow_cache_max_age: N` is
//! answered by its container proxy with `Cache-Control: max-age=N` (actions that answer with
//! headers can send that header themselves). The router keeps the *result* of such answers in a
//! bounded moka cache keyed by action, action revision, the caller's namespace (always: no byte
//! of one namespace's activation is served to another, public actions included) and the
//! canonical parameters (object keys sorted). Only 200s are kept, never errors; only bodies whose
//! `content-length` fits `MAX_CACHED_BODY`; an update changes the revision, so older entries are
//! never served again.
//!
//! A hit is answered without touching a container — after authentication, authorisation and
//! throttling — as the caller's own activation: a new id, their namespace and subject, recorded
//! like any other (`cache_hit.rs`), in the shape they asked for.
//!
//! The router learns that an action caches from its first cacheable response; from then on it
//! reads that action's (small) request bodies to compute keys, so the second call stores and the
//! third is a hit.
//!
//! Everything about what is cached is decided here: whether a request needs its body read to
//! look the cache up ([`ResponseCache::is_cacheable`]), its key ([`ResponseCache::key`]), whether
//! a response may be stored and for how long ([`ResponseCache::storable`]), what of it is kept
//! ([`ResponseCache::put_answer`]), and the store itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::tables::ActionMeta;
use crate::config::{CACHE_CAPACITY_BYTES, MAX_CACHED_BODY};

/// One cached result.
#[derive(Debug)]
pub struct Cached {
    /// The action's result (JSON).
    pub result: serde_json::Value,
    /// Its serialised size, for the cache's weigher.
    size: usize,
    expires: Instant,
}

/// The cache, and which action revisions are known to produce cacheable answers.
pub struct ResponseCache {
    entries: moka::sync::Cache<String, Arc<Cached>>,
    cacheable: DashMap<Arc<str>, u64>,
}

impl Default for ResponseCache {
    fn default() -> Self {
        Self::new(CACHE_CAPACITY_BYTES)
    }
}

impl ResponseCache {
    /// A cache holding at most `max_bytes` of bodies.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &String, v: &Arc<Cached>| {
                    (k.len() + v.size).min(u32::MAX as usize) as u32
                })
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            cacheable: DashMap::new(),
        }
    }

    /// Whether this revision of the action has answered cacheably before.
    pub fn is_cacheable(&self, action: &ActionMeta) -> bool {
        self.cacheable
            .get(&action.fqn)
            .is_some_and(|r| *r == action.revision)
    }

    /// Whether a container's answer to a blocking invoke of `action` may be stored, and for how
    /// long: a 200 whose `Cache-Control` allows it, small enough to buffer. Such an answer also
    /// teaches the cache that this revision of the action caches.
    pub fn storable(
        &self,
        action: &ActionMeta,
        blocking: bool,
        status: u16,
        cache_control: Option<&str>,
        content_length: Option<u64>,
    ) -> Option<Duration> {
        if status != 200 || !blocking {
            return None;
        }
        let ttl = cache_control.and_then(max_age)?;
        if content_length.is_none_or(|len| len > MAX_CACHED_BODY) {
            return None;
        }
        self.cacheable.insert(action.fqn.clone(), action.revision);
        Some(ttl)
    }

    /// The key of an invoke by a caller of `caller_ns`, or `None` when the parameters are not
    /// JSON.
    pub fn key(action: &ActionMeta, caller_ns: &str, params: &[u8]) -> Option<String> {
        let params: serde_json::Value = if params.iter().all(u8::is_ascii_whitespace) {
            serde_json::json!({})
        } else {
            serde_json::from_slice(params).ok()?
        };
        // serde_json's map is ordered by key, so this is a canonical form.
        Some(format!(
            "{}\u{0}{}\u{0}{}\u{0}{}",
            action.fqn, action.revision, caller_ns, params
        ))
    }

    pub fn get(&self, key: &str) -> Option<Arc<Cached>> {
        let hit = self.entries.get(key)?;
        if hit.expires <= Instant::now() {
            self.entries.invalidate(key);
            return None;
        }
        Some(hit)
    }

    /// Keeps the result of a successful blocking answer: the body itself with `result=true`, the
    /// record's `response.result` otherwise. Nothing else of the activation (its id, logs,
    /// subject) is kept. An answer of neither shape is not kept.
    pub fn put_answer(&self, key: String, answer: &[u8], result_only: bool, ttl: Duration) {
        let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(answer) else {
            return;
        };
        let result = if result_only {
            v
        } else {
            match v.get_mut("response").and_then(|r| r.get_mut("result")) {
                Some(r) => r.take(),
                None => return,
            }
        };
        self.put(key, result, ttl);
    }

    /// Keeps a result under `key` for `ttl` (a web action's, see `web::cache`).
    pub fn put_result(&self, key: String, result: serde_json::Value, ttl: Duration) {
        self.put(key, result, ttl);
    }

    fn put(&self, key: String, result: serde_json::Value, ttl: Duration) {
        let expires = Instant::now() + ttl;
        let size = result.to_string().len();
        self.entries.insert(
            key,
            Arc::new(Cached {
                result,
                size,
                expires,
            }),
        );
    }
}

/// `max-age` of a `Cache-Control` value, when positive and not forbidden by `no-store`.
fn max_age(cache_control: &str) -> Option<Duration> {
    let mut age = None;
    for directive in cache_control.split(',').map(str::trim) {
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("private") {
            return None;
        }
        if let Some(v) = directive.strip_prefix("max-age=") {
            age = v.trim().parse::<u64>().ok().filter(|s| *s > 0);
        }
    }
    age.map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures;

    fn action(public: bool, revision: u64) -> ActionMeta {
        ActionMeta {
            public,
            ..fixtures::action("guest/a", revision)
        }
    }

    #[test]
    fn keys_are_canonical_and_scoped() {
        let a = action(false, 1);
        let k1 = ResponseCache::key(&a, "guest", br#"{"b":1,"a":2}"#).unwrap();
        let k2 = ResponseCache::key(&a, "guest", br#"{ "a":2, "b":1 }"#).unwrap();
        assert_eq!(k1, k2);
        assert_ne!(
            k1,
            ResponseCache::key(&a, "other", br#"{"a":2,"b":1}"#).unwrap()
        );
        assert_ne!(
            k1,
            ResponseCache::key(&action(false, 2), "guest", br#"{"a":2,"b":1}"#).unwrap()
        );
        assert!(ResponseCache::key(&a, "guest", b"not json").is_none());
    }

    #[test]
    fn public_actions_are_scoped_to_the_caller_too() {
        let public = action(true, 1);
        assert_ne!(
            ResponseCache::key(&public, "guest", b"{}"),
            ResponseCache::key(&public, "other", b"{}")
        );
        assert_eq!(
            ResponseCache::key(&public, "guest", b"{}"),
            ResponseCache::key(&public, "guest", b"")
        );
    }

    #[test]
    fn entries_expire() {
        let c = ResponseCache::default();
        c.put_answer("k".into(), b"{}", true, Duration::from_millis(0));
        assert!(c.get("k").is_none());
        c.put_answer("k".into(), br#"{"x":1}"#, true, Duration::from_secs(60));
        assert_eq!(c.get("k").unwrap().result, serde_json::json!({"x": 1}));
    }

    #[test]
    fn only_the_result_of_a_record_is_kept() {
        let c = ResponseCache::default();
        let record = br#"{"activationId":"a1","namespace":"guest","subject":"alice",
            "logs":["secret line"],"response":{"status":"success","success":true,
            "result":{"x":1}}}"#;
        c.put_answer("k".into(), record, false, Duration::from_secs(60));
        let hit = c.get("k").unwrap();
        assert_eq!(hit.result, serde_json::json!({"x": 1}));
        // Nothing but the result: no id, namespace, subject or logs of the first caller.
        let kept = hit.result.to_string();
        for leaked in ["a1", "guest", "alice", "secret line"] {
            assert!(!kept.contains(leaked), "{leaked} kept");
        }
        c.put_answer(
            "j".into(),
            br#"{"no":"record"}"#,
            false,
            Duration::from_secs(60),
        );
        assert!(c.get("j").is_none());
        c.put_answer("n".into(), b"not json", true, Duration::from_secs(60));
        assert!(c.get("n").is_none());
    }

    #[test]
    fn only_small_successful_blocking_answers_that_allow_it_are_stored() {
        let c = ResponseCache::default();
        let a = action(false, 1);
        assert!(!c.is_cacheable(&a));
        let ok = |status, blocking, cc: Option<&str>, len: Option<u64>| {
            c.storable(&a, blocking, status, cc, len)
        };
        assert_eq!(ok(502, true, Some("max-age=5"), Some(10)), None);
        assert_eq!(ok(200, false, Some("max-age=5"), Some(10)), None);
        assert_eq!(ok(200, true, None, Some(10)), None);
        assert_eq!(ok(200, true, Some("max-age=5"), None), None);
        assert_eq!(
            ok(200, true, Some("max-age=5"), Some(MAX_CACHED_BODY + 1)),
            None
        );
        assert!(!c.is_cacheable(&a));
        assert_eq!(
            ok(200, true, Some("max-age=5"), Some(10)),
            Some(Duration::from_secs(5))
        );
        assert!(c.is_cacheable(&a));
        assert!(!c.is_cacheable(&action(false, 2)));
    }

    #[test]
    fn cache_control_directives() {
        assert_eq!(max_age("max-age=60"), Some(Duration::from_secs(60)));
        assert_eq!(max_age("public, max-age=5"), Some(Duration::from_secs(5)));
        assert_eq!(max_age("max-age=0"), None);
        assert_eq!(max_age("no-store, max-age=5"), None);
        assert_eq!(max_age("no-cache"), None);
    }
}
