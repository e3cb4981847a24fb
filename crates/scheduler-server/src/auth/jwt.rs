//! Access tokens: issuing ES256 JWTs shaped like RFC 9068 (JWS compact serialization, written
//! by hand) and verifying them with the algorithm pinned, plus RS256 tokens of a configured
//! external issuer.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clock::Clock;
use super::external::ExternalIssuer;
use super::keys::KeySet;
use super::secret::AccessToken;
use crate::error::{Error, Kind};

/// Longest token [`Verifier::verify`] looks at (8 KiB); longer ones are refused unread.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Clock skew tolerated when checking `exp`, `nbf` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(60);

/// The verified contents of an access token, as the protected endpoints see them.
///
/// The [bearer middleware](super::require_bearer) puts one into the request extensions.
/// Contains no secret: the token itself is not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claims {
    /// `iss`: who issued the token.
    pub issuer: String,
    /// `sub`: the subject; for this server's tokens, the client id.
    pub subject: String,
    /// `aud`: the audiences (contains the expected one).
    pub audience: Vec<String>,
    /// The client the token was issued to: `client_id` (or, for external tokens, `azp`,
    /// `appid` or, failing those, `sub`).
    pub client_id: String,
    /// Granted scopes: `scope` (space-separated); for external tokens also `scp` and `roles`.
    pub scopes: Vec<String>,
    /// `iat`, if present.
    pub issued_at: Option<Timestamp>,
    /// `nbf`, if present.
    pub not_before: Option<Timestamp>,
    /// `exp`.
    pub expires_at: Timestamp,
    /// `jti`, if present.
    pub token_id: Option<String>,
    /// True if the token came from the configured external issuer, not from this server.
    pub external: bool,
}

