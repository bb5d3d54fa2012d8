//! Whether the caller may invoke the action it named.
//!
//! OpenWhisk's rule: a subject owns everything under its namespace; in another namespace it may
//! only activate actions of published packages. An action that does not exist is a 404 in the
//! caller's own namespace and a 403 elsewhere (OpenWhisk checks the entitlement first, so no
//! caller learns what exists in a namespace it cannot read).
//!
//! A sequence is entitled at every invoke, component by component (nested sequences included),
//! as OpenWhisk does: when the owner of a component unpublishes its package, a sequence of
//! another namespace that uses it gets the same 403 a direct invoke would.

use std::sync::Arc;

use super::rejection::Rejection;
use super::tables::ActionMeta;

/// How deep nested sequences are followed (cycles are refused at create; this bounds a table that
/// holds one anyway).
const MAX_NESTING: usize = 50;

/// Decides access to `resource` (`ns/[pkg/]name`) owned by `target_ns`.
pub fn authorize(
    caller_ns: &str,
    target_ns: &str,
    resource: &str,
    action: Option<&ActionMeta>,
) -> Result<(), Rejection> {
    match action {
        _ if caller_ns == target_ns => action.map(|_| ()).ok_or(Rejection::NotFound),
        Some(a) if a.public => Ok(()),
        _ => Err(Rejection::NotAuthorized(resource.to_owned())),
    }
}

/// Decides access to every component of `sequence` (recursively) for a caller of `caller_ns`.
/// Components that do not exist are left to the run, which records OpenWhisk's "Sequence
/// component does not exist." for them.
pub fn authorize_components(
    caller_ns: &str,
    sequence: &ActionMeta,
    lookup: &dyn Fn(&str) -> Option<Arc<ActionMeta>>,
) -> Result<(), Rejection> {
    fn walk(
        caller_ns: &str,
        sequence: &ActionMeta,
        lookup: &dyn Fn(&str) -> Option<Arc<ActionMeta>>,
        depth: usize,
    ) -> Result<(), Rejection> {
        if depth > MAX_NESTING {
            return Ok(());
        }
        for fqn in sequence.components.iter() {
            let Some(component) = lookup(fqn) else {
                continue;
            };
            let owner = fqn.split('/').next().unwrap_or_default();
            authorize(caller_ns, owner, fqn, Some(&component))?;
            if component.is_sequence() {
                walk(caller_ns, &component, lookup, depth + 1)?;
            }
        }
        Ok(())
    }
    walk(caller_ns, sequence, lookup, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures;

    fn meta(public: bool) -> ActionMeta {
        ActionMeta {
            public,
            ..fixtures::action("other/pkg/a", 1)
        }
    }

    #[test]
    fn own_namespace() {
        assert_eq!(
            authorize("guest", "guest", "guest/a", Some(&meta(false))),
            Ok(())
        );
        assert_eq!(
            authorize("guest", "guest", "guest/a", None),
            Err(Rejection::NotFound)
        );
    }

    #[test]
    fn other_namespace_only_public() {
        assert_eq!(
            authorize("guest", "other", "other/pkg/a", Some(&meta(false))),
            Err(Rejection::NotAuthorized("other/pkg/a".into()))
        );
        assert_eq!(
            authorize("guest", "other", "other/pkg/a", None),
            Err(Rejection::NotAuthorized("other/pkg/a".into()))
        );
        assert_eq!(
            authorize("guest", "other", "other/pkg/a", Some(&meta(true))),
            Ok(())
        );
    }

    fn sequence_of(fqn: &str, components: &[&str]) -> ActionMeta {
        ActionMeta {
            kind: "sequence".into(),
            components: components.iter().map(|c| Arc::from(*c)).collect(),
            ..fixtures::action(fqn, 1)
        }
    }

    #[test]
    fn every_component_is_entitled_nested_ones_too() {
        let public = Arc::new(meta(true));
        let private = Arc::new(meta(false));
        let inner = Arc::new(sequence_of("guest/inner", &["other/pkg/a"]));
        let outer = sequence_of("guest/outer", &["guest/inner"]);
        let published = |fqn: &str| match fqn {
            "other/pkg/a" => Some(public.clone()),
            "guest/inner" => Some(inner.clone()),
            _ => None,
        };
        assert_eq!(authorize_components("guest", &outer, &published), Ok(()));
        let unpublished = |fqn: &str| match fqn {
            "other/pkg/a" => Some(private.clone()),
            "guest/inner" => Some(inner.clone()),
            _ => None,
        };
        assert_eq!(
            authorize_components("guest", &outer, &unpublished),
            Err(Rejection::NotAuthorized("other/pkg/a".into()))
        );
        // A missing component is the run's business.
        let missing = |fqn: &str| (fqn == "guest/inner").then(|| inner.clone());
        assert_eq!(authorize_components("guest", &outer, &missing), Ok(()));
    }
}
