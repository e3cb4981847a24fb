//! [`AuthConfig`] and [`AuthState`]: the validated configuration, the signing keys, the
//! failed-attempt limiter and the [`Verifier`], shared by the routes and the middleware.

use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::client::is_scope_token;
use super::clock::Clock;
use super::external::{ExternalIssuer, ExternalIssuerConfig};
use super::jwt::{self, SharedKeys, TokenRequest, Verifier, current_keys};
use super::keys::KeySet;
use super::rate_limit::{FailureLimiter, RateLimitConfig};
use super::secret::AccessToken;
use crate::error::{Error, Kind};
use crate::store::Store;

/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/oauth/token";
/// Path of the JWK Set document.
pub const JWKS_PATH: &str = "/jwks.json";
/// Path of the RFC 8414 authorization-server metadata.
pub const AUTHORIZATION_SERVER_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// Path prefix of the RFC 9728 protected-resource metadata (the resource's path follows).
pub const PROTECTED_RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// Configuration of the authorization server and token check.
///
/// ```
/// use std::time::Duration;
/// use scheduler_server::auth::AuthConfig;
///
/// let config = AuthConfig::new("https://scheduler.example", "https://scheduler.example/mcp")
///     .with_token_ttl(Duration::from_secs(15 * 60))
///     .with_scopes(["conversations:read", "conversations:write"]);
/// assert_eq!(config.scopes_supported.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthConfig {
    /// This server's issuer identifier: its base URL (`https://host[:port]`, no path, query
    /// or fragment; a trailing `/` is dropped). Tokens carry it as `iss`; the token endpoint
    /// and JWKS are served under it.
    pub issuer: String,
    /// The protected resource (the MCP endpoint's URL, e.g. `https://host/mcp`). Tokens carry
    /// it as `aud`; its metadata is served at `/.well-known/oauth-protected-resource<path>`.
    pub resource: String,
    /// Lifetime of issued tokens (default 1 hour; 1 s to 24 h).
    pub token_ttl: Duration,
    /// Scopes this server knows. If not empty, tokens only ever carry these (default empty:
    /// any scope a client was registered with). [`required_scopes`](Self::required_scopes)
    /// are added to a non-empty list, so they can always be granted.
    pub scopes_supported: Vec<String>,
    /// Scopes a token must carry, all of them, to pass [`require_bearer`](super::require_bearer)
    /// (default empty: none). A verified token that lacks one is answered `403` with
    /// `error="insufficient_scope"`. See [`Claims::scopes`](super::Claims::scopes) for
    /// where a token's scopes are read from.
    pub required_scopes: Vec<String>,
    /// Limits on failed client authentications.
    pub rate_limit: RateLimitConfig,
    /// An external issuer whose RS256 tokens are accepted too (default none). With a
    /// `jwks_uri`, its keys are fetched by [`AuthState::run_background`].
    pub external: Option<ExternalIssuerConfig>,
    /// Allow `http://` issuer and resource URLs on hosts other than loopback (default false;
    /// a warning is logged when used).
    pub allow_insecure_http: bool,
}

impl AuthConfig {
    /// The default token lifetime (1 hour).
    pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

    /// A configuration with the defaults and the given issuer and resource URLs.
    pub fn new(issuer: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            resource: resource.into(),
            token_ttl: Self::DEFAULT_TOKEN_TTL,
            scopes_supported: Vec::new(),
            required_scopes: Vec::new(),
            rate_limit: RateLimitConfig::default(),
            external: None,
            allow_insecure_http: false,
        }
    }

    /// Sets [`token_ttl`](Self::token_ttl).
    pub fn with_token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// Sets [`scopes_supported`](Self::scopes_supported).
    pub fn with_scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`required_scopes`](Self::required_scopes).
    pub fn with_required_scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.required_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The scopes published as `scopes_supported` in the metadata documents: the configured
    /// list with the required scopes added, or the required scopes alone when no list is
    /// configured.
    pub fn advertised_scopes(&self) -> Vec<String> {
        let mut scopes = self.scopes_supported.clone();
        for s in &self.required_scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        scopes
    }

    /// Sets [`rate_limit`](Self::rate_limit).
    pub fn with_rate_limit(mut self, rate_limit: RateLimitConfig) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// Sets [`external`](Self::external).
    pub fn with_external(mut self, external: ExternalIssuerConfig) -> Self {
        self.external = Some(external);
        self
    }

    /// Sets [`allow_insecure_http`](Self::allow_insecure_http).
    pub fn with_allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }
}

