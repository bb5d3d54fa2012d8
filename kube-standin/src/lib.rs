//! `whisk-kube-standin`: a loopback stand-in for the Kubernetes API server's Pod API and for a
//! kubelet, so the control plane's Kubernetes backend can be tested where no cluster can run.
//!
//! Why it exists: no API server (kube-apiserver, envtest, kind, k3s) is obtainable on the
//! project's machines, and a mock that only answers scripted requests would not catch a backend
//! that sends what a real cluster rejects or misreads what a real cluster answers. The stand-in
//! therefore follows the API's semantics for Pods in a namespace (see [`api`]): create with
//! defaulting, 409 on a duplicate name and 422 on a spec that does not deserialise strictly into
//! `k8s_openapi`'s `Pod` or fails the validation a real server does; get; list with label
//! selectors; watch with resource versions, bookmarks and 410 for a compacted version; graceful
//! delete; bearer-token authentication; injectable faults (403 quota, 503 unavailable, ...).
//!
//! Its kubelet ([`kubelet`]) runs, for each pod, the containers whose image it has a local
//! binary for (the container proxy) as child processes, and treats the other containers (the
//! OpenWhisk runtime images, which cannot run here) as running, because the proxy's local executor
//! stands in for them. The one liberty it takes is the port mapping: every pod shares 127.0.0.1,
//! so the proxy listens on a free port and the kubelet publishes `containerPort=hostPort` in the
//! [`PORT_MAP_ANNOTATION`] annotation; a real kubelet never sets it and the port is the
//! container port.

pub mod api;
mod clock;
pub mod kubelet;
pub mod selector;
pub mod validate;

pub use api::{Fault, KubeStandin, StandinConfig, Verb};

/// Annotation the stand-in kubelet sets on a pod: `containerPort=hostPort[,...]`, because all
/// pods share the loopback address here. Absent in a real cluster.
pub const PORT_MAP_ANNOTATION: &str = "standin.whisk.apache.org/port-map";
