//! The server's token-signing keys: ES256 (P-256) key pairs kept in the store as one secret
//! setting, so tokens survive restarts. The key id is the RFC 7638 JWK thumbprint. Several
//! keys can be live at once for rotation: the JWKS lists all of them and the newest signs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use ring::rand::SystemRandom;
use ring::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::secret::wipe;
use crate::error::{Error, Kind};
use crate::store::Store;

/// The setting that holds the signing keys (secret: left out of backups).
pub(crate) const SIGNING_KEYS_SETTING: &str = "auth.signingKeys";

/// One ES256 signing key.
pub(crate) struct SigningKey {
    kid: String,
    pair: EcdsaKeyPair,
    created_at: Timestamp,
}

impl SigningKey {
    fn from_pkcs8(pkcs8: &[u8], created_at: Timestamp) -> Result<Self, Error> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|_| corrupt("a stored signing key is not a valid P-256 PKCS#8 document"))?;
        let (x, y) = coordinates(pair.public_key().as_ref())?;
        Ok(Self {
            kid: thumbprint(&x, &y),
            pair,
            created_at,
        })
    }

    /// The key id (RFC 7638 thumbprint).
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `message` (ES256, the fixed-length `r || s` form JWS uses).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|sig| sig.as_ref().to_vec())
            .map_err(|_| Error::new(Kind::Config).with_context("signing a token failed"))
    }

    /// Checks an ES256 signature made by this key.
    pub(crate) fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(message, sig)
            .is_ok()
    }

    /// The public JWK.
    fn jwk(&self) -> Value {
        // The public key was checked to be an uncompressed point when the key was loaded.
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            "use": "sig",
            "alg": "ES256",
            "kid": self.kid,
        })
    }
}

/// The live signing keys, oldest first; the last one signs.
pub(crate) struct KeySet {
    keys: Vec<SigningKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredKeys {
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredKey {
    kid: String,
    created_at: Timestamp,
    /// The PKCS#8 document, base64url.
    pkcs8: String,
}

impl KeySet {
    /// Loads the keys from the store, creating and saving a first key if there is none.
    pub(crate) async fn load_or_create(store: &dyn Store, now: Timestamp) -> Result<Self, Error> {
        if let Some(set) = Self::load(store).await? {
            return Ok(set);
        }
        let stored = StoredKeys {
            keys: vec![generate(now)?],
        };
        save(store, &stored).await?;
        tracing::info!("created the first token-signing key");
        // Read back what is stored, so that replicas racing to create the first key settle on
        // whatever the store kept last.
        Self::load(store)
            .await?
            .ok_or_else(|| corrupt("the signing keys vanished right after being saved"))
    }

    /// Loads the keys from the store; `None` if none were ever created.
    pub(crate) async fn load(store: &dyn Store) -> Result<Option<Self>, Error> {
        let Some(stored) = read(store).await? else {
            return Ok(None);
        };
        Self::from_stored(&stored).map(Some)
    }

    /// Adds a fresh key to the stored set (it becomes the signing key) and returns the new set.
    pub(crate) async fn rotate(store: &dyn Store, now: Timestamp) -> Result<Self, Error> {
        let mut stored = read(store)
            .await?
            .unwrap_or(StoredKeys { keys: Vec::new() });
        stored.keys.push(generate(now)?);
        save(store, &stored).await?;
        Self::from_stored(&stored)
    }

    /// Removes the key `kid` from the stored set. The newest key cannot be retired.
    /// Returns the new set, or `None` if no key has that id.
    pub(crate) async fn retire(store: &dyn Store, kid: &str) -> Result<Option<Self>, Error> {
        let Some(mut stored) = read(store).await? else {
            return Ok(None);
        };
        let Some(pos) = stored.keys.iter().position(|k| k.kid == kid) else {
            return Ok(None);
        };
        if pos + 1 == stored.keys.len() {
            return Err(Error::new(Kind::Config)
                .with_context("the newest signing key cannot be retired; rotate first"));
        }
        stored.keys.remove(pos);
        save(store, &stored).await?;
        Self::from_stored(&stored).map(Some)
    }

    fn from_stored(stored: &StoredKeys) -> Result<Self, Error> {
        if stored.keys.is_empty() {
            return Err(corrupt("the stored signing key set is empty"));
        }
        let mut keys = Vec::with_capacity(stored.keys.len());
        for entry in &stored.keys {
            let mut der = URL_SAFE_NO_PAD
                .decode(&entry.pkcs8)
                .map_err(|_| corrupt("a stored signing key is not base64url"))?;
            let key = SigningKey::from_pkcs8(&der, entry.created_at);
            wipe(&mut der);
            let key = key?;
            if key.kid != entry.kid {
                return Err(corrupt("a stored signing key does not match its key id"));
            }
            keys.push(key);
        }
        Ok(Self { keys })
    }

    /// The key that signs new tokens (the newest).
    pub(crate) fn signer(&self) -> &SigningKey {
        // `from_stored` refuses empty sets.
        &self.keys[self.keys.len() - 1]
    }

    /// The key with id `kid`, if live.
    pub(crate) fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// Ids of the live keys, oldest first.
    pub(crate) fn kids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.kid.clone()).collect()
    }

