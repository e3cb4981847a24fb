//! Tokens from an external issuer (Microsoft Entra ID, for managed-identity callers): RS256
//! signatures checked against a JWK Set, with the issuer and audience from configuration.
//!
//! The JWK Set comes from the configuration (a document), from a URL (`jwks_uri`, e.g.
//! `https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys`), or both (the document
//! serves until the first fetch). With a URL, the usual OpenID Connect key-rotation
//! behaviour applies:
//!
//! - [`ExternalIssuer::run_jwks_refresh`] (the server runs it until shutdown) fetches at
//!   once, then every [`jwks_refresh`](ExternalIssuerConfig::jwks_refresh) (default 1 h,
//!   minus up to 10 % jitter). A failed fetch is logged and retried with capped exponential
//!   backoff (1 s doubling, at most 5 min or the refresh interval, each delay between half
//!   and all of that); start never fails because the issuer is unreachable. Until keys
//!   arrive, the issuer's tokens are refused (`401`, "the token issuer's signing keys are
//!   not available yet").
//! - A token whose `kid` is not in the set makes the verifier fetch again
//!   ([`Verifier::verify_refreshing`](super::Verifier::verify_refreshing)): single-flight
//!   (concurrent requests wait for the one fetch) and at most once per
//!   [`jwks_min_refetch`](ExternalIssuerConfig::jwks_min_refetch) (default 5 min), so
//!   tokens with made-up key ids cannot make the server hammer the issuer.
//! - A document that does not parse or has no usable key is logged and the old keys stay.
//!
//! The URL must be `https` (plain `http` only on loopback hosts: `127.0.0.0/8`, `::1`,
//! `localhost`); the server's certificate is checked against the public web PKI roots, or
//! only against the CA certificates given in
//! [`jwks_ca_pem`](ExternalIssuerConfig::jwks_ca_pem). A fetch is one `GET` (redirects are
//! not followed), bounded by [`jwks_timeout`](ExternalIssuerConfig::jwks_timeout) (default
//! 10 s) and [`MAX_JWKS_BYTES`](super::MAX_JWKS_BYTES) (1 MiB).

use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use serde::Deserialize;
use tokio::time::Instant;

use super::jwks_fetch::{HttpJwksSource, JwksSource};
use super::jwt::TokenError;
use crate::error::{Error, Kind};

/// Configuration of an external token issuer.
///
/// ```
/// use std::time::Duration;
/// use scheduler_server::auth::ExternalIssuerConfig;
///
/// let tenant = "00000000-0000-0000-0000-000000000001";
/// let mut config = ExternalIssuerConfig::from_jwks_uri(
///     format!("https://login.microsoftonline.com/{tenant}/v2.0"),
///     "api://scheduler",
///     format!("https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys"),
/// );
/// config.jwks_refresh = Duration::from_secs(30 * 60);
/// assert_eq!(config.jwks_min_refetch, Duration::from_secs(300));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExternalIssuerConfig {
    /// The exact `iss` its tokens carry (Entra ID v2: `https://login.microsoftonline.com/<tenant>/v2.0`;
    /// v1 tokens, which managed identities get by default: `https://sts.windows.net/<tenant>/`).
    pub issuer: String,
    /// The `aud` its tokens must carry for this service (an application id URI or client id).
    pub audience: String,
    /// The issuer's JWK Set document (JSON), if given in configuration. Only RSA signing keys
    /// with a `kid` are used. With [`jwks_uri`](Self::jwks_uri) too, it serves until the
    /// first successful fetch.
    pub jwks: Option<String>,
    /// Where to fetch the JWK Set (`https://`, or `http://` on a loopback host). Default
    /// none: the keys are only what [`jwks`](Self::jwks) holds.
    pub jwks_uri: Option<String>,
    /// How often the set is fetched again (default 1 hour, minus up to 10 % jitter; at
    /// least 10 s).
    pub jwks_refresh: Duration,
    /// Least time between two fetches caused by tokens with an unknown `kid` (default
    /// 5 minutes; at least 1 s).
    pub jwks_min_refetch: Duration,
    /// Limit on one fetch, connecting to the end of the body (default 10 s; 1 s to 2 min).
    pub jwks_timeout: Duration,
    /// CA certificates (PEM) the JWKS server's certificate must chain to, **instead of** the
    /// public web PKI roots (for a private issuer, or tests). Default none.
    pub jwks_ca_pem: Option<String>,
}

