//! Who the caller is: OpenWhisk's Basic `uuid:key` against the pushed identities.
//!
//! The control plane pushes only a SHA-256 of each key; the router hashes the presented key and
//! compares in constant time. Verified credentials are cached (moka) by the whole header value,
//! tagged with the identity table's epoch: any identity change makes every cached entry stale at
//! once, so a revoked key stops working as soon as the control plane's push arrives. A warm
//! request costs one cache lookup. Keys are never logged.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use whisk_vocab::credentials::{BasicCredentials, CredentialError};

use super::rejection::Rejection;
use super::tables::{Identity, Tables};

/// Longer `Authorization` values are rejected without decoding.
const MAX_HEADER_LEN: usize = 512;

/// Checks credentials and remembers the ones that were good.
pub struct Authenticator {
    verified: moka::sync::Cache<Box<str>, (Arc<Identity>, u64)>,
}

impl Default for Authenticator {
    fn default() -> Self {
        Self::new(100_000, Duration::from_secs(300))
    }
}

impl Authenticator {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            verified: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The identity behind an `Authorization` header value, or OpenWhisk's 401.
    pub fn authenticate(
        &self,
        tables: &Tables,
        authorization: Option<&str>,
    ) -> Result<Arc<Identity>, Rejection> {
        let header = authorization.ok_or(Rejection::MissingCredentials)?;
        if header.len() > MAX_HEADER_LEN {
            return Err(Rejection::InvalidCredentials);
        }
        let epoch = tables.identity_epoch();
        if let Some((identity, seen)) = self.verified.get(header)
            && seen == epoch
        {
            return Ok(identity);
        }
        let BasicCredentials { uuid, key } =
            BasicCredentials::parse(header).map_err(|e| match e {
                CredentialError::Missing => Rejection::MissingCredentials,
                CredentialError::Invalid => Rejection::InvalidCredentials,
            })?;
        let identity = tables
            .identity(&uuid)
            .ok_or(Rejection::InvalidCredentials)?;
        let digest = Sha256::digest(key.as_bytes());
        if !bool::from(digest.as_slice().ct_eq(&identity.key_sha256)) {
            return Err(Rejection::InvalidCredentials);
        }
        self.verified
            .insert(header.into(), (identity.clone(), epoch));
        Ok(identity)
    }
}

/// SHA-256 of a key, as the control plane pushes it.
pub fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tables::Update;
    use base64::Engine;

    const UUID: &str = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502";
    const KEY: &str = "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

    fn basic(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    fn tables() -> Tables {
        let t = Tables::default();
        t.apply(Update {
            revision: 1,
            snapshot: true,
            identities_upsert: vec![Identity {
                uuid: UUID.into(),
                namespace: "guest".into(),
                subject: "guest".into(),
                key_sha256: key_digest(KEY),
            }],
            ..Default::default()
        });
        t
    }

    #[test]
    fn good_key_authenticates() {
        let t = tables();
        let a = Authenticator::default();
        let id = a.authenticate(&t, Some(&basic(UUID, KEY))).unwrap();
        assert_eq!(&*id.namespace, "guest");
        // Second time from the cache.
        let id = a.authenticate(&t, Some(&basic(UUID, KEY))).unwrap();
        assert_eq!(&*id.uuid, UUID);
    }

    #[test]
    fn missing_and_bad_credentials() {
        let t = tables();
        let a = Authenticator::default();
        assert_eq!(a.authenticate(&t, None), Err(Rejection::MissingCredentials));
        assert_eq!(
            a.authenticate(&t, Some("Bearer abc")),
            Err(Rejection::MissingCredentials)
        );
        let wrong_key = KEY.replace('1', "2");
        for bad in [
            basic(UUID, &wrong_key),
            basic("not-a-uuid", KEY),
            basic(UUID, "short"),
            basic("00000000-0000-0000-0000-000000000000", KEY),
            "Basic !!!notbase64".to_owned(),
            "Basic".to_owned(),
            format!("Basic {}", "A".repeat(600)),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("nocolon")
            ),
        ] {
            let r = a.authenticate(&t, Some(&bad));
            assert!(
                matches!(
                    r,
                    Err(Rejection::InvalidCredentials) | Err(Rejection::MissingCredentials)
                ),
                "{bad}: {r:?}"
            );
        }
    }

    #[test]
    fn revoked_key_stops_working_despite_the_cache() {
        let t = tables();
        let a = Authenticator::default();
        let h = basic(UUID, KEY);
        a.authenticate(&t, Some(&h)).unwrap();
        t.apply(Update {
            revision: 2,
            identities_removed: vec![UUID.into()],
            ..Default::default()
        });
        assert_eq!(
            a.authenticate(&t, Some(&h)),
            Err(Rejection::InvalidCredentials)
        );
    }
}
