//! PKCE (RFC 7636) with the `S256` method, and the random `state` of an authorization request.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::Kind;
use crate::{Error, Secret};

/// The only code challenge method this client uses (MCP: `S256` when technically capable).
pub(crate) const S256: &str = "S256";

/// One authorization's PKCE pair: the secret verifier and its public challenge.
pub(crate) struct Pkce {
    /// 43 characters of the RFC 7636 §4.1 alphabet (32 random bytes, base64url).
    pub(crate) verifier: Secret,
    /// `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2).
    pub(crate) challenge: String,
}

impl Pkce {
    /// A fresh pair from the system's secure random source.
    pub(crate) fn new() -> Result<Self, Error> {
        let verifier = Secret::new(random_token()?);
        let challenge = challenge_of(verifier.expose_secret());
        Ok(Self {
            verifier,
            challenge,
        })
    }
}

/// The `S256` challenge of `verifier`.
pub(crate) fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// 32 random bytes, base64url without padding (256 bits: a PKCE verifier or a `state`).
pub(crate) fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| {
        Error::new(Kind::Config).with_context("the system's secure random source failed")
    })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_example() {
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_are_fresh_and_in_the_alphabet() {
        let (a, b) = (Pkce::new().expect("pkce"), Pkce::new().expect("pkce"));
        let v = a.verifier.expose_secret();
        assert_eq!(v.len(), 43);
        assert!(
            v.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a.verifier, b.verifier);
        assert_eq!(a.challenge, challenge_of(v));
    }
}
