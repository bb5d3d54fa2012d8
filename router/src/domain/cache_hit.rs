//! Answering an invoke from the response cache.
//!
//! A caching action's invoke is looked up once its parameters are known. A hit is the caller's
//! own activation: it keeps the new activation id the pipeline gave it, its namespace and
//! subject, is recorded like any activation (annotated `cached`, so `activations get` finds it
//! and says where it came from), and is answered in the shape the caller asked for — the result
//! with `result=true`, the record otherwise. The container slot it was admitted onto is released
//! unused. What is cached, and under which key, is `cache.rs`'s business.

use super::cache::ResponseCache;
use super::pipeline::{Admission, Router};
use super::records;

/// What a cache lookup found.
pub enum Lookup {
    /// Answered from the cache: status and JSON body.
    Hit { status: u16, body: Vec<u8> },
    /// Not in the cache: forward the invoke; store its answer under `key` (if the parameters
    /// gave one).
    Miss {
        admission: Admission,
        key: Option<String>,
    },
}

impl Router {
    /// Looks the invoke holding `admission` up with its parameters `params`.
    pub fn look_up_cache(&self, admission: Admission, params: &[u8]) -> Lookup {
        let inv = &admission.invocation;
        let key = ResponseCache::key(&inv.action, &inv.namespace, params);
        let Some(hit) = key.as_deref().and_then(|k| self.cache.get(k)) else {
            return Lookup::Miss { admission, key };
        };
        let record = records::cached(inv, hit.result.clone());
        let (status, answer) = record.blocking_answer(inv.result);
        self.control().report_activation(record);
        Lookup::Hit {
            status,
            body: answer.to_string().into_bytes(),
        }
    }
}
