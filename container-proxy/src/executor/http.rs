//! The HTTP executor: an OpenWhisk runtime in the same pod (`--runtime-url`, by default
//! `http://127.0.0.1:8080`) driven with `POST /init` and `POST /run` as in compat §6.
//!
//! The runtime may start after the proxy (a sidecar in the same pod): `/init` waits for it to
//! accept connections, up to the init timeout.
//!
//! The runtime's stdout/stderr are not ours, so its activations carry no logs, not even what it
//! printed during a successful init (the local executor keeps that for the first activation). In a
//! pod the runtime is another container running its image's own entrypoint: its output goes to a
//! pipe the container runtime holds and the kubelet writes to the node, and the proxy shares no
//! PID or mount namespace with it and holds no API token (the pod mounts none). Only the
//! Kubernetes API's `pods/log` can read it, as OpenWhisk's invoker does (cutting runs at the
//! runtimes' sentinel lines), which needs credentials this sidecar deliberately lacks.
//!
//! A runtime that times out or stops answering cannot be replaced from here: the container is
//! reported unusable.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Executor, InitError, InitPayload, RunOutcome, RunRequest};
use crate::record::{RunResponse, init_timeout_message};
use crate::report::Reporter;

/// How often `/init` is retried while the runtime does not accept connections yet.
const RUNTIME_POLL: Duration = Duration::from_millis(50);

/// Errors building the executor.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Talks to an OpenWhisk runtime over HTTP.
pub struct HttpExecutor {
    base: String,
    client: reqwest::Client,
    reporter: Reporter,
}

impl HttpExecutor {
    /// An executor for the runtime at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, reporter: Reporter) -> Result<Self, HttpError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(HttpExecutor {
            base: base.trim_end_matches('/').to_string(),
            client,
            reporter,
        })
    }

    async fn init(&self, payload: InitPayload) -> Result<(), InitError> {
        let body = json!({"value": {
            "name": payload.name,
            "main": payload.main,
            "binary": payload.binary,
            "code": payload.code,
            "env": Value::Object(payload.env),
        }});
        // In a pod the runtime container may still be starting: as OpenWhisk does, "connection
        // refused" means not yet listening, and `/init` is retried until its timeout.
        let deadline = tokio::time::Instant::now() + payload.timeout;
        let sent = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let r = self
                .client
                .post(format!("{}/init", self.base))
                .json(&body)
                .timeout(left.max(Duration::from_millis(1)))
                .send()
                .await;
            match r {
                Err(e)
                    if e.is_connect() && tokio::time::Instant::now() + RUNTIME_POLL < deadline =>
                {
                    tokio::time::sleep(RUNTIME_POLL).await;
                }
                other => break other,
            }
        };
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(InitError::developer(init_timeout_message(
                    payload.timeout.as_millis() as u64,
                )));
            }
            Err(e) => return Err(InitError::Internal(format!("runtime unreachable: {e}"))),
        };
        if resp.status().as_u16() == 200 {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").cloned())
            .map(|e| match e {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .unwrap_or_else(|| format!("Initialization has failed due to: {text}"));
        // The runtime's output is its container's, not ours: no logs to add.
        Err(InitError::developer(message))
    }

    async fn run(&self, request: RunRequest) -> RunOutcome {
        let response = self.run_inner(request).await;
        RunOutcome {
            response,
            logs: Vec::new(),
        }
    }

    async fn run_inner(&self, request: RunRequest) -> RunResponse {
        let limit_ms = request.timeout.as_millis() as u64;
        let mut builder = self
            .client
            .post(format!("{}/run", self.base))
            .json(&request.message)
            .timeout(request.timeout);
        if let Some(tp) = &request.traceparent {
            builder = builder.header("traceparent", tp);
        }
        let mut resp = match builder.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                self.reporter
                    .unusable("the runtime exceeded the action's time limit");
                return RunResponse::TimedOut { limit_ms };
            }
            Err(e) => {
                self.reporter.unusable(format!("runtime unreachable: {e}"));
                return RunResponse::Exited;
            }
        };
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        let mut size = 0usize;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    size += chunk.len();
                    let room = (request.max_result).saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    self.reporter
                        .unusable("the runtime exceeded the action's time limit");
                    return RunResponse::TimedOut { limit_ms };
                }
                Err(_) => return RunResponse::Exited,
            }
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        if status == 503 {
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| "System not initialized.".to_string());
            return RunResponse::Internal(msg);
        }
        RunResponse::Answered {
            ok: status == 200,
            body: text,
            size,
            truncated: (size > request.max_result).then_some(request.max_result),
        }
    }
}

impl Executor for HttpExecutor {
    fn init(&self, payload: InitPayload) -> BoxFuture<'_, Result<(), InitError>> {
        Box::pin(HttpExecutor::init(self, payload))
    }

    fn run(&self, request: RunRequest) -> BoxFuture<'_, RunOutcome> {
        Box::pin(HttpExecutor::run(self, request))
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
