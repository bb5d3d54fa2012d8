//! `/api/v1/namespaces/{ns}/packages[/{name}]`: packages and package bindings.
//!
//! Listing follows OpenWhisk's controller: any caller may list any namespace's packages; its own
//! namespace shows every package and binding, another namespace only its published packages
//! (never its bindings, published or not: OpenWhisk's `packages-public` view). The JS client's
//! `packages.list({public: true})` sends `?public=true`, which OpenWhisk reads nowhere, so neither
//! do we: what a caller sees depends only on whose namespace it lists.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ApiError, ApiQuery, AppState, Namespace, check_name, check_namespace, count_response,
    from_value, ok, parse_object, query_bool, readable_package, resolve_binding, skip_limit,
};
use crate::model::{ActionDoc, BindingRef, KeyValue, PackageDoc, bump_patch, kv_set};

#[derive(Debug, Deserialize)]
struct BindingPut {
    namespace: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PackagePut {
    parameters: Option<Vec<KeyValue>>,
    annotations: Option<Vec<KeyValue>>,
    publish: Option<bool>,
    binding: Option<BindingPut>,
    version: Option<String>,
}

/// `GET .../packages[?skip=&limit=&count=]`: the owner sees all, others only published packages
/// (not bindings), newest first.
pub async fn list(
    State(plane): State<AppState>,
    ns: Namespace,
    ApiQuery(q): ApiQuery,
) -> Result<Response, ApiError> {
    let (skip, limit) = skip_limit(&q, "packages")?;
    let count = query_bool(&q, "count")?;
    let own = ns.is_own();
    let mut pkgs: Vec<PackageDoc> = plane
        .store
        .list_packages(Some(&ns.name))?
        .into_iter()
        .filter(|p| own || (p.publish && p.binding.is_none()))
        .collect();
    if count {
        return Ok(count_response("packages", pkgs.len(), skip));
    }
    pkgs.sort_by(|a, b| b.updated.cmp(&a.updated).then_with(|| a.name.cmp(&b.name)));
    Ok(ok(Value::Array(
        pkgs.iter()
            .skip(skip)
            .take(limit)
            .map(PackageDoc::to_summary_json)
            .collect(),
    )))
}

/// `GET .../packages/{name}`: a binding shows its target's actions and merged parameters.
pub async fn get(
    State(plane): State<AppState>,
    Namespace { caller, name: ns }: Namespace,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    check_name(&name)?;
    let pkg = readable_package(&plane, &caller, &ns, &name)?;
    let (target, binding) = resolve_binding(&plane, &caller, pkg.clone())?;
    let mut params = target.parameters.clone();
    if binding.is_some() {
        for kv in &pkg.parameters {
            kv_set(&mut params, &kv.key, kv.value.clone());
        }
    }
    let mut actions: Vec<ActionDoc> = plane
        .store
        .list_actions(Some(&target.namespace))?
        .into_iter()
        .filter(|a| a.package.as_deref() == Some(target.name.as_str()))
        .collect();
    actions.sort_by(|a, b| a.name.cmp(&b.name));
    let actions = actions
        .iter()
        .map(|a| json!({ "name": a.name, "version": a.version, "annotations": a.annotations }))
        .collect();
    Ok(ok(pkg.to_json(&params, actions)))
}

/// `PUT .../packages/{name}[?overwrite=true]`.
pub async fn put(
    State(plane): State<AppState>,
    scope: Namespace,
    Path((_, name)): Path<(String, String)>,
    q: Result<ApiQuery, ApiError>,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_name(&name)?;
    let fqn = format!("{}/{name}", scope.name);
    scope.require_own(&fqn)?;
    let Namespace { caller, name: ns } = scope;
    if name == "default" {
        return Err(ApiError::bad_request("Package name 'default' is reserved."));
    }
    let ApiQuery(q) = q?;
    let content: PackagePut = from_value(parse_object(&body)?)?;
    // `"binding": {}` means no binding.
    let binding = match content.binding {
        Some(BindingPut {
            namespace: Some(bns),
            name: Some(bname),
        }) => {
            check_namespace(&bns)?;
            check_name(&bname)?;
            let bns = caller.resolve(&bns);
            let target_fqn = format!("{bns}/{bname}");
            let target = plane.store.get_package(&target_fqn)?;
            // As OpenWhisk: read rights on the target first, so another namespace's package that
            // is missing, unpublished or a binding is a 403 and reveals nothing.
            if bns != caller.namespace
                && !target
                    .as_ref()
                    .is_some_and(|t| t.publish && t.binding.is_none())
            {
                return Err(ApiError::forbidden(&target_fqn));
            }
            let target = target.ok_or_else(|| {
                ApiError::bad_request("Binding references a package that does not exist.")
            })?;
            if target.binding.is_some() {
                return Err(ApiError::bad_request(
                    "Cannot bind to another package binding.",
                ));
            }
            Some(BindingRef {
                namespace: bns,
                name: bname,
            })
        }
        Some(BindingPut {
            namespace: None,
            name: None,
        })
        | None => None,
        Some(_) => return Err(ApiError::malformed("binding needs both namespace and name")),
    };
    let overwrite = query_bool(&q, "overwrite")?;
    let doc = match plane.store.get_package(&fqn)? {
        Some(_) if !overwrite => return Err(ApiError::conflict(super::errors::EXISTS)),
        Some(old) => {
            if old.binding.is_none() && binding.is_some() {
                return Err(ApiError::bad_request(
                    "Resource is a package and cannot be converted into a binding.",
                ));
            }
            PackageDoc {
                namespace: ns.clone(),
                name: name.clone(),
                version: bump_patch(&old.version),
                revision: plane.store.next_revision()?,
                publish: content.publish.unwrap_or(old.publish),
                parameters: content.parameters.unwrap_or(old.parameters.clone()),
                annotations: content.annotations.unwrap_or(old.annotations.clone()),
                binding: binding.or(old.binding.clone()),
                updated: super::now_ms(),
            }
        }
        None => PackageDoc {
            namespace: ns.clone(),
            name: name.clone(),
            version: content.version.unwrap_or_else(|| "0.0.1".to_string()),
            revision: plane.store.next_revision()?,
            publish: content.publish.unwrap_or(false),
            parameters: content.parameters.unwrap_or_default(),
            annotations: content.annotations.unwrap_or_default(),
            binding,
            updated: super::now_ms(),
        },
    };
    plane.store.put_package(&doc)?;
    plane.package_written(&doc)?;
    let params = doc.parameters.clone();
    Ok(ok(doc.to_json(&params, Vec::new())))
}

/// `DELETE .../packages/{name}[?force=true]`: refused while the package still holds actions,
/// unless `force` asks to delete them with it (OpenWhisk's 409 and text otherwise).
pub async fn delete(
    State(plane): State<AppState>,
    scope: Namespace,
    Path((_, name)): Path<(String, String)>,
    q: Result<ApiQuery, ApiError>,
) -> Result<Response, ApiError> {
    check_name(&name)?;
    let fqn = format!("{}/{name}", scope.name);
    scope.require_own(&fqn)?;
    let ApiQuery(q) = q?;
    let force = query_bool(&q, "force")?;
    let ns = scope.name;
    let pkg = plane
        .store
        .get_package(&fqn)?
        .ok_or_else(ApiError::not_found)?;
    if pkg.binding.is_none() {
        let contents: Vec<String> = plane
            .store
            .list_actions(Some(&ns))?
            .iter()
            .filter(|a| a.package.as_deref() == Some(&name))
            .map(ActionDoc::fqn)
            .collect();
        let n = contents.len();
        if n > 0 && !force {
            let what = if n == 1 { "entity" } else { "entities" };
            return Err(ApiError::conflict(format!(
                "Package not empty (contains {n} {what}). Set force param or delete package contents."
            )));
        }
        for action in contents {
            if plane.store.delete_action(&action)?.is_some() {
                plane.action_deleted(&action);
            }
        }
    }
    plane.store.delete_package(&fqn)?;
    plane.package_deleted(&pkg);
    let params = pkg.parameters.clone();
    Ok(ok(pkg.to_json(&params, Vec::new())))
}
