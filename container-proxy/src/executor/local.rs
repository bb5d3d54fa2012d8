//! The local executor: launcher processes on this machine speaking the protocol described in
//! [`crate::launchers`] (stdin messages, fd 3 replies, stdout/stderr logs ended by a sentinel).
//!
//! One activation per process at a time; for `limits.concurrency > 1` a small pool grows on
//! demand up to the limit. A process that dies, hangs past the time limit or breaks the protocol
//! is killed (its whole process tree: the group, and descendants that left it with `setsid`) and
//! replaced in the background; so is one whose tree holds more memory than the action's limit
//! (`memory.rs`: "The action exhausted its memory and was aborted."); if a replacement cannot be
//! started the container is reported unusable. Processes are started with `kill_on_drop`, in
//! their own process group, and with `PR_SET_PDEATHSIG = SIGKILL` so they die with the proxy.
//! (The death signal fires when the *thread* that forked exits: processes are only spawned from
//! tokio worker threads, which live as long as the proxy.) The code directory and the launchers'
//! directory are named after the proxy's pid and removed at shutdown; a killed proxy's are swept
//! by the next one and by the control plane (`whisk_stack::leftovers`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Mutex;

use super::user::ActionUser;
use super::{Executor, InitError, InitPayload, RunOutcome, RunRequest};
use crate::code;
use crate::launchers::{Family, LauncherFiles};
use crate::logs::{LogSink, Stream, pump};
use crate::record::{ABNORMAL_RUN, MEMORY_EXHAUSTED, RunResponse, init_timeout_message};
use crate::report::Reporter;

/// How long to wait for the sentinel after a launcher's reply.
const LAUNCHER_LOG_GRACE: Duration = Duration::from_secs(2);
/// Native executables may not print the sentinel: wait only briefly for their logs.
const NATIVE_LOG_GRACE: Duration = Duration::from_millis(100);
/// How long to collect the output of a process that died or was killed.
const DEAD_LOG_GRACE: Duration = Duration::from_secs(1);
/// Longest init reply kept.
const MAX_INIT_REPLY: usize = 64 * 1024;

/// Errors starting or talking to a launcher process.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot write the launchers: {0}")]
    Launchers(std::io::Error),
    #[error("unsupported kind '{0}'")]
    UnsupportedKind(String),
    #[error("cannot start the runtime process: {0}")]
    Spawn(std::io::Error),
    #[error("the runtime process failed: {0}")]
    Protocol(String),
}

/// A running launcher (or native executable).
struct Process {
    child: Child,
    stdin: ChildStdin,
    replies: BufReader<pipe::Receiver>,
    sink: Arc<LogSink>,
    /// Its init succeeded and what it printed then is still to be logged (with its first run).
    init_output: bool,
}

impl Process {
    fn kill(&mut self) {
        if let Some(pid) = self.child.id() {
            // The process leads its own group; descendants that left it (`setsid`, detached
            // children) are found by parent pid while it still lives.
            whisk_stack::leftovers::kill_tree(pid);
        }
        let _ = self.child.start_kill();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A reply line read from fd 3.
struct Reply {
    line: Vec<u8>,
    total: usize,
}

/// Reads one line from fd 3, keeping at most `keep` bytes (but counting them all). `None` on EOF.
async fn read_reply(
    r: &mut BufReader<pipe::Receiver>,
    keep: usize,
) -> std::io::Result<Option<Reply>> {
    let mut line = Vec::new();
    let mut total = 0usize;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(None);
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        let room = keep.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        total += chunk.len();
        let used = chunk.len() + usize::from(done);
        r.consume(used);
        if done {
            if line.last() == Some(&b'\r') {
                line.pop();
                total = total.saturating_sub(1);
            }
            return Ok(Some(Reply { line, total }));
        }
    }
}

/// Throws away whatever fd 3 holds before a run is sent: a reply channel is the action's too
/// (launchers run the code in their own process; native actions are the process), so a stray
/// write — or a reply that came after its run was given up — must not become the next run's
/// answer. Returns how many bytes were dropped. EOF is left for the run to find.
fn discard_stale_replies(r: &mut BufReader<pipe::Receiver>) -> usize {
    let buffered = r.buffer().len();
    r.consume(buffered);
    let mut dropped = buffered;
    let mut scratch = [0u8; 4096];
    loop {
        match r.get_mut().try_read(&mut scratch) {
            Ok(0) | Err(_) => return dropped,
            Ok(n) => dropped += n,
        }
    }
}

/// Splits an optional `<status> ` prefix off a reply line.
fn split_status(line: &[u8]) -> (u16, &[u8]) {
    let trimmed = line.trim_ascii_start();
    if let [a, b, c, b' ', rest @ ..] = trimmed
        && a.is_ascii_digit()
        && b.is_ascii_digit()
        && c.is_ascii_digit()
    {
        let status = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
        return (status, rest);
    }
    (200, line)
}

/// Turns a run reply into a [`RunResponse`], applying the result size limit.
fn run_response(reply: &Reply, max_result: usize) -> RunResponse {
    let (status, body) = split_status(&reply.line);
    let prefix = reply.line.len() - body.len();
    let size = reply.total.saturating_sub(prefix);
    if status == 503 {
        let text = String::from_utf8_lossy(body);
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| "System not initialized.".to_string());
        return RunResponse::Internal(msg);
    }
    if size > max_result {
        let cut = &body[..body.len().min(max_result)];
        return RunResponse::Answered {
            ok: status == 200,
            body: String::from_utf8_lossy(cut).into_owned(),
            size,
            truncated: Some(max_result),
        };
    }
    RunResponse::Answered {
        ok: status == 200,
        body: String::from_utf8_lossy(body).into_owned(),
        size,
        truncated: None,
    }
}

