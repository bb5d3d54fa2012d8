//! The APIs between the parts of the data plane, generated from `proto/whisk/**.proto`.
//!
//! `whisk.controlplane.v1` is the only contract the router has with the control plane: a pushed
//! subscription of everything the warm path needs, plus `ColdStart` for the one case where it must
//! ask. Container proxies use the same service to hand in activation records.

/// `whisk.controlplane.v1`: routers and container proxies talking to the control plane.
pub mod controlplane {
    pub mod v1 {
        tonic::include_proto!("whisk.controlplane.v1");
    }
}
