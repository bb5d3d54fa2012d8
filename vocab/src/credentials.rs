//! OpenWhisk's credentials: `Authorization: Basic base64(uuid:key)`, where the uuid is a UUID as
//! Java prints it and the key is 64 alphanumeric characters. The router (every data-plane request)
//! and the control plane (every management request, and `whisk admin user create --uuid/--key`)
//! read and check them the same way, so a credential one part accepts is one the other accepts.

use base64::Engine;

/// Why an `Authorization` value is not a usable credential. OpenWhisk answers both with 401, with
/// different texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialError {
    /// No `Basic` credentials at all (another scheme counts as none).
    Missing,
    /// `Basic`, but not `base64(uuid:key)` of the accepted shapes.
    Invalid,
}

/// The two halves of a Basic credential.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub uuid: String,
    pub key: String,
}

impl std::fmt::Debug for BasicCredentials {
    /// Never shows the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("uuid", &self.uuid)
            .finish_non_exhaustive()
    }
}

impl BasicCredentials {
    /// Splits `Basic base64(uuid:key)`, checking the shapes OpenWhisk accepts.
    pub fn parse(header: &str) -> Result<Self, CredentialError> {
        let (scheme, token) = header
            .trim()
            .split_once(' ')
            .ok_or(CredentialError::Missing)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(CredentialError::Missing);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .map_err(|_| CredentialError::Invalid)?;
        let decoded = String::from_utf8(decoded).map_err(|_| CredentialError::Invalid)?;
        let (uuid, key) = decoded.split_once(':').ok_or(CredentialError::Invalid)?;
        if !is_uuid(uuid) || !is_key(key) {
            return Err(CredentialError::Invalid);
        }
        Ok(Self {
            uuid: uuid.to_owned(),
            key: key.to_owned(),
        })
    }
}

/// `8-4-4-4-12` hex digits, as Java's `UUID` prints them.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// 16 bytes as a version-4 UUID (`8-4-4-4-12` lower-case hex; the version and variant bits are
/// set), as `whisk admin user create` makes them from random bytes.
pub fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// OpenWhisk keys are 64 alphanumeric characters.
pub fn is_key(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502";
    const KEY: &str = "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn parses_a_well_formed_credential() {
        let c = BasicCredentials::parse(&basic(&format!("{UUID}:{KEY}"))).unwrap();
        assert_eq!((c.uuid.as_str(), c.key.as_str()), (UUID, KEY));
        assert!(!format!("{c:?}").contains(KEY));
        // The scheme is case-insensitive.
        let lower = basic(&format!("{UUID}:{KEY}")).replacen("Basic", "basic", 1);
        assert!(BasicCredentials::parse(&lower).is_ok());
    }

    #[test]
    fn made_uuids_have_the_accepted_shape() {
        let u = uuid_v4([0xab; 16]);
        assert!(is_uuid(&u), "{u}");
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn other_schemes_count_as_missing() {
        assert_eq!(
            BasicCredentials::parse("Bearer abc"),
            Err(CredentialError::Missing)
        );
        assert_eq!(BasicCredentials::parse(""), Err(CredentialError::Missing));
    }

    #[test]
    fn malformed_basic_values_are_invalid() {
        for bad in [
            "Basic !!!".to_string(),
            basic("no-colon"),
            basic(&format!("not-a-uuid:{KEY}")),
            basic(&format!("{UUID}:short")),
            basic(&format!("{UUID}:{}", "k".repeat(63) + "-")),
        ] {
            assert_eq!(
                BasicCredentials::parse(&bad),
                Err(CredentialError::Invalid),
                "{bad}"
            );
        }
    }
}
