//! Thin adapters between Envoy's filters and the domain: they translate headers in and
//! decisions out, and decide nothing themselves.

pub mod extauthz;
pub mod extproc;
pub mod headers;
pub mod ingress;
