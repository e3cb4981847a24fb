//! [`AccessToken`], [`TokenRequest`] and the [`TokenSource`] trait.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use crate::{Challenge, Error, Secret};

/// A boxed, `Send` future: the return type of [`TokenSource::token`], which keeps the trait
/// object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A bearer token and when it stops being valid.
///
/// Cloning is one reference-count increment (the cached-token hot path hands out clones).
/// `Debug` never shows the token.
#[derive(Clone)]
pub struct AccessToken(Arc<TokenInner>);

struct TokenInner {
    secret: Secret,
    expires_at: Option<SystemTime>,
    scopes: Box<[String]>,
}

impl AccessToken {
    /// A token valid until `expires_at` (`None`: the issuer did not say; it is used until a
    /// server rejects it).
    pub fn new(secret: impl Into<Secret>, expires_at: Option<SystemTime>) -> Self {
        Self(Arc::new(TokenInner {
            secret: secret.into(),
            expires_at,
            scopes: Box::default(),
        }))
    }

    /// Records the scopes the token was granted (the token response's `scope`, or the scopes
    /// requested when the response did not say).
    #[must_use]
    pub fn with_scopes<I, S>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(Arc::new(TokenInner {
            secret: self.0.secret.clone(),
            expires_at: self.0.expires_at,
            scopes: scopes.into_iter().map(Into::into).collect(),
        }))
    }

    /// The bearer value.
    pub fn secret(&self) -> &Secret {
        &self.0.secret
    }

    /// When the token expires, if known.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.0.expires_at
    }

    /// The scopes the token carries (empty if unknown).
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }

    /// True if the token is past its expiry at `now`. A token without an expiry never is.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.0.expires_at.is_some_and(|at| at <= now)
    }

    /// True if the token carries every scope in `wanted`.
    pub fn has_scopes(&self, wanted: &[String]) -> bool {
        wanted.iter().all(|w| self.0.scopes.iter().any(|s| s == w))
    }

    /// True if both are clones of the same issued token (pointer comparison of the secret).
    pub fn same_token(&self, other: &AccessToken) -> bool {
        self.0.secret.ptr_eq(&other.0.secret)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &self.0.secret)
            .field("expires_at", &self.0.expires_at)
            .field("scopes", &self.0.scopes)
            .finish()
    }
}

/// What a caller needs from a [`TokenSource`].
///
/// The default asks for "a valid token with the source's configured scopes". The auth layer
/// adds the scopes a server demanded (step-up), the token a server just rejected (so the source
/// refreshes instead of returning it again), and the server's `WWW-Authenticate` challenge (so
/// a discovering source can find the authorization server).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TokenRequest {
    /// Scopes the token must carry in addition to the source's own configuration.
    pub scopes: Vec<String>,
    /// A token the resource server rejected; the source must not return it again.
    pub rejected: Option<AccessToken>,
    /// The resource server's latest Bearer challenge, if any.
    pub challenge: Option<Challenge>,
}

impl TokenRequest {
    /// The default request: a valid token, configured scopes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires these scopes too.
    #[must_use]
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Marks `token` as rejected by the resource server.
    #[must_use]
    pub fn rejected(mut self, token: AccessToken) -> Self {
        self.rejected = Some(token);
        self
    }

    /// Attaches the resource server's challenge.
    #[must_use]
    pub fn challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = Some(challenge);
        self
    }
}

/// Something that produces bearer tokens: a static token, an OAuth client, Azure managed
/// identity, or a cache in front of any of them.
///
/// One async method; object-safe, so `Arc<dyn TokenSource>` works.
///
/// ```
/// use mcp_auth::{AccessToken, BoxFuture, Error, TokenRequest, TokenSource};
///
/// /// Reads the token from an environment variable on every call.
/// struct FromEnv;
///
/// impl TokenSource for FromEnv {
///     fn token<'a>(&'a self, _request: &'a TokenRequest) -> BoxFuture<'a, Result<AccessToken, Error>> {
///         Box::pin(async {
///             let value = std::env::var("MY_TOKEN").unwrap_or_default();
///             Ok(AccessToken::new(value, None))
///         })
///     }
/// }
/// ```
pub trait TokenSource: Send + Sync + 'static {
    /// Returns a token satisfying `request`.
    fn token<'a>(&'a self, request: &'a TokenRequest) -> BoxFuture<'a, Result<AccessToken, Error>>;
}

impl<T: TokenSource + ?Sized> TokenSource for Arc<T> {
    fn token<'a>(&'a self, request: &'a TokenRequest) -> BoxFuture<'a, Result<AccessToken, Error>> {
        (**self).token(request)
    }
}

impl<T: TokenSource + ?Sized> TokenSource for Box<T> {
    fn token<'a>(&'a self, request: &'a TokenRequest) -> BoxFuture<'a, Result<AccessToken, Error>> {
        (**self).token(request)
    }
}
