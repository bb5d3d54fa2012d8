//! Validation of a submitted Pod, so the stand-in refuses (422) what a real API server refuses:
//! the body must deserialise into `k8s_openapi`'s `Pod` with no unknown field (the server's strict
//! field validation) and pass the checks the server's pod validation makes on what a backend
//! sends: names, images, ports, probes, resources and security settings.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

/// One reason a pod is invalid (`details.causes[]` of a 422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueDuplicate`, `FieldValueNotSupported`.
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Cause {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: message.into(),
        }
    }
    fn required(field: impl Into<String>) -> Self {
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }
}

/// Deserialise strictly and validate; `namespace` is the namespace of the request path.
pub fn validate_pod(namespace: &str, body: Value) -> Result<Pod, Vec<Cause>> {
    let mut unknown = Vec::new();
    let pod: Pod = match serde_ignored::deserialize(body, |path| unknown.push(path.to_string())) {
        Ok(p) => p,
        Err(e) => {
            return Err(vec![Cause::invalid("", format!("cannot decode Pod: {e}"))]);
        }
    };
    let mut causes: Vec<Cause> = unknown
        .into_iter()
        .map(|path| Cause {
            reason: "FieldValueInvalid",
            field: path.clone(),
            message: format!("unknown field \"{path}\""),
        })
        .collect();

    match pod.metadata.name.as_deref() {
        None | Some("") => causes.push(Cause::required("metadata.name")),
        Some(n) if !is_dns_subdomain(n) => causes.push(Cause::invalid(
            "metadata.name",
            format!("Invalid value: \"{n}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"),
        )),
        Some(_) => {}
    }
    if let Some(ns) = pod.metadata.namespace.as_deref()
        && ns != namespace
    {
        causes.push(Cause::invalid(
            "metadata.namespace",
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    for (k, v) in pod.metadata.labels.iter().flatten() {
        if !is_qualified_name(k) {
            causes.push(Cause::invalid("metadata.labels", format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'")));
        }
        if !is_label_value(v) {
            causes.push(Cause::invalid(
                "metadata.labels",
                format!("Invalid value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (max 63)"),
            ));
        }
    }

    let Some(spec) = pod.spec.as_ref() else {
        causes.push(Cause::required("spec"));
        return Err(causes);
    };
    if spec.containers.is_empty() {
        causes.push(Cause::required("spec.containers"));
    }
    if let Some(p) = spec.restart_policy.as_deref()
        && !matches!(p, "Always" | "OnFailure" | "Never")
    {
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: "spec.restartPolicy".into(),
            message: format!("Unsupported value: \"{p}\""),
        });
    }
    if let Some(sc) = spec.security_context.as_ref() {
        if sc.run_as_user.is_some_and(|u| u < 0) {
            causes.push(Cause::invalid(
                "spec.securityContext.runAsUser",
                "must be between 0 and 2147483647, inclusive",
            ));
        }
        if let Some(p) = sc.seccomp_profile.as_ref()
            && !matches!(
                p.type_.as_str(),
                "RuntimeDefault" | "Localhost" | "Unconfined"
            )
        {
            causes.push(Cause {
                reason: "FieldValueNotSupported",
                field: "spec.securityContext.seccompProfile.type".into(),
                message: format!("Unsupported value: \"{}\"", p.type_),
            });
        }
    }
    let mut names = HashSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let at = format!("spec.containers[{i}]");
        if !names.insert(c.name.clone()) {
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                field: format!("{at}.name"),
                message: format!("Duplicate value: \"{}\"", c.name),
            });
        }
        validate_container(&at, c, &mut causes);
    }
    if causes.is_empty() {
        Ok(pod)
    } else {
        Err(causes)
    }
}

