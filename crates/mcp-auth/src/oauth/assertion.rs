//! `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect Core §9): a short
//! JWT signed with the client's private key.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    RSA_PKCS1_SHA256, RsaKeyPair,
};
use zeroize::Zeroize;

use crate::error::Kind;
use crate::{Error, Secret};

/// `client_assertion_type` for a JWT assertion (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid. RFC 7523 leaves it to the client; short limits replay.
pub(crate) const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// A client's private key for `private_key_jwt`: ES256 (P-256), ES384 (P-384) or RS256 (RSA),
/// read from PKCS#8.
///
/// Cloning is cheap; `Debug` shows the algorithm and key id only.
///
/// ```
/// use mcp_auth::oauth::PrivateKey;
///
/// // An unencrypted PKCS#8 key, e.g. `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`.
/// let err = PrivateKey::from_pem("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")
///     .unwrap_err();
/// assert!(err.is_config());
/// ```
#[derive(Clone)]
pub struct PrivateKey {
    key: Arc<KeyPair>,
    key_id: Option<String>,
}

enum KeyPair {
    Ecdsa(EcdsaKeyPair, &'static str),
    Rsa(RsaKeyPair),
}

impl PrivateKey {
    /// Reads a PEM `PRIVATE KEY` (PKCS#8) block. SEC1 `EC PRIVATE KEY` and PKCS#1
    /// `RSA PRIVATE KEY` blocks are refused with a hint to convert them
    /// (`openssl pkcs8 -topk8 -nocrypt`); so are encrypted keys.
    ///
    /// # Errors
    ///
    /// [`Error::is_config`] if the text holds no usable key.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        let config =
            |why: &str| Error::new(Kind::Config).with_context(format!("private key: {why}"));
        let begin = pem
            .find("-----BEGIN ")
            .ok_or_else(|| config("no PEM block (-----BEGIN ...-----) found"))?;
        let rest = &pem[begin + "-----BEGIN ".len()..];
        let label_end = rest
            .find("-----")
            .ok_or_else(|| config("the PEM header is malformed"))?;
        let label = &rest[..label_end];
        if label != "PRIVATE KEY" {
            return Err(config(&format!(
                "a `{}` PEM block is not supported; convert it to an unencrypted PKCS#8 \
                 `PRIVATE KEY` (openssl pkcs8 -topk8 -nocrypt)",
                super::json::printable(label, 40)
            )));
        }
        let body = &rest[label_end + 5..];
        let end = body
            .find("-----END PRIVATE KEY-----")
            .ok_or_else(|| config("the PEM block has no END line"))?;
        let mut b64: String = body[..end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let decoded = STANDARD.decode(b64.as_bytes());
        b64.zeroize();
        let mut der = decoded.map_err(|_| config("the PEM block is not valid base64"))?;
        let key = Self::from_pkcs8_der(&der);
        der.zeroize();
        key
    }

    /// Reads a DER-encoded PKCS#8 private key (P-256, P-384 or RSA of 2048 bits or more).
    ///
    /// # Errors
    ///
    /// [`Error::is_config`] if ring rejects the key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let key = if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
        {
            KeyPair::Ecdsa(k, "ES256")
        } else if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, der, &rng)
        {
            KeyPair::Ecdsa(k, "ES384")
        } else {
            match RsaKeyPair::from_pkcs8(der) {
                Ok(k) => KeyPair::Rsa(k),
                Err(e) => {
                    return Err(Error::new(Kind::Config).with_context(format!(
                        "private key: not a usable PKCS#8 P-256, P-384 or RSA key ({e})"
                    )));
                }
            }
        };
        Ok(Self {
            key: Arc::new(key),
            key_id: None,
        })
    }

    /// Sets the `kid` header of the assertions (the key's id in the client's JWK Set).
    #[must_use]
    pub fn with_key_id(mut self, kid: impl Into<String>) -> Self {
        self.key_id = Some(kid.into());
        self
    }

    /// The JWS algorithm: `ES256`, `ES384` or `RS256`.
    pub fn algorithm(&self) -> &'static str {
        match &*self.key {
            KeyPair::Ecdsa(_, alg) => alg,
            KeyPair::Rsa(_) => "RS256",
        }
    }

    /// The `kid` header, if set.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// A signed client assertion: `iss` = `sub` = `client_id`, `aud` = `audience`, a random
    /// `jti`, `iat` = `now`, `exp` = `now` + `lifetime`.
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<Secret, Error> {
        let failed = |what: &str| {
            Error::new(Kind::Config).with_context(format!("private_key_jwt: {what} failed"))
        };
        let rng = SystemRandom::new();
        let mut jti = [0u8; 16];
        rng.fill(&mut jti).map_err(|_| failed("random jti"))?;
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| failed("reading the clock"))?
            .as_secs();
        let mut header = serde_json::json!({ "alg": self.algorithm(), "typ": "JWT" });
        if let Some(kid) = &self.key_id {
            header["kid"] = kid.as_str().into();
        }
        let claims = serde_json::json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "iat": iat,
            "exp": iat + lifetime.as_secs(),
        });
        let mut input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match &*self.key {
            KeyPair::Ecdsa(key, _) => key
                .sign(&rng, input.as_bytes())
                .map_err(|_| failed("signing"))?
                .as_ref()
                .to_vec(),
            KeyPair::Rsa(key) => {
                let mut sig = vec![0u8; key.public().modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                    .map_err(|_| failed("signing"))?;
                sig
            }
        };
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(Secret::new(input))
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm())
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, KeyPair as _, UnparsedPublicKey};

    #[test]
    fn es256_assertion_verifies_and_carries_the_claims() {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("generate");
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(pkcs8.as_ref())
        );
        let key = PrivateKey::from_pem(&pem).expect("key").with_key_id("k1");
        assert_eq!(key.algorithm(), "ES256");
        let public =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .expect("pair")
                .public_key()
                .as_ref()
                .to_vec();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let jwt = key
            .assertion("client-1", "https://as.example", now, ASSERTION_LIFETIME)
            .expect("signed");
        let jwt = jwt.expose_secret();
        let (input, sig) = jwt.rsplit_once('.').expect("three parts");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public)
            .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).expect("b64"))
            .expect("signature verifies");
        let (header, claims) = input.split_once('.').expect("parts");
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("b64")).expect("json");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "k1");
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], "https://as.example");
        assert_eq!(claims["exp"], 1_800_000_060u64);
        assert!(!format!("{key:?}").contains(&STANDARD.encode(pkcs8.as_ref())[..20]));
    }

    #[test]
    fn other_pem_labels_and_garbage_are_config_errors() {
        for pem in [
            "",
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nAAAA",
            "-----BEGIN ",
        ] {
            assert!(
                PrivateKey::from_pem(pem).expect_err(pem).is_config(),
                "{pem}"
            );
        }
    }
}
