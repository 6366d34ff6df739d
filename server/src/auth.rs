//! API keys and roles. Keys are held only as SHA-256 digests and compared in constant time;
//! they are never logged.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Fetch recommendations, similar items and model metadata.
    Read,
    /// Send events (the events API to come).
    Ingest,
    /// Everything, including reloading the model.
    Admin,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Ingest => "ingest",
            Role::Admin => "admin",
        }
    }
}

/// A configured key.
#[derive(Clone)]
pub struct ApiKey {
    /// Its label.
    pub name: String,
    /// Its roles.
    pub roles: Vec<Role>,
    /// SHA-256 of the secret.
    pub digest: [u8; 32],
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey").field("name", &self.name).field("roles", &self.roles).finish_non_exhaustive()
    }
}

/// SHA-256 of a secret.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Parses 64 hex digits.
pub fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// The key a request presents: `Authorization: <scheme> <key>` with the scheme `Bearer` in
/// any case (schemes are case-insensitive, RFC 9110 §11.1), or `Basic` with the key as the
/// password (any user name: how a browser presents it, for the dashboard), else
/// `X-API-Key: <key>`. Surrounding white space is not part of a key.
pub fn presented_key(headers: &axum::http::HeaderMap) -> Option<std::borrow::Cow<'_, str>> {
    use base64::Engine;
    use std::borrow::Cow;
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, key) = value.trim().split_once(' ')?;
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD.decode(key.trim()).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (_, password) = text.split_once(':')?;
            return Some(Cow::Owned(password.trim().to_string()));
        }
        return scheme.eq_ignore_ascii_case("bearer").then(|| Cow::Borrowed(key.trim()));
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(|k| Cow::Borrowed(k.trim()))
}

/// What the authorised caller of a request may see, for handlers whose answer depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Whether the caller holds the `admin` role (always, on an open server).
    pub is_admin: bool,
    /// The key's name (`open` on an open server): who made a change, in its provenance.
    pub name: String,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No key, or a key that matches none configured (401).
    Unauthenticated,
    /// A valid key without the role (403).
    Forbidden,
}

/// Checks `presented` (the request's key, if any) against `keys` for `needed`. With no keys
/// configured the server is open and everything is allowed. Every configured key is compared,
/// in constant time, whatever matches.
pub fn authorize<'k>(
    keys: &'k [ApiKey],
    presented: Option<&str>,
    needed: Role,
) -> Result<Option<&'k ApiKey>, Denied> {
    if keys.is_empty() {
        return Ok(None);
    }
    let Some(presented) = presented else { return Err(Denied::Unauthenticated) };
    let candidate = digest(presented);
    let mut found = None;
    for key in keys {
        if bool::from(key.digest.ct_eq(&candidate)) {
            found = Some(key);
        }
    }
    let key = found.ok_or(Denied::Unauthenticated)?;
    if key.roles.iter().any(|&r| r == needed || r == Role::Admin) {
        Ok(Some(key))
    } else {
        Err(Denied::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, secret: &str, roles: &[Role]) -> ApiKey {
        ApiKey { name: name.into(), roles: roles.to_vec(), digest: digest(secret) }
    }

    #[test]
    fn roles_are_enforced_and_admin_may_do_everything() {
        let keys =
            [key("shop", "shop-secret-0000", &[Role::Read]), key("ops", "ops-secret-00000", &[Role::Admin])];
        assert_eq!(authorize(&keys, Some("shop-secret-0000"), Role::Read).unwrap().unwrap().name, "shop");
        assert_eq!(authorize(&keys, Some("shop-secret-0000"), Role::Admin).unwrap_err(), Denied::Forbidden);
        assert_eq!(authorize(&keys, Some("ops-secret-00000"), Role::Ingest).unwrap().unwrap().name, "ops");
        assert_eq!(authorize(&keys, Some("guess"), Role::Read).unwrap_err(), Denied::Unauthenticated);
        assert_eq!(authorize(&keys, None, Role::Read).unwrap_err(), Denied::Unauthenticated);
        assert!(authorize(&[], None, Role::Admin).unwrap().is_none());
    }

    #[test]
    fn bearer_is_case_insensitive_and_keys_are_trimmed() {
        let headers = |name: &str, value: &str| {
            let mut map = axum::http::HeaderMap::new();
            map.insert(axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
            map
        };
        let key = |name: &str, value: &str| presented_key(&headers(name, value)).map(|k| k.into_owned());
        for value in ["Bearer k-1", "bearer k-1", "BEARER   k-1 ", " Bearer k-1"] {
            assert_eq!(key("authorization", value).as_deref(), Some("k-1"), "{value}");
        }
        // Basic: the password is the key (`admin:k-1`, `:k-1`); not base64, or no colon: none.
        assert_eq!(key("authorization", "Basic YWRtaW46ay0x").as_deref(), Some("k-1"));
        assert_eq!(key("authorization", "basic OmstMQ==").as_deref(), Some("k-1"));
        assert_eq!(key("authorization", "Basic k-1"), None);
        assert_eq!(key("authorization", "Basic YWRtaW4="), None);
        assert_eq!(key("authorization", "k-1"), None);
        assert_eq!(key("x-api-key", " k-2 ").as_deref(), Some("k-2"));
    }

    #[test]
    fn digests_round_trip_through_hex() {
        let d = digest("abc");
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(parse_digest(&hex), Some(d));
        assert_eq!(parse_digest("zz"), None);
        assert!(!format!("{:?}", key("k", "secret", &[Role::Read])).contains("digest"));
    }
}
