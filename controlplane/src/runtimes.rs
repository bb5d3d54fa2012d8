//! The runtime manifest: the one list of action kinds this stack knows, like OpenWhisk's
//! `runtimes.json`. It exists so that a kind nobody can run is refused when the action is
//! created (OpenWhisk's 400 and text) instead of failing at invoke with a misleading answer, so
//! `family:default` resolves in one place, and so `GET /api/v1` can list the runtimes.
//!
//! Each entry says how the backends run it: the local backend with one of the container proxy's
//! launchers (the machine's `node` / `python3`), the Kubernetes backend with the OpenWhisk runtime
//! image named here. Add a kind only once a backend really runs it; a kind whose runtime is gone
//! is kept as `deprecated` so its actions can still be read and deleted but not created,
//! updated or invoked (OpenWhisk's rule).

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The pseudo-kinds OpenWhisk accepts besides the manifest's runtimes.
pub const SEQUENCE: &str = "sequence";
pub const BLACKBOX: &str = "blackbox";

/// How the local backend runs a kind: the container proxy's launcher of that family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalLauncher {
    Nodejs,
    Python,
}

/// One kind of the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runtime {
    /// `family:version`, e.g. `nodejs:20`.
    pub kind: &'static str,
    /// What `family:default` resolves to (one per family).
    pub default: bool,
    /// Known but no longer runnable: read and delete only.
    pub deprecated: bool,
    /// The OpenWhisk runtime image (`prefix/name:tag`) a container backend runs.
    pub image: &'static str,
    /// The local backend's launcher; `None` = the local backend cannot run it.
    pub local: Option<LocalLauncher>,
}

impl Runtime {
    /// The family (`nodejs` of `nodejs:20`).
    pub fn family(&self) -> &'static str {
        self.kind.split(':').next().unwrap_or(self.kind)
    }
}

/// The manifest. Node and Python run on the machine's interpreters (Node 20, Python 3), so older
/// versions are not offered: they would silently run on the newer interpreter.
pub const RUNTIMES: &[Runtime] = &[
    Runtime {
        kind: "nodejs:20",
        default: true,
        deprecated: false,
        image: "openwhisk/action-nodejs-v20:nightly",
        local: Some(LocalLauncher::Nodejs),
    },
    Runtime {
        kind: "nodejs:16",
        default: false,
        deprecated: true,
        image: "openwhisk/action-nodejs-v16:nightly",
        local: None,
    },
    Runtime {
        kind: "nodejs:14",
        default: false,
        deprecated: true,
        image: "openwhisk/action-nodejs-v14:nightly",
        local: None,
    },
    Runtime {
        kind: "nodejs:12",
        default: false,
        deprecated: true,
        image: "openwhisk/action-nodejs-v12:nightly",
        local: None,
    },
    Runtime {
        kind: "nodejs:10",
        default: false,
        deprecated: true,
        image: "openwhisk/action-nodejs-v10:nightly",
        local: None,
    },
    Runtime {
        kind: "python:3",
        default: true,
        deprecated: false,
        image: "openwhisk/action-python-v3.11:nightly",
        local: Some(LocalLauncher::Python),
    },
    Runtime {
        kind: "python:2",
        default: false,
        deprecated: true,
        image: "openwhisk/python2action:nightly",
        local: None,
    },
];

/// Why a kind cannot be used for a new or updated action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    /// Not in the manifest (OpenWhisk: a malformed request, `kind 'x' not in Set(...)`).
    #[error("kind '{kind}' not in Set({known})")]
    Unknown { kind: String, known: String },
    /// In the manifest but deprecated.
    #[error(
        "The '{0}' runtime is no longer supported. You may read and delete but not update or invoke this action."
    )]
    Deprecated(String),
}

