//! The control plane's state behind one trait, so an embedded store (redb) and a cluster store
//! (later) are interchangeable. Methods are synchronous and short: every call is one transaction.

pub mod redb;

use serde_json::Value;

use crate::model::{ActionDoc, IdentityDoc, NamespaceDoc, PackageDoc};

pub use self::redb::RedbStore;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store backend error: {0}")]
    Backend(String),
    #[error("stored document is corrupted: {0}")]
    Codec(#[from] serde_json::Error),
    #[error("the store is closed")]
    Closed,
}

/// Everything the control plane persists.
pub trait Store: Send + Sync + 'static {
    fn get_namespace(&self, name: &str) -> Result<Option<NamespaceDoc>, StoreError>;
    fn put_namespace(&self, doc: &NamespaceDoc) -> Result<(), StoreError>;
    fn list_namespaces(&self) -> Result<Vec<NamespaceDoc>, StoreError>;

    fn get_identity(&self, uuid: &str) -> Result<Option<IdentityDoc>, StoreError>;
    fn put_identity(&self, doc: &IdentityDoc) -> Result<(), StoreError>;
    fn delete_identity(&self, uuid: &str) -> Result<Option<IdentityDoc>, StoreError>;
    fn list_identities(&self) -> Result<Vec<IdentityDoc>, StoreError>;

    /// Actions by `ns/[pkg/]name`.
    fn get_action(&self, fqn: &str) -> Result<Option<ActionDoc>, StoreError>;
    fn put_action(&self, doc: &ActionDoc) -> Result<(), StoreError>;
    fn delete_action(&self, fqn: &str) -> Result<Option<ActionDoc>, StoreError>;
    /// All actions of a namespace (including those in its packages), or all actions.
    fn list_actions(&self, namespace: Option<&str>) -> Result<Vec<ActionDoc>, StoreError>;

    /// Packages by `ns/name`.
    fn get_package(&self, fqn: &str) -> Result<Option<PackageDoc>, StoreError>;
    fn put_package(&self, doc: &PackageDoc) -> Result<(), StoreError>;
    fn delete_package(&self, fqn: &str) -> Result<Option<PackageDoc>, StoreError>;
    fn list_packages(&self, namespace: Option<&str>) -> Result<Vec<PackageDoc>, StoreError>;

    /// A new, never-used revision number (monotonic over the store's life).
    fn next_revision(&self) -> Result<u64, StoreError>;

    /// Store an activation record of `namespace`, keeping only the newest `keep` of that namespace.
    /// A record is written once: if `activation_id` is already stored in `namespace`, nothing
    /// changes and the answer is `false` (a repeated report is harmless, a forged one cannot
    /// replace the real record).
    fn put_activation(
        &self,
        namespace: &str,
        activation_id: &str,
        start_ms: i64,
        record: &Value,
        keep: usize,
    ) -> Result<bool, StoreError>;
    fn get_activation(
        &self,
        namespace: &str,
        activation_id: &str,
    ) -> Result<Option<Value>, StoreError>;
    /// Newest first; `filter` selects, then `skip` and `limit` apply.
    fn list_activations(
        &self,
        namespace: &str,
        filter: &dyn Fn(&Value) -> bool,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Value>, StoreError>;

    /// Activation records stored, over every namespace.
    fn activation_count(&self) -> Result<u64, StoreError>;

    /// Bytes the store holds in memory (its page cache); bounded whatever the number of records.
    fn cache_bytes(&self) -> u64;

    /// Release the underlying files so the same data directory can be opened again.
    fn close(&self);
}