/// A freshly issued access token.
#[derive(Debug)]
#[non_exhaustive]
pub struct IssuedToken {
    /// The token (redacted in `Debug`).
    pub access_token: AccessToken,
    /// When it expires.
    pub expires_at: Timestamp,
    /// Its lifetime.
    pub expires_in: Duration,
    /// The scopes it grants.
    pub scopes: Vec<String>,
}

/// Everything the authorization routes and the bearer middleware share. Cheap to clone.
///
/// Created once at start-up: it loads the signing keys from the store (creating the first one
/// if there is none), so tokens survive restarts.
#[derive(Clone)]
pub struct AuthState {
    inner: Arc<Inner>,
}

struct Inner {
    config: AuthConfig,
    store: Arc<dyn Store>,
    clock: Clock,
    keys: SharedKeys,
    limiter: Mutex<FailureLimiter>,
    verifier: Verifier,
    external: Option<Arc<ExternalIssuer>>,
    resource_metadata_path: String,
    resource_metadata_url: String,
}

impl AuthState {
    /// Validates `config` and loads the signing keys from `store` (creating and saving the
    /// first one if there is none). `clock` drives token times and the rate limiter.
    ///
    /// # Errors
    ///
    /// A configuration error naming the bad setting, or a store error.
    pub async fn new(
        store: Arc<dyn Store>,
        mut config: AuthConfig,
        clock: Clock,
    ) -> Result<Self, Error> {
        config.issuer = check_url(
            "auth.issuer",
            &config.issuer,
            false,
            config.allow_insecure_http,
        )?;
        config.resource = check_url(
            "auth.resource",
            &config.resource,
            true,
            config.allow_insecure_http,
        )?;
        if config.token_ttl < Duration::from_secs(1)
            || config.token_ttl > Duration::from_secs(86_400)
        {
            return Err(Error::new(Kind::Config)
                .with_context("auth.token_ttl must be between 1 second and 24 hours"));
        }
        if let Some(bad) = config.scopes_supported.iter().find(|s| !is_scope_token(s)) {
            return Err(Error::new(Kind::Config).with_context(format!(
                "auth.scopes_supported: {bad:?} is not a valid OAuth scope"
            )));
        }
        if let Some(bad) = config.required_scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(Error::new(Kind::Config).with_context(format!(
                "auth.required_scopes: {bad:?} is not a valid OAuth scope"
            )));
        }
        let mut required: Vec<String> = Vec::new();
        for scope in std::mem::take(&mut config.required_scopes) {
            if !required.contains(&scope) {
                required.push(scope);
            }
        }
        config.required_scopes = required;
        if !config.scopes_supported.is_empty() {
            // A required scope nobody could be granted would lock every client out.
            config.scopes_supported = config.advertised_scopes();
        }
        if config.rate_limit.max_failures == 0 || config.rate_limit.window.is_zero() {
            return Err(Error::new(Kind::Config).with_context(
                "auth.rate_limit: max_failures and window must be greater than zero",
            ));
        }
        let external = config
            .external
            .as_ref()
            .map(ExternalIssuer::new)
            .transpose()?
            .map(Arc::new);

