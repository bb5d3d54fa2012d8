//! The one action revision a proxy serves: what `/_whisk/init` (or the environment of an image
//! with the action baked in) tells it, with OpenWhisk's default limits filled in.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::truthy::is_truthy;

/// OpenWhisk's default time limit (ms).
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
/// OpenWhisk's default memory limit (MB).
pub const DEFAULT_MEMORY_MB: u64 = 256;
/// OpenWhisk's default log limit (MB).
pub const DEFAULT_LOGS_MB: u64 = 10;
/// Largest result accepted from an action (`whisk.activation.payload.max` = 1 MB).
pub const MAX_RESULT_BYTES: usize = 1024 * 1024;

/// Why an action description was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("invalid action description: {0}")]
    Invalid(String),
    #[error("invalid action JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// `exec` of an action.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Exec {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub main: Option<String>,
    #[serde(default)]
    pub binary: bool,
}

/// One `{key, value, init?}` parameter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Parameter {
    pub key: String,
    #[serde(default)]
    pub value: Value,
    #[serde(default)]
    pub init: bool,
}

/// One `{key, value}` annotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Annotation {
    pub key: String,
    #[serde(default)]
    pub value: Value,
}

/// `limits` of an action, defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    #[serde(default = "default_memory")]
    pub memory: u64,
    #[serde(default = "default_logs")]
    pub logs: u64,
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}
fn default_memory() -> u64 {
    DEFAULT_MEMORY_MB
}
fn default_logs() -> u64 {
    DEFAULT_LOGS_MB
}
fn default_concurrency() -> u32 {
    1
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: DEFAULT_TIMEOUT_MS,
            memory: DEFAULT_MEMORY_MB,
            logs: DEFAULT_LOGS_MB,
            concurrency: 1,
        }
    }
}

impl Limits {
    /// The log limit in bytes.
    pub fn log_bytes(&self) -> usize {
        usize::try_from(self.logs.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
    }
}

/// The `action` object of `/_whisk/init` (Contract 3).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ActionSpec {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub package: Option<String>,
    #[serde(default)]
    pub name: String,
    /// `ns/[pkg/]name`, no leading slash.
    #[serde(default)]
    pub fqn: String,
    /// What records name as `path`, when it is not `fqn`: the bound action's, for an action
    /// invoked through a package binding.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub revision: u64,
    #[serde(default = "default_version")]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub exec: Exec,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    #[serde(default)]
    pub annotations: Vec<Annotation>,
    #[serde(default)]
    pub limits: Limits,
}

fn default_version() -> String {
    "0.0.1".to_string()
}

impl ActionSpec {
    /// Parses the `action` object and fills in what can be derived (fqn from the parts and back).
    pub fn from_json(value: Value) -> Result<Self, ActionError> {
        let mut spec: ActionSpec = serde_json::from_value(value)?;
        spec.normalise()?;
        Ok(spec)
    }

    fn normalise(&mut self) -> Result<(), ActionError> {
        if self.fqn.is_empty() {
            if self.namespace.is_empty() || self.name.is_empty() {
                return Err(ActionError::Invalid(
                    "an action needs a fqn or a namespace and a name".into(),
                ));
            }
            self.fqn = match &self.package {
                Some(p) if !p.is_empty() => format!("{}/{}/{}", self.namespace, p, self.name),
                _ => format!("{}/{}", self.namespace, self.name),
            };
        } else {
            let fqn = self.fqn.trim_start_matches('/').to_string();
            let parts: Vec<&str> = fqn.split('/').collect();
            match parts.as_slice() {
                [ns, name] => {
                    self.namespace = ns.to_string();
                    self.package = None;
                    self.name = name.to_string();
                }
                [ns, pkg, name] => {
                    self.namespace = ns.to_string();
                    self.package = Some(pkg.to_string());
                    self.name = name.to_string();
                }
                _ => return Err(ActionError::Invalid(format!("bad action name '{fqn}'"))),
            }
            self.fqn = fqn;
        }
        if self.limits.concurrency == 0 {
            self.limits.concurrency = 1;
        }
        if self.limits.timeout == 0 {
            self.limits.timeout = DEFAULT_TIMEOUT_MS;
        }
        Ok(())
    }

    /// `/ns/[pkg/]name`, the `action_name` of the `/run` message.
    pub fn action_name(&self) -> String {
        format!("/{}", self.fqn)
    }