/// What is needed to start more initialised processes of the action.
struct Prepared {
    family: Family,
    /// Init line for launchers (`None` for native executables).
    init_line: Option<String>,
    /// Native executable.
    exec: Option<PathBuf>,
    /// Extra environment of native executables (the init env).
    env: Vec<(String, String)>,
    workdir: PathBuf,
    timeout: Duration,
    /// Bytes of init output kept for a failed init's record.
    log_limit: usize,
    /// The action's memory limit (0 = none).
    memory_bytes: u64,
    _code_dir: tempfile::TempDir,
}

#[derive(Default)]
struct Pool {
    /// A started, uninitialised launcher (stem cell).
    stem: Option<(Family, Process)>,
    prepared: Option<Arc<Prepared>>,
    idle: Vec<Process>,
    max: usize,
    shut_down: bool,
}

struct Inner {
    files: LauncherFiles,
    api_host: Option<String>,
    /// Whom the processes run as.
    user: ActionUser,
    reporter: Reporter,
    pool: Mutex<Pool>,
}

/// Runs actions in launcher processes on this machine.
#[derive(Clone)]
pub struct LocalExecutor {
    inner: Arc<Inner>,
}

impl LocalExecutor {
    /// Writes the launchers and, for a stem cell of a launcher kind, starts one waiting launcher.
    pub async fn start(
        kind: Option<&str>,
        api_host: Option<String>,
        user: ActionUser,
        reporter: Reporter,
    ) -> Result<Self, LocalError> {
        let files = LauncherFiles::write().map_err(LocalError::Launchers)?;
        user.share_read_only(files.dir())
            .map_err(LocalError::Launchers)?;
        let exec = LocalExecutor {
            inner: Arc::new(Inner {
                files,
                api_host,
                user,
                reporter,
                pool: Mutex::new(Pool {
                    max: 1,
                    ..Default::default()
                }),
            }),
        };
        if let Some(kind) = kind {
            let family =
                Family::of_kind(kind).ok_or_else(|| LocalError::UnsupportedKind(kind.into()))?;
            if family != Family::Native {
                let workdir = exec.inner.files.dir().to_path_buf();
                let process = exec.inner.spawn(family, None, &[], &workdir)?;
                exec.inner.pool.lock().await.stem = Some((family, process));
            }
        }
        Ok(exec)
    }
}

fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Inner {
    /// Starts a launcher (or the native executable) with the fd 3 reply pipe.
    fn spawn(
        &self,
        family: Family,
        exec: Option<&PathBuf>,
        env: &[(String, String)],
        workdir: &PathBuf,
    ) -> Result<Process, LocalError> {
        let (program, args) = match (self.files.command(family), exec) {
            (Some(cmd), _) => cmd,
            (None, Some(exec)) => (exec.clone(), Vec::new()),
            (None, None) => return Err(LocalError::UnsupportedKind("native without code".into())),
        };
        let (read_end, write_end) = cloexec_pipe().map_err(LocalError::Spawn)?;
        let fd = write_end.as_raw_fd();
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(workdir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .env_clear();
        for key in ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        if let Some(host) = &self.api_host {
            cmd.env("__OW_API_HOST", host);
        }
        if family == Family::Python {
            cmd.env("PYTHONUNBUFFERED", "1")
                .env("PYTHONDONTWRITEBYTECODE", "1");
        }
        if let Some(uid) = self.user.uid() {
            // std drops supplementary groups when root switches user.
            cmd.uid(uid).gid(uid).env("HOME", workdir);
        }
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // SAFETY: only async-signal-safe calls (dup2, fcntl, prctl, setpgid) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if fd == 3 {
                    let flags = libc::fcntl(3, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::setpgid(0, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(LocalError::Spawn)?;
        drop(write_end);
        let receiver = pipe::Receiver::from_owned_fd(read_end).map_err(LocalError::Spawn)?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| LocalError::Protocol("no stdin".into()))?;
        let sink = Arc::new(LogSink::new());
        if let Some(out) = child.stdout.take() {
            let sink = sink.clone();
            tokio::spawn(async move { pump(out, Stream::Stdout, &sink).await });
        } else {
            sink.closed(Stream::Stdout);
        }
        if let Some(err) = child.stderr.take() {
            let sink = sink.clone();
            tokio::spawn(async move { pump(err, Stream::Stderr, &sink).await });
        } else {
            sink.closed(Stream::Stderr);
        }
        Ok(Process {
            child,
            stdin,
            replies: BufReader::new(receiver),
            sink,
            init_output: false,
        })
    }

    /// Sends the init line to a launcher and waits for its reply. When init fails, the process is
    /// killed and what it printed while initialising (up to `log_limit` bytes) goes with the
    /// error.
    async fn send_init(
        process: &mut Process,
        line: &str,
        prepared: &Prepared,
    ) -> Result<(), InitError> {
        process.sink.begin(prepared.log_limit);
        let pid = process.child.id().unwrap_or_default();
        let message = tokio::select! {
            message = Self::init_reply(process, line, prepared.timeout) => message?,
            held = super::memory::exceeded(pid, prepared.memory_bytes) => {
                tracing::warn!(held, limit = prepared.memory_bytes, "the action exhausted its memory during init");
                Some(MEMORY_EXHAUSTED.to_string())
            }
        };
        let Some(message) = message else {
            process.init_output = true;
            return Ok(());
        };
        // The process is of no more use: its output ends when it dies.
        process.kill();
        let logs = process.sink.finish(DEAD_LOG_GRACE).await;
        Err(InitError::Developer { message, logs })
    }

    /// Sends the init line and reads the reply: `None` when the code initialised, else
    /// OpenWhisk's developer-error text.
    async fn init_reply(
        process: &mut Process,
        line: &str,
        timeout: Duration,
    ) -> Result<Option<String>, InitError> {
        let io = async {
            process.stdin.write_all(line.as_bytes()).await?;
            process.stdin.flush().await?;
            read_reply(&mut process.replies, MAX_INIT_REPLY).await
        };
        Ok(match tokio::time::timeout(timeout, io).await {
            Err(_) => Some(init_timeout_message(timeout.as_millis() as u64)),
            Ok(Err(_)) | Ok(Ok(None)) => Some(ABNORMAL_RUN.to_string()),
            Ok(Ok(Some(reply))) => {
                let (_, body) = split_status(&reply.line);
                match serde_json::from_slice::<Value>(body) {
                    Ok(v) => match v.get("error") {
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(other) => Some(other.to_string()),
                        None => None,
                    },
                    Err(_) => Some(format!(
                        "Initialization has failed due to: invalid reply {}",
                        String::from_utf8_lossy(&reply.line)
                    )),
                }
            }
        })
    }

    /// Starts one more initialised process of the prepared action.
    async fn spawn_initialized(&self, prepared: &Prepared) -> Result<Process, InitError> {
        let mut process = self
            .spawn(
                prepared.family,
                prepared.exec.as_ref(),
                &prepared.env,
                &prepared.workdir,
            )
            .map_err(|e| InitError::Internal(e.to_string()))?;
        if let Some(line) = &prepared.init_line {
            Self::send_init(&mut process, line, prepared).await?;
        }
        Ok(process)
    }

    /// An idle process, or a new one.
    async fn checkout(&self) -> Result<Process, RunResponse> {
        let prepared = {
            let mut pool = self.pool.lock().await;
            if let Some(p) = pool.idle.pop() {
                return Ok(p);
            }
            pool.prepared.clone()
        };
        let Some(prepared) = prepared else {
            return Err(RunResponse::Internal("System not initialized.".into()));
        };
        self.spawn_initialized(&prepared).await.map_err(|e| {
            self.reporter
                .unusable(format!("cannot start a runtime process: {e}"));
            RunResponse::Internal(format!("Failed to start the action's runtime: {e}"))
        })
    }

    async fn checkin(&self, process: Process) {
        let mut pool = self.pool.lock().await;
        if !pool.shut_down && pool.idle.len() < pool.max {
            pool.idle.push(process);
        }
    }

    /// Replaces a broken process in the background.
    fn replace(self: &Arc<Self>) {
        let inner = self.clone();
        tokio::spawn(async move {
            let prepared = inner.pool.lock().await.prepared.clone();
            let Some(prepared) = prepared else { return };
            match inner.spawn_initialized(&prepared).await {
                Ok(p) => inner.checkin(p).await,
                Err(e) => inner
                    .reporter
                    .unusable(format!("cannot replace the runtime process: {e}")),
            }
        });
    }

    async fn init(self: &Arc<Self>, payload: InitPayload) -> Result<(), InitError> {
        let family = Family::of_kind(&payload.kind)
            .ok_or_else(|| InitError::Internal(format!("unsupported kind '{}'", payload.kind)))?;
        let code_dir = tempfile::Builder::new()
            .prefix(&whisk_stack::leftovers::temp_prefix("action"))
            .tempdir()
            .map_err(|e| InitError::Internal(e.to_string()))?;
        let failed = |e: code::CodeError| {
            InitError::developer(format!("Initialization has failed due to: {e}"))
        };
        let env_pairs: Vec<(String, String)> = payload
            .env
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect();
        let (init_line, exec, env) = match family {
            Family::Native => {
                let exec = code::prepare_native(&payload.code, payload.binary, code_dir.path())
                    .map_err(failed)?;
                (None, Some(exec), env_pairs)
            }
            Family::Nodejs | Family::Python => {
                let dir = if payload.binary {
                    code::unzip_base64(&payload.code, code_dir.path()).map_err(failed)?;
                    Value::String(code_dir.path().display().to_string())
                } else {
                    Value::Null
                };
                let code = if payload.binary {
                    String::new()
                } else {
                    payload.code.clone()
                };
                let msg = json!({
                    "code": code,
                    "main": payload.main,
                    "binary": payload.binary,
                    "env": Value::Object(payload.env.clone()),
                    "dir": dir,
                });
                (Some(format!("{msg}\n")), None, Vec::new())
            }
        };
        self.user
            .hand_over(code_dir.path())
            .map_err(|e| InitError::Internal(format!("cannot hand the code over: {e}")))?;
        let prepared = Arc::new(Prepared {
            family,
            init_line,
            exec,
            env,
            workdir: code_dir.path().to_path_buf(),
            timeout: payload.timeout,
            log_limit: payload.log_limit,
            memory_bytes: payload.memory_bytes,
            _code_dir: code_dir,
        });
        let stem = {
            let mut pool = self.pool.lock().await;
            match pool.stem.take() {
                Some((f, p)) if f == family => Some(p),
                _ => None,
            }
        };
        let process = match stem {
            Some(mut p) => {
                if let Some(line) = &prepared.init_line {
                    Self::send_init(&mut p, line, &prepared).await?;
                }
                p
            }
            None => self.spawn_initialized(&prepared).await?,
        };
        let mut pool = self.pool.lock().await;
        pool.max = payload.concurrency.max(1) as usize;
        pool.prepared = Some(prepared);
        pool.idle.push(process);
        Ok(())
    }

    async fn run(self: &Arc<Self>, request: RunRequest) -> RunOutcome {
        let mut process = match self.checkout().await {
            Ok(p) => p,
            Err(response) => {
                return RunOutcome {
                    response,
                    logs: Vec::new(),
                };
            }
        };
        let (native, memory_bytes) = self
            .pool
            .lock()
            .await
            .prepared
            .as_ref()
            .map_or((false, 0), |p| (p.family == Family::Native, p.memory_bytes));
        let pid = process.child.id().unwrap_or_default();
        if std::mem::take(&mut process.init_output) {
            process.sink.resume();
        } else {
            process.sink.begin(request.log_limit);
        }
        let mut message = request.message;
        if let (Some(tp), Value::Object(m)) = (&request.traceparent, &mut message) {
            m.insert("traceparent".into(), Value::String(tp.clone()));
        }
        let line = format!("{message}\n");
        let keep = request.max_result + 8;
        let stale = discard_stale_replies(&mut process.replies);
        if stale > 0 {
            tracing::warn!(bytes = stale, "discarded stray output on the reply channel");
        }
        let io = async {
            process.stdin.write_all(line.as_bytes()).await?;
            process.stdin.flush().await?;
            read_reply(&mut process.replies, keep).await
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(request.timeout, io) => outcome,
            held = super::memory::exceeded(pid, memory_bytes) => {
                tracing::warn!(held, limit = memory_bytes, "the action exhausted its memory");
                process.kill();
                let logs = process.sink.finish(DEAD_LOG_GRACE).await;
                drop(process);
                self.replace();
                return RunOutcome {
                    response: RunResponse::MemoryExhausted,
                    logs,
                };
            }
        };
        match outcome {
            Ok(Ok(Some(reply))) => {
                let response = run_response(&reply, request.max_result);
                let grace = if native {
                    NATIVE_LOG_GRACE
                } else {
                    LAUNCHER_LOG_GRACE
                };
                let logs = process.sink.finish(grace).await;
                self.checkin(process).await;
                RunOutcome { response, logs }
            }
            Ok(Ok(None)) | Ok(Err(_)) => {
                let logs = process.sink.finish(DEAD_LOG_GRACE).await;
                process.kill();
                drop(process);
                self.replace();
                RunOutcome {
                    response: RunResponse::Exited,
                    logs,
                }
            }
            Err(_) => {
                process.kill();
                let logs = process.sink.finish(DEAD_LOG_GRACE).await;
                drop(process);
                self.replace();
                RunOutcome {
                    response: RunResponse::TimedOut {
                        limit_ms: request.timeout.as_millis() as u64,
                    },
                    logs,
                }
            }
        }
    }

    async fn shutdown(&self) {
        let mut pool = self.pool.lock().await;
        pool.shut_down = true;
        pool.stem = None;
        pool.idle.clear();
        // The directories go now, whoever still holds the executor.
        if let Some(prepared) = pool.prepared.take() {
            let _ = std::fs::remove_dir_all(&prepared.workdir);
        }
        self.files.remove();
    }
}

impl Executor for LocalExecutor {
    fn init(&self, payload: InitPayload) -> BoxFuture<'_, Result<(), InitError>> {
        Box::pin(async move { self.inner.init(payload).await })
    }

    fn run(&self, request: RunRequest) -> BoxFuture<'_, RunOutcome> {
        Box::pin(async move { self.inner.run(request).await })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.inner.shutdown().await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(s: &str) -> Reply {
        Reply {
            line: s.as_bytes().to_vec(),
            total: s.len(),
        }
    }

    #[test]
    fn status_prefix_is_parsed() {
        assert_eq!(
            split_status(b"502 {\"error\":1}"),
            (502, &b"{\"error\":1}"[..])
        );
        assert_eq!(split_status(b"{\"a\":1}"), (200, &b"{\"a\":1}"[..]));
        assert_eq!(split_status(b"42"), (200, &b"42"[..]));
    }

    #[test]
    fn replies_become_responses() {
        assert_eq!(
            run_response(&reply("{\"a\":1}"), 100),
            RunResponse::Answered {
                ok: true,
                body: "{\"a\":1}".into(),
                size: 7,
                truncated: None
            }
        );
        assert!(matches!(
            run_response(&reply("502 {\"error\":\"x\"}"), 100),
            RunResponse::Answered { ok: false, .. }
        ));
        assert_eq!(
            run_response(&reply("503 {\"error\":\"System not initialized.\"}"), 100),
            RunResponse::Internal("System not initialized.".into())
        );
        let big = Reply {
            line: b"[1,2".to_vec(),
            total: 200,
        };
        assert!(matches!(
            run_response(&big, 4),
            RunResponse::Answered {
                truncated: Some(4),
                size: 200,
                ..
            }
        ));
    }
}