        let keys = KeySet::load_or_create(&*store, clock()).await?;
        let keys: SharedKeys = Arc::new(RwLock::new(Arc::new(keys)));
        let verifier = Verifier::new(
            config.issuer.clone(),
            config.resource.clone(),
            keys.clone(),
            external.clone(),
            clock.clone(),
        );
        let (origin, path) = split_origin(&config.resource);
        let resource_metadata_path = format!(
            "{PROTECTED_RESOURCE_METADATA_PATH}{}",
            path.trim_end_matches('/')
        );
        let resource_metadata_url = format!("{origin}{resource_metadata_path}");
        Ok(Self {
            inner: Arc::new(Inner {
                limiter: Mutex::new(FailureLimiter::new(config.rate_limit.clone())),
                config,
                store,
                clock,
                keys,
                verifier,
                external,
                resource_metadata_path,
                resource_metadata_url,
            }),
        })
    }

    /// The validated configuration (issuer and resource normalised).
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// The token verifier (shares the signing keys with this state).
    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    /// The external issuer, if configured (for example to [replace its
    /// JWKS](ExternalIssuer::replace_jwks)).
    pub fn external_issuer(&self) -> Option<&ExternalIssuer> {
        self.inner.external.as_deref()
    }

    /// The background work of this state until `stop` resolves: keeping the external
    /// issuer's fetched JWK Set fresh ([`ExternalIssuer::run_jwks_refresh`]). Resolves at
    /// once when there is nothing to do. The server runs it next to the listener and stops it
    /// on shutdown.
    pub async fn run_background(self, stop: impl std::future::Future<Output = ()>) {
        if let Some(external) = self.inner.external.clone() {
            external.run_jwks_refresh(stop).await;
        }
    }

    /// The URL of the protected resource's metadata (what `WWW-Authenticate` points to).
    pub fn resource_metadata_url(&self) -> &str {
        &self.inner.resource_metadata_url
    }

    /// Signs a token for `client_id` with `scopes`, **without authenticating anyone**: for
    /// trusted in-process callers (tests, tools). The token endpoint authenticates first.
    ///
    /// # Errors
    ///
    /// If signing fails.
    pub fn issue_token(&self, client_id: &str, scopes: &[String]) -> Result<IssuedToken, Error> {
        let keys = current_keys(&self.inner.keys);
        let scope = scopes.join(" ");
        let (access_token, expires_at) = jwt::issue(
            &keys,
            &TokenRequest {
                issuer: &self.inner.config.issuer,
                audience: &self.inner.config.resource,
                client_id,
                scope: &scope,
                now: (self.inner.clock)(),
                ttl: self.inner.config.token_ttl,
            },
        )?;
        Ok(IssuedToken {
            access_token,
            expires_at,
            expires_in: self.inner.config.token_ttl,
            scopes: scopes.to_vec(),
        })
    }

    /// Adds a new signing key (it signs from now on; the older ones still verify and stay in
    /// the JWKS until [retired](Self::retire_signing_key)). Returns the new key id.
    ///
    /// Other replicas sharing the store see it after [`reload_signing_keys`](Self::reload_signing_keys)
    /// or a restart.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn rotate_signing_key(&self) -> Result<String, Error> {
        let set = KeySet::rotate(&*self.inner.store, (self.inner.clock)()).await?;
        let kid = set.signer().kid().to_owned();
        self.swap_keys(set);
        tracing::info!(kid = %kid, "token-signing key rotated");
        Ok(kid)
    }

    /// Removes an old signing key: tokens it signed stop verifying. Returns false if no key
    /// has that id. Wait one token lifetime after a rotation before retiring the old key.
    ///
    /// # Errors
    ///
    /// A configuration error for the newest key (rotate first), or a store error.
    pub async fn retire_signing_key(&self, kid: &str) -> Result<bool, Error> {
        match KeySet::retire(&*self.inner.store, kid).await? {
            Some(set) => {
                self.swap_keys(set);
                tracing::info!(kid = %kid, "token-signing key retired");
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Reads the signing keys from the store again (after another replica rotated them).
    ///
    /// # Errors
    ///
    /// A store error, or a configuration error if the stored keys are unreadable.
    pub async fn reload_signing_keys(&self) -> Result<(), Error> {
        let set = KeySet::load_or_create(&*self.inner.store, (self.inner.clock)()).await?;
        self.swap_keys(set);
        Ok(())
    }

    /// Ids of the live signing keys with their creation times, oldest first (the last one
    /// signs).
    pub fn signing_keys(&self) -> Vec<(String, Timestamp)> {
        current_keys(&self.inner.keys).created()
    }

    /// The JWK Set document of the public signing keys (newest first).
    pub fn jwks(&self) -> Value {
        current_keys(&self.inner.keys).jwks()
    }

    /// The RFC 8414 authorization-server metadata document.
    pub fn authorization_server_metadata(&self) -> Value {
        let issuer = &self.inner.config.issuer;
        json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
            "jwks_uri": format!("{issuer}{JWKS_PATH}"),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": self.inner.config.advertised_scopes(),
            "response_types_supported": [],
        })
    }

    /// The RFC 9728 protected-resource metadata document.
    pub fn protected_resource_metadata(&self) -> Value {
        json!({
            "resource": self.inner.config.resource,
            "authorization_servers": [self.inner.config.issuer],
            "scopes_supported": self.inner.config.advertised_scopes(),
            "bearer_methods_supported": ["header"],
        })
    }

    pub(crate) fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    pub(crate) fn now(&self) -> Timestamp {
        (self.inner.clock)()
    }

    pub(crate) fn limiter(&self) -> std::sync::MutexGuard<'_, FailureLimiter> {
        self.inner.limiter.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn resource_metadata_path(&self) -> &str {
        &self.inner.resource_metadata_path
    }

    fn swap_keys(&self, set: KeySet) {
        *self.inner.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
    }
}

