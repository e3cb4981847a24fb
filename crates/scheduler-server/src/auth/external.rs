//! Tokens from an external issuer (Microsoft Entra ID, for managed-identity callers): RS256
//! signatures checked against a JWK Set, with the issuer and audience from configuration.
//!
//! The JWK Set is given as a document in the configuration for now (for Entra ID, the content
//! of `https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys`); this module does not
//! fetch it. [`ExternalIssuer::replace_jwks`] swaps in a new document at run time, so a
//! periodic refresh can be added without touching verification.

use std::fmt;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use serde::Deserialize;

use super::jwt::TokenError;
use crate::error::{Error, Kind};

/// Configuration of an external token issuer.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExternalIssuerConfig {
    /// The exact `iss` its tokens carry (Entra ID v2: `https://login.microsoftonline.com/<tenant>/v2.0`;
    /// v1 tokens, which managed identities get by default: `https://sts.windows.net/<tenant>/`).
    pub issuer: String,
    /// The `aud` its tokens must carry for this service (an application id URI or client id).
    pub audience: String,
    /// The issuer's JWK Set document (JSON). Only RSA signing keys with a `kid` are used.
    pub jwks: String,
}

impl ExternalIssuerConfig {
    /// A configuration from its three parts.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks: impl Into<String>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks: jwks.into(),
        }
    }
}

impl fmt::Debug for ExternalIssuerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalIssuerConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks", &format_args!("<{} bytes>", self.jwks.len()))
            .finish()
    }
}

struct RsaKey {
    kid: String,
    components: RsaPublicKeyComponents<Vec<u8>>,
}

/// A configured external issuer whose RS256 tokens are accepted.
pub struct ExternalIssuer {
    issuer: String,
    audience: String,
    keys: RwLock<Arc<Vec<RsaKey>>>,
}

impl ExternalIssuer {
    /// Checks the configuration and reads its JWK Set.
    ///
    /// # Errors
    ///
    /// A configuration error if the issuer or audience is empty or the JWK Set has no usable
    /// RSA signing key.
    pub fn new(config: &ExternalIssuerConfig) -> Result<Self, Error> {
        if config.issuer.trim().is_empty() {
            return Err(Error::new(Kind::Config).with_context("auth.external.issuer is empty"));
        }
        if config.audience.trim().is_empty() {
            return Err(Error::new(Kind::Config).with_context("auth.external.audience is empty"));
        }
        Ok(Self {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            keys: RwLock::new(Arc::new(parse_jwks(&config.jwks)?)),
        })
    }

    /// The accepted `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The required `aud`.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Replaces the JWK Set (for example after fetching it again). Returns how many keys are
    /// now usable. On error the old keys stay.
    ///
    /// # Errors
    ///
    /// A configuration error if the document has no usable RSA signing key.
    pub fn replace_jwks(&self, jwks: &str) -> Result<usize, Error> {
        let keys = parse_jwks(jwks)?;
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(n)
    }

    /// Ids of the usable keys.
    pub fn kids(&self) -> Vec<String> {
        self.current().iter().map(|k| k.kid.clone()).collect()
    }

    /// Checks an RS256 signature by the key `kid`.
    pub(crate) fn verify(
        &self,
        kid: Option<&str>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), TokenError> {
        let keys = self.current();
        let key = kid
            .and_then(|kid| keys.iter().find(|k| k.kid == kid))
            .ok_or(TokenError::UnknownKey)?;
        key.components
            .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
            .map_err(|_| TokenError::BadSignature)
    }

    fn current(&self) -> Arc<Vec<RsaKey>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl fmt::Debug for ExternalIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("kids", &self.kids())
            .finish()
    }
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

fn parse_jwks(document: &str) -> Result<Vec<RsaKey>, Error> {
    let set: JwkSet = serde_json::from_str(document).map_err(|e| {
        Error::new(Kind::Config)
            .with_context("auth.external.jwks is not a JWK Set document")
            .with_source(e)
    })?;
    let mut keys = Vec::new();
    for jwk in set.keys {
        let usable = jwk.kty.as_deref() == Some("RSA")
            && jwk.use_.as_deref().is_none_or(|u| u == "sig")
            && jwk.alg.as_deref().is_none_or(|a| a == "RS256");
        let (true, Some(kid), Some(n), Some(e)) = (usable, jwk.kid, jwk.n, jwk.e) else {
            continue;
        };
        let (Ok(n), Ok(e)) = (URL_SAFE_NO_PAD.decode(n), URL_SAFE_NO_PAD.decode(e)) else {
            continue;
        };
        keys.push(RsaKey {
            kid,
            components: RsaPublicKeyComponents {
                n: strip_leading_zeros(n),
                e: strip_leading_zeros(e),
            },
        });
    }
    if keys.is_empty() {
        return Err(Error::new(Kind::Config)
            .with_context("auth.external.jwks has no RSA signing key with a `kid`"));
    }
    Ok(keys)
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rsa_signing_keys_with_kid_are_kept() {
        let doc = r#"{"keys":[
            {"kty":"RSA","kid":"a","n":"AAEC","e":"AQAB"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"AQ","e":"AQAB"},
            {"kty":"EC","kid":"ec","crv":"P-256","x":"AA","y":"AA"},
            {"kty":"RSA","n":"AQ","e":"AQAB"},
            {"kty":"RSA","kid":"ps","alg":"PS256","n":"AQ","e":"AQAB"}
        ]}"#;
        let keys = parse_jwks(doc).expect("jwks");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid, "a");
        assert_eq!(keys[0].components.n, vec![1, 2]);
        assert!(parse_jwks(r#"{"keys":[]}"#).is_err());
        assert!(parse_jwks("not json").is_err());
    }
}
