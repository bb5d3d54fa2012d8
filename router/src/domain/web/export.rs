//! What an action's annotations say about serving it on the web: whether it is exported at all
//! (`web-export`), whether it takes the raw HTTP request (`raw-http`), whether it answers `OPTIONS`
//! itself (`web-custom-options`) and what a caller must show (`require-whisk-auth`).
//!
//! Annotations arrive as JSON texts; OpenWhisk reads these as JSON booleans (a string `"true"`
//! does not export an action).

/// What `require-whisk-auth` asks of a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequireAuth {
    /// No annotation: anyone may call.
    Nobody,
    /// `true`: Basic credentials of a valid key.
    User,
    /// A string or number: the `X-Require-Whisk-Auth` header must equal it.
    Secret(Box<str>),
    /// Any other value: OpenWhisk refuses every caller.
    Refused,
}

/// How an exported action is served on the web.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebExport {
    pub raw_http: bool,
    pub custom_options: bool,
    pub require_auth: RequireAuth,
}

impl WebExport {
    /// Reads the annotations (`get` gives an annotation's JSON text); `None` unless the action is
    /// exported.
    pub fn from_annotations<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Self> {
        let truthy = |key: &str| {
            get(key)
                .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
                .is_some_and(|v| v == serde_json::Value::Bool(true))
        };
        if !truthy("web-export") {
            return None;
        }
        let require_auth = match get("require-whisk-auth")
            .map(|v| serde_json::from_str::<serde_json::Value>(v).unwrap_or_default())
        {
            None => RequireAuth::Nobody,
            Some(serde_json::Value::Bool(true)) => RequireAuth::User,
            Some(serde_json::Value::String(s)) => RequireAuth::Secret(s.into()),
            Some(serde_json::Value::Number(n)) => RequireAuth::Secret(n.to_string().into()),
            Some(_) => RequireAuth::Refused,
        };
        Some(Self {
            raw_http: truthy("raw-http"),
            custom_options: truthy("web-custom-options"),
            require_auth,
        })
    }

    /// Whether a caller (`user`: authenticated with a valid key; `secret`: its
    /// `X-Require-Whisk-Auth`) may run the action.
    pub fn admits(&self, user: bool, secret: Option<&str>) -> bool {
        match &self.require_auth {
            RequireAuth::Nobody => true,
            RequireAuth::User => user,
            RequireAuth::Secret(s) => secret == Some(&**s),
            RequireAuth::Refused => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(pairs: &[(&str, &str)]) -> Option<WebExport> {
        WebExport::from_annotations(|k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v))
    }

    #[test]
    fn only_a_json_true_exports() {
        assert!(export(&[]).is_none());
        assert!(export(&[("web-export", "\"true\"")]).is_none());
        assert!(export(&[("web-export", "false")]).is_none());
        let e = export(&[("web-export", "true"), ("raw-http", "true")]).unwrap();
        assert!(e.raw_http && !e.custom_options);
        assert_eq!(e.require_auth, RequireAuth::Nobody);
    }

    #[test]
    fn require_whisk_auth_forms() {
        let with = |v: &str| export(&[("web-export", "true"), ("require-whisk-auth", v)]).unwrap();
        assert!(with("true").admits(true, None));
        assert!(!with("true").admits(false, Some("x")));
        assert!(with("\"s3cret\"").admits(false, Some("s3cret")));
        assert!(!with("\"s3cret\"").admits(true, Some("other")));
        assert!(!with("\"s3cret\"").admits(true, None));
        assert!(with("1234").admits(false, Some("1234")));
        assert!(!with("false").admits(true, Some("false")));
    }
}
