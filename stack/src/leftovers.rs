//! What a local container leaves behind, found and removed. Action code is hostile and may try
//! to outlive its container: a child that calls `setsid` and double-forks leaves the launcher's
//! process group and loses the parent-death signal, so killing the group is not enough. And a
//! proxy killed with SIGKILL runs no destructor, so the temporary directories it made stay.
//!
//! * the process tree: [`descendants`] walks `/proc` by parent pid, [`kill_tree`] kills a
//!   process and everything under it, [`tree_rss_bytes`] measures it (the memory watchdog);
//! * the action's user: when the stack runs as root, each container's actions run as a uid of
//!   their own (`container-proxy/src/executor/user.rs`), and [`kill_user`] kills every process
//!   of that uid — whatever it did to leave the tree, it cannot leave its uid;
//! * temporary directories carry the pid of the proxy that made them ([`temp_prefix`]), so the
//!   control plane removes a dead proxy's ([`remove_temp_dirs_of`]) and the control plane and
//!   every proxy sweep, when they start, what proxies no longer alive left ([`sweep`]): the
//!   processes still working in such a directory (an action's detached child after the whole
//!   stack was killed) and the directories.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// First uid of the users local actions run as when the stack runs as root: a container's
/// actions run as `ISOLATED_UID_BASE + <its proxy's pid>`.
pub const ISOLATED_UID_BASE: u32 = 100_000;

/// The uid the actions of the proxy with pid `proxy_pid` run as (when it runs as root).
pub fn isolated_uid(proxy_pid: u32) -> u32 {
    ISOLATED_UID_BASE.saturating_add(proxy_pid)
}

/// The kinds of temporary directory a container proxy makes (`whisk-<kind>-<pid>-XXXXXX`).
pub const TEMP_KINDS: [&str; 2] = ["launchers", "action"];

/// One process as `/proc/<pid>/stat` shows it.
struct Stat {
    ppid: u32,
    rss_pages: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so fields are counted
    // after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        rss_pages: fields.get(21)?.parse().ok()?,
    })
}

fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The children of `pid` from `/proc/<pid>/task/*/children` (one read per thread), `None` when
/// the kernel does not provide those files.
fn children_of(pid: u32) -> Option<Vec<u32>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).ok()?;
        out.extend(
            text.split_ascii_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    Some(out)
}

/// Every process under `root` (not `root` itself), at the time of the walk: through the
/// kernel's children lists (cheap: a read per thread of the tree), else by a scan of every
/// process's parent.
pub fn descendants(root: u32) -> Vec<u32> {
    // Pid 0 would name every process's "parent" (init and the kernel's threads).
    if root == 0 || !Path::new(&format!("/proc/{root}")).exists() {
        return Vec::new();
    }
    if Path::new(&format!("/proc/{root}/task/{root}/children")).exists() {
        let mut out: Vec<u32> = Vec::new();
        let mut next = vec![root];
        while let Some(p) = next.pop() {
            for c in children_of(p).unwrap_or_default() {
                if c != root && !out.contains(&c) {
                    out.push(c);
                    next.push(c);
                }
            }
        }
        return out;
    }
    descendants_by_scan(root)
}

