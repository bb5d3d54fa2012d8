//! The proxy's state and its three operations — init, health and invoke — expressed as plain
//! [`Answer`]s (status, JSON body, headers) so the HTTP layer only moves bytes.
//!
//! An invoke is admitted (or refused with 429), then runs in its own task: the caller gets
//! `202 {"activationId"}` at once when non-blocking, or when its wait (`x-whisk-deadline`)
//! expires, and the activation goes on and is reported either way.
//!
//! Each invoke runs in an `activation` span (OpenTelemetry server span named after the action,
//! with `faas.*` attributes) that continues the caller's `traceparent`; its `run` child's context
//! is what the action sees as `TRACEPARENT`, and the first activation after an init gets an
//! `init` child covering that init (`faas.coldstart = true`).

use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::KeyValue;
use serde_json::{Map, Value, json};
use tracing::Instrument;
use tracing::field::Empty;
use whisk_telemetry::opentelemetry;
use whisk_vocab::{is_activation_id, new_activation_id, now_ms};

use crate::action::ActionSpec;
use crate::activation::execute;
use crate::admission::Admission;
use crate::answer::Answer;
use crate::config::{Config, ExecutorKind};
use crate::context::InvokeContext;
use crate::executor::http::{HttpError, HttpExecutor};
use crate::executor::local::{LocalError, LocalExecutor};
use crate::executor::user::ActionUser;
use crate::executor::{Executor, InitError, InitPayload};
use crate::gate::Gate;
use crate::metrics::ProxyMetrics;
use crate::params::{merge, parse_payload};
use crate::record::Recorded;
use crate::report::{Reporter, ReporterConfig};
use crate::running::Running;

/// Why invokes are refused while the report spool is at its bound.
pub const REPORTS_STUCK: &str =
    "This container cannot take invokes: its activation records are not being acknowledged.";

/// OpenWhisk's answer to a second init.
pub const INIT_TWICE: &str = "Cannot initialize the action more than once.";

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("invalid action in the environment: {0}")]
    EnvAction(#[from] crate::action::ActionError),
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
}

/// When an init ran, taken by the first activation after it (`initTime`, the `init` span).
#[derive(Debug, Clone, Copy)]
struct InitTiming {
    ms: u64,
    start: SystemTime,
    end: SystemTime,
}

/// The initialised action and everything that lives as long as it.
struct Ready {
    action: ActionSpec,
    admission: Admission,
    /// Taken by the first activation after init.
    init_timing: Mutex<Option<InitTiming>>,
    /// Set when an env-baked action failed to initialise: every invoke is that developer error.
    init_error: Option<String>,
}

/// The container proxy.
pub struct Proxy {
    kind: Option<String>,
    executor: Arc<dyn Executor>,
    reporter: Reporter,
    ready: RwLock<Option<Arc<Ready>>>,
    init_lock: tokio::sync::Mutex<()>,
    metrics: ProxyMetrics,
    running: Running,
    gate: Gate,
}

