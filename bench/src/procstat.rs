//! What each component process costs: CPU time and memory, read from `/proc`.
//!
//! CPU is `utime + stime` from `/proc/<pid>/stat` (clock ticks, all threads, the process's own
//! time — not its children's), sampled before and after a step, so `cpu / requests` is the
//! component's cost per request. Memory is `VmHWM` (peak resident set) and `VmRSS` from
//! `/proc/<pid>/status`. Components started by `whisk up` are found by walking the process tree
//! from its pid, and container proxies' listening ports are found from their socket inodes (to ask
//! them whether they are stem cells).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("/proc/{pid}: {source}")]
    Read { pid: u32, source: std::io::Error },
    #[error("/proc/{pid}/{file}: unexpected format")]
    Format { pid: u32, file: &'static str },
}

/// One named part of the system under test, made of one or more processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Component {
    pub name: String,
    pub pids: Vec<u32>,
}

impl Component {
    pub fn new(name: &str, pid: u32) -> Self {
        Self {
            name: name.to_owned(),
            pids: vec![pid],
        }
    }
}

/// The cost of one component over one step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ComponentCost {
    pub name: String,
    pub cpu_ms: f64,
    /// CPU microseconds per answered request.
    pub cpu_us_per_request: f64,
    /// Share of one core over the step.
    pub cpu_cores: f64,
    pub peak_rss_mib: f64,
}

/// Ticks per second of `utime`/`stime`.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

fn read(pid: u32, file: &str) -> Result<String, ProcError> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .map_err(|source| ProcError::Read { pid, source })
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces).
fn stat_fields(pid: u32) -> Result<(String, Vec<String>), ProcError> {
    let text = read(pid, "stat")?;
    let open = text.find('(');
    let close = text.rfind(')');
    let (Some(open), Some(close)) = (open, close) else {
        return Err(ProcError::Format { pid, file: "stat" });
    };
    let comm = text[open + 1..close].to_owned();
    let rest = text[close + 1..]
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    Ok((comm, rest))
}

/// `utime + stime` in ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64, ProcError> {
    let (_, f) = stat_fields(pid)?;
    // After the comm: state(0) ppid(1) ... utime(11) stime(12).
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    match (get(11), get(12)) {
        (Some(u), Some(s)) => Ok(u + s),
        _ => Err(ProcError::Format { pid, file: "stat" }),
    }
}

fn status_kib(pid: u32, key: &str) -> Result<u64, ProcError> {
    let text = read(pid, "status")?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or(ProcError::Format {
            pid,
            file: "status",
        })
}

/// Peak resident set (`VmHWM`) in KiB.
pub fn peak_rss_kib(pid: u32) -> Result<u64, ProcError> {
    status_kib(pid, "VmHWM:")
}

/// Current resident set (`VmRSS`) in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, ProcError> {
    status_kib(pid, "VmRSS:")
}

/// Every live descendant of `root` with its command name (`comm`, at most 15 characters).
pub fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut parent: Vec<(u32, u32, String)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok((comm, f)) = stat_fields(pid)
                && let Some(ppid) = f.get(1).and_then(|v| v.parse::<u32>().ok())
            {
                parent.push((pid, ppid, comm));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (pid, ppid, comm) in &parent {
            if *ppid == p {
                out.push((*pid, comm.clone()));
                frontier.push(*pid);
            }
        }
    }
    out
}

/// TCP ports `pid` listens on (from its socket inodes and `/proc/net/tcp`).
pub fn listening_ports(pid: u32) -> Vec<u16> {
    let mut inodes = Vec::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in dir.flatten() {
            if let Ok(link) = std::fs::read_link(e.path())
                && let Some(s) = link.to_str()
                && let Some(inode) = s.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']'))
            {
                inodes.push(inode.to_owned());
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(Path::new(table)) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address(1) st(3) inode(9); 0A = LISTEN.
            if f.len() > 9
                && f[3] == "0A"
                && inodes.iter().any(|i| i == f[9])
                && let Some(port) = f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    ports
}

/// CPU ticks of every process of every component at one instant.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    ticks: BTreeMap<u32, u64>,
}

impl CpuSnapshot {
    pub fn take(components: &[Component]) -> Self {
        let ticks = components
            .iter()
            .flat_map(|c| c.pids.iter())
            .filter_map(|&pid| cpu_ticks(pid).ok().map(|t| (pid, t)))
            .collect();
        Self { ticks }
    }

    /// The cost of each component between `self` and `later`.
    pub fn costs(
        &self,
        later: &CpuSnapshot,
        components: &[Component],
        requests: u64,
        elapsed_s: f64,
    ) -> Vec<ComponentCost> {
        let tick_ms = 1000.0 / clock_ticks_per_sec() as f64;
        components
            .iter()
            .map(|c| {
                let ticks: u64 = c
                    .pids
                    .iter()
                    .map(|pid| {
                        let a = self.ticks.get(pid).copied().unwrap_or(0);
                        let b = later.ticks.get(pid).copied().unwrap_or(a);
                        b.saturating_sub(a)
                    })
                    .sum();
                let cpu_ms = ticks as f64 * tick_ms;
                let peak_kib: u64 = c
                    .pids
                    .iter()
                    .filter_map(|&pid| peak_rss_kib(pid).ok())
                    .sum();
                ComponentCost {
                    name: c.name.clone(),
                    cpu_ms,
                    cpu_us_per_request: if requests > 0 {
                        cpu_ms * 1000.0 / requests as f64
                    } else {
                        0.0
                    },
                    cpu_cores: if elapsed_s > 0.0 {
                        cpu_ms / 1000.0 / elapsed_s
                    } else {
                        0.0
                    },
                    peak_rss_mib: peak_kib as f64 / 1024.0,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        // Burn a little CPU so the counter is non-zero.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(cpu_ticks(me).unwrap() > 0);
        assert!(peak_rss_kib(me).unwrap() > 0);
        assert!(rss_kib(me).unwrap() > 0);
    }

    #[test]
    fn finds_children_and_listeners() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(listening_ports(std::process::id()).contains(&port));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let kids = descendants(std::process::id());
        assert!(
            kids.iter().any(|(p, c)| *p == child.id() && c == "sleep"),
            "{kids:?}"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
