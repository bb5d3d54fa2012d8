//! `/api/v1/namespaces/{ns}/actions[/...]`: create/update (PUT), get, delete and list actions,
//! including actions in packages and sequences, with OpenWhisk's checks and texts.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::code;
use super::{
    ApiError, ApiQuery, AppState, Caller, Namespace, OwnNamespace, QueryMap, check_name,
    check_namespace, count_response, from_value, ok, parse_object, query_bool, query_flag,
    readable_action, readable_package, resolve_binding, skip_limit,
};
use crate::model::{ActionDoc, ActionLimits, Exec, KeyValue, bump_patch, entity_fqn, kv_set};
use crate::plane::Plane;
use crate::runtimes::{self, KindError};

const SEQUENCE_MAX: usize = 50;

/// OpenWhisk's text for a write to an action through a package binding.
const NOT_ON_BINDING: &str = "Operation not permitted on package binding.";

#[derive(Debug, Deserialize)]
struct ExecPut {
    kind: Option<String>,
    code: Option<String>,
    image: Option<String>,
    main: Option<String>,
    binary: Option<bool>,
    components: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct LimitsPut {
    timeout: Option<i64>,
    memory: Option<i64>,
    logs: Option<i64>,
    concurrency: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct ActionPut {
    exec: Option<ExecPut>,
    parameters: Option<Vec<KeyValue>>,
    annotations: Option<Vec<KeyValue>>,
    limits: Option<LimitsPut>,
    version: Option<String>,
    publish: Option<bool>,
}

/// `name`, `pkg/name` or `pkg/` (the package's actions).
enum Target {
    Action { pkg: Option<String>, name: String },
    PackageList { pkg: String },
}

fn parse_path(path: &str) -> Result<Target, ApiError> {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [name] => {
            check_name(name)?;
            Ok(Target::Action {
                pkg: None,
                name: name.to_string(),
            })
        }
        [pkg, ""] => {
            check_name(pkg)?;
            Ok(Target::PackageList {
                pkg: pkg.to_string(),
            })
        }
        [pkg, name] => {
            check_name(pkg)?;
            check_name(name)?;
            Ok(Target::Action {
                pkg: Some(pkg.to_string()),
                name: name.to_string(),
            })
        }
        _ => Err(ApiError::not_found()),
    }
}

// ---- limits ----------------------------------------------------------------------------

fn check_range(
    value: i64,
    min: i64,
    max: i64,
    below: String,
    above: String,
) -> Result<u32, ApiError> {
    if value < min {
        Err(ApiError::bad_request(below))
    } else if value > max {
        Err(ApiError::bad_request(above))
    } else {
        Ok(value as u32)
    }
}

fn apply_limits(
    base: ActionLimits,
    put: Option<LimitsPut>,
    max_concurrency: u32,
) -> Result<ActionLimits, ApiError> {
    let Some(p) = put else { return Ok(base) };
    let mut l = base;
    if let Some(t) = p.timeout {
        l.timeout = check_range(
            t,
            100,
            300_000,
            format!("duration {t} milliseconds below allowed threshold of 100 milliseconds"),
            format!("duration {t} milliseconds exceeds allowed threshold of 300000 milliseconds"),
        )?;
    }
    if let Some(m) = p.memory {
        l.memory = check_range(
            m,
            128,
            512,
            format!("memory size {m} MB below allowed threshold of 128 MB"),
            format!("memory size {m} MB exceeds allowed threshold of 512 MB"),
        )?;
    }
    if let Some(g) = p.logs {
        l.logs = check_range(
            g,
            0,
            10,
            format!("log size {g} MB below allowed threshold of 0 MB"),
            format!("log size {g} MB exceeds allowed threshold of 10 MB"),
        )?;
    }
    if let Some(c) = p.concurrency {
        let max = max_concurrency as i64;
        l.concurrency = check_range(
            c,
            1,
            max,
            format!("concurrency {c} below allowed threshold of 1"),
            format!("concurrency {c} exceeds allowed threshold of {max}"),
        )?;
    }
    Ok(l)
}

// ---- exec and sequences ------------------------------------------------------------------

/// A component name as `(ns, pkg, name)`, `_` resolved to the caller's namespace.
fn parse_component(
    caller: &Caller,
    seq_ns: &str,
    c: &str,
) -> Result<(String, Option<String>, String), ApiError> {
    let malformed = || {
        ApiError::bad_request(
            "The fully qualified name of the entity must contain at least the namespace and the name of the entity.",
        )
    };
    let (ns, rest): (String, Vec<&str>) = match c.strip_prefix('/') {
        Some(abs) => {
            let mut it = abs.split('/');
            let ns = it.next().filter(|s| !s.is_empty()).ok_or_else(malformed)?;
            (caller.resolve(ns), it.collect())
        }
        None => (seq_ns.to_string(), c.split('/').collect()),
    };
    check_namespace(&ns)?;
    match rest.as_slice() {
        [name] => {
            check_name(name)?;
            Ok((ns, None, name.to_string()))
        }
        [pkg, name] => {
            check_name(pkg)?;
            check_name(name)?;
            Ok((ns, Some(pkg.to_string()), name.to_string()))
        }
        _ => Err(malformed()),
    }
}

/// Resolve and check the components of a sequence `self_fqn`; returns them fully qualified with
/// a leading slash, as OpenWhisk stores them.
fn check_sequence(
    plane: &Plane,
    caller: &Caller,
    seq_ns: &str,
    self_fqn: &str,
    components: &[String],
) -> Result<Vec<String>, ApiError> {
    if components.is_empty() {
        return Err(ApiError::bad_request(
            "No component specified for the sequence.",
        ));
    }
    let mut resolved = Vec::new();
    let mut atomic = 0usize;
    for c in components {
        let (ns, pkg, name) = parse_component(caller, seq_ns, c)?;
        let fqn = entity_fqn(&ns, pkg.as_deref(), &name);
        if fqn == self_fqn {
            return Err(ApiError::bad_request("Sequence may not refer to itself."));
        }
        let action = match readable_action(plane, caller, &ns, pkg.as_deref(), &name) {
            Ok((a, _)) => a,
            Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => {
                return Err(ApiError::bad_request("Sequence component does not exist."));
            }
            Err(e) => return Err(e),
        };
        atomic += count_atomic(plane, &action, self_fqn, 0)?;
        if atomic > SEQUENCE_MAX {
            return Err(ApiError::bad_request("Too many actions in the sequence."));
        }
        resolved.push(format!("/{fqn}"));
    }
    Ok(resolved)
}

/// Atomic actions in `a` after inlining nested sequences; errors on cycles through `self_fqn`.
fn count_atomic(
    plane: &Plane,
    a: &ActionDoc,
    self_fqn: &str,
    depth: usize,
) -> Result<usize, ApiError> {
    let Some(components) = a.exec.components.as_ref().filter(|_| a.exec.is_sequence()) else {
        return Ok(1);
    };
    if depth > SEQUENCE_MAX {
        return Err(ApiError::bad_request("Too many actions in the sequence."));
    }
    let mut n = 0;
    for c in components {
        let fqn = c.trim_start_matches('/').to_string();
        if fqn == self_fqn {
            return Err(ApiError::bad_request("Sequence may not refer to itself."));
        }
        match plane.store.get_action(&fqn)? {
            Some(inner) => n += count_atomic(plane, &inner, self_fqn, depth + 1)?,
            None => return Err(ApiError::bad_request("Sequence component does not exist.")),
        }
        if n > SEQUENCE_MAX {
            return Err(ApiError::bad_request("Too many actions in the sequence."));
        }
    }
    Ok(n)
}

fn build_exec(
    plane: &Plane,
    caller: &Caller,
    ns: &str,
    self_fqn: &str,
    e: ExecPut,
) -> Result<Exec, ApiError> {
    let kind = runtimes::resolve_for_create(e.kind.as_deref().unwrap_or_default()).map_err(
        |err| match err {
            KindError::Unknown { .. } => ApiError::malformed(err),
            KindError::Deprecated(_) => ApiError::bad_request(err.to_string()),
        },
    )?;
    if kind == "sequence" {
        let components = check_sequence(
            plane,
            caller,
            ns,
            self_fqn,
            e.components.as_deref().unwrap_or(&[]),
        )?;
        return Ok(Exec {
            kind,
            code: None,
            image: None,
            main: None,
            binary: false,
            components: Some(components),
        });
    }
    if kind == runtimes::BLACKBOX {
        let image = e.image.as_deref().unwrap_or("");
        if image.is_empty() {
            return Err(ApiError::bad_request(
                "exec malformed: blackbox actions need an image",
            ));
        }
        plane
            .backend
            .check_image(image, e.code.as_deref().is_some_and(|c| !c.is_empty()))
            .map_err(ApiError::bad_request)?;
    } else if e.code.is_none() {
        return Err(ApiError::bad_request("exec malformed: code is required"));
    }
    // OpenWhisk classifies the code itself: clients send zips without `binary`.
    let binary = e.binary.unwrap_or(false) || e.code.as_deref().is_some_and(code::is_zip_base64);
    Ok(Exec {
        kind,
        code: e.code,
        image: e.image,
        main: e.main.filter(|m| !m.is_empty()),
        binary,
        components: None,
    })
}

// ---- handlers ----------------------------------------------------------------------------

/// `GET .../actions`: every action of the namespace, those in its packages included (OpenWhisk's
/// `actions` view lists an action under its package's path and under the namespace), newest first.
pub async fn list_root(
    State(plane): State<AppState>,
    OwnNamespace(ns): OwnNamespace,
    ApiQuery(q): ApiQuery,
) -> Result<Response, ApiError> {
    let actions = plane.store.list_actions(Some(&ns.name))?;
    list_response(actions, &q)
}

fn list_response(mut actions: Vec<ActionDoc>, q: &QueryMap) -> Result<Response, ApiError> {
    let (skip, limit) = skip_limit(q, "actions")?;
    if query_bool(q, "count")? {
        return Ok(count_response("actions", actions.len(), skip));
    }
    actions.sort_by(|a, b| b.updated.cmp(&a.updated).then_with(|| a.name.cmp(&b.name)));
    let page: Vec<Value> = actions
        .iter()
        .skip(skip)
        .take(limit)
        .map(ActionDoc::to_summary_json)
        .collect();
    Ok(ok(Value::Array(page)))
}

/// `GET .../actions/{name}`, `.../actions/{pkg}/{name}`, `.../actions/{pkg}/`.
pub async fn get_any(
    State(plane): State<AppState>,
    Namespace { caller, name: ns }: Namespace,
    Path((_, path)): Path<(String, String)>,
    ApiQuery(q): ApiQuery,
) -> Result<Response, ApiError> {
    match parse_path(&path)? {
        Target::PackageList { pkg } => {
            let package = readable_package(&plane, &caller, &ns, &pkg)?;
            let (target, _) = resolve_binding(&plane, &caller, package)?;
            let actions: Vec<ActionDoc> = plane
                .store
                .list_actions(Some(&target.namespace))?
                .into_iter()
                .filter(|a| a.package.as_deref() == Some(target.name.as_str()))
                .collect();
            list_response(actions, &q)
        }
        Target::Action { pkg, name } => {
            let (mut action, binding) =
                readable_action(&plane, &caller, &ns, pkg.as_deref(), &name)?;
            // Inherited parameters: package < binding < action.
            if let Some(p) = &action.package {
                let mut params = Vec::new();
                if let Some(pkg) = plane
                    .store
                    .get_package(&format!("{}/{p}", action.namespace))?
                {
                    params = pkg.parameters;
                }
                if let Some(b) = &binding {
                    for kv in &b.parameters {
                        kv_set(&mut params, &kv.key, kv.value.clone());
                    }
                }
                for kv in &action.parameters {
                    kv_set(&mut params, &kv.key, kv.value.clone());
                }
                action.parameters = params;
            }
            let with_code = query_flag(&q, "code", true)?;
            Ok(ok(action.to_json(with_code)))
        }
    }
}

/// `PUT .../actions/[pkg/]{name}[?overwrite=true]`.
pub async fn put(
    State(plane): State<AppState>,
    scope: Namespace,
    Path((_, path)): Path<(String, String)>,
    ApiQuery(q): ApiQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Target::Action { pkg, name } = parse_path(&path)? else {
        return Err(ApiError::not_found());
    };
    let fqn = entity_fqn(&scope.name, pkg.as_deref(), &name);
    scope.require_own(&fqn)?;
    let Namespace { caller, name: ns } = scope;
    let content: ActionPut = from_value(parse_object(&body)?)?;
    if let Some(p) = &pkg {
        match plane.store.get_package(&format!("{ns}/{p}"))? {
            None => return Err(ApiError::not_found()),
            Some(pk) if pk.binding.is_some() => {
                return Err(ApiError::bad_request(NOT_ON_BINDING));
            }
            Some(_) => {}
        }
    }
    let overwrite = query_bool(&q, "overwrite")?;
    let existing = plane.store.get_action(&fqn)?;
    let max_conc = plane.config.max_action_concurrency.max(1);
    let doc = match existing {
        Some(_) if !overwrite => return Err(ApiError::conflict(super::errors::EXISTS)),
        Some(old) => {
            let exec = match content.exec {
                Some(e) => build_exec(&plane, &caller, &ns, &fqn, e)?,
                // An action of a deprecated kind may be read and deleted, not updated.
                None => match runtimes::lookup(&old.exec.kind) {
                    Some(r) if r.deprecated => {
                        return Err(ApiError::bad_request(
                            KindError::Deprecated(r.kind.to_string()).to_string(),
                        ));
                    }
                    _ => old.exec.clone(),
                },
            };
            let limits = apply_limits(old.limits, content.limits, max_conc)?;
            let mut parameters = content.parameters.unwrap_or(old.parameters.clone());
            let mut annotations = content.annotations.unwrap_or(old.annotations.clone());
            kv_set(&mut annotations, "exec", json!(exec.kind));
            if exec.is_sequence() {
                parameters = sequence_parameters(&exec);
            }
            ActionDoc {
                namespace: ns.clone(),
                package: pkg.clone(),
                name: name.clone(),
                version: bump_patch(&old.version),
                revision: plane.store.next_revision()?,
                exec,
                parameters,
                annotations,
                limits,
                publish: content.publish.unwrap_or(old.publish),
                updated: super::now_ms(),
            }
        }
        None => {
            let Some(e) = content.exec else {
                return Err(ApiError::bad_request("exec undefined"));
            };
            let exec = build_exec(&plane, &caller, &ns, &fqn, e)?;
            let limits = apply_limits(ActionLimits::default(), content.limits, max_conc)?;
            let mut annotations = content.annotations.unwrap_or_default();
            kv_set(&mut annotations, "exec", json!(exec.kind));
            if !annotations.iter().any(|kv| kv.key == "provide-api-key") {
                annotations.push(KeyValue::new("provide-api-key", json!(false)));
            }
            let parameters = if exec.is_sequence() {
                sequence_parameters(&exec)
            } else {
                content.parameters.unwrap_or_default()
            };
            ActionDoc {
                namespace: ns.clone(),
                package: pkg.clone(),
                name: name.clone(),
                version: content.version.unwrap_or_else(|| "0.0.1".to_string()),
                revision: plane.store.next_revision()?,
                exec,
                parameters,
                annotations,
                limits,
                publish: content.publish.unwrap_or(false),
                updated: super::now_ms(),
            }
        }
    };
    plane.store.put_action(&doc)?;
    plane.action_written(&doc);
    Ok(ok(doc.to_json(true)))
}

/// OpenWhisk keeps a sequence's components as the legacy `_actions` parameter.
fn sequence_parameters(exec: &Exec) -> Vec<KeyValue> {
    vec![KeyValue::new(
        "_actions",
        json!(exec.components.clone().unwrap_or_default()),
    )]
}

/// `DELETE .../actions/[pkg/]{name}`: returns the deleted action.
pub async fn delete(
    State(plane): State<AppState>,
    ns: Namespace,
    Path((_, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let Target::Action { pkg, name } = parse_path(&path)? else {
        return Err(ApiError::not_found());
    };
    let fqn = entity_fqn(&ns.name, pkg.as_deref(), &name);
    ns.require_own(&fqn)?;
    // As OpenWhisk: through a binding nothing is deleted (the actions are the bound package's).
    if let Some(p) = &pkg
        && plane
            .store
            .get_package(&format!("{}/{p}", ns.name))?
            .is_some_and(|pk| pk.binding.is_some())
    {
        return Err(ApiError::bad_request(NOT_ON_BINDING));
    }
    let old = plane
        .store
        .delete_action(&fqn)?
        .ok_or_else(ApiError::not_found)?;
    plane.action_deleted(&fqn);
    Ok(ok(old.to_json(true)))
}