impl fmt::Debug for AuthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthState")
            .field("config", &self.inner.config)
            .field("signing_keys", &current_keys(&self.inner.keys).kids())
            .finish_non_exhaustive()
    }
}

/// Checks an issuer or resource URL and returns it without a trailing `/`.
fn check_url(
    setting: &str,
    url: &str,
    path_allowed: bool,
    allow_insecure_http: bool,
) -> Result<String, Error> {
    let bad = |why: &str| Error::new(Kind::Config).with_context(format!("{setting}: {why}"));
    let uri: http::Uri = url.parse().map_err(|_| bad("not a valid absolute URL"))?;
    let scheme = uri.scheme_str().ok_or_else(|| bad("not an absolute URL"))?;
    let host = uri.host().ok_or_else(|| bad("the URL has no host"))?;
    if uri.query().is_some() || url.contains('#') {
        return Err(bad("the URL must not have a query or fragment"));
    }
    if !path_allowed && uri.path() != "/" && !uri.path().is_empty() {
        return Err(bad("the issuer must be a base URL without a path"));
    }
    match scheme {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" if allow_insecure_http => {
            tracing::warn!(
                setting,
                "plain http on a non-loopback host: tokens and keys travel unencrypted"
            );
        }
        "http" => {
            return Err(bad(
                "plain http is only allowed on loopback unless allow_insecure_http is set",
            ));
        }
        _ => return Err(bad("the URL must use https (or http on loopback)")),
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Whether `host` (a URL host, IPv6 in brackets or not) is `localhost` or a loopback address.
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `https://host:port/a/b` → (`https://host:port`, `/a/b`).
fn split_origin(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url.split_at(after_scheme + i),
        None => (url, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_normalised() {
        assert_eq!(
            check_url("x", "https://a.example/", false, false).expect("ok"),
            "https://a.example"
        );
        assert_eq!(
            check_url("x", "http://127.0.0.1:8080", false, false).expect("ok"),
            "http://127.0.0.1:8080"
        );
        assert!(check_url("x", "http://[::1]:8080/mcp", true, false).is_ok());
        assert!(check_url("x", "http://a.example", false, false).is_err());
        assert!(check_url("x", "http://a.example", false, true).is_ok());
        assert!(check_url("x", "https://a.example/p", false, false).is_err());
        assert!(check_url("x", "https://a.example/p?q=1", true, false).is_err());
        assert!(check_url("x", "ftp://a.example", false, false).is_err());
        assert!(check_url("x", "/relative", false, false).is_err());
        let err = check_url("auth.issuer", "nope", false, false).expect_err("err");
        assert!(err.to_string().contains("auth.issuer"));
    }

    #[test]
    fn origin_split() {
        assert_eq!(split_origin("https://h:1/mcp/x"), ("https://h:1", "/mcp/x"));
        assert_eq!(split_origin("https://h"), ("https://h", ""));
    }
}
