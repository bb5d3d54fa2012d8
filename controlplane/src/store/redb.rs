//! The durable embedded store: one redb file in the data directory. Documents are JSON values
//! under string keys; activations are keyed by namespace + start time so retention and
//! newest-first listing are range scans. Identities hold only a digest of their key; a store
//! written before that (clear `key` fields) is migrated when it is opened.
//!
//! **Bounded memory.** redb keeps the pages it reads and writes in an in-process cache whose
//! default bound is 1 GiB, which a control plane storing one record per activation fills page by
//! page: its resident memory grew with every activation until that bound (about 1.6 KB each),
//! although retention keeps the file itself bounded. The cache is sized explicitly
//! ([`DEFAULT_CACHE_BYTES`], `whisk controlplane --store-cache-mb`) and reported
//! ([`Store::cache_bytes`], `whisk_controlplane_store_cache_bytes`); the operating system's page
//! cache still serves reads that miss it.

use std::path::Path;
use std::sync::{Arc, RwLock};

use redb::{Builder, Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Store, StoreError};
use crate::model::{ActionDoc, IdentityDoc, NamespaceDoc, PackageDoc, digest_key};

const NAMESPACES: TableDefinition<&str, &[u8]> = TableDefinition::new("namespaces");
const IDENTITIES: TableDefinition<&str, &[u8]> = TableDefinition::new("identities");
const ACTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("actions");
const PACKAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("packages");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// `ns \0 start(20 digits) \0 id` -> record JSON.
const ACTIVATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("activations");
/// `ns \0 id` -> primary key in ACTIVATIONS.
const ACTIVATION_IDS: TableDefinition<&str, &str> = TableDefinition::new("activation_ids");
/// `ns` -> number of stored activations.
const ACTIVATION_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("activation_counts");

const REVISION_KEY: &str = "revision";

/// The store's page cache when none is configured: enough for every table but the activations,
/// and the newest pages of those.
pub const DEFAULT_CACHE_BYTES: usize = 16 * 1024 * 1024;

fn be<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The redb-backed [`Store`].
pub struct RedbStore {
    db: RwLock<Option<Arc<Database>>>,
}

impl RedbStore {
    /// Open (or create) `dir/controlplane.redb` with the default page cache.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// Open (or create) `dir/controlplane.redb`, its page cache bounded by `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(be)?;
        let db = Builder::new()
            .set_cache_size(cache_bytes)
            .create(dir.join("controlplane.redb"))
            .map_err(be)?;
        let txn = db.begin_write().map_err(be)?;
        {
            txn.open_table(NAMESPACES).map_err(be)?;
            txn.open_table(IDENTITIES).map_err(be)?;
            txn.open_table(ACTIONS).map_err(be)?;
            txn.open_table(PACKAGES).map_err(be)?;
            txn.open_table(META).map_err(be)?;
            txn.open_table(ACTIVATIONS).map_err(be)?;
            txn.open_table(ACTIVATION_IDS).map_err(be)?;
            txn.open_table(ACTIVATION_COUNTS).map_err(be)?;
        }
        txn.commit().map_err(be)?;
        let mut db = db;
        if digest_clear_keys(&db)? > 0 {
            // Give back the pages that held clear keys, so the file keeps as few of them as
            // redb allows.
            db.compact().map_err(be)?;
        }
        Ok(Self {
            db: RwLock::new(Some(Arc::new(db))),
        })
    }

    fn db(&self) -> Result<Arc<Database>, StoreError> {
        self.db
            .read()
            .map_err(be)?
            .clone()
            .ok_or(StoreError::Closed)
    }

    fn get_doc<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(be)?;
        let t = txn.open_table(table).map_err(be)?;
        match t.get(key).map_err(be)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
            None => Ok(None),
        }
    }

    fn put_doc<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        doc: &T,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(doc)?;
        let db = self.db()?;
        let txn = db.begin_write().map_err(be)?;
        {
            let mut t = txn.open_table(table).map_err(be)?;
            t.insert(key, bytes.as_slice()).map_err(be)?;
        }
        txn.commit().map_err(be)
    }

    fn delete_doc<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let db = self.db()?;
        let txn = db.begin_write().map_err(be)?;
        let old = {
            let mut t = txn.open_table(table).map_err(be)?;
            let removed = t.remove(key).map_err(be)?;
            match removed {
                Some(v) => Some(serde_json::from_slice(v.value())?),
                None => None,
            }
        };
        txn.commit().map_err(be)?;
        Ok(old)
    }

    /// All documents whose key starts with `prefix` (all documents if `None`).
    fn scan<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        prefix: Option<&str>,
    ) -> Result<Vec<T>, StoreError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(be)?;
        let t = txn.open_table(table).map_err(be)?;
        let mut out = Vec::new();
        let iter = match prefix {
            Some(p) => {
                let hi = format!("{p}\u{10FFFF}");
                t.range(p..hi.as_str()).map_err(be)?
            }
            None => t.range::<&str>(..).map_err(be)?,
        };
        for item in iter {
            let (_, v) = item.map_err(be)?;
            out.push(serde_json::from_slice(v.value())?);
        }
        Ok(out)
    }
}

