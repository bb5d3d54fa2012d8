//! The local backend: every container is a `whisk-container-proxy` child process. Children die
//! with the control plane (`kill_on_drop`, `PR_SET_PDEATHSIG`, and an explicit kill on shutdown);
//! their output after the `WHISK_PROXY_LISTENING` line goes to `logs/<container-id>.log`; a child
//! that exits on its own is reported as [`BackendEvent::Exited`].
//!
//! A proxy cleans up after its actions when it stops, but not when it is killed: after every
//! proxy exit, however it ended, the backend kills what that container's actions left running
//! (every process of the container's own action user, when running as root — a detached,
//! double-forked child cannot leave its uid) and removes the proxy's temporary directories
//! (`whisk_stack::leftovers`). When it is created it sweeps what a previous control plane's
//! killed proxies left.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};

use whisk_stack::leftovers;
use whisk_vocab::token::CONTAINER_TOKEN_ENV;

use super::{Backend, BackendEvent, StartError, Unit, UnitSpec};

/// The only variables of the control plane's environment a proxy inherits (locale, paths, its
/// log and trace settings): nothing else of the control plane's — credentials, tokens, cloud
/// settings — reaches a container.
const PROXY_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "RUST_LOG",
    "RUST_BACKTRACE",
    "WHISK_LOG_JSON",
    "WHISK_OTLP_ENDPOINT",
    "WHISK_TRACE_SAMPLE_RATIO",
];

const LISTENING: &str = "WHISK_PROXY_LISTENING ";
/// How long a stopped proxy may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

struct Running {
    pid: Option<u32>,
    kill: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

/// Child processes on this machine.
pub struct LocalBackend {
    proxy_bin: PathBuf,
    logs_dir: PathBuf,
    api_host: String,
    start_timeout: Duration,
    /// Appended to every proxy's command line (telemetry flags).
    extra_args: Vec<String>,
    /// Each proxy spools unacknowledged reports in `<spool_root>/<container-id>`.
    spool_root: Option<PathBuf>,
    running: Arc<Mutex<HashMap<String, Running>>>,
    events_tx: mpsc::UnboundedSender<BackendEvent>,
    events_rx: Mutex<Option<mpsc::UnboundedReceiver<BackendEvent>>>,
}

impl LocalBackend {
    pub fn new(
        proxy_bin: PathBuf,
        logs_dir: PathBuf,
        api_host: String,
        start_timeout: Duration,
    ) -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let swept = leftovers::sweep();
        if swept.processes > 0 || !swept.dirs.is_empty() {
            tracing::info!(
                processes = swept.processes,
                dirs = swept.dirs.len(),
                "removed what killed container proxies left"
            );
        }
        Self {
            proxy_bin,
            logs_dir,
            api_host,
            start_timeout,
            extra_args: Vec::new(),
            spool_root: None,
            running: Arc::new(Mutex::new(HashMap::new())),
            events_tx,
            events_rx: Mutex::new(Some(events_rx)),
        }
    }

    /// Passes `args` to every proxy started (e.g. `--log-json`, `--otlp-endpoint URL`).
    pub fn with_proxy_args(mut self, args: Vec<String>) -> Self {
        self.extra_args = args;
        self
    }

    /// Gives each proxy the spool directory `<root>/<container-id>` (`--spool-dir`), so records
    /// a killed proxy could not deliver stay where the control plane's sweep finds them.
    pub fn with_spool_root(mut self, root: PathBuf) -> Self {
        self.spool_root = Some(root);
        self
    }

    /// Process ids of the running children (for diagnostics and tests).
    pub fn pids(&self) -> Vec<u32> {
        self.running
            .lock()
            .map(|r| r.values().filter_map(|x| x.pid).collect())
            .unwrap_or_default()
    }

    /// Process id of one container's proxy.
    pub fn pid_of(&self, container_id: &str) -> Option<u32> {
        self.running
            .lock()
            .ok()
            .and_then(|r| r.get(container_id).and_then(|x| x.pid))
    }

    /// `--spool-dir <root>/<container-id>` when a spool root is set and the id is a plain name.
    fn spool_args(&self, container_id: &str) -> Vec<std::ffi::OsString> {
        let plain = !container_id.is_empty()
            && container_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        match &self.spool_root {
            Some(root) if plain => vec![
                "--spool-dir".into(),
                root.join(container_id).into_os_string(),
            ],
            _ => Vec::new(),
        }
    }