impl Proxy {
    /// Starts the reporter and the executor, and initialises an action found in the environment.
    pub async fn start(
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Arc<Self>, StartError> {
        let metrics = ProxyMetrics::new();
        let reporter = Reporter::start(ReporterConfig {
            capacity: config.report_queue,
            spool_dir: config.spool_dir.clone(),
            spool_max_bytes: config.spool_max_bytes,
            gauges: metrics.spool.clone(),
            ..ReporterConfig::new(
                config.controlplane.clone(),
                config.container_id.clone(),
                config.token.clone(),
            )
        })?;
        let env_action = ActionSpec::from_env(&env, config.kind.as_deref())?;
        let executor: Arc<dyn Executor> = match config.executor {
            ExecutorKind::Local => {
                // A baked action is initialised below; only a stem cell pre-starts its launcher.
                let stem_kind = if env_action.is_some() {
                    None
                } else {
                    config.kind.as_deref()
                };
                Arc::new(
                    LocalExecutor::start(
                        stem_kind,
                        config.api_host.clone(),
                        ActionUser::choose(config.action_uid),
                        reporter.clone(),
                    )
                    .await?,
                )
            }
            ExecutorKind::Http => {
                Arc::new(HttpExecutor::new(&config.runtime_url, reporter.clone())?)
            }
        };
        let proxy = Arc::new(Proxy {
            kind: config.kind.clone(),
            executor,
            reporter,
            ready: RwLock::new(None),
            init_lock: tokio::sync::Mutex::new(()),
            metrics,
            running: Running::default(),
            gate: Gate::new(config.token.clone()),
        });
        let weak: Weak<Proxy> = Arc::downgrade(&proxy);
        proxy.metrics.registry.on_scrape(move || {
            if let Some(p) = weak.upgrade() {
                p.refresh_gauges();
            }
        });
        if let Some(action) = env_action {
            match proxy.initialise(action.clone(), Map::new()).await {
                Ok(()) => tracing::info!(action = %action.fqn, "initialised from the environment"),
                Err(err) => {
                    tracing::error!(action = %action.fqn, error = %err, "init from the environment failed");
                    proxy.set_ready(action, None, Some(err.to_string()));
                }
            }
        }
        Ok(proxy)
    }

    fn ready(&self) -> Option<Arc<Ready>> {
        self.ready.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_ready(
        &self,
        action: ActionSpec,
        init_timing: Option<InitTiming>,
        init_error: Option<String>,
    ) {
        let ready = Ready {
            admission: Admission::new(action.limits.concurrency),
            action,
            init_timing: Mutex::new(init_timing),
            init_error,
        };
        *self.ready.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(ready));
    }

    async fn initialise(
        &self,
        action: ActionSpec,
        extra_env: Map<String, Value>,
    ) -> Result<(), InitError> {
        let mut env = action.init_env();
        for (k, v) in extra_env {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            env.insert(k, Value::String(v));
        }
        env.insert(
            "__OW_NAMESPACE".into(),
            Value::String(action.namespace.clone()),
        );
        env.insert(
            "__OW_ACTION_NAME".into(),
            Value::String(action.action_name()),
        );
        env.insert(
            "__OW_ACTION_VERSION".into(),
            Value::String(action.version.clone()),
        );
        let payload = InitPayload {
            name: action.action_name(),
            kind: action.kind.clone(),
            main: action.main(),
            code: action.exec.code.clone(),
            binary: action.exec.binary,
            env,
            concurrency: action.limits.concurrency,
            timeout: Duration::from_millis(action.limits.timeout),
            log_limit: action.limits.log_bytes(),
            memory_bytes: action.limits.memory.saturating_mul(1024 * 1024),
        };
        let started = Instant::now();
        let start = SystemTime::now();
        let result = self.executor.init(payload).await;
        let elapsed = started.elapsed();
        self.metrics.init_duration.observe(elapsed.as_secs_f64());
        result?;
        let timing = InitTiming {
            ms: elapsed.as_millis() as u64,
            start,
            end: SystemTime::now(),
        };
        self.set_ready(action, Some(timing), None);
        Ok(())
    }

    /// `POST /_whisk/init` with `{"action": {...}, "env": {...}}`.
    pub async fn init(&self, body: &[u8]) -> Answer {
        let parsed: Result<Value, _> = serde_json::from_slice(body);
        let Ok(Value::Object(mut obj)) = parsed else {
            return Answer::json(
                400,
                json!({"error": "The init body must be a JSON object."}),
            );
        };
        let action = match obj.remove("action").map(ActionSpec::from_json) {
            Some(Ok(a)) => a,
            Some(Err(e)) => return Answer::json(400, json!({"error": e.to_string()})),
            None => return Answer::json(400, json!({"error": "Missing 'action'."})),
        };
        let env = match obj.remove("env") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let _guard = self.init_lock.lock().await;
        if self.ready().is_some() {
            return Answer::json(403, json!({"error": INIT_TWICE}));
        }
        match self.initialise(action, env).await {
            Ok(()) => Answer::json(200, json!({"ok": true})),
            Err(InitError::Developer { message, logs }) => {
                Answer::json(502, json!({"error": message, "logs": logs}))
            }
            Err(InitError::Internal(msg)) => {
                self.reporter.unusable(format!("init failed: {msg}"));
                Answer::json(500, json!({"error": msg}))
            }
        }
    }

    /// `GET /_whisk/health`.
    pub fn health(&self) -> Value {
        match self.ready() {
            Some(r) => json!({
                "ready": r.init_error.is_none(),
                "initialized": r.init_error.is_none(),
                "in_flight": r.admission.in_flight(),
                "queued": r.admission.queued(),
                "capacity": r.admission.capacity(),
                "kind": r.action.kind,
                "action": r.action.fqn,
            }),
            None => json!({
                "ready": true,
                "initialized": false,
                "in_flight": 0,
                "queued": 0,
                "capacity": 0,
                "kind": self.kind,
                "action": Value::Null,
            }),
        }
    }

    /// What a request must present before init, invoke or the activation-end wait.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The activations running here (the router waits on their end).
    pub fn running(&self) -> &Running {
        &self.running
    }

    /// The proxy's metrics (rendered at `/metrics`).
    pub fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }

