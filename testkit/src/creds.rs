//! OpenWhisk's guest credentials (the key every OpenWhisk install ships for `guest`) and a second
//! tenant's, so tests can show one tenant cannot reach another's actions.

use base64::Engine;

pub const GUEST_UUID: &str = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502";
pub const GUEST_KEY: &str = "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";
pub const OTHER_UUID: &str = "789c46b1-71f6-4ed5-8c54-816aa4f8c502";
pub const OTHER_KEY: &str = "abczO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

/// An `Authorization: Basic …` value for `uuid:key`.
pub fn basic(uuid: &str, key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{uuid}:{key}"))
    )
}

/// The guest's `Authorization` value.
pub fn guest_auth() -> String {
    basic(GUEST_UUID, GUEST_KEY)
}
