//! Redacting holders of secret text: [`ApiKey`] (a client's key, shown once at registration)
//! and [`AccessToken`] (an issued JWT). Neither prints its value in `Debug` or `Display`, and
//! both overwrite their bytes with zeros when dropped.

use std::fmt;

/// Secret text whose buffer is overwritten with zeros when dropped.
///
/// Best effort without `unsafe`: the buffer is filled with zeros (spare capacity included)
/// and handed to [`std::hint::black_box`] so the writes are not optimised away. Copies made
/// by callers of `expose()` are theirs to look after.
struct SecretText(String);

impl SecretText {
    fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for SecretText {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        let capacity = bytes.capacity();
        bytes.resize(capacity, 0);
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

/// Overwrites a byte buffer with zeros in a way the optimiser keeps.
pub(crate) fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(&*bytes);
}

/// A client's API key (its OAuth client secret), in plain text.
///
/// Returned once by [`register_client`](super::register_client); only its hash is stored.
/// `Debug` and `Display` print nothing of it; read it with [`expose`](Self::expose).
///
/// ```
/// # async fn demo(store: &dyn scheduler_server::store::Store) -> Result<(), scheduler_server::Error> {
/// let (client, key) = scheduler_server::auth::register_client(store, "reporting", ["schedule"]).await?;
/// assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
/// println!("client id {}, API key {} (shown once)", client.id, key.expose());
/// # Ok(()) }
/// ```
pub struct ApiKey(SecretText);

impl ApiKey {
    pub(crate) fn new(text: String) -> Self {
        Self(SecretText(text))
    }

    /// The key in plain text (43 characters of base64url). Handle with care.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An access token (a signed JWT) in plain text.
///
/// `Debug` and `Display` print nothing of it; read it with [`expose`](Self::expose).
pub struct AccessToken(SecretText);

impl AccessToken {
    pub(crate) fn new(text: String) -> Self {
        Self(SecretText(text))
    }

    /// The token in plain text (the JWS compact serialization). Handle with care.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let key = ApiKey::new("super-secret-value".to_owned());
        assert_eq!(key.expose(), "super-secret-value");
        assert!(!format!("{key:?} {key} {key:#?}").contains("super"));
        let token = AccessToken::new("eyJhbGciOi.payload.sig".to_owned());
        assert!(!format!("{token:?} {token} {token:#?}").contains("eyJ"));
    }

    #[test]
    fn wipe_zeroes() {
        let mut buf = *b"abc";
        wipe(&mut buf);
        assert_eq!(buf, [0, 0, 0]);
    }
}
