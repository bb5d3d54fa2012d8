//! The launchers shipped inside the proxy binary (`include_str!`) and written to a temporary
//! directory at start-up, plus how to start one for a kind. The directory's name carries the
//! proxy's pid (`whisk-launchers-<pid>-…`), so what a killed proxy left is swept by the next one
//! (`whisk_stack::leftovers`).
//!
//! # Launcher protocol (ActionLoop-like)
//!
//! The proxy starts a launcher with stdin piped, stdout and stderr piped (the action's logs), and
//! **fd 3** a pipe on which the launcher writes its replies, one line each.
//!
//! 1. **Init** — the first stdin line is `{"code", "main", "binary", "env", "dir"}`. `dir` is the
//!    directory where the proxy unpacked a zip action (`binary: true`), else `null` and `code` is
//!    the source. The launcher exports `env`, loads the code (nodejs: the source compiled as a
//!    module body with `main` looked up as a global function or an export, or `require(dir)`
//!    honouring `package.json`; python: the source, or `dir/__main__.py`, executed and `main`
//!    looked up) and replies `{"ok":true}` or `{"error":"Initialization has failed due to: ..."}`.
//!    A stem cell's launcher is started before any code exists and simply waits for this line.
//! 2. **Run** — every further stdin line is OpenWhisk's `/run` message (`value`, `namespace`,
//!    `action_name`, `action_version`, `activation_id`, `transaction_id`, `deadline`, `api_key`?,
//!    plus `traceparent`? from the invoke). The launcher exports every top-level key except
//!    `value` as `__OW_<KEY>` (`traceparent` as `TRACEPARENT`), calls `main(value)` (awaiting a
//!    Promise), and replies with one line on fd 3:
//!    * the result JSON (an object or array) — like an HTTP 200 of a runtime;
//!    * or `<status> <json>` — like a non-200 answer, e.g.
//!      `502 {"error":"An error has occurred: Error: boom"}` (thrown error / rejected promise),
//!      `502 {"error":"The action did not return a dictionary."}` (non-object result),
//!      `503 {"error":"System not initialized."}`.
//!
//!    Then it prints [`SENTINEL`](crate::logs::SENTINEL) on stdout and on stderr so the proxy
//!    knows where the activation's logs end.
//! 3. **Native (`blackbox`)** actions are their own launcher: the executable (`exec` of the zip,
//!    or the code as a script with a shebang) is started after init, receives no init line, and
//!    speaks step 2. If it prints no sentinel, the proxy stops collecting its logs shortly after
//!    the reply.
//!
//! An EOF on fd 3 means the process died: the run is "exited unexpectedly" and the process is
//! replaced.

use std::path::{Path, PathBuf};

/// Node launcher source.
pub const NODEJS: &str = include_str!("nodejs.js");
/// Python launcher source.
pub const PYTHON: &str = include_str!("python.py");

/// The runtime family of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Nodejs,
    Python,
    Native,
}

impl Family {
    /// `nodejs:20` → Nodejs, `python:3` → Python, `blackbox`/`native` → Native.
    pub fn of_kind(kind: &str) -> Option<Family> {
        let base = kind.split(':').next().unwrap_or_default();
        match base {
            "nodejs" | "node" => Some(Family::Nodejs),
            "python" => Some(Family::Python),
            "blackbox" | "native" => Some(Family::Native),
            _ => None,
        }
    }
}

/// The launchers written to disk; removed when dropped.
#[derive(Debug)]
pub struct LauncherFiles {
    dir: tempfile::TempDir,
}

impl LauncherFiles {
    /// Writes every launcher to a fresh temporary directory.
    pub fn write() -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&whisk_stack::leftovers::temp_prefix("launchers"))
            .tempdir()?;
        std::fs::write(dir.path().join("nodejs.js"), NODEJS)?;
        std::fs::write(dir.path().join("python.py"), PYTHON)?;
        Ok(LauncherFiles { dir })
    }

    /// Removes the directory now (a proxy that stops may never drop it).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(self.dir.path());
    }

    /// The directory holding the launchers.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Program and arguments starting the launcher of `family` (`None` for native actions, whose
    /// executable is the action itself).
    pub fn command(&self, family: Family) -> Option<(PathBuf, Vec<PathBuf>)> {
        match family {
            Family::Nodejs => Some(("node".into(), vec![self.dir().join("nodejs.js")])),
            Family::Python => Some(("python3".into(), vec![self.dir().join("python.py")])),
            Family::Native => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_families() {
        assert_eq!(Family::of_kind("nodejs:20"), Some(Family::Nodejs));
        assert_eq!(Family::of_kind("python:3"), Some(Family::Python));
        assert_eq!(Family::of_kind("blackbox"), Some(Family::Native));
        assert_eq!(Family::of_kind("java:8"), None);
    }

    #[test]
    fn launchers_are_written() {
        let files = LauncherFiles::write().unwrap();
        assert!(files.dir().join("nodejs.js").is_file());
        assert!(files.dir().join("python.py").is_file());
    }
}
