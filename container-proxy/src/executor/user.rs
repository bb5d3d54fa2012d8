//! Whom action processes run as (local executor). Action code is hostile: when the proxy runs as
//! root (the stack started by root, or the stand-in kubelet), each container's action processes
//! run as a user of their own — uid and gid `ISOLATED_BASE + the proxy's pid`, unique among live
//! containers because pids are — with no supplementary groups. Such a process cannot read the
//! control plane's data directory (owner-only), signal or trace the proxy or the stack, read
//! their environments, or touch another container's processes and code, which run as other
//! users. Its own code directory is handed over to it; the launchers are world-readable and
//! root-owned.
//!
//! When the proxy is not root there is no one to switch to: actions run as the proxy's user and
//! can read what it can (the local backend is a development backend, not a sandbox).

use std::path::Path;
use std::str::FromStr;

/// First uid of the isolated range (above any system or login user).
pub const ISOLATED_BASE: u32 = whisk_stack::leftovers::ISOLATED_UID_BASE;

/// The `--action-uid` flag: `auto` (a uid of the container's own when root, else unchanged),
/// `same` (never switch), or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActionUidFlag {
    #[default]
    Auto,
    Same,
    Uid(u32),
}

impl FromStr for ActionUidFlag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "same" => Ok(Self::Same),
            n => n
                .parse()
                .map(Self::Uid)
                .map_err(|_| format!("expected auto, same or a uid, got {n:?}")),
        }
    }
}

/// The user action processes run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionUser {
    /// The proxy's own user.
    Same,
    /// This uid, with the gid of the same number.
    Isolated(u32),
}

impl ActionUser {
    /// Decides from the flag, the proxy's effective uid and the uids this user namespace maps.
    pub fn choose(flag: ActionUidFlag) -> Self {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        match flag {
            ActionUidFlag::Same => Self::Same,
            ActionUidFlag::Uid(uid) => Self::Isolated(uid),
            ActionUidFlag::Auto if !root => Self::Same,
            ActionUidFlag::Auto => {
                let uid = ISOLATED_BASE.saturating_add(std::process::id());
                if mapped(uid) {
                    Self::Isolated(uid)
                } else {
                    tracing::warn!(
                        uid,
                        "this user namespace maps no uid for isolated actions: they run as root"
                    );
                    Self::Same
                }
            }
        }
    }

    /// The uid to switch to, if any.
    pub fn uid(self) -> Option<u32> {
        match self {
            Self::Same => None,
            Self::Isolated(uid) => Some(uid),
        }
    }

    /// Makes `dir` and everything in it the action user's (symlinks are not followed).
    pub fn hand_over(self, dir: &Path) -> std::io::Result<()> {
        let Some(uid) = self.uid() else {
            return Ok(());
        };
        std::os::unix::fs::lchown(dir, Some(uid), Some(uid))?;
        if dir.symlink_metadata()?.is_dir() {
            for entry in std::fs::read_dir(dir)? {
                self.hand_over(&entry?.path())?;
            }
        }
        Ok(())
    }

    /// Lets every user read and enter `dir` (not write it): for files that are not secret, such as
    /// the launchers.
    pub fn share_read_only(self, dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if self.uid().is_some() {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    }
}

/// Whether `/proc/self/uid_map` maps `uid` (no file: no user namespace, every uid exists).
fn mapped(uid: u32) -> bool {
    let Ok(map) = std::fs::read_to_string("/proc/self/uid_map") else {
        return true;
    };
    map.lines().any(|line| {
        let mut n = line
            .split_whitespace()
            .map(|x| x.parse::<u64>().unwrap_or(0));
        let (inside, _outside, count) = (
            n.next().unwrap_or(0),
            n.next().unwrap_or(0),
            n.next().unwrap_or(0),
        );
        (inside..inside + count).contains(&u64::from(uid))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_parses() {
        assert_eq!("auto".parse(), Ok(ActionUidFlag::Auto));
        assert_eq!("same".parse(), Ok(ActionUidFlag::Same));
        assert_eq!("4242".parse(), Ok(ActionUidFlag::Uid(4242)));
        assert!("nobody".parse::<ActionUidFlag>().is_err());
    }

    #[test]
    fn auto_isolates_exactly_when_root() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let user = ActionUser::choose(ActionUidFlag::Auto);
        if root && mapped(ISOLATED_BASE + std::process::id()) {
            assert_eq!(
                user,
                ActionUser::Isolated(ISOLATED_BASE + std::process::id())
            );
        } else {
            assert_eq!(user, ActionUser::Same);
        }
        assert_eq!(ActionUser::choose(ActionUidFlag::Same), ActionUser::Same);
    }

    #[test]
    fn hand_over_changes_every_owner_when_root() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return; // only root can give files away
        }
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f"), "x").unwrap();
        ActionUser::Isolated(123_456).hand_over(dir.path()).unwrap();
        for p in [
            dir.path().to_path_buf(),
            dir.path().join("sub"),
            dir.path().join("sub/f"),
        ] {
            let m = std::fs::metadata(&p).unwrap();
            assert_eq!((m.uid(), m.gid()), (123_456, 123_456), "{}", p.display());
        }
    }
}