    /// The entry point (`main` unless the action says otherwise).
    pub fn main(&self) -> String {
        match &self.exec.main {
            Some(m) if !m.is_empty() => m.clone(),
            _ => "main".to_string(),
        }
    }

    /// The value of an annotation, if present.
    pub fn annotation(&self, key: &str) -> Option<&Value> {
        self.annotations
            .iter()
            .find(|a| a.key == key)
            .map(|a| &a.value)
    }

    /// Whether an annotation is present and truthy.
    pub fn annotation_truthy(&self, key: &str) -> bool {
        self.annotation(key).is_some_and(is_truthy)
    }

    /// The init environment: parameters marked `init: true`, string-ified as OpenWhisk does.
    pub fn init_env(&self) -> Map<String, Value> {
        self.parameters
            .iter()
            .filter(|p| p.init)
            .map(|p| {
                let v = match &p.value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (p.key.clone(), Value::String(v))
            })
            .collect()
    }

    /// Builds the action from the start-up environment of an image with the action baked in
    /// (`__OW_ACTION_*`). Returns `Ok(None)` when the environment holds no action.
    pub fn from_env(
        lookup: impl Fn(&str) -> Option<String>,
        default_kind: Option<&str>,
    ) -> Result<Option<Self>, ActionError> {
        let json = lookup("__OW_ACTION_JSON");
        let code = lookup("__OW_ACTION_CODE");
        if json.is_none() && code.is_none() {
            return Ok(None);
        }
        let mut value = match json {
            Some(text) => serde_json::from_str::<Value>(&text)?,
            None => Value::Object(Map::new()),
        };
        let obj = value
            .as_object_mut()
            .ok_or_else(|| ActionError::Invalid("__OW_ACTION_JSON is not an object".into()))?;
        if let Some(name) = lookup("__OW_ACTION_NAME") {
            obj.insert("fqn".into(), Value::String(name));
        }
        if let Some(version) = lookup("__OW_ACTION_VERSION") {
            obj.insert("version".into(), Value::String(version));
        }
        if let Some(kind) = lookup("__OW_ACTION_KIND").or(default_kind.map(str::to_string)) {
            obj.insert("kind".into(), Value::String(kind));
        }
        let exec = obj
            .entry("exec")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(exec) = exec.as_object_mut() {
            if let Some(code) = code {
                exec.insert("code".into(), Value::String(code));
            }
            if let Some(main) = lookup("__OW_ACTION_MAIN") {
                exec.insert("main".into(), Value::String(main));
            }
            if let Some(binary) = lookup("__OW_ACTION_BINARY") {
                let b = matches!(binary.trim(), "true" | "1" | "yes");
                exec.insert("binary".into(), Value::Bool(b));
            }
        }
        let spec = Self::from_json(value)?;
        if spec.kind.is_empty() {
            return Err(ActionError::Invalid(
                "no kind: set __OW_ACTION_KIND or --kind".into(),
            ));
        }
        Ok(Some(spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fqn_is_split_and_defaults_applied() {
        let spec =
            ActionSpec::from_json(json!({"fqn": "guest/pkg/hello", "kind": "nodejs:20"})).unwrap();
        assert_eq!(spec.namespace, "guest");
        assert_eq!(spec.package.as_deref(), Some("pkg"));
        assert_eq!(spec.name, "hello");
        assert_eq!(spec.action_name(), "/guest/pkg/hello");
        assert_eq!(spec.limits, Limits::default());
        assert_eq!(spec.main(), "main");
    }

    #[test]
    fn fqn_built_from_parts() {
        let spec = ActionSpec::from_json(json!({"namespace": "ns", "name": "a"})).unwrap();
        assert_eq!(spec.fqn, "ns/a");
    }

    #[test]
    fn from_env_reads_baked_action() {
        let env = |k: &str| match k {
            "__OW_ACTION_CODE" => Some("function main(){return {}}".to_string()),
            "__OW_ACTION_NAME" => Some("/guest/baked".to_string()),
            "__OW_ACTION_KIND" => Some("nodejs:20".to_string()),
            "__OW_ACTION_JSON" => Some(r#"{"limits":{"timeout":1000}}"#.to_string()),
            _ => None,
        };
        let spec = ActionSpec::from_env(env, None).unwrap().unwrap();
        assert_eq!(spec.fqn, "guest/baked");
        assert_eq!(spec.limits.timeout, 1000);
        assert_eq!(spec.limits.memory, DEFAULT_MEMORY_MB);
        assert!(ActionSpec::from_env(|_| None, None).unwrap().is_none());
    }
}
