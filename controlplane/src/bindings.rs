//! Package bindings on the data plane. Invoking `ns/binding/action` runs the bound package's
//! action with the binding's parameters between the package's and the action's (OpenWhisk's
//! order: package < binding < action < invoke). The router never resolves anything: each action a
//! binding exposes is pushed as an action of its own, at `ns/binding/action` (the bound action's
//! code, limits and revision, private to the binding's namespace, with OpenWhisk's `binding`
//! annotation), so a warm invoke through a binding is as cheap as any other and its containers are
//! its own (they hold the binding's parameters). A cold start resolves the same name here
//! ([`resolve`]); the init parameters are merged in [`init_parameters`].
//!
//! Whenever a binding, its bound package or one of that package's actions changes, the plane
//! recomputes the binding's actions ([`exposed`]) and pushes them: stale ones removed, containers
//! holding old parameters retired. A binding whose package is gone, or no longer published to the binding's
//! namespace, exposes nothing (invokes get 404, as for any unknown action).

use whisk_vocab::KeyValue;
use whisk_vocab::record::kv_set;

use crate::model::{ActionDoc, PackageDoc};
use crate::store::{Store, StoreError};

/// The actions `binding` exposes (none if it is not a binding or its package is out of reach).
pub fn exposed(store: &dyn Store, binding: &PackageDoc) -> Result<Vec<ActionDoc>, StoreError> {
    let Some(target) = &binding.binding else {
        return Ok(Vec::new());
    };
    let Some(pkg) = store.get_package(&format!("{}/{}", target.namespace, target.name))? else {
        return Ok(Vec::new());
    };
    if pkg.binding.is_some() || !(pkg.publish || pkg.namespace == binding.namespace) {
        return Ok(Vec::new());
    }
    let binding_fqn = binding.fqn();
    Ok(store
        .list_actions(Some(&pkg.namespace))?
        .into_iter()
        .filter(|a| a.package.as_deref() == Some(pkg.name.as_str()))
        .map(|mut a| {
            a.namespace = binding.namespace.clone();
            a.package = Some(binding.name.clone());
            kv_set(
                &mut a.annotations,
                "binding",
                serde_json::Value::String(binding_fqn.clone()),
            );
            a
        })
        .collect())
}

/// The action at `fqn` (`ns/[pkg/]name`): a stored one, or one a binding exposes.
pub fn resolve(store: &dyn Store, fqn: &str) -> Result<Option<ActionDoc>, StoreError> {
    if let Some(a) = store.get_action(fqn)? {
        return Ok(Some(a));
    }
    let mut parts = fqn.splitn(3, '/');
    let (Some(ns), Some(pkg), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Ok(None);
    };
    let Some(binding) = store.get_package(&format!("{ns}/{pkg}"))? else {
        return Ok(None);
    };
    Ok(exposed(store, &binding)?
        .into_iter()
        .find(|a| a.name == name))
}

/// The path OpenWhisk records for an activation of `fqn` when `fqn` is an action a binding exposes:
/// the bound action's (`owner/package/name`). `None` for any other action.
pub fn bound_path(store: &dyn Store, fqn: &str) -> Option<String> {
    let mut parts = fqn.splitn(3, '/');
    let (ns, pkg, name) = (parts.next()?, parts.next()?, parts.next()?);
    let binding = store.get_package(&format!("{ns}/{pkg}")).ok()??;
    let target = binding.binding?;
    Some(format!("{}/{}/{name}", target.namespace, target.name))
}

/// The parameters a container of `a` is initialised with: its package's (and, through a binding,
/// the bound package's under the binding's), then its own.
pub fn init_parameters(store: &dyn Store, a: &ActionDoc) -> Vec<KeyValue> {
    let mut parameters: Vec<KeyValue> = Vec::new();
    let mut overlay = |kvs: &[KeyValue]| {
        for kv in kvs {
            parameters.retain(|p| p.key != kv.key);
            parameters.push(kv.clone());
        }
    };
    if let Some(pkg) = &a.package
        && let Ok(Some(p)) = store.get_package(&format!("{}/{pkg}", a.namespace))
    {
        if let Some(target) = &p.binding
            && let Ok(Some(bound)) =
                store.get_package(&format!("{}/{}", target.namespace, target.name))
        {
            overlay(&bound.parameters);
        }
        overlay(&p.parameters);
    }
    overlay(&a.parameters);
    parameters
}

/// The bindings (`ns/name`) whose bound package is `package_fqn`.
pub fn bindings_to(store: &dyn Store, package_fqn: &str) -> Result<Vec<String>, StoreError> {
    Ok(store
        .list_packages(None)?
        .into_iter()
        .filter(|p| {
            p.binding
                .as_ref()
                .is_some_and(|t| format!("{}/{}", t.namespace, t.name) == package_fqn)
        })
        .map(|p| p.fqn())
        .collect())
}
