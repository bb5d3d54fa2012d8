//! The router's gRPC side of the control plane: the subscription that fills the tables and the
//! client behind cold starts and reports, and the usage reports that share limits ([`usage`]). Translation from proto to domain types lives in
//! [`convert`]; the token every call presents in [`credential`]; nothing outside this module
//! sees a proto type.

pub mod client;
pub mod convert;
pub mod credential;
pub mod records;
pub mod sync;
pub mod usage;