fn validate_container(at: &str, c: &Container, causes: &mut Vec<Cause>) {
    if c.name.is_empty() {
        causes.push(Cause::required(format!("{at}.name")));
    } else if !is_dns_label(&c.name) {
        causes.push(Cause::invalid(
            format!("{at}.name"),
            format!("Invalid value: \"{}\": a lowercase RFC 1123 label", c.name),
        ));
    }
    if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        causes.push(Cause::required(format!("{at}.image")));
    }
    let mut port_names = HashSet::new();
    for (j, p) in c.ports.iter().flatten().enumerate() {
        if !(1..=65535).contains(&p.container_port) {
            causes.push(Cause::invalid(
                format!("{at}.ports[{j}].containerPort"),
                format!(
                    "Invalid value: {}: must be between 1 and 65535, inclusive",
                    p.container_port
                ),
            ));
        }
        if let Some(n) = p.name.as_deref() {
            if n.len() > 15 || !is_dns_label(n) || !n.chars().any(|ch| ch.is_ascii_lowercase()) {
                causes.push(Cause::invalid(
                    format!("{at}.ports[{j}].name"),
                    format!("Invalid value: \"{n}\": must be no more than 15 characters"),
                ));
            }
            if !port_names.insert(n.to_string()) {
                causes.push(Cause {
                    reason: "FieldValueDuplicate",
                    field: format!("{at}.ports[{j}].name"),
                    message: format!("Duplicate value: \"{n}\""),
                });
            }
        }
    }
    for (probe_name, probe) in [
        ("readinessProbe", &c.readiness_probe),
        ("livenessProbe", &c.liveness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        let Some(probe) = probe else { continue };
        let ports = [
            probe.http_get.as_ref().map(|h| &h.port),
            probe.tcp_socket.as_ref().map(|t| &t.port),
        ];
        for port in ports.into_iter().flatten() {
            if let IntOrString::String(name) = port
                && !port_names.contains(name)
            {
                causes.push(Cause {
                    reason: "FieldValueNotFound",
                    field: format!("{at}.{probe_name}.port"),
                    message: format!("Not found: \"{name}\""),
                });
            }
        }
    }
    if let Some(r) = c.resources.as_ref() {
        for (kind, map) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (res, q) in map.iter().flatten() {
                if parse_quantity(q).is_none() {
                    causes.push(Cause::invalid(
                        format!("{at}.resources.{kind}[{res}]"),
                        format!(
                            "Invalid value: \"{}\": quantities must match the regular expression",
                            q.0
                        ),
                    ));
                }
            }
        }
        if let (Some(req), Some(lim)) = (r.requests.as_ref(), r.limits.as_ref()) {
            for (res, q) in req {
                if let (Some(a), Some(b)) =
                    (parse_quantity(q), lim.get(res).and_then(parse_quantity))
                    && a > b
                {
                    causes.push(Cause::invalid(
                        format!("{at}.resources.requests"),
                        format!("Invalid value: \"{}\": must be less than or equal to {res} limit of {}", q.0, lim[res].0),
                    ));
                }
            }
        }
    }
    if let Some(sc) = c.security_context.as_ref() {
        if sc.privileged == Some(true) && sc.allow_privilege_escalation == Some(false) {
            causes.push(Cause::invalid(
                format!("{at}.securityContext"),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        if sc.run_as_user.is_some_and(|u| u < 0) {
            causes.push(Cause::invalid(
                format!("{at}.securityContext.runAsUser"),
                "must be between 0 and 2147483647, inclusive",
            ));
        }
    }
}

/// A quantity in bytes (or plain units): `128Mi`, `1G`, `500m`, `2`.
pub fn parse_quantity(q: &Quantity) -> Option<f64> {
    let s = q.0.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some(n * mult)
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(extra: Value) -> Value {
        let mut p = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "p1", "labels": { "app.kubernetes.io/name": "x" } },
            "spec": { "containers": [ { "name": "c", "image": "img",
                "ports": [ { "name": "http", "containerPort": 8080 } ],
                "readinessProbe": { "httpGet": { "path": "/", "port": "http" } } } ] }
        });
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                p.insert(k.clone(), v.clone());
            }
        }
        p
    }

    #[test]
    fn a_valid_pod_passes() {
        assert!(validate_pod("ns", pod(json!({}))).is_ok());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut p = pod(json!({}));
        p["spec"]["containers"][0]["imagee"] = json!("typo");
        let causes = validate_pod("ns", p).unwrap_err();
        assert!(causes[0].message.contains("imagee"), "{causes:?}");
    }

    #[test]
    fn semantic_errors_are_refused() {
        let mut p = pod(json!({}));
        p["metadata"]["name"] = json!("Bad_Name");
        p["spec"]["containers"][0]["image"] = json!("");
        p["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = json!("nope");
        p["spec"]["containers"][0]["resources"] =
            json!({ "requests": { "memory": "2Gi" }, "limits": { "memory": "1Gi" } });
        let fields: Vec<String> = validate_pod("ns", p)
            .unwrap_err()
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert!(fields.contains(&"metadata.name".to_string()), "{fields:?}");
        assert!(fields.contains(&"spec.containers[0].image".to_string()));
        assert!(fields.contains(&"spec.containers[0].readinessProbe.port".to_string()));
        assert!(fields.contains(&"spec.containers[0].resources.requests".to_string()));
    }
}
