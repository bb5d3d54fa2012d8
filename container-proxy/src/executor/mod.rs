//! The back side: whatever runs the action's code, behind one trait so the front side (admission,
//! records, answers) is the same for a local launcher process and an HTTP runtime.

pub mod http;
pub mod local;
pub mod memory;
pub mod user;

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::record::RunResponse;

/// What an executor needs to initialise the action (OpenWhisk's `/init` `value`).
#[derive(Debug, Clone)]
pub struct InitPayload {
    /// `/ns/[pkg/]name`.
    pub name: String,
    pub kind: String,
    pub main: String,
    pub code: String,
    pub binary: bool,
    /// String-valued init environment.
    pub env: Map<String, Value>,
    /// At most this many activations at once (launcher pool size).
    pub concurrency: u32,
    /// Init time limit.
    pub timeout: Duration,
    /// The action's memory limit (`limits.memory`), in bytes: the local executor kills a run
    /// whose processes hold more (`executor/memory.rs`).
    pub memory_bytes: u64,
    /// At most this many bytes of the output printed during init are kept (the action's log
    /// limit), for the record of a failed init.
    pub log_limit: usize,
}

impl InitError {
    /// A developer error without logs.
    pub fn developer(message: impl Into<String>) -> Self {
        InitError::Developer {
            message: message.into(),
            logs: Vec::new(),
        }
    }
}

/// Why init failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InitError {
    /// The action's code failed: developer error, answered 502 with this text and the lines the
    /// action printed while it initialised (empty when the executor cannot see them).
    #[error("{message}")]
    Developer { message: String, logs: Vec<String> },
    /// The runtime could not be started or reached.
    #[error("{0}")]
    Internal(String),
}

/// One `/run`.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// OpenWhisk's `/run` body.
    pub message: Value,
    /// W3C trace context of the invoke, exported as `TRACEPARENT`.
    pub traceparent: Option<String>,
    pub timeout: Duration,
    pub log_limit: usize,
    pub max_result: usize,
}

/// What one run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub response: RunResponse,
    pub logs: Vec<String>,
}

/// A runtime that can be initialised once and then run activations.
pub trait Executor: Send + Sync {
    /// Loads the action's code.
    fn init(&self, payload: InitPayload) -> BoxFuture<'_, Result<(), InitError>>;
    /// Runs one activation; never fails: every failure is a [`RunResponse`].
    fn run(&self, request: RunRequest) -> BoxFuture<'_, RunOutcome>;
    /// Stops every process it started.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}