    async fn start_unit(&self, spec: UnitSpec) -> Result<Unit, StartError> {
        std::fs::create_dir_all(&self.logs_dir)
            .map_err(|e| StartError(format!("logs dir: {e}")))?;
        let log_path = self.logs_dir.join(format!("{}.log", spec.container_id));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| StartError(format!("log file {}: {e}", log_path.display())))?;
        let mut cmd = Command::new(&self.proxy_bin);
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--container-id")
            .arg(&spec.container_id)
            .arg("--kind")
            .arg(&spec.kind)
            .arg("--controlplane")
            .arg(&spec.controlplane_url)
            .arg("--api-host")
            .arg(&self.api_host)
            .args(&self.extra_args)
            .args(self.spool_args(&spec.container_id))
            .env_clear()
            .envs(
                PROXY_ENV
                    .iter()
                    .filter_map(|k| Some((k, std::env::var_os(k)?))),
            )
            .env("__OW_API_HOST", &self.api_host)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // The proxy removes it from its environment before it starts anything.
            .env(CONTAINER_TOKEN_ENV, spec.token.expose())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true);
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() == 1 {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| StartError(format!("cannot start {}: {e}", self.proxy_bin.display())))?;
        let pid = child.id();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| StartError("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();

        let address = match tokio::time::timeout(self.start_timeout, async {
            while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
                if let Some(addr) = line.trim().strip_prefix(LISTENING) {
                    return Ok(addr.trim().to_string());
                }
            }
            Err("exited before printing its listening line".to_string())
        })
        .await
        {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(StartError(format!(
                    "container proxy {}: {e}",
                    spec.container_id
                )));
            }
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(StartError(format!(
                    "container proxy {} did not listen within {:?}",
                    spec.container_id, self.start_timeout
                )));
            }
        };

        // The rest of stdout is the container's log.
        let mut log = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .await
            .map_err(|e| StartError(format!("log file {}: {e}", log_path.display())))?;
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if log.write_all(line.as_bytes()).await.is_err()
                    || log.write_all(b"\n").await.is_err()
                {
                    break;
                }
            }
        });

        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let id = spec.container_id.clone();
        let events = self.events_tx.clone();
        let running = self.running.clone();
        let done = tokio::spawn(async move {
            tokio::select! {
                status = child.wait() => {
                    let reason = match status {
                        Ok(s) => format!("container proxy exited: {s}"),
                        Err(e) => format!("container proxy lost: {e}"),
                    };
                    if let Ok(mut r) = running.lock() {
                        r.remove(&id);
                    }
                    let _ = events.send(BackendEvent::Exited { container_id: id, reason });
                }
                _ = kill_rx => {
                    // Polite first (the proxy stops its runtime), then SIGKILL.
                    if let Some(pid) = child.id() {
                        // SAFETY: kill(2) on our own, not yet reaped child.
                        unsafe {
                            libc::kill(pid as libc::pid_t, libc::SIGTERM);
                        }
                    }
                    if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
                        let _ = child.start_kill();
                        let _ = child.wait().await;
                    }
                }
            }
            if let Some(pid) = pid {
                let _ = tokio::task::spawn_blocking(move || clean_up_after(pid)).await;
            }
        });
        if let Ok(mut r) = self.running.lock() {
            r.insert(
                spec.container_id.clone(),
                Running {
                    pid,
                    kill: kill_tx,
                    done,
                },
            );
        }
        Ok(Unit {
            container_id: spec.container_id,
            address,
        })
    }

    async fn stop_unit(&self, container_id: String) {
        let running = self
            .running
            .lock()
            .ok()
            .and_then(|mut r| r.remove(&container_id));
        if let Some(r) = running {
            let _ = r.kill.send(());
            let _ = r.done.await;
        }
    }

    async fn stop_all(&self) {
        let all: Vec<Running> = match self.running.lock() {
            Ok(mut r) => r.drain().map(|(_, v)| v).collect(),
            Err(_) => Vec::new(),
        };
        let waits = all.into_iter().map(|r| {
            let _ = r.kill.send(());
            r.done
        });
        futures::future::join_all(waits).await;
    }
}

/// What the exited proxy `pid` may have left: its action user's processes, its temporary
/// directories (and those of any other dead proxy).
fn clean_up_after(pid: u32) {
    leftovers::kill_user(leftovers::isolated_uid(pid));
    let swept = leftovers::sweep();
    if swept.processes > 0 || !swept.dirs.is_empty() {
        tracing::info!(
            proxy_pid = pid,
            processes = swept.processes,
            dirs = swept.dirs.len(),
            "removed what an exited container proxy left"
        );
    }
}

impl Backend for LocalBackend {
    fn start(&self, spec: UnitSpec) -> BoxFuture<'_, Result<Unit, StartError>> {
        Box::pin(self.start_unit(spec))
    }

    fn stop(&self, container_id: String) -> BoxFuture<'_, ()> {
        Box::pin(self.stop_unit(container_id))
    }

    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<BackendEvent>> {
        self.events_rx.lock().ok().and_then(|mut r| r.take())
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.stop_all())
    }

    fn kill_all_now(&self) {
        if let Ok(r) = self.running.lock() {
            for pid in r.values().filter_map(|x| x.pid) {
                // SAFETY: plain kill(2) on a child we started and have not reaped yet.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        self.kill_all_now();
    }
}