    /// Sets the gauges that mirror admission state (before each scrape).
    fn refresh_gauges(&self) {
        let (in_flight, queued, capacity) = match self.ready() {
            Some(r) => (
                r.admission.in_flight(),
                r.admission.queued(),
                r.admission.capacity(),
            ),
            None => (0, 0, 0),
        };
        let m = &self.metrics;
        m.in_flight
            .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
        m.queue_length
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
        m.capacity.set(i64::try_from(capacity).unwrap_or(i64::MAX));
    }

    /// `/readyz`: a stem cell or an initialised action can take work; an action whose init
    /// failed cannot.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.reporter.accepting() {
            return Err(REPORTS_STUCK.to_string());
        }
        match self.ready() {
            Some(r) => match &r.init_error {
                Some(e) => Err(format!("init failed: {e}")),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Reports dropped (no control plane, queue full) or refused (spool full).
    pub fn dropped_reports(&self) -> u64 {
        self.reporter.dropped()
    }

    /// Reports waiting in the spool for the control plane.
    pub fn spooled_reports(&self) -> u64 {
        self.reporter.spooled()
    }

    /// An invoke: `get` looks up request headers (lower-case names), `body` is the payload.
    pub async fn invoke<'a>(
        self: &Arc<Self>,
        get: impl Fn(&str) -> Option<&'a str>,
        body: &[u8],
    ) -> Answer {
        let id_header = get("x-whisk-activation-id")
            .map(str::trim)
            .filter(|id| is_activation_id(id))
            .map(str::to_string);
        let action = get("x-whisk-action")
            .map(|a| a.trim().trim_start_matches('/'))
            .filter(|a| !a.is_empty());
        // OpenTelemetry FaaS server span, named after the function (semantic conventions).
        let span = tracing::info_span!(
            "activation",
            otel.name = action.unwrap_or("activation"),
            otel.kind = "server",
            faas.trigger = "http",
            faas.invocation_id = id_header.as_deref().unwrap_or_default(),
            faas.name = action.unwrap_or_default(),
            faas.version = Empty,
            faas.coldstart = Empty,
            whisk.namespace = get("x-whisk-namespace").map(str::trim).unwrap_or_default(),
            whisk.transaction_id = get("x-whisk-transaction-id")
                .map(str::trim)
                .unwrap_or_default(),
            http.response.status_code = Empty,
        );
        whisk_telemetry::set_parent_from_traceparent(&span, get("traceparent"), get("tracestate"));
        let answer = self
            .invoke_inner(&get, body, &span)
            .instrument(span.clone())
            .await;
        span.record("http.response.status_code", answer.status);
        match id_header {
            Some(id) => answer.with_header("x-openwhisk-activation-id", id),
            None => answer,
        }
    }

    async fn invoke_inner<'a>(
        self: &Arc<Self>,
        get: &impl Fn(&str) -> Option<&'a str>,
        body: &[u8],
        span: &tracing::Span,
    ) -> Answer {
        let ctx = match InvokeContext::parse(get) {
            Ok(ctx) => ctx,
            Err(e) => {
                let code = get("x-whisk-transaction-id")
                    .map(str::to_string)
                    .unwrap_or_else(new_activation_id);
                return Answer::error(400, e.to_string(), &code);
            }
        };
        let tid = ctx.transaction_id.clone();
        let payload = match parse_payload(body) {
            Ok(p) => p,
            Err(e) => return Answer::error(400, e.to_string(), &tid),
        };
        let Some(ready) = self.ready() else {
            return Answer::error(503, "System not initialized.", &tid);
        };
        if !self.reporter.accepting() {
            return Answer::error(503, REPORTS_STUCK, &tid);
        }
        if ctx.action != ready.action.fqn {
            tracing::warn!(routed = %ctx.action, serving = %ready.action.fqn, "refused an invoke for another action");
            return Answer::error(
                403,
                "This container does not serve the requested action.",
                &tid,
            );
        }
        let value = match merge(
            &ready.action.parameters,
            ready.action.annotation_truthy("final"),
            payload,
            ctx.web,
        ) {
            Ok(v) => v,
            Err(e) => return Answer::error(400, e.to_string(), &tid),
        };
        let ticket = match ready.admission.try_admit() {
            Ok(t) => t,
            Err(rejected) => {
                self.metrics.too_many_requests.inc();
                tracing::info!(
                    retry_after = rejected.retry_after_secs,
                    "refused: at capacity"
                );
                let adm = &ready.admission;
                let msg = format!(
                    "Too many concurrent requests in flight (count: {}, allowed: {}).",
                    adm.in_flight() + adm.queued(),
                    adm.limit()
                );
                return Answer::error(429, msg, &tid)
                    .with_header("retry-after", rejected.retry_after_secs.to_string());
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<Recorded>();
        let proxy = self.clone();
        let task_ready = ready.clone();
        let mut task_ctx = ctx.clone();
        let task_span = span.clone();
        span.record("faas.version", ready.action.version.as_str());
        let admitted = Instant::now();
        let running = self.running.start(&ctx.activation_id);
        let task = async move {
            let permit = ticket.wait().await;
            proxy
                .metrics
                .queue_wait
                .observe(admitted.elapsed().as_secs_f64());
            let started = Instant::now();
            let init_timing = task_ready
                .init_timing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            task_span.record("faas.coldstart", init_timing.is_some());
            if let Some(t) = init_timing {
                whisk_telemetry::record_child_span(
                    &task_span,
                    "init",
                    t.start,
                    t.end,
                    vec![KeyValue::new("faas.coldstart", true)],
                );
            }
            let run_span = tracing::info_span!("run");
            // The action continues the trace from the proxy's own `run` span.
            if let Some(tp) = whisk_telemetry::traceparent_of(&run_span) {
                task_ctx.traceparent = Some(tp);
            }
            let record = execute(
                &task_ready.action,
                proxy.executor.as_ref(),
                task_ready.init_error.as_deref(),
                init_timing.map(|t| t.ms),
                &task_ctx,
                value,
            )
            .instrument(run_span)
            .await;
            let ran = started.elapsed();
            permit.finish(ran);
            let status = record.record.response.status;
            proxy.metrics.activation_finished(status, ran);
            tracing::info!(
                status = status.label(),
                duration_ms = ran.as_millis() as u64,
                "activation finished"
            );
            let kept = proxy.reporter.activation(
                &record.record.activation_id,
                record.record.to_stored_json().to_string(),
            );
            if kept {
                let _ = tx.send(record);
            } else {
                // Never answer for an activation that has no record: the waiting caller gets
                // "The activation was lost." (500).
                proxy.metrics.refused_records.inc();
            }
            drop(running);
        };
        tokio::spawn(task.instrument(span.clone()));
        let accepted = || Answer::json(202, json!({"activationId": ctx.activation_id}));
        if !ctx.blocking {
            return accepted();
        }
        let wait = Duration::from_millis(ctx.deadline_ms.saturating_sub(now_ms()));
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(record)) => answer_for(&record, ctx.result_only),
            Ok(Err(_)) => Answer::error(500, "The activation was lost.", &tid),
            Err(_) => accepted(),
        }
    }

    /// Stops the executor's processes (and removes an empty temporary spool).
    pub async fn shutdown(&self) {
        self.executor.shutdown().await;
        self.reporter.shutdown().await;
    }
}

/// The answer to a blocking invoke whose activation finished.
fn answer_for(recorded: &Recorded, result_only: bool) -> Answer {
    let (status, body) = recorded.record.blocking_answer(result_only);
    let answer = Answer::json(status, body);
    match recorded.cache_max_age {
        Some(secs) if status == 200 => {
            answer.with_header("cache-control", format!("max-age={secs}"))
        }
        _ => answer,
    }
}