impl ExternalIssuerConfig {
    /// The default [`jwks_refresh`](Self::jwks_refresh): 1 hour.
    pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(3600);
    /// The default [`jwks_min_refetch`](Self::jwks_min_refetch): 5 minutes.
    pub const DEFAULT_JWKS_MIN_REFETCH: Duration = Duration::from_secs(300);
    /// The default [`jwks_timeout`](Self::jwks_timeout): 10 seconds.
    pub const DEFAULT_JWKS_TIMEOUT: Duration = Duration::from_secs(10);

    /// A configuration with a fixed JWK Set document.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks: impl Into<String>,
    ) -> Self {
        Self {
            jwks: Some(jwks.into()),
            ..Self::base(issuer.into(), audience.into())
        }
    }

    /// A configuration whose JWK Set is fetched from `jwks_uri` (defaults otherwise).
    pub fn from_jwks_uri(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks_uri: impl Into<String>,
    ) -> Self {
        Self {
            jwks_uri: Some(jwks_uri.into()),
            ..Self::base(issuer.into(), audience.into())
        }
    }

    fn base(issuer: String, audience: String) -> Self {
        Self {
            issuer,
            audience,
            jwks: None,
            jwks_uri: None,
            jwks_refresh: Self::DEFAULT_JWKS_REFRESH,
            jwks_min_refetch: Self::DEFAULT_JWKS_MIN_REFETCH,
            jwks_timeout: Self::DEFAULT_JWKS_TIMEOUT,
            jwks_ca_pem: None,
        }
    }
}

impl fmt::Debug for ExternalIssuerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalIssuerConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field(
                "jwks",
                &self.jwks.as_ref().map(|j| format!("<{} bytes>", j.len())),
            )
            .field("jwks_uri", &self.jwks_uri)
            .field("jwks_refresh", &self.jwks_refresh)
            .field("jwks_min_refetch", &self.jwks_min_refetch)
            .field("jwks_timeout", &self.jwks_timeout)
            .field("jwks_ca_pem", &self.jwks_ca_pem.is_some())
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
    remote: Option<Remote>,
}

/// The fetched side of the key set.
struct Remote {
    uri: String,
    source: Box<dyn JwksSource>,
    refresh: Duration,
    min_refetch: Duration,
    /// Held while fetching: one fetch at a time (single-flight).
    fetching: tokio::sync::Mutex<FetchState>,
}

#[derive(Default)]
struct FetchState {
    /// When the last fetch for an unknown `kid` started.
    last_on_demand: Option<Instant>,
}

/// First retry delay after a failed fetch.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest retry delay after failed fetches (or the refresh interval, if shorter).
const BACKOFF_CAP: Duration = Duration::from_secs(300);

impl ExternalIssuer {
    /// Checks the configuration and reads its JWK Set document, if given. No network: with
    /// a [`jwks_uri`](ExternalIssuerConfig::jwks_uri), keys are fetched by
    /// [`run_jwks_refresh`](Self::run_jwks_refresh) or [`refresh_jwks`](Self::refresh_jwks).
    ///
    /// # Errors
    ///
    /// A configuration error if the issuer or audience is empty, neither a document nor a
    /// URL is given, the document has no usable RSA signing key, the URL is not https (or
    /// http on loopback), the CA certificates do not parse, or a duration is out of range.
    pub fn new(config: &ExternalIssuerConfig) -> Result<Self, Error> {
        let remote = match &config.jwks_uri {
            None => None,
            Some(uri) => {
                check_durations(config)?;
                let source =
                    HttpJwksSource::new(uri, config.jwks_ca_pem.as_deref(), config.jwks_timeout)?;
                Some((uri.clone(), Box::new(source) as Box<dyn JwksSource>))
            }
        };
        Self::with_source(config, remote)
    }