/// Replaces every identity's clear `key` with `key_sha256` (stores written before keys were kept
/// as digests). Returns how many identities were rewritten.
fn digest_clear_keys(db: &Database) -> Result<usize, StoreError> {
    let txn = db.begin_write().map_err(be)?;
    let mut updates = Vec::new();
    {
        let mut t = txn.open_table(IDENTITIES).map_err(be)?;
        for item in t.range::<&str>(..).map_err(be)? {
            let (k, v) = item.map_err(be)?;
            let mut doc: Value = serde_json::from_slice(v.value())?;
            let Some(obj) = doc.as_object_mut() else {
                continue;
            };
            let Some(clear) = obj.remove("key") else {
                continue;
            };
            if !obj.contains_key("key_sha256") {
                let digest = digest_key(clear.as_str().unwrap_or_default());
                obj.insert("key_sha256".into(), Value::String(digest));
            }
            updates.push((k.value().to_string(), serde_json::to_vec(&doc)?));
        }
        for (k, bytes) in &updates {
            t.insert(k.as_str(), bytes.as_slice()).map_err(be)?;
        }
    }
    txn.commit().map_err(be)?;
    if !updates.is_empty() {
        tracing::info!(
            rewritten = updates.len(),
            "identities migrated: clear keys replaced by their digests"
        );
    }
    Ok(updates.len())
}

fn activation_key(namespace: &str, start_ms: i64, id: &str) -> String {
    format!("{namespace}\0{:020}\0{id}", start_ms.max(0))
}

impl Store for RedbStore {
    fn get_namespace(&self, name: &str) -> Result<Option<NamespaceDoc>, StoreError> {
        self.get_doc(NAMESPACES, name)
    }
    fn put_namespace(&self, doc: &NamespaceDoc) -> Result<(), StoreError> {
        self.put_doc(NAMESPACES, &doc.name, doc)
    }
    fn list_namespaces(&self) -> Result<Vec<NamespaceDoc>, StoreError> {
        self.scan(NAMESPACES, None)
    }

    fn get_identity(&self, uuid: &str) -> Result<Option<IdentityDoc>, StoreError> {
        self.get_doc(IDENTITIES, uuid)
    }
    fn put_identity(&self, doc: &IdentityDoc) -> Result<(), StoreError> {
        self.put_doc(IDENTITIES, &doc.uuid, doc)
    }
    fn delete_identity(&self, uuid: &str) -> Result<Option<IdentityDoc>, StoreError> {
        self.delete_doc(IDENTITIES, uuid)
    }
    fn list_identities(&self) -> Result<Vec<IdentityDoc>, StoreError> {
        self.scan(IDENTITIES, None)
    }

    fn get_action(&self, fqn: &str) -> Result<Option<ActionDoc>, StoreError> {
        self.get_doc(ACTIONS, fqn)
    }
    fn put_action(&self, doc: &ActionDoc) -> Result<(), StoreError> {
        self.put_doc(ACTIONS, &doc.fqn(), doc)
    }
    fn delete_action(&self, fqn: &str) -> Result<Option<ActionDoc>, StoreError> {
        self.delete_doc(ACTIONS, fqn)
    }
    fn list_actions(&self, namespace: Option<&str>) -> Result<Vec<ActionDoc>, StoreError> {
        let prefix = namespace.map(|ns| format!("{ns}/"));
        self.scan(ACTIONS, prefix.as_deref())
    }