impl Claims {
    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Why a token was refused. Carries no part of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_LEN`].
    TooLarge,
    /// Not three base64url parts of JSON (or a header with `crit`, or wrongly typed claims).
    Malformed,
    /// The header's `alg` is not ES256 (nor RS256 with an external issuer configured):
    /// `none`, HS256 and everything else are refused before any signature check.
    UnsupportedAlgorithm,
    /// The header's `typ` is not `at+jwt` (this server's tokens).
    WrongType,
    /// No live key has the header's `kid`.
    UnknownKey,
    /// The external issuer's keys are not available yet (its JWK Set has not been fetched
    /// successfully since start).
    KeysUnavailable,
    /// The signature does not verify.
    BadSignature,
    /// `iss` is not the expected issuer.
    WrongIssuer,
    /// `aud` does not contain the expected audience.
    WrongAudience,
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    NotYetValid,
    /// A required claim is missing.
    MissingClaim(&'static str),
}

impl TokenError {
    /// A short machine-readable reason, for logs and metrics (`expired`, `bad_signature`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::TooLarge => "too_large",
            TokenError::Malformed => "malformed",
            TokenError::UnsupportedAlgorithm => "unsupported_algorithm",
            TokenError::WrongType => "wrong_type",
            TokenError::UnknownKey => "unknown_key",
            TokenError::KeysUnavailable => "keys_unavailable",
            TokenError::BadSignature => "bad_signature",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::MissingClaim(_) => "missing_claim",
        }
    }
}

impl fmt::Display for TokenError {
    /// Plain ASCII without quotes, so it fits in a `WWW-Authenticate` `error_description`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::TooLarge => f.write_str("the token is too large"),
            TokenError::Malformed => f.write_str("the token is malformed"),
            TokenError::UnsupportedAlgorithm => f.write_str("the token algorithm is not accepted"),
            TokenError::WrongType => f.write_str("the token is not an access token (typ)"),
            TokenError::UnknownKey => f.write_str("the token signing key is unknown"),
            TokenError::KeysUnavailable => {
                f.write_str("the signing keys of the token issuer are not available yet")
            }
            TokenError::BadSignature => f.write_str("the token signature is invalid"),
            TokenError::WrongIssuer => f.write_str("the token issuer is not accepted"),
            TokenError::WrongAudience => f.write_str("the token is for another audience"),
            TokenError::Expired => f.write_str("the token has expired"),
            TokenError::NotYetValid => f.write_str("the token is not valid yet"),
            TokenError::MissingClaim(c) => write!(f, "the token lacks the {c} claim"),
        }
    }
}

impl std::error::Error for TokenError {}

/// The signing keys, shared by the issuer side and every [`Verifier`] (rotation swaps the
/// inner `Arc`).
pub(crate) type SharedKeys = Arc<RwLock<Arc<KeySet>>>;

pub(crate) fn current_keys(keys: &SharedKeys) -> Arc<KeySet> {
    keys.read().unwrap_or_else(|e| e.into_inner()).clone()
}

#[derive(Serialize)]
struct OutHeader<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

#[derive(Serialize)]
struct OutClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: &'a str,
    client_id: &'a str,
    scope: &'a str,
}

/// What to put in a new token.
pub(crate) struct TokenRequest<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) audience: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) scope: &'a str,
    pub(crate) now: Timestamp,
    pub(crate) ttl: Duration,
}

/// Signs a new access token with the newest key; returns it with its expiry.
pub(crate) fn issue(
    keys: &KeySet,
    req: &TokenRequest<'_>,
) -> Result<(AccessToken, Timestamp), Error> {
    let key = keys.signer();
    let iat = req.now.as_second();
    let ttl = i64::try_from(req.ttl.as_secs()).unwrap_or(i64::MAX);
    let exp = iat.saturating_add(ttl);
    let expires_at = Timestamp::from_second(exp)
        .map_err(|_| Error::new(Kind::Config).with_context("token lifetime out of range"))?;
    let jti = uuid::Uuid::new_v4().to_string();
    let header = OutHeader {
        alg: "ES256",
        typ: "at+jwt",
        kid: key.kid(),
    };
    let claims = OutClaims {
        iss: req.issuer,
        sub: req.client_id,
        aud: req.audience,
        iat,
        nbf: iat,
        exp,
        jti: &jti,
        client_id: req.client_id,
        scope: req.scope,
    };
    let mut token = b64_json(&header)?;
    token.push('.');
    token.push_str(&b64_json(&claims)?);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok((AccessToken::new(token), expires_at))
}

/// base64url of the JSON encoding of `value`.
fn b64_json<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_vec(value)
        .map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
        .map_err(|_| Error::new(Kind::Config).with_context("encoding a token failed"))
}

#[derive(Deserialize)]
struct InHeader {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct InClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Value>,
    iat: Option<Value>,
    nbf: Option<Value>,
    exp: Option<Value>,
    jti: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    scp: Option<String>,
    roles: Option<Vec<String>>,
    azp: Option<String>,
    appid: Option<String>,
}

/// Checks access tokens: this server's ES256 tokens and, if configured, an external issuer's
/// RS256 tokens.
///
/// Cheap to clone; sees signing-key rotations made through its
/// [`AuthState`](super::AuthState). Checks, in order: size, shape, `alg` (pinned: ES256 for
/// this server's keys, RS256 for the external issuer's; nothing else, before any signature
/// work), `typ`, `kid`, signature, `iss`, `aud`, `exp`, `nbf`/`iat` (leeway
/// [`LEEWAY`]), required claims.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<VerifierInner>,
}

struct VerifierInner {
    issuer: String,
    audience: String,
    keys: SharedKeys,
    external: Option<Arc<ExternalIssuer>>,
    clock: Clock,
    /// Tokens already verified against a key set: SHA-256 of the token → claims. A hit skips
    /// the signature check (an ECDSA verification per request was a quarter of the server's
    /// CPU); times are checked again on every use, and a new key set (rotation, retirement)
    /// invalidates every entry.
    verified: Mutex<VerifiedCache>,
}

/// Bounded cache of verified local tokens.
#[derive(Default)]
struct VerifiedCache {
    keys: Option<Arc<KeySet>>,
    entries: HashMap<[u8; 32], Claims>,
}

/// Most tokens kept in the verification cache.
const VERIFIED_CACHE_CAP: usize = 4_096;

enum Source<'a> {
    Local,
    External(&'a ExternalIssuer),
}

impl Verifier {
    pub(crate) fn new(
        issuer: String,
        audience: String,
        keys: SharedKeys,
        external: Option<Arc<ExternalIssuer>>,
        clock: Clock,
    ) -> Self {
        Self {
            inner: Arc::new(VerifierInner {
                issuer,
                audience,
                keys,
                external,
                clock,
                verified: Mutex::new(VerifiedCache::default()),
            }),
        }
    }

    /// Claims of a token verified before against the current key set, if they are still
    /// valid at `now` (same time rules as a full verification).
    fn cached(&self, digest: &[u8; 32], keys: &Arc<KeySet>) -> Option<Result<Claims, TokenError>> {
        let cache = self
            .inner
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !cache.keys.as_ref().is_some_and(|k| Arc::ptr_eq(k, keys)) {
            return None;
        }
        let claims = cache.entries.get(digest)?;
        let now = (self.inner.clock)();
        let leeway = jiff::SignedDuration::try_from(LEEWAY).unwrap_or_default();
        if now
            >= claims
                .expires_at
                .saturating_add(leeway)
                .unwrap_or(claims.expires_at)
        {
            return Some(Err(TokenError::Expired));
        }
        let late = now.saturating_add(leeway).unwrap_or(now);
        if claims.not_before.is_some_and(|t| t > late) || claims.issued_at.is_some_and(|t| t > late)
        {
            return Some(Err(TokenError::NotYetValid));
        }
        Some(Ok(claims.clone()))
    }

    fn remember(&self, digest: [u8; 32], keys: &Arc<KeySet>, claims: &Claims) {
        let mut cache = self
            .inner
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !cache.keys.as_ref().is_some_and(|k| Arc::ptr_eq(k, keys)) {
            cache.entries.clear();
            cache.keys = Some(keys.clone());
        }
        if cache.entries.len() >= VERIFIED_CACHE_CAP {
            let now = (self.inner.clock)();
            cache.entries.retain(|_, c| c.expires_at > now);
            if cache.entries.len() >= VERIFIED_CACHE_CAP {
                cache.entries.clear();
            }
        }
        cache.entries.insert(digest, claims.clone());
    }

    /// Verifies `token` (the JWS compact serialization) and returns its claims.
    ///
    /// # Errors
    ///
    /// The first check that fails, as a [`TokenError`].
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge);
        }
        let keys = current_keys(&self.inner.keys);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(
            ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref(),
        );
        if let Some(hit) = self.cached(&digest, &keys) {
            return hit;
        }
        let claims = self.verify_signed(token)?;
        if !claims.external {
            self.remember(digest, &keys, &claims);
        }
        Ok(claims)
    }

    /// [`verify`](Self::verify), and if an RS256 token names a key the external issuer does
    /// not list (or its keys have not arrived yet), fetches the issuer's JWK Set again and
    /// verifies once more. The refetch is single-flight and rate limited (see
    /// [`ExternalIssuerConfig::jwks_min_refetch`](super::ExternalIssuerConfig::jwks_min_refetch));
    /// without a `jwks_uri` this is `verify`. The [bearer middleware](super::require_bearer)
    /// uses this.
    ///
    /// # Errors
    ///
    /// As [`verify`](Self::verify).
    pub async fn verify_refreshing(&self, token: &str) -> Result<Claims, TokenError> {
        let first = self.verify(token);
        let (Err(TokenError::UnknownKey | TokenError::KeysUnavailable), Some(external)) =
            (&first, self.inner.external.as_deref())
        else {
            return first;
        };
        let header = token
            .split('.')
            .next()
            .and_then(|h| decode_json::<InHeader>(h).ok());
        let Some(InHeader {
            alg: Some(alg),
            kid: Some(kid),
            ..
        }) = header
        else {
            return first;
        };
        if alg != "RS256" || kid.is_empty() || !external.refetch_for_kid(&kid).await {
            return first;
        }
        self.verify(token)
    }

    /// The full verification: header, signature, issuer, audience, times, claims.
    fn verify_signed(&self, token: &str) -> Result<Claims, TokenError> {
        let inner = &*self.inner;
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: InHeader = decode_json(h)?;
        if header.crit.is_some() {
            // RFC 7515 §4.1.11: extensions we do not understand make the token invalid.
            return Err(TokenError::Malformed);
        }
        let signing_input = &token.as_bytes()[..h.len() + 1 + p.len()];
        let kid = header.kid.as_deref();
        let source = match header.alg.as_deref() {
            Some("ES256") => {
                let typ = header.typ.as_deref().unwrap_or("");
                if !typ.eq_ignore_ascii_case("at+jwt")
                    && !typ.eq_ignore_ascii_case("application/at+jwt")
                {
                    return Err(TokenError::WrongType);
                }
                let keys = current_keys(&inner.keys);
                let key = kid
                    .and_then(|kid| keys.find(kid))
                    .ok_or(TokenError::UnknownKey)?;
                let signature = decode_b64(s)?;
                if !key.verify(signing_input, &signature) {
                    return Err(TokenError::BadSignature);
                }
                Source::Local
            }
            Some("RS256") => {
                let Some(external) = inner.external.as_deref() else {
                    return Err(TokenError::UnsupportedAlgorithm);
                };
                let signature = decode_b64(s)?;
                external.verify(kid, signing_input, &signature)?;
                Source::External(external)
            }
            Some(_) => return Err(TokenError::UnsupportedAlgorithm),
            None => return Err(TokenError::Malformed),
        };

        let raw: InClaims = decode_json(p)?;
        let (issuer, audience) = match source {
            Source::Local => (inner.issuer.as_str(), inner.audience.as_str()),
            Source::External(e) => (e.issuer(), e.audience()),
        };
        let external = matches!(source, Source::External(_));

        let iss = raw.iss.ok_or(TokenError::MissingClaim("iss"))?;
        if iss != issuer {
            return Err(TokenError::WrongIssuer);
        }
        let aud = audiences(raw.aud)?;
        if !aud.iter().any(|a| a == audience) {
            return Err(TokenError::WrongAudience);
        }
        let now = (inner.clock)().as_second();
        let leeway = i64::try_from(LEEWAY.as_secs()).unwrap_or(0);
        let exp = numeric_date(raw.exp)?.ok_or(TokenError::MissingClaim("exp"))?;
        if now >= exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        let nbf = numeric_date(raw.nbf)?;
        let iat = numeric_date(raw.iat)?;
        if nbf.is_some_and(|t| t > now.saturating_add(leeway))
            || iat.is_some_and(|t| t > now.saturating_add(leeway))
        {
            return Err(TokenError::NotYetValid);
        }
        let sub = raw.sub.ok_or(TokenError::MissingClaim("sub"))?;
        let client_id = if external {
            raw.client_id
                .or(raw.azp)
                .or(raw.appid)
                .unwrap_or_else(|| sub.clone())
        } else {
            if iat.is_none() {
                return Err(TokenError::MissingClaim("iat"));
            }
            if raw.jti.is_none() {
                return Err(TokenError::MissingClaim("jti"));
            }
            raw.client_id.ok_or(TokenError::MissingClaim("client_id"))?
        };
        let mut scopes: Vec<String> = Vec::new();
        let words = [raw.scope.as_deref(), raw.scp.as_deref()];
        for word in words
            .into_iter()
            .flatten()
            .flat_map(str::split_ascii_whitespace)
        {
            if !scopes.iter().any(|s| s == word) {
                scopes.push(word.to_owned());
            }
        }
        if external {
            for role in raw.roles.into_iter().flatten() {
                if !scopes.contains(&role) {
                    scopes.push(role);
                }
            }
        }
        let to_ts = |secs: i64| Timestamp::from_second(secs).map_err(|_| TokenError::Malformed);
        Ok(Claims {
            issuer: iss,
            subject: sub,
            audience: aud,
            client_id,
            scopes,
            issued_at: iat.map(to_ts).transpose()?,
            not_before: nbf.map(to_ts).transpose()?,
            expires_at: to_ts(exp)?,
            token_id: raw.jti,
            external,
        })
    }

    /// The issuer this server's tokens must carry.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The audience this server's tokens must carry (the protected resource).
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("kids", &current_keys(&self.inner.keys).kids())
            .field("external", &self.inner.external)
            .finish()
    }
}

fn decode_b64(part: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)
}

fn decode_json<T: DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    serde_json::from_slice(&decode_b64(part)?).map_err(|_| TokenError::Malformed)
}

/// `aud` is a string or an array of strings.
fn audiences(aud: Option<Value>) -> Result<Vec<String>, TokenError> {
    match aud {
        None => Err(TokenError::MissingClaim("aud")),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(TokenError::Malformed),
            })
            .collect(),
        Some(_) => Err(TokenError::Malformed),
    }
}

/// A NumericDate (seconds; fractions allowed and floored).
fn numeric_date(v: Option<Value>) -> Result<Option<i64>, TokenError> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                return Ok(Some(i));
            }
            match n.as_f64() {
                Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f.floor() as i64)),
                _ => Err(TokenError::Malformed),
            }
        }
        Some(_) => Err(TokenError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_dates_and_audiences() {
        assert_eq!(numeric_date(Some(serde_json::json!(5))), Ok(Some(5)));
        assert_eq!(numeric_date(Some(serde_json::json!(5.9))), Ok(Some(5)));
        assert_eq!(
            numeric_date(Some(serde_json::json!("5"))),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            audiences(Some(serde_json::json!(["a", "b"]))),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(
            audiences(Some(serde_json::json!([1]))),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn reasons_are_distinct() {
        let all = [
            TokenError::TooLarge,
            TokenError::Malformed,
            TokenError::UnsupportedAlgorithm,
            TokenError::WrongType,
            TokenError::UnknownKey,
            TokenError::KeysUnavailable,
            TokenError::BadSignature,
            TokenError::WrongIssuer,
            TokenError::WrongAudience,
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::MissingClaim("x"),
        ];
        let mut reasons: Vec<_> = all.iter().map(TokenError::reason).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
        for e in all {
            assert!(!e.to_string().contains('"'));
        }
    }
}
