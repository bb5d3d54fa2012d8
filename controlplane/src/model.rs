//! OpenWhisk entities as the control plane stores them, and the JSON shapes the management API
//! speaks. Kept free of any server framework so the store, the API and the push share one model.
//! Activation records, their status codes and texts are OpenWhisk's shared vocabulary
//! (`whisk-vocab`), not redefined here.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Parameters and annotations are OpenWhisk's `{key, value}` pairs, as the shared vocabulary
/// defines them.
pub use whisk_vocab::record::{KeyValue, kv_get, kv_set};

/// What an action runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exec {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<String>,
    #[serde(default)]
    pub binary: bool,
    /// Sequence components, fully qualified with a leading slash (`/ns/[pkg/]name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
}

impl Exec {
    pub fn is_sequence(&self) -> bool {
        self.kind == "sequence"
    }
}

/// Per-action limits (compat §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionLimits {
    pub timeout: u32,
    pub memory: u32,
    pub logs: u32,
    pub concurrency: u32,
}

impl Default for ActionLimits {
    fn default() -> Self {
        Self {
            timeout: 60_000,
            memory: 256,
            logs: 10,
            concurrency: 1,
        }
    }
}

/// A stored action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionDoc {
    /// The namespace that owns it (never `_`).
    pub namespace: String,
    pub package: Option<String>,
    pub name: String,
    pub version: String,
    /// Monotonically increasing over the whole store; changes on every update.
    pub revision: u64,
    pub exec: Exec,
    pub parameters: Vec<KeyValue>,
    pub annotations: Vec<KeyValue>,
    pub limits: ActionLimits,
    pub publish: bool,
    /// Epoch milliseconds of the last write.
    pub updated: i64,
}

impl ActionDoc {
    /// `ns/[pkg/]name`, without a leading slash (the push and router form).
    pub fn fqn(&self) -> String {
        entity_fqn(&self.namespace, self.package.as_deref(), &self.name)
    }

    /// `ns` or `ns/pkg`, as OpenWhisk shows an action's namespace.
    pub fn path(&self) -> String {
        match &self.package {
            Some(p) => format!("{}/{}", self.namespace, p),
            None => self.namespace.clone(),
        }
    }

    /// The action as `GET .../actions/{name}` returns it.
    pub fn to_json(&self, with_code: bool) -> Value {
        let mut exec = serde_json::to_value(&self.exec).unwrap_or(Value::Null);
        if let Some(e) = exec.as_object_mut() {
            if !with_code {
                e.remove("code");
            }
            // OpenWhisk shows a sequence's exec as just its kind and components.
            if self.exec.is_sequence() {
                e.remove("binary");
            }
        }
        json!({
            "namespace": self.path(),
            "name": self.name,
            "version": self.version,
            "exec": exec,
            "parameters": self.parameters,
            "annotations": self.annotations,
            "limits": self.limits,
            "publish": self.publish,
            "updated": self.updated,
        })
    }

    /// The short form used in collection listings.
    pub fn to_summary_json(&self) -> Value {
        json!({
            "namespace": self.path(),
            "name": self.name,
            "version": self.version,
            "exec": { "binary": self.exec.binary },
            "annotations": self.annotations,
            "limits": self.limits,
            "publish": self.publish,
            "updated": self.updated,
        })
    }
}

/// `ns/[pkg/]name`.
pub fn entity_fqn(namespace: &str, package: Option<&str>, name: &str) -> String {
    match package {
        Some(p) => format!("{namespace}/{p}/{name}"),
        None => format!("{namespace}/{name}"),
    }
}

/// A package binding's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingRef {
    pub namespace: String,
    pub name: String,
}

/// A stored package (or package binding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageDoc {
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub revision: u64,
    pub publish: bool,
    pub parameters: Vec<KeyValue>,
    pub annotations: Vec<KeyValue>,
    pub binding: Option<BindingRef>,
    pub updated: i64,
}

impl PackageDoc {
    pub fn fqn(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn binding_json(&self) -> Value {
        match &self.binding {
            Some(b) => json!({ "namespace": b.namespace, "name": b.name }),
            None => json!({}),
        }
    }

    /// The package as `GET .../packages/{name}` returns it; `actions` are summaries of its actions.
    pub fn to_json(&self, parameters: &[KeyValue], actions: Vec<Value>) -> Value {
        json!({
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "parameters": parameters,
            "annotations": self.annotations,
            "binding": self.binding_json(),
            "actions": actions,
            "feeds": [],
            "updated": self.updated,
        })
    }

    /// The short form used in collection listings: OpenWhisk's list view shows `binding: false`
    /// for a plain package (clients such as `aio` take any object there for a binding).
    pub fn to_summary_json(&self) -> Value {
        let binding = match &self.binding {
            Some(_) => self.binding_json(),
            None => Value::Bool(false),
        };
        json!({
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "annotations": self.annotations,
            "binding": binding,
            "updated": self.updated,
        })
    }
}

/// Per-namespace overrides of the system throttles. `None` = system default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceLimits {
    #[serde(
        rename = "invocationsPerMinute",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub invocations_per_minute: Option<u32>,
    #[serde(
        rename = "concurrentInvocations",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub concurrent_invocations: Option<u32>,
    #[serde(
        rename = "maxPayloadSize",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_payload_bytes: Option<u64>,
}

/// A namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceDoc {
    pub name: String,
    #[serde(default)]
    pub limits: NamespaceLimits,
}

/// One key of a namespace. Only the SHA-256 of the key (hex) is kept: the key itself is shown
/// once, when the identity is created, and can never be read back from the store or any API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityDoc {
    pub uuid: String,
    pub namespace: String,
    pub subject: String,
    /// Lower-case hex SHA-256 of the key (the secret half of `uuid:key`).
    pub key_sha256: String,
}

impl IdentityDoc {
    /// The digest as bytes (empty if the stored hex is damaged, so that no key matches).
    pub fn key_digest(&self) -> Vec<u8> {
        hex::decode(&self.key_sha256).unwrap_or_default()
    }
}

/// The stored form of a key: its SHA-256, lower-case hex.
pub fn digest_key(key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Bump the patch component of a semantic version ("0.0.1" -> "0.0.2").
pub fn bump_patch(version: &str) -> String {
    let mut parts: Vec<u64> = version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    parts.resize(3, 0);
    // A client may choose any version: the bump saturates rather than overflow.
    parts[2] = parts[2].saturating_add(1);
    format!("{}.{}.{}", parts[0], parts[1], parts[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_patch() {
        assert_eq!(bump_patch("0.0.1"), "0.0.2");
        assert_eq!(bump_patch("1.2.9"), "1.2.10");
        assert_eq!(bump_patch("garbage"), "0.0.1");
        assert_eq!(
            bump_patch("0.0.18446744073709551615"),
            "0.0.18446744073709551615"
        );
    }
}