    fn get_package(&self, fqn: &str) -> Result<Option<PackageDoc>, StoreError> {
        self.get_doc(PACKAGES, fqn)
    }
    fn put_package(&self, doc: &PackageDoc) -> Result<(), StoreError> {
        self.put_doc(PACKAGES, &doc.fqn(), doc)
    }
    fn delete_package(&self, fqn: &str) -> Result<Option<PackageDoc>, StoreError> {
        self.delete_doc(PACKAGES, fqn)
    }
    fn list_packages(&self, namespace: Option<&str>) -> Result<Vec<PackageDoc>, StoreError> {
        let prefix = namespace.map(|ns| format!("{ns}/"));
        self.scan(PACKAGES, prefix.as_deref())
    }

    fn next_revision(&self) -> Result<u64, StoreError> {
        let db = self.db()?;
        let txn = db.begin_write().map_err(be)?;
        let next = {
            let mut t = txn.open_table(META).map_err(be)?;
            let current = t
                .get(REVISION_KEY)
                .map_err(be)?
                .map(|v| v.value())
                .unwrap_or(0);
            t.insert(REVISION_KEY, current + 1).map_err(be)?;
            current + 1
        };
        txn.commit().map_err(be)?;
        Ok(next)
    }

    fn put_activation(
        &self,
        namespace: &str,
        activation_id: &str,
        start_ms: i64,
        record: &Value,
        keep: usize,
    ) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(record)?;
        let key = activation_key(namespace, start_ms, activation_id);
        let id_key = format!("{namespace}\0{activation_id}");
        let db = self.db()?;
        let txn = db.begin_write().map_err(be)?;
        let stored = 'write: {
            let mut acts = txn.open_table(ACTIVATIONS).map_err(be)?;
            let mut ids = txn.open_table(ACTIVATION_IDS).map_err(be)?;
            let mut counts = txn.open_table(ACTIVATION_COUNTS).map_err(be)?;
            let mut count = counts
                .get(namespace)
                .map_err(be)?
                .map(|v| v.value())
                .unwrap_or(0);
            // Written once: a re-reported id keeps its first record.
            if ids.get(id_key.as_str()).map_err(be)?.is_some() {
                break 'write false;
            }
            acts.insert(key.as_str(), bytes.as_slice()).map_err(be)?;
            ids.insert(id_key.as_str(), key.as_str()).map_err(be)?;
            count += 1;
            // Retention: drop the oldest records beyond `keep`.
            let excess = count.saturating_sub(keep as u64);
            if excess > 0 {
                let lo = format!("{namespace}\0");
                let hi = format!("{namespace}\u{1}");
                let mut victims = Vec::new();
                for item in acts
                    .range(lo.as_str()..hi.as_str())
                    .map_err(be)?
                    .take(excess as usize)
                {
                    let (k, _) = item.map_err(be)?;
                    victims.push(k.value().to_string());
                }
                for victim in victims {
                    acts.remove(victim.as_str()).map_err(be)?;
                    if let Some(id) = victim.rsplit('\0').next() {
                        ids.remove(format!("{namespace}\0{id}").as_str())
                            .map_err(be)?;
                    }
                    count -= 1;
                }
            }
            counts.insert(namespace, count).map_err(be)?;
            true
        };
        if stored {
            txn.commit().map_err(be)?;
        } else {
            txn.abort().map_err(be)?;
        }
        Ok(stored)
    }

    fn activation_count(&self) -> Result<u64, StoreError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(be)?;
        let counts = txn.open_table(ACTIVATION_COUNTS).map_err(be)?;
        let mut total = 0u64;
        for item in counts.iter().map_err(be)? {
            let (_, n) = item.map_err(be)?;
            total = total.saturating_add(n.value());
        }
        Ok(total)
    }

    fn get_activation(
        &self,
        namespace: &str,
        activation_id: &str,
    ) -> Result<Option<Value>, StoreError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(be)?;
        let ids = txn.open_table(ACTIVATION_IDS).map_err(be)?;
        let Some(key) = ids
            .get(format!("{namespace}\0{activation_id}").as_str())
            .map_err(be)?
            .map(|v| v.value().to_string())
        else {
            return Ok(None);
        };
        let acts = txn.open_table(ACTIVATIONS).map_err(be)?;
        match acts.get(key.as_str()).map_err(be)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
            None => Ok(None),
        }
    }

    fn list_activations(
        &self,
        namespace: &str,
        filter: &dyn Fn(&Value) -> bool,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Value>, StoreError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(be)?;
        let acts = txn.open_table(ACTIVATIONS).map_err(be)?;
        let lo = format!("{namespace}\0");
        let hi = format!("{namespace}\u{1}");
        let mut out = Vec::new();
        let mut skipped = 0;
        for item in acts.range(lo.as_str()..hi.as_str()).map_err(be)?.rev() {
            if out.len() >= limit {
                break;
            }
            let (_, v) = item.map_err(be)?;
            let record: Value = serde_json::from_slice(v.value())?;
            if !filter(&record) {
                continue;
            }
            if skipped < skip {
                skipped += 1;
                continue;
            }
            out.push(record);
        }
        Ok(out)
    }

    fn cache_bytes(&self) -> u64 {
        self.db()
            .map(|db| db.cache_stats().used_bytes() as u64)
            .unwrap_or(0)
    }

    fn close(&self) {
        if let Ok(mut guard) = self.db.write() {
            guard.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_activation_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let id = format!("{:032}", 7);
        let first = json!({"activationId": id, "v": 1});
        assert!(store.put_activation("ns", &id, 1, &first, 10).unwrap());
        let second = json!({"activationId": id, "v": 2});
        assert!(!store.put_activation("ns", &id, 2, &second, 10).unwrap());
        assert_eq!(store.get_activation("ns", &id).unwrap(), Some(first));
        assert_eq!(store.activation_count().unwrap(), 1);
    }

    #[test]
    fn activation_retention_keeps_newest() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        for i in 0..5i64 {
            let id = format!("{i:032}");
            store
                .put_activation("ns", &id, 1000 + i, &json!({"activationId": id}), 3)
                .unwrap();
        }
        let all = store.list_activations("ns", &|_| true, 0, 100).unwrap();
        let ids: Vec<_> = all
            .iter()
            .map(|r| r["activationId"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            ids,
            vec![
                format!("{:032}", 4),
                format!("{:032}", 3),
                format!("{:032}", 2)
            ]
        );
        assert!(
            store
                .get_activation("ns", &format!("{:032}", 0))
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .get_activation("ns", &format!("{:032}", 4))
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .get_activation("other", &format!("{:032}", 4))
                .unwrap()
                .is_none()
        );
        let page = store.list_activations("ns", &|_| true, 1, 1).unwrap();
        assert_eq!(page[0]["activationId"], json!(format!("{:032}", 3)));
    }

    #[test]
    fn clear_keys_are_digested_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let key = "clearKEYclearKEYclearKEY0123456789";
        {
            let store = RedbStore::open(dir.path()).unwrap();
            // The shape identities had before keys were kept as digests.
            store
                .put_doc(
                    IDENTITIES,
                    "u-old",
                    &json!({"uuid": "u-old", "namespace": "ns", "subject": "s", "key": key}),
                )
                .unwrap();
            store.close();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        let id = store.get_identity("u-old").unwrap().unwrap();
        assert_eq!(id.key_sha256, digest_key(key));
        assert_eq!(id.namespace, "ns");
        assert_eq!(store.list_identities().unwrap(), vec![id]);
        store.close();
        let file = std::fs::read(dir.path().join("controlplane.redb")).unwrap();
        assert!(
            !file.windows(key.len()).any(|w| w == key.as_bytes()),
            "the clear key is gone from the store file"
        );
        // A second open has nothing left to migrate.
        let db = Database::create(dir.path().join("controlplane.redb")).unwrap();
        assert_eq!(digest_clear_keys(&db).unwrap(), 0);
    }

    #[test]
    fn revisions_are_monotonic_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(store.next_revision().unwrap(), 1);
        assert_eq!(store.next_revision().unwrap(), 2);
        store.close();
        assert!(matches!(store.next_revision(), Err(StoreError::Closed)));
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(store.next_revision().unwrap(), 3);
    }
}
