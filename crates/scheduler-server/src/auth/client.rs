//! Client registration and API-key checks: ids and keys are random, only the key's
//! `sha256:<hex>` hash is stored, and hashes are compared in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

use super::secret::{ApiKey, wipe};
use crate::error::{Error, Kind};
use crate::store::{Client, Store};

/// Prefix of every client id this server generates.
pub const CLIENT_ID_PREFIX: &str = "sch_";

/// Random bytes in a client id (15 bytes = 24 base32 characters).
const CLIENT_ID_BYTES: usize = 15;

/// Random bytes in an API key (256 bits).
const API_KEY_BYTES: usize = 32;

/// Registers a new client with a fresh id and API key.
///
/// The id is `sch_` followed by 24 random base32 characters; the key is 32 random bytes in
/// base64url. Only the key's hash ([`hash_api_key`]) is stored: the returned [`ApiKey`] is
/// the one chance to show it. `scopes` must be OAuth scope tokens (RFC 6749 §3.3: printable
/// ASCII without spaces, `"` or `\`); duplicates are dropped.
///
/// # Errors
///
/// A configuration error for an empty name or an invalid scope; a store error if the client
/// cannot be saved.
///
/// ```
/// # async fn demo(store: &dyn scheduler_server::store::Store) -> Result<(), scheduler_server::Error> {
/// use scheduler_server::auth::{register_client, verify_api_key};
///
/// let (client, key) = register_client(store, "nightly batch", ["conversations:write"]).await?;
/// assert!(client.id.starts_with("sch_"));
/// assert!(verify_api_key(key.expose(), &client.key_hash));
/// # Ok(()) }
/// ```
pub async fn register_client<I>(
    store: &dyn Store,
    name: &str,
    scopes: I,
) -> Result<(Client, ApiKey), Error>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::new(Kind::Config).with_context("a client needs a non-empty name"));
    }
    let mut checked: Vec<String> = Vec::new();
    for scope in scopes {
        let scope = scope.as_ref();
        if !is_scope_token(scope) {
            return Err(Error::new(Kind::Config).with_context(format!(
                "scope {scope:?} is not a valid OAuth scope (printable ASCII, no spaces, quotes or backslashes)"
            )));
        }
        if !checked.iter().any(|s| s == scope) {
            checked.push(scope.to_owned());
        }
    }

    let rng = SystemRandom::new();
    let mut id_bytes = [0u8; CLIENT_ID_BYTES];
    rng.fill(&mut id_bytes)
        .map_err(|_| Error::new(Kind::Config).with_context("the system random generator failed"))?;
    let id = format!("{CLIENT_ID_PREFIX}{}", base32_lower(&id_bytes));

    let mut key_bytes = [0u8; API_KEY_BYTES];
    rng.fill(&mut key_bytes)
        .map_err(|_| Error::new(Kind::Config).with_context("the system random generator failed"))?;
    let key = ApiKey::new(URL_SAFE_NO_PAD.encode(key_bytes));
    wipe(&mut key_bytes);

    let client = Client {
        id,
        name: name.to_owned(),
        key_hash: hash_api_key(key.expose()),
        scopes: checked,
        disabled: false,
        created_at: Timestamp::now(),
    };
    store.create_client(&client).await.map_err(|e| {
        Error::new(Kind::Store)
            .with_context("could not save the new client")
            .with_source(e)
    })?;
    tracing::info!(client_id = %client.id, "client registered");
    Ok((client, key))
}

/// The stored form of an API key: `sha256:` and the lowercase hex SHA-256 of its text.
///
/// The key is 256 random bits, so a plain (unsalted, fast) hash is enough: there is nothing
/// to guess a dictionary from.
pub fn hash_api_key(key: &str) -> String {
    let digest = digest::digest(&digest::SHA256, key.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest.as_ref() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// Checks a presented API key against a stored hash, comparing the hashes in constant time.
/// Hashes in any other format never match.
pub fn verify_api_key(presented: &str, key_hash: &str) -> bool {
    let computed = hash_api_key(presented);
    constant_time_eq(computed.as_bytes(), key_hash.as_bytes())
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Whether `s` looks like an id this server generated (safe to log as is).
pub(crate) fn is_client_id_shape(s: &str) -> bool {
    s.strip_prefix(CLIENT_ID_PREFIX).is_some_and(|rest| {
        rest.len() == CLIENT_ID_BYTES * 8 / 5
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    })
}

/// Whether `s` is an RFC 6749 §3.3 scope token: one or more of `%x21 / %x23-5B / %x5D-7E`.
pub(crate) fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// RFC 4648 base32 in lowercase, without padding (callers pass multiples of 5 bytes).
fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_prefixed_hex_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            hash_api_key("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(verify_api_key("abc", &hash_api_key("abc")));
        assert!(!verify_api_key("abd", &hash_api_key("abc")));
        assert!(!verify_api_key("abc", "plain:abc"));
    }

    #[test]
    fn constant_time_eq_matches_eq() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sane"));
        assert!(!constant_time_eq(b"same", b"samey"));
    }

    #[test]
    fn base32_known_vectors() {
        // RFC 4648 §10, lowercased.
        assert_eq!(base32_lower(b"fooba"), "mzxw6ytb");
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
        assert!(is_client_id_shape(&format!(
            "sch_{}",
            base32_lower(&[7u8; 15])
        )));
        assert!(!is_client_id_shape("sch_short"));
        assert!(!is_client_id_shape("someone-else"));
    }

    #[test]
    fn scope_tokens() {
        assert!(is_scope_token("conversations:write"));
        assert!(is_scope_token("a!#[]~"));
        assert!(!is_scope_token(""));
        assert!(!is_scope_token("two words"));
        assert!(!is_scope_token("quo\"te"));
        assert!(!is_scope_token("back\\slash"));
        assert!(!is_scope_token("é"));
    }
}