    /// [`new`](Self::new) with the fetcher given (tests script their own).
    pub(crate) fn with_source(
        config: &ExternalIssuerConfig,
        source: Option<(String, Box<dyn JwksSource>)>,
    ) -> Result<Self, Error> {
        if config.issuer.trim().is_empty() {
            return Err(Error::new(Kind::Config).with_context("auth.external.issuer is empty"));
        }
        if config.audience.trim().is_empty() {
            return Err(Error::new(Kind::Config).with_context("auth.external.audience is empty"));
        }
        let keys = match &config.jwks {
            Some(document) => parse_jwks(document, "auth.external.jwks")?,
            None if source.is_some() => Vec::new(),
            None => {
                return Err(Error::new(Kind::Config).with_context(
                    "auth.external needs `jwks` (a JWK Set document) or `jwks_uri`",
                ));
            }
        };
        Ok(Self {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            keys: RwLock::new(Arc::new(keys)),
            remote: source.map(|(uri, source)| Remote {
                uri,
                source,
                refresh: config.jwks_refresh,
                min_refetch: config.jwks_min_refetch,
                fetching: tokio::sync::Mutex::new(FetchState::default()),
            }),
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

    /// Where the JWK Set is fetched from, if anywhere.
    pub fn jwks_uri(&self) -> Option<&str> {
        self.remote.as_ref().map(|r| r.uri.as_str())
    }

    /// Replaces the JWK Set (for example after fetching it again). Returns how many keys are
    /// now usable. On error the old keys stay.
    ///
    /// # Errors
    ///
    /// A configuration error if the document has no usable RSA signing key.
    pub fn replace_jwks(&self, jwks: &str) -> Result<usize, Error> {
        self.replace_keys(jwks, "the JWK Set")
    }

    fn replace_keys(&self, jwks: &str, what: &str) -> Result<usize, Error> {
        let keys = parse_jwks(jwks, what)?;
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(n)
    }

    /// Ids of the usable keys (empty until the first successful fetch of a set given only
    /// by URL).
    pub fn kids(&self) -> Vec<String> {
        self.current().iter().map(|k| k.kid.clone()).collect()
    }

    /// Fetches the JWK Set from [`jwks_uri`](Self::jwks_uri) now and swaps it in (waiting
    /// for a fetch already under way first). Returns how many keys are usable. Not rate
    /// limited; on error the old keys stay.
    ///
    /// # Errors
    ///
    /// A configuration error if no URL is configured or the document has no usable key; a
    /// fetch error ([`Error::is_fetch`]) if it could not be fetched.
    pub async fn refresh_jwks(&self) -> Result<usize, Error> {
        let Some(remote) = &self.remote else {
            return Err(Error::new(Kind::Config).with_context("auth.external.jwks_uri is not set"));
        };
        let _flight = remote.fetching.lock().await;
        self.fetch_and_swap(remote).await
    }

    /// Keeps the fetched JWK Set fresh until `stop` resolves: fetches at once, then every
    /// refresh interval (jittered); after a failure, retries with capped exponential
    /// backoff. Returns at once if no URL is configured. Failures are logged, never
    /// returned.
    pub async fn run_jwks_refresh(&self, stop: impl Future<Output = ()>) {
        let Some(remote) = &self.remote else {
            return;
        };
        tokio::pin!(stop);
        let mut failures: u32 = 0;
        loop {
            let fetched = tokio::select! {
                () = &mut stop => return,
                fetched = async {
                    let _flight = remote.fetching.lock().await;
                    self.fetch_and_swap(remote).await
                } => fetched,
            };
            let wait = match fetched {
                Ok(_) => {
                    failures = 0;
                    remote.refresh.mul_f64(1.0 - 0.1 * random_unit())
                }
                Err(_) => {
                    failures = failures.saturating_add(1);
                    let delay = backoff(failures, remote.refresh);
                    delay.mul_f64(0.5 + 0.5 * random_unit())
                }
            };
            tracing::debug!(jwks_uri = %remote.uri, wait_ms = wait.as_millis(), "next JWKS fetch");
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// For a token signed by a key this issuer does not list: fetches the set again unless
    /// a fetch for an unknown key ran less than `jwks_min_refetch` ago, or another request
    /// already brought the key. Returns whether `kid` is known now.
    pub(crate) async fn refetch_for_kid(&self, kid: &str) -> bool {
        let Some(remote) = &self.remote else {
            return false;
        };
        if self.knows(kid) {
            return true;
        }
        let mut state = remote.fetching.lock().await;
        if self.knows(kid) {
            return true; // fetched while this request waited
        }
        let now = Instant::now();
        if let Some(last) = state.last_on_demand
            && now.saturating_duration_since(last) < remote.min_refetch
        {
            tracing::debug!(
                jwks_uri = %remote.uri,
                "unknown token key id: JWKS refetched recently, not again yet"
            );
            return false;
        }
        state.last_on_demand = Some(now);
        tracing::info!(jwks_uri = %remote.uri, "unknown token key id: fetching the JWKS again");
        let _ = self.fetch_and_swap(remote).await;
        self.knows(kid)
    }

    /// One fetch (the caller holds `remote.fetching`): parse, swap, log.
    async fn fetch_and_swap(&self, remote: &Remote) -> Result<usize, Error> {
        let document = remote.source.fetch().await.map_err(|e| {
            tracing::warn!(jwks_uri = %remote.uri, error = %e, "JWKS fetch failed; keeping the current keys");
            Error::new(Kind::Fetch).with_context(e.0)
        })?;
        match self.replace_keys(&document, &format!("the JWK Set at {}", remote.uri)) {
            Ok(n) => {
                tracing::info!(jwks_uri = %remote.uri, keys = n, kids = ?self.kids(), "JWKS fetched");
                Ok(n)
            }
            Err(e) => {
                tracing::warn!(jwks_uri = %remote.uri, error = %e, "fetched JWKS is unusable; keeping the current keys");
                Err(e)
            }
        }
    }

    fn knows(&self, kid: &str) -> bool {
        self.current().iter().any(|k| k.kid == kid)
    }

    /// Checks an RS256 signature by the key `kid`.
    pub(crate) fn verify(
        &self,
        kid: Option<&str>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), TokenError> {
        let keys = self.current();
        if keys.is_empty() {
            return Err(TokenError::KeysUnavailable);
        }
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
            .field("jwks_uri", &self.jwks_uri())
            .field("kids", &self.kids())
            .finish()
    }
}

fn check_durations(config: &ExternalIssuerConfig) -> Result<(), Error> {
    let bad = |why: &str| Error::new(Kind::Config).with_context(format!("auth.external.{why}"));
    if config.jwks_refresh < Duration::from_secs(10) {
        return Err(bad("jwks_refresh must be at least 10 seconds"));
    }
    if config.jwks_min_refetch < Duration::from_secs(1) {
        return Err(bad("jwks_min_refetch must be at least 1 second"));
    }
    if config.jwks_timeout < Duration::from_secs(1)
        || config.jwks_timeout > Duration::from_secs(120)
    {
        return Err(bad("jwks_timeout must be between 1 second and 2 minutes"));
    }
    Ok(())
}

/// The delay before retry `failures` (1, 2, ...): 1 s doubling, capped at
/// [`BACKOFF_CAP`] and at `refresh`.
fn backoff(failures: u32, refresh: Duration) -> Duration {
    let doubled = BACKOFF_START.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    doubled.min(BACKOFF_CAP).min(refresh)
}

/// A uniformly random number in `[0, 1)` (for jitter; falls back to 0.5).
fn random_unit() -> f64 {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 4];
    match ring::rand::SystemRandom::new().fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
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

/// The usable keys of a JWK Set document; errors call it `what`.
fn parse_jwks(document: &str, what: &str) -> Result<Vec<RsaKey>, Error> {
    let set: JwkSet = serde_json::from_str(document).map_err(|e| {
        Error::new(Kind::Config)
            .with_context(format!("{what} is not a JWK Set document"))
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
            .with_context(format!("{what} has no RSA signing key with a `kid`")));
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
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::super::jwks_fetch::{FetchError, FetchFuture};
    use super::*;

    /// A JWKS source answering what the test sets, counting fetches; each fetch takes
    /// `delay` (paused time).
    #[derive(Default)]
    struct Scripted {
        answer: Mutex<Option<Result<String, FetchError>>>,
        calls: AtomicUsize,
        times: Mutex<Vec<Instant>>,
        delay: Duration,
    }

    impl Scripted {
        fn set(&self, answer: Result<&str, &str>) {
            *self.answer.lock().expect("lock") = Some(
                answer
                    .map(str::to_owned)
                    .map_err(|e| FetchError(e.to_owned())),
            );
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl JwksSource for Arc<Scripted> {
        fn fetch(&self) -> FetchFuture<'_> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                self.times.lock().expect("lock").push(Instant::now());
                if !self.delay.is_zero() {
                    tokio::time::sleep(self.delay).await;
                }
                let answer = self.answer.lock().expect("lock").clone();
                answer.unwrap_or_else(|| Err(FetchError("no answer set".into())))
            })
        }
    }

    /// A syntactically usable JWK Set with these key ids (the keys verify nothing).
    fn set_of(kids: &[&str]) -> String {
        let keys: Vec<String> = kids
            .iter()
            .map(|k| format!(r#"{{"kty":"RSA","kid":"{k}","n":"AQAB","e":"AQAB"}}"#))
            .collect();
        format!(r#"{{"keys":[{}]}}"#, keys.join(","))
    }

    fn issuer(source: &Arc<Scripted>, jwks: Option<&str>) -> Arc<ExternalIssuer> {
        let mut config =
            ExternalIssuerConfig::from_jwks_uri("https://i.example/", "api://s", "unused");
        config.jwks = jwks.map(str::to_owned);
        let source: Box<dyn JwksSource> = Box::new(source.clone());
        Arc::new(
            ExternalIssuer::with_source(&config, Some(("https://i.example/keys".into(), source)))
                .expect("issuer"),
        )
    }

    /// Lets spawned tasks run up to their next wait (paused time does not move).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    async fn advance(d: Duration) {
        tokio::time::advance(d).await;
        settle().await;
    }

    /// Advances paused time in `step`s until the source was called `calls` times (at most
    /// `limit` of time).
    async fn run_until(source: &Scripted, calls: usize, step: Duration, limit: Duration) {
        let start = Instant::now();
        while source.calls() < calls {
            assert!(start.elapsed() < limit, "no fetch {calls} within {limit:?}");
            advance(step).await;
        }
    }

    /// The gap between fetch `i` and the one after it.
    fn gap(source: &Scripted, i: usize) -> Duration {
        let times = source.times.lock().expect("lock");
        times[i + 1].saturating_duration_since(times[i])
    }

    #[tokio::test(start_paused = true)]
    async fn unreachable_at_start_is_retried_with_backoff_then_refreshed_hourly() {
        let source = Arc::new(Scripted::default());
        source.set(Err("connection refused"));
        let external = issuer(&source, None);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let external = external.clone();
            async move {
                external
                    .run_jwks_refresh(async {
                        let _ = stopped.await;
                    })
                    .await;
            }
        });
        settle().await;
        assert_eq!(source.calls(), 1, "fetched at start");
        assert!(external.kids().is_empty());
        assert_eq!(
            external.verify(Some("k1"), b"m", b"s"),
            Err(TokenError::KeysUnavailable)
        );
        // Retries after 1 s, 2 s, 4 s, 8 s, each jittered to between half and all of that
        // (time moves in 10 ms steps, the precision of these checks).
        let step = Duration::from_millis(10);
        run_until(&source, 5, step, Duration::from_secs(20)).await;
        for i in 0..4 {
            let full = Duration::from_secs(1 << i);
            let g = gap(&source, i);
            assert!(g >= full / 2 && g <= full + step, "retry {i}: {g:?}");
        }
        // The issuer comes back: the next retry (within 16 s) brings the keys.
        source.set(Ok(&set_of(&["k1"])));
        run_until(&source, 6, step, Duration::from_secs(17)).await;
        settle().await;
        assert_eq!(external.kids(), ["k1"]);
        // Then hourly, jittered down by at most 10 %, picking up a changed set.
        source.set(Ok(&set_of(&["k1", "k2"])));
        let second = Duration::from_secs(1);
        run_until(&source, 7, second, Duration::from_secs(3601)).await;
        let g = gap(&source, 5);
        assert!(
            g >= Duration::from_secs(3240) && g <= Duration::from_secs(3601),
            "{g:?}"
        );
        settle().await;
        assert_eq!(external.kids(), ["k1", "k2"]);

        // A failed refresh keeps the keys and is retried with backoff again.
        source.set(Err("503"));
        run_until(&source, 8, second, Duration::from_secs(3601)).await;
        run_until(&source, 9, step, Duration::from_secs(2)).await;
        assert!(gap(&source, 7) <= Duration::from_secs(1) + step);
        assert_eq!(external.kids(), ["k1", "k2"]);

        // Stopping ends the task; nothing is fetched after.
        stop.send(()).expect("running");
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("stopped")
            .expect("no panic");
        let calls = source.calls();
        advance(Duration::from_secs(7200)).await;
        assert_eq!(source.calls(), calls, "no fetch after stop");
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_kid_refetches_are_single_flight_and_rate_limited() {
        let source = Arc::new(Scripted {
            delay: Duration::from_millis(200),
            ..Scripted::default()
        });
        source.set(Ok(&set_of(&["k1", "k2"])));
        let external = issuer(&source, Some(&set_of(&["k1"])));
        assert_eq!(external.kids(), ["k1"]);

        // Ten requests with the rotated-in kid at once: one fetch, all see the key.
        let mut waiting = Vec::new();
        for _ in 0..10 {
            let external = external.clone();
            waiting.push(tokio::spawn(
                async move { external.refetch_for_kid("k2").await },
            ));
        }
        for w in waiting {
            assert!(w.await.expect("no panic"));
        }
        assert_eq!(source.calls(), 1);
        // A known kid never fetches.
        assert!(external.refetch_for_kid("k1").await);
        assert_eq!(source.calls(), 1);

        // Made-up kids: no second fetch within five minutes ...
        for kid in ["x1", "x2", "x3"] {
            assert!(!external.refetch_for_kid(kid).await);
        }
        advance(Duration::from_secs(299)).await;
        assert!(!external.refetch_for_kid("x4").await);
        assert_eq!(source.calls(), 1);
        // ... one after.
        advance(Duration::from_secs(2)).await;
        assert!(!external.refetch_for_kid("x5").await);
        assert_eq!(source.calls(), 2);
        assert!(!external.refetch_for_kid("x6").await);
        assert_eq!(source.calls(), 2);
    }

    #[tokio::test]
    async fn bad_documents_and_failed_fetches_keep_the_old_keys() {
        let source = Arc::new(Scripted::default());
        let external = issuer(&source, Some(&set_of(&["k1"])));
        source.set(Ok("not json"));
        let err = external.refresh_jwks().await.expect_err("unusable");
        assert!(err.is_config(), "{err}");
        assert!(err.to_string().contains("https://i.example/keys"), "{err}");
        source.set(Ok(r#"{"keys":[{"kty":"EC","kid":"e"}]}"#));
        assert!(external.refresh_jwks().await.is_err());
        source.set(Err("timed out"));
        let err = external.refresh_jwks().await.expect_err("unreachable");
        assert!(err.is_fetch(), "{err}");
        assert_eq!(external.kids(), ["k1"]);
        source.set(Ok(&set_of(&["k2"])));
        assert_eq!(external.refresh_jwks().await.expect("fetched"), 1);
        assert_eq!(external.kids(), ["k2"]);
    }

    #[test]
    fn configuration_is_checked() {
        let base = ExternalIssuerConfig::from_jwks_uri("https://i/", "a", "https://i/keys");
        assert!(ExternalIssuer::new(&base).is_ok());
        let mut none = base.clone();
        none.jwks_uri = None;
        let err = ExternalIssuer::new(&none).expect_err("no keys");
        assert!(err.to_string().contains("jwks_uri"), "{err}");
        let mut plain = base.clone();
        plain.jwks_uri = Some("http://login.example/keys".into());
        assert!(ExternalIssuer::new(&plain).is_err());
        for (field, config) in [
            (
                "jwks_refresh",
                ExternalIssuerConfig {
                    jwks_refresh: Duration::from_secs(1),
                    ..base.clone()
                },
            ),
            (
                "jwks_min_refetch",
                ExternalIssuerConfig {
                    jwks_min_refetch: Duration::ZERO,
                    ..base.clone()
                },
            ),
            (
                "jwks_timeout",
                ExternalIssuerConfig {
                    jwks_timeout: Duration::from_secs(600),
                    ..base.clone()
                },
            ),
        ] {
            let err = ExternalIssuer::new(&config).expect_err(field);
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let hour = Duration::from_secs(3600);
        let secs: Vec<u64> = (1..=11).map(|n| backoff(n, hour).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(u32::MAX, hour), BACKOFF_CAP);
        assert_eq!(backoff(9, Duration::from_secs(60)), Duration::from_secs(60));
        for _ in 0..100 {
            let r = random_unit();
            assert!((0.0..1.0).contains(&r));
        }
    }

    #[test]
    fn only_rsa_signing_keys_with_kid_are_kept() {
        let doc = r#"{"keys":[
            {"kty":"RSA","kid":"a","n":"AAEC","e":"AQAB"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"AQ","e":"AQAB"},
            {"kty":"EC","kid":"ec","crv":"P-256","x":"AA","y":"AA"},
            {"kty":"RSA","n":"AQ","e":"AQAB"},
            {"kty":"RSA","kid":"ps","alg":"PS256","n":"AQ","e":"AQAB"}
        ]}"#;
        let keys = parse_jwks(doc, "x").expect("jwks");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid, "a");
        assert_eq!(keys[0].components.n, vec![1, 2]);
        assert!(parse_jwks(r#"{"keys":[]}"#, "x").is_err());
        assert!(parse_jwks("not json", "x").is_err());
    }
}