fn descendants_by_scan(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in all_pids() {
        if let Some(s) = read_stat(pid) {
            children.entry(s.ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut next = vec![root];
    while let Some(p) = next.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if c != root && !out.contains(&c) {
                out.push(c);
                next.push(c);
            }
        }
    }
    out
}

fn sigkill(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid)
        && pid > 1
    {
        // SAFETY: kill(2) has no memory effects; a pid that is gone only fails.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// Kills `root`, its process group, and every process under it (detached ones included while
/// their parent still lives).
pub fn kill_tree(root: u32) {
    // Twice: a process may fork between the walk and its death.
    for _ in 0..2 {
        for pid in descendants(root) {
            sigkill(pid);
        }
    }
    if let Ok(group) = libc::pid_t::try_from(root)
        && group > 1
    {
        // SAFETY: as above; the group is the one `root` leads, if any.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
    sigkill(root);
}

/// Resident memory of `root` and everything under it, plus, with `uid`, of every other process
/// of that uid (what left the tree).
pub fn tree_rss_bytes(root: u32, uid: Option<u32>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let mut pids = descendants(root);
    if root != 0 {
        pids.push(root);
    }
    if let Some(uid) = uid.filter(|u| *u != 0) {
        for pid in all_pids() {
            let owned = std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == uid);
            if owned && !pids.contains(&pid) {
                pids.push(pid);
            }
        }
    }
    pids.iter()
        .filter_map(|p| read_stat(*p))
        .map(|s| s.rss_pages.saturating_mul(page))
        .sum()
}

/// Kills every process of `uid` (only when running as root, never uid 0): a child forked as that
/// user calls `kill(-1, SIGKILL)`, which reaches every process the user may signal — its own —
/// except the caller. Returns whether it ran.
pub fn kill_user(uid: u32) -> bool {
    // SAFETY: geteuid has no preconditions.
    if uid == 0 || unsafe { libc::geteuid() } != 0 {
        return false;
    }
    for _ in 0..2 {
        // SAFETY: the child makes only async-signal-safe calls (setgroups, setgid, setuid, kill,
        // _exit) before it exits; the parent waits for that exact pid.
        unsafe {
            let pid = libc::fork();
            if pid == 0 {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(uid) != 0
                    || libc::setuid(uid) != 0
                {
                    libc::_exit(1);
                }
                libc::kill(-1, libc::SIGKILL);
                libc::_exit(0);
            }
            if pid < 0 {
                return false;
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
        }
    }
    true
}

/// The name prefix of a temporary directory of `kind` made by this process.
pub fn temp_prefix(kind: &str) -> String {
    format!("whisk-{kind}-{}-", std::process::id())
}

/// The pid in a name made with [`temp_prefix`].
fn owner_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("whisk-")?;
    TEMP_KINDS.iter().find_map(|kind| {
        let rest = rest.strip_prefix(kind)?.strip_prefix('-')?;
        // `<pid>-<random>`: a name without the pid (an older proxy's) has no second dash.
        let (pid, random) = rest.split_once('-')?;
        (!random.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
            .then(|| pid.parse().ok())
            .flatten()
    })
}

fn remove_where(dir: &Path, doomed: impl Fn(u32) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(owner_of) else {
            continue;
        };
        if doomed(owner) && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// Removes the temporary directories (under `std::env::temp_dir()`) that process `pid` made.
pub fn remove_temp_dirs_of(pid: u32) -> Vec<PathBuf> {
    remove_where(&std::env::temp_dir(), |owner| owner == pid)
}

/// Whether process `owner` is gone: no such process, or a zombie (a killed proxy whose new
/// parent has not reaped it yet).
fn dead(owner: u32) -> bool {
    if owner == std::process::id() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{owner}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// What [`sweep`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Processes killed (as root: whole action users).
    pub processes: usize,
    pub dirs: Vec<PathBuf>,
}

/// Kills the processes still working in a temporary directory of a proxy that is gone (their
/// whole user, as root), then removes the directories of proxies that are gone.
pub fn sweep() -> Swept {
    use std::os::unix::fs::MetadataExt;
    let tmp = std::env::temp_dir();
    // SAFETY: geteuid has no preconditions.
    let (me, root) = (std::process::id(), unsafe { libc::geteuid() } == 0);
    let mut processes = 0;
    let mut users = Vec::new();
    for pid in all_pids().into_iter().filter(|p| *p != me) {
        let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else {
            continue;
        };
        let Ok(inside) = cwd.strip_prefix(&tmp) else {
            continue;
        };
        let first = inside
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str());
        if !first.and_then(owner_of).is_some_and(dead) {
            continue;
        }
        let uid = std::fs::metadata(format!("/proc/{pid}")).map_or(0, |m| m.uid());
        if !root {
            // Actions run as our user: the process is an action's (or ours to stop anyway).
            sigkill(pid);
        } else if uid >= ISOLATED_UID_BASE {
            if !users.contains(&uid) {
                users.push(uid);
                kill_user(uid);
            }
        } else {
            // As root, actions run as users of their own: anything else (someone's shell in
            // that directory) is not an action's.
            continue;
        }
        processes += 1;
    }
    Swept {
        processes,
        dirs: remove_where(&tmp, dead),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_read_from_names() {
        assert_eq!(owner_of("whisk-launchers-42-abc"), Some(42));
        assert_eq!(owner_of("whisk-action-7-x-y"), Some(7));
        assert_eq!(owner_of("whisk-launchers-abc"), None);
        assert_eq!(
            owner_of("whisk-launchers-123456"),
            None,
            "an older name, all digits"
        );
        assert_eq!(owner_of("whisk-action-+12-x"), None);
        assert_eq!(owner_of("whisk-spool-42-abc"), None);
        assert_eq!(owner_of("other-42-abc"), None);
    }

    #[test]
    fn a_tree_is_walked_and_measured() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & wait"])
            .spawn()
            .unwrap();
        let root = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while descendants(root).len() < 2 {
            assert!(std::time::Instant::now() < deadline, "the sleeps start");
            std::thread::yield_now();
        }
        assert!(tree_rss_bytes(root, None) > 0);
        assert_eq!(
            descendants(0),
            Vec::<u32>::new(),
            "pid 0 is nobody's parent here"
        );
        let mut under = descendants(root);
        let mut scanned = descendants_by_scan(root);
        under.sort_unstable();
        scanned.sort_unstable();
        assert_eq!(under, scanned, "both walks find the same tree");
        kill_tree(root);
        child.wait().unwrap();
        for pid in under {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            // Reaped by init, or a zombie until then: either way not running.
            while read_stat(pid).is_some_and(|_| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| !s.contains(") Z"))
            }) {
                assert!(std::time::Instant::now() < deadline, "{pid} is killed");
                std::thread::yield_now();
            }
        }
    }
}