/// The manifest entry of a kind, `family:default` resolved.
pub fn lookup(kind: &str) -> Option<&'static Runtime> {
    let wanted = match kind.strip_suffix(":default") {
        Some(family) => {
            RUNTIMES
                .iter()
                .find(|r| r.default && r.family() == family)?
                .kind
        }
        None => kind,
    };
    RUNTIMES.iter().find(|r| r.kind == wanted)
}

/// The canonical kind for a create or update: trimmed and lower-cased as OpenWhisk does,
/// `family:default` resolved, `sequence` and `blackbox` passed through; unknown and deprecated
/// kinds refused.
pub fn resolve_for_create(kind: &str) -> Result<String, KindError> {
    let kind = kind.trim().to_lowercase();
    if kind == SEQUENCE || kind == BLACKBOX {
        return Ok(kind);
    }
    match lookup(&kind) {
        Some(r) if r.deprecated => Err(KindError::Deprecated(r.kind.to_string())),
        Some(r) => Ok(r.kind.to_string()),
        None => Err(KindError::Unknown {
            kind,
            known: known_kinds().join(", "),
        }),
    }
}

/// Every kind OpenWhisk would name in its "not in" message: the manifest's and the pseudo-kinds.
fn known_kinds() -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = RUNTIMES.iter().map(|r| r.kind).collect();
    kinds.extend([SEQUENCE, BLACKBOX]);
    kinds.sort_unstable();
    kinds
}

/// The runtimes as OpenWhisk's info endpoint lists them: per family, each kind with `kind`,
/// `image`, `deprecated`, `default`, `attached` and `requireMain`.
pub fn to_json() -> Value {
    let mut families: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for r in RUNTIMES {
        families.entry(r.family()).or_default().push(json!({
            "kind": r.kind,
            "image": r.image,
            "deprecated": r.deprecated,
            "default": r.default,
            "attached": false,
            "requireMain": false,
        }));
    }
    json!(families)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve_and_one_default_per_family() {
        assert_eq!(
            resolve_for_create("nodejs:default").as_deref(),
            Ok("nodejs:20")
        );
        assert_eq!(
            resolve_for_create("python:default").as_deref(),
            Ok("python:3")
        );
        assert_eq!(
            resolve_for_create(" NodeJS:20 ").as_deref(),
            Ok("nodejs:20")
        );
        assert_eq!(resolve_for_create("sequence").as_deref(), Ok("sequence"));
        assert_eq!(resolve_for_create("blackbox").as_deref(), Ok("blackbox"));
        let mut families: Vec<&str> = RUNTIMES.iter().map(Runtime::family).collect();
        families.dedup();
        for f in families {
            let defaults = RUNTIMES
                .iter()
                .filter(|r| r.family() == f && r.default)
                .count();
            assert_eq!(defaults, 1, "{f}");
        }
    }

    #[test]
    fn unknown_and_deprecated_kinds_are_refused() {
        let err = resolve_for_create("go:1.17").unwrap_err();
        assert!(matches!(err, KindError::Unknown { .. }));
        assert!(err.to_string().starts_with("kind 'go:1.17' not in Set("));
        assert!(err.to_string().contains("nodejs:20"));
        assert!(resolve_for_create("cobol:default").is_err());
        assert!(resolve_for_create("nodejs").is_err());
        assert_eq!(
            resolve_for_create("nodejs:14").unwrap_err().to_string(),
            "The 'nodejs:14' runtime is no longer supported. You may read and delete but not update or invoke this action."
        );
    }

    #[test]
    fn every_runnable_kind_has_a_local_launcher_and_an_image() {
        for r in RUNTIMES.iter().filter(|r| !r.deprecated) {
            assert!(r.local.is_some(), "{}", r.kind);
            assert!(r.image.contains('/'), "{}", r.kind);
        }
        let json = to_json();
        assert_eq!(json["nodejs"][0]["kind"], "nodejs:20");
        assert_eq!(json["nodejs"][0]["default"], true);
        assert_eq!(json["python"][0]["kind"], "python:3");
    }
}
