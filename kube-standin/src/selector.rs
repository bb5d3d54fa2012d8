//! Label and field selectors as the API server parses them (equality-based subset: `k=v`, `k==v`,
//! `k!=v`, `k`, `!k`; fields: `metadata.name` and `metadata.namespace`), so list and watch filter
//! the way a backend selecting its pods by label expects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<Req>);

impl Selector {
    /// Parse `a=b,c!=d,e,!f`. Set-based forms (`in`, `notin`) are refused.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.contains('(') {
                return Err(format!(
                    "unsupported set-based requirement in selector: {part}"
                ));
            }
            let req = if let Some((k, v)) = part.split_once("!=") {
                Req::Ne(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once("==") {
                Req::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once('=') {
                Req::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some(k) = part.strip_prefix('!') {
                Req::NotExists(k.trim().to_string())
            } else {
                Req::Exists(part.to_string())
            };
            let key = match &req {
                Req::Eq(k, _) | Req::Ne(k, _) | Req::Exists(k) | Req::NotExists(k) => k,
            };
            if key.is_empty() || key.contains(' ') {
                return Err(format!("invalid selector requirement: {part}"));
            }
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Does a label set match?
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k));
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v),
            Req::Ne(k, v) => get(k) != Some(v),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector (the fields pods support that a backend uses).
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, String, bool)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v, eq) = if let Some((k, v)) = part.split_once("!=") {
                (k, v, false)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, v, true)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, v, true)
            } else {
                return Err(format!("invalid field selector: {part}"));
            };
            if !matches!(k, "metadata.name" | "metadata.namespace" | "status.phase") {
                return Err(format!("field label not supported: {k}"));
            }
            out.push((k.to_string(), v.to_string(), eq));
        }
        Ok(Self(out))
    }

    pub fn matches(&self, pod: &Pod) -> bool {
        self.0.iter().all(|(k, v, eq)| {
            let actual = match k.as_str() {
                "metadata.name" => pod.metadata.name.clone(),
                "metadata.namespace" => pod.metadata.namespace.clone(),
                _ => pod.status.as_ref().and_then(|s| s.phase.clone()),
            };
            (actual.as_deref() == Some(v.as_str())) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_selectors() {
        let labels: BTreeMap<String, String> = [("a", "1"), ("b", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let m = |s: &str| Selector::parse(s).unwrap().matches(Some(&labels));
        assert!(m(""));
        assert!(m("a=1"));
        assert!(m("a==1,b=2"));
        assert!(!m("a=2"));
        assert!(m("a!=2"));
        assert!(m("b"));
        assert!(!m("c"));
        assert!(m("!c"));
        assert!(!m("!a"));
        assert!(Selector::parse("a in (1,2)").is_err());
    }
}
