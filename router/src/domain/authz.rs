//! Whether the caller may invoke the action it named.
//!
//! OpenWhisk's rule: a subject owns everything under its namespace; in another namespace it may
//! only activate actions of published packages. An action that does not exist is a 404 in the
//! caller's own namespace and a 403 elsewhere (OpenWhisk checks the entitlement first, so no
//! caller learns what exists in a namespace it cannot read).

use super::rejection::Rejection;
use super::tables::ActionMeta;

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
}
