//! A child process we own, that tells us where it listens.
//!
//! Our binaries print exactly one line `<MARKER> <address>` on stdout once bound (port 0 picks a
//! free port, so the address is only known then). Everything after that line, and all of stderr,
//! goes to a log file. The child is killed when the [`Child`] drops, and — through
//! `PR_SET_PDEATHSIG` — when this process dies, so no test or `whisk up` leaves one behind.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("could not start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} exited before announcing its address (see {log})")]
    Exited { program: String, log: String },
    #[error(
        "{program} did not announce its address within {0:?} (see {log})",
        timeout
    )]
    Timeout {
        program: String,
        log: String,
        timeout: Duration,
    },
    #[error("log file {path}: {source}")]
    Log {
        path: String,
        source: std::io::Error,
    },
}

/// A running child process, killed on drop.
#[derive(Debug)]
pub struct Child {
    pub process: tokio::process::Child,
    /// What the child announced after its marker.
    pub address: String,
}

impl Child {
    pub fn pid(&self) -> Option<u32> {
        self.process.id()
    }

    /// Asks the child to stop (SIGTERM) and waits up to `grace`, then kills it.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.process.id() {
            // SAFETY: sending a signal to our own child's pid.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
            if tokio::time::timeout(grace, self.process.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.process.kill().await;
    }
}

/// Makes the child die with its parent and sit in its own process group (so a Ctrl-C in a
/// terminal reaches the supervisor, which then stops the children in order).
pub fn own(cmd: &mut Command) {
    cmd.kill_on_drop(true);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            libc::setpgid(0, 0);
            Ok(())
        });
    }
}

/// Starts `cmd`, waits for its `<marker> <address>` line, and sends the rest of its output to
/// `log`.
pub async fn spawn_announcing(
    mut cmd: Command,
    marker: &str,
    log: &Path,
    timeout: Duration,
) -> Result<Child, ChildError> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let log_name = log.display().to_string();
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|source| ChildError::Log {
            path: log_name.clone(),
            source,
        })?;
    let stderr_file = log_file.try_clone().map_err(|source| ChildError::Log {
        path: log_name.clone(),
        source,
    })?;
    own(&mut cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr_file));
    let mut process = cmd.spawn().map_err(|source| ChildError::Spawn {
        program: program.clone(),
        source,
    })?;
    let Some(stdout) = process.stdout.take() else {
        return Err(ChildError::Exited {
            program,
            log: log_name,
        });
    };
    let mut lines = BufReader::new(stdout).lines();
    let prefix = format!("{marker} ");
    let found = tokio::time::timeout(timeout, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix(&prefix) {
                return Some(addr.trim().to_owned());
            }
        }
        None
    })
    .await;
    let address = match found {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Err(ChildError::Exited {
                program,
                log: log_name,
            });
        }
        Err(_) => {
            return Err(ChildError::Timeout {
                program,
                log: log_name,
                timeout,
            });
        }
    };
    // Keep draining stdout into the log so the child never blocks on a full pipe.
    let mut log_out = tokio::fs::File::from_std(log_file);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = log_out.write_all(line.as_bytes()).await;
            let _ = log_out.write_all(b"\n").await;
        }
    });
    Ok(Child { process, address })
}