    /// When each live key was created, oldest first.
    pub(crate) fn created(&self) -> Vec<(String, Timestamp)> {
        self.keys
            .iter()
            .map(|k| (k.kid.clone(), k.created_at))
            .collect()
    }

    /// The JWK Set document of the public keys, newest first.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().rev().map(SigningKey::jwk).collect::<Vec<_>>() })
    }
}

fn generate(now: Timestamp) -> Result<StoredKey, Error> {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map_err(|_| Error::new(Kind::Config).with_context("generating a signing key failed"))?;
    let key = SigningKey::from_pkcs8(doc.as_ref(), now)?;
    Ok(StoredKey {
        kid: key.kid,
        created_at: now,
        pkcs8: URL_SAFE_NO_PAD.encode(doc.as_ref()),
    })
}

async fn read(store: &dyn Store) -> Result<Option<StoredKeys>, Error> {
    let value = store.get_setting(SIGNING_KEYS_SETTING).await.map_err(|e| {
        Error::new(Kind::Store)
            .with_context("could not read the signing keys")
            .with_source(e)
    })?;
    value
        .map(|v| {
            serde_json::from_value(v)
                .map_err(|_| corrupt("the stored signing keys are not in the expected format"))
        })
        .transpose()
}

async fn save(store: &dyn Store, keys: &StoredKeys) -> Result<(), Error> {
    let value = serde_json::to_value(keys)
        .map_err(|_| Error::new(Kind::Config).with_context("could not encode the signing keys"))?;
    store
        .set_setting(SIGNING_KEYS_SETTING, &value, true)
        .await
        .map_err(|e| {
            Error::new(Kind::Store)
                .with_context("could not save the signing keys")
                .with_source(e)
        })
}

fn corrupt(what: &str) -> Error {
    Error::new(Kind::Config).with_context(format!("setting `{SIGNING_KEYS_SETTING}`: {what}"))
}

/// The x and y coordinates of an uncompressed P-256 point.
fn coordinates(point: &[u8]) -> Result<([u8; 32], [u8; 32]), Error> {
    if point.len() != 65 || point[0] != 4 {
        return Err(corrupt("unexpected public key encoding"));
    }
    let mut x = [0u8; 32];
    let mut y = [0u8; 32];
    x.copy_from_slice(&point[1..33]);
    y.copy_from_slice(&point[33..65]);
    Ok((x, y))
}

/// The RFC 7638 thumbprint of a P-256 public key: base64url SHA-256 of the JWK's required
/// members in lexicographic order, without whitespace.
pub(crate) fn thumbprint(x: &[u8], y: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(x),
        URL_SAFE_NO_PAD.encode(y)
    );
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_style_thumbprint_is_sha256_of_canonical_jwk() {
        // The construction of RFC 7638 §3 for an EC key, written out independently.
        let x = [1u8; 32];
        let y = [2u8; 32];
        let expected_input = format!(
            "{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{}\",\"y\":\"{}\"}}",
            URL_SAFE_NO_PAD.encode(x),
            URL_SAFE_NO_PAD.encode(y)
        );
        let expected = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            expected_input.as_bytes(),
        ));
        assert_eq!(thumbprint(&x, &y), expected);
        assert_eq!(thumbprint(&x, &y).len(), 43);
    }

    #[test]
    fn generated_key_signs_and_verifies_and_round_trips() {
        let now = Timestamp::UNIX_EPOCH;
        let stored = StoredKeys {
            keys: vec![generate(now).expect("key")],
        };
        let set = KeySet::from_stored(&stored).expect("set");
        let sig = set.signer().sign(b"message").expect("sign");
        assert_eq!(sig.len(), 64);
        assert!(set.signer().verify(b"message", &sig));
        assert!(!set.signer().verify(b"messagf", &sig));
        let jwks = set.jwks();
        assert_eq!(jwks["keys"][0]["kid"], set.signer().kid());
        assert_eq!(jwks["keys"][0]["crv"], "P-256");
        let again = KeySet::from_stored(&stored).expect("set");
        assert_eq!(again.kids(), set.kids());
    }

    #[test]
    fn mismatched_kid_is_refused() {
        let mut key = generate(Timestamp::UNIX_EPOCH).expect("key");
        key.kid = "other".to_owned();
        let err = KeySet::from_stored(&StoredKeys { keys: vec![key] })
            .err()
            .expect("refused");
        assert!(err.is_config());
    }
}
