//! [`CachedTokenSource`]: an in-memory token cache with proactive, jittered, single-flight
//! refresh in front of any [`TokenSource`], and its [`RefreshPolicy`].

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use tokio::sync::{Mutex, Notify, OwnedMutexGuard};
use tokio::task::AbortHandle;
use tracing::{debug, warn};

use crate::error::Kind;
use crate::{AccessToken, BoxFuture, Error, TokenRequest, TokenSource};

/// A source of "now" for [`CachedTokenSource`]: when tokens expire and when to refresh them.
///
/// The default clock follows tokio's clock: it reads [`SystemTime::now`] once, when the cache
/// is built, and adds the [`tokio::time::Instant`] time elapsed since, so `tokio::time::pause`
/// and `advance` move it in tests. Any `Fn() -> SystemTime` closure is a `Clock`:
///
/// ```
/// use std::time::SystemTime;
/// use mcp_auth::{CachedTokenSource, RefreshPolicy, StaticToken};
///
/// let cache = CachedTokenSource::with_clock(
///     StaticToken::new("abc"),
///     RefreshPolicy::new(),
///     SystemTime::now,
/// );
/// # let _ = cache;
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock time, comparable with [`AccessToken::expires_at`].
    fn now(&self) -> SystemTime;
}

impl<F> Clock for F
where
    F: Fn() -> SystemTime + Send + Sync + 'static,
{
    fn now(&self) -> SystemTime {
        self()
    }
}

enum ClockSource {
    /// Wall time at construction plus tokio's elapsed time.
    Tokio {
        anchor: SystemTime,
        start: tokio::time::Instant,
    },
    Custom(Arc<dyn Clock>),
}

impl ClockSource {
    fn tokio() -> Self {
        Self::Tokio {
            anchor: SystemTime::now(),
            start: tokio::time::Instant::now(),
        }
    }

    /// `at` in the form the hot path compares fastest: for the tokio clock, a tokio
    /// `Instant` (no wall-time arithmetic per call).
    fn deadline(&self, at: Option<SystemTime>) -> Deadline {
        let Some(at) = at else {
            return Deadline::Never;
        };
        match self {
            Self::Tokio { anchor, start } => match at.duration_since(*anchor) {
                Ok(after) => start
                    .checked_add(after)
                    .map_or(Deadline::Never, Deadline::Tokio),
                Err(_) => Deadline::Tokio(*start),
            },
            Self::Custom(_) => Deadline::Wall(at),
        }
    }

    /// True while `deadline` has not been reached.
    #[inline]
    fn before(&self, deadline: Deadline) -> bool {
        match deadline {
            Deadline::Never => true,
            Deadline::Tokio(at) => tokio::time::Instant::now() < at,
            Deadline::Wall(at) => self.now() < at,
        }
    }

    #[inline]
    fn now(&self) -> SystemTime {
        match self {
            Self::Tokio { anchor, start } => anchor.checked_add(start.elapsed()).unwrap_or(*anchor),
            Self::Custom(clock) => clock.now(),
        }
    }
}

/// A refresh point as the hot path reads it.
#[derive(Clone, Copy, Debug)]
enum Deadline {
    Never,
    Tokio(tokio::time::Instant),
    Wall(SystemTime),
}

/// When and how [`CachedTokenSource`] refreshes tokens. Builder-style; every setting has a
/// documented default.
///
/// ```
/// use std::time::Duration;
/// use mcp_auth::RefreshPolicy;
///
/// let policy = RefreshPolicy::new()
///     .refresh_before(Duration::from_secs(120))
///     .jitter(0.25)
///     .retry_backoff(Duration::from_millis(500), Duration::from_secs(10))
///     .background_refresh(true);
/// # let _ = policy;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RefreshPolicy {
    window: Duration,
    jitter: f64,
    backoff_initial: Duration,
    backoff_max: Duration,
    background: bool,
    seed: Option<u64>,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(5 * 60),
            jitter: 0.5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            background: false,
            seed: None,
        }
    }
}

impl RefreshPolicy {
    /// The defaults: refresh 5 minutes before expiry with jitter 0.5, retry a failed refresh
    /// after 1 s doubling up to 30 s, no background task, a randomly seeded jitter source.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long before expiry a token is refreshed (default 5 minutes, as the Azure SDK does).
    ///
    /// The window is capped at half the token's lifetime (measured when it arrives), so a
    /// token that lives 60 s is refreshed 15–30 s before it expires rather than immediately
    /// and continuously.
    #[must_use]
    pub fn refresh_before(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How much of the refresh window is given up at random (default 0.5, as the AWS SDK
    /// does): each token's refresh point is `expiry - window * (1 - u)` with `u` drawn once
    /// per token, uniformly from `[0, jitter]`, so the refresh lands in
    /// `[expiry - window, expiry - window * (1 - jitter)]` and a fleet of clients that got
    /// their tokens together does not refresh together.
    ///
    /// Clamped to `[0, 1]`; NaN means 0 (no jitter).
    #[must_use]
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        self
    }

    /// The wait before retrying a failed refresh: `initial`, doubling after each consecutive
    /// failure up to `max` (defaults 1 s and 30 s). Each wait is drawn uniformly from
    /// `[d/2, d]` of its nominal value `d`. A `max` below `initial` is raised to `initial`.
    ///
    /// While the wait runs, the cache keeps serving a still-valid token; callers that need a
    /// new token (none cached, expired, rejected) get the last refresh error at once instead
    /// of each calling the token endpoint again.
    #[must_use]
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max.max(initial);
        self
    }

    /// Refresh from a tokio task at the jittered refresh point, without waiting for a caller
    /// (default off: the first caller past the refresh point starts the refresh).
    ///
    /// The task starts with the first token fetched inside a tokio runtime, holds only a weak
    /// reference to the cache, and ends when the cache is dropped.
    #[must_use]
    pub fn background_refresh(mut self, enabled: bool) -> Self {
        self.background = enabled;
        self
    }

    /// Seeds the random source of jitter and backoff, for reproducible refresh points (default:
    /// a random seed per cache).
    #[must_use]
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    fn backoff(&self, failures: u32, rng: &mut fastrand::Rng) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let nominal = self
            .backoff_initial
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max);
        scale(nominal, 0.5 + 0.5 * rng.f64())
    }
}

/// `d * factor` for `factor` in `[0, 1]`, never panicking.
fn scale(d: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * factor)
        .unwrap_or(d)
        .min(d)
}

/// A cached token and its schedule.
struct Entry {
    token: AccessToken,
    /// Past this point the token is not served from the hot path: the jittered refresh point,
    /// or after a failed refresh the retry time, never later than expiry. `None`: the token
    /// has no expiry and is kept until rejected.
    refresh_at: Option<SystemTime>,
    /// `refresh_at` for the hot path.
    deadline: Deadline,
    /// When the background task next tries: `refresh_at`, except after a failed refresh of an
    /// expired token, when it is the retry time.
    next_attempt: Option<SystemTime>,
    /// The scopes this token was requested with (besides those it reports).
    requested: Arc<[String]>,
}

impl Entry {
    #[inline]
    fn covers(&self, wanted: &[String]) -> bool {
        wanted
            .iter()
            .all(|w| self.token.scopes().contains(w) || self.requested.contains(w))
    }

    #[inline]
    fn is_rejected_by(&self, request: &TokenRequest) -> bool {
        request
            .rejected
            .as_ref()
            .is_some_and(|r| r.same_token(&self.token))
    }

    /// Fresh: servable without refreshing.
    #[inline]
    fn is_fresh(&self, now: SystemTime, request: &TokenRequest) -> bool {
        self.refresh_at.is_none_or(|at| now < at)
            && self.covers(&request.scopes)
            && !self.is_rejected_by(request)
    }

    /// Usable: servable, even if a refresh is due.
    fn is_usable(&self, now: SystemTime, request: &TokenRequest) -> bool {
        !self.token.is_expired_at(now)
            && self.covers(&request.scopes)
            && !self.is_rejected_by(request)
    }
}

/// The last failed refresh.
struct Failure {
    error: Arc<Error>,
    retry_at: SystemTime,
    /// The scopes the failed fetch asked for: a request for at least these gets the error.
    scopes: Arc<[String]>,
}

/// Refresh bookkeeping, only touched by the one refresh in flight.
struct RefreshState {
    rng: fastrand::Rng,
    failures: u32,
    failure: Option<Failure>,
    /// Every scope asked for so far: each fetch asks for these plus the request's, so a
    /// refresh never loses a scope a caller stepped up to.
    scopes: Arc<[String]>,
}

impl RefreshState {
    /// The scopes a fetch for `request` asks for.
    fn wanted(&self, request: &TokenRequest) -> Arc<[String]> {
        if request.scopes.iter().all(|s| self.scopes.contains(s)) {
            return Arc::clone(&self.scopes);
        }
        let mut scopes = self.scopes.to_vec();
        for s in &request.scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        scopes.into()
    }
}

/// Why a fetch runs; logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Empty,
    Proactive,
    Background,
    Expired,
    Rejected,
    Scopes,
}

struct Shared<S> {
    inner: S,
    policy: RefreshPolicy,
    clock: ClockSource,
    state: ArcSwapOption<Entry>,
    refresh: Arc<Mutex<RefreshState>>,
    /// Completed fetches (success or failure): a waiter that sees it move knows a fetch ran
    /// while it waited.
    attempts: AtomicU64,
    background: OnceLock<AbortHandle>,
    wake: Arc<Notify>,
}

/// A [`TokenSource`] that caches the token of an inner source in memory and refreshes it
/// before it expires.
///
/// - **Hot path**: while the cached token is before its refresh point, carries the requested
///   scopes and is not the request's `rejected` token, `token()` returns it after one atomic
///   load and one clock read: no lock, no await.
/// - **Proactive refresh**: the first caller past the (jittered, see
///   [`RefreshPolicy::jitter`]) refresh point starts one refresh, on a spawned tokio task when
///   inside a runtime; it and every other caller keep getting the still-valid token meanwhile.
///   With [`RefreshPolicy::background_refresh`], a task refreshes at that point with no caller.
/// - **Single flight**: callers that need a new token (none cached, expired, `rejected`, or
///   scopes the token lacks) wait for one fetch from the inner source; N concurrent callers
///   cause one inner call. A request with scopes the cached token lacks fetches with the union
///   of the scopes asked for before and now; the inner source gets the caller's request (its
///   `rejected` token and `challenge` too).
/// - **Failures**: a failed refresh while the token is still valid keeps serving it and retries
///   with backoff ([`RefreshPolicy::retry_backoff`]), logging a `warn` event. Callers who need a
///   new token during the backoff get the last error at once.
///
/// # Errors
///
/// When no usable token can be had, `token()` returns an error that has the failed fetch's
/// error as its [`source`](std::error::Error::source) and:
///
/// - if a cached token **expired** and refreshing it failed: [`Error::is_expired`], unless the
///   inner error says something the caller must act on differently, which is kept:
///   [`is_token_endpoint`](Error::is_token_endpoint) (credentials refused: retrying will not
///   help), [`is_config`](Error::is_config), [`is_challenge_required`](Error::is_challenge_required),
///   [`is_insufficient_scope`](Error::is_insufficient_scope),
///   [`is_authorization_denied`](Error::is_authorization_denied) and
///   [`is_invalid_authorization_response`](Error::is_invalid_authorization_response).
///   Unreachable endpoints, invalid responses and discovery failures become `is_expired`.
/// - otherwise (no token yet, the token was rejected, scopes it lacks): the inner error's kind.
///
/// A failure with [`is_challenge_required`](Error::is_challenge_required) does not hold back
/// a request that carries a challenge: the source said it needed one, and now it has it.
///
/// A token that has already expired when it arrives (typically this machine's clock is ahead
/// of the issuer's by more than the token's lifetime) is not used: the fetch counts as failed
/// with [`Error::is_invalid_token_response`] and is retried after the backoff, so a skewed
/// clock never makes the cache call its source in a loop.
///
/// Nothing here logs, formats or returns the token's value: `Debug` shows only its expiry and
/// scopes, and `tracing` events carry scopes, expiry and error messages.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, SystemTime};
/// use mcp_auth::{
///     AccessToken, BoxFuture, CachedTokenSource, Error, RefreshPolicy, TokenRequest, TokenSource,
/// };
///
/// /// Issues a new one-hour token on every call (a stand-in for an OAuth client).
/// struct Issuer;
///
/// impl TokenSource for Issuer {
///     fn token<'a>(&'a self, _: &'a TokenRequest) -> BoxFuture<'a, Result<AccessToken, Error>> {
///         Box::pin(async {
///             let expires = SystemTime::now() + Duration::from_secs(3600);
///             Ok(AccessToken::new("a-token", Some(expires)))
///         })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let cache = CachedTokenSource::with_policy(
///     Issuer,
///     RefreshPolicy::new().refresh_before(Duration::from_secs(120)),
/// );
/// let first = cache.get(&TokenRequest::new()).await?;
/// let again = cache.get(&TokenRequest::new()).await?;
/// assert!(first.same_token(&again)); // served from memory
///
/// // Usable behind a trait object too.
/// let source: Arc<dyn TokenSource> = Arc::new(cache);
/// let _token = source.token(&TokenRequest::new()).await?;
/// # Ok(())
/// # }
/// ```
pub struct CachedTokenSource<S> {
    shared: Arc<Shared<S>>,
}

impl<S: TokenSource> CachedTokenSource<S> {
    /// Caches `inner`'s tokens with the default [`RefreshPolicy`].
    pub fn new(inner: S) -> Self {
        Self::with_policy(inner, RefreshPolicy::default())
    }

    /// Caches `inner`'s tokens with `policy`, on the default clock (see [`Clock`]).
    pub fn with_policy(inner: S, policy: RefreshPolicy) -> Self {
        Self::build(inner, policy, ClockSource::tokio())
    }

    /// Caches `inner`'s tokens with `policy`, reading the time from `clock`.
    ///
    /// Expiry and refresh points are compared with `clock`; the background task (if enabled)
    /// sleeps on tokio's timer for as long as `clock` says is left.
    pub fn with_clock(inner: S, policy: RefreshPolicy, clock: impl Clock) -> Self {
        Self::build(inner, policy, ClockSource::Custom(Arc::new(clock)))
    }

    fn build(inner: S, policy: RefreshPolicy, clock: ClockSource) -> Self {
        let rng = policy
            .seed
            .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        Self {
            shared: Arc::new(Shared {
                inner,
                policy,
                clock,
                state: ArcSwapOption::empty(),
                refresh: Arc::new(Mutex::new(RefreshState {
                    rng,
                    failures: 0,
                    failure: None,
                    scopes: Arc::from(Vec::new()),
                })),
                attempts: AtomicU64::new(0),
                background: OnceLock::new(),
                wake: Arc::new(Notify::new()),
            }),
        }
    }

    /// The cached token if it can be served right now for `request` without refreshing:
    /// before its refresh point, with the requested scopes, not the rejected token. Never
    /// waits and never starts a refresh; this is the hot path of [`get`](Self::get).
    #[inline]
    pub fn cached(&self, request: &TokenRequest) -> Option<AccessToken> {
        let guard = self.shared.state.load();
        let entry = guard.as_deref()?;
        (self.shared.clock.before(entry.deadline)
            && entry.covers(&request.scopes)
            && !entry.is_rejected_by(request))
        .then(|| entry.token.clone())
    }

    /// A token for `request`: [`TokenSource::token`] without boxing the future on the hot
    /// path. Like `token()`, it looks at the cache when called, not when first polled: await
    /// it right away.
    ///
    /// # Errors
    ///
    /// See the [type-level documentation](Self#errors).
    pub fn get<'a>(
        &'a self,
        request: &'a TokenRequest,
    ) -> impl Future<Output = Result<AccessToken, Error>> + Send + 'a {
        // The hot path runs here, before the first poll; the future then only hands it over.
        let hot = self.cached(request);
        async move {
            match hot {
                Some(token) => Ok(token),
                None => Box::pin(self.shared.token_slow(request)).await,
            }
        }
    }

    /// When the cached token will next be refreshed: its jittered refresh point, or after a
    /// failed refresh the next attempt. `None` if no token is cached or it has no expiry.
    pub fn next_refresh(&self) -> Option<SystemTime> {
        self.shared
            .state
            .load()
            .as_deref()
            .and_then(|entry| entry.next_attempt)
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.shared.inner
    }

    /// The policy in force.
    pub fn policy(&self) -> &RefreshPolicy {
        &self.shared.policy
    }
}

impl<S: TokenSource> TokenSource for CachedTokenSource<S> {
    fn token<'a>(&'a self, request: &'a TokenRequest) -> BoxFuture<'a, Result<AccessToken, Error>> {
        if let Some(token) = self.cached(request) {
            return Box::pin(std::future::ready(Ok(token)));
        }
        Box::pin(self.shared.token_slow(request))
    }
}

impl<S> Drop for CachedTokenSource<S> {
    fn drop(&mut self) {
        if let Some(task) = self.shared.background.get() {
            task.abort();
        }
    }
}

impl<S> fmt::Debug for CachedTokenSource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entry = self.shared.state.load_full();
        f.debug_struct("CachedTokenSource")
            .field("policy", &self.shared.policy)
            .field("token", &entry.as_deref().map(|e| &e.token))
            .field(
                "next_refresh",
                &entry.as_deref().and_then(|e| e.next_attempt),
            )
            .finish_non_exhaustive()
    }
}

impl<S: TokenSource> Shared<S> {
    /// Everything but the hot path.
    async fn token_slow(self: &Arc<Self>, request: &TokenRequest) -> Result<AccessToken, Error> {
        let now = self.clock.now();
        if let Some(entry) = self.state.load_full()
            && entry.is_usable(now, request)
        {
            if !entry.is_fresh(now, request) {
                self.refresh_ahead(request).await;
            }
            return Ok(entry.token.clone());
        }
        self.fetch_and_wait(request).await
    }

    /// Past the refresh point with a still-valid token: start one refresh unless one is in
    /// flight; never wait for it (except outside a tokio runtime, where there is no task to
    /// hand it to).
    async fn refresh_ahead(self: &Arc<Self>, request: &TokenRequest) {
        let Ok(guard) = Arc::clone(&self.refresh).try_lock_owned() else {
            return; // a refresh is in flight
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let shared = Arc::clone(self);
                let request = request.clone();
                runtime.spawn(async move {
                    shared
                        .refresh_if_due(guard, &request, Reason::Proactive)
                        .await
                });
            }
            Err(_) => self.refresh_if_due(guard, request, Reason::Proactive).await,
        }
    }

    /// Refreshes under the lock if the cached token is still not fresh (another refresh may
    /// have finished between the caller's look and taking the lock).
    async fn refresh_if_due(
        self: &Arc<Self>,
        mut guard: OwnedMutexGuard<RefreshState>,
        request: &TokenRequest,
        reason: Reason,
    ) {
        let now = self.clock.now();
        let due = match self.state.load_full() {
            None => false, // invalidated meanwhile: the next caller fetches
            Some(entry) => match reason {
                Reason::Background => entry.next_attempt.is_some_and(|at| now >= at),
                _ => !entry.is_fresh(now, request),
            },
        };
        if due {
            // The outcome reaches callers through the cache; failures are logged.
            let _ = self.fetch(&mut guard, request, reason).await;
        }
    }

    /// No usable token: wait for the one fetch in flight, or be the one to fetch.
    async fn fetch_and_wait(
        self: &Arc<Self>,
        request: &TokenRequest,
    ) -> Result<AccessToken, Error> {
        let attempts_before = self.attempts.load(Ordering::Acquire);
        let mut guard = self.refresh.lock().await;
        let now = self.clock.now();
        let entry = self.state.load_full();
        if let Some(entry) = &entry
            && entry.is_usable(now, request)
        {
            return Ok(entry.token.clone()); // fetched while we waited
        }
        let expired = entry.as_deref().is_some_and(|e| e.token.is_expired_at(now));
        let wanted = guard.wanted(request);
        if let Some(failure) = &guard.failure
            && failure.scopes.iter().all(|s| wanted.contains(s))
            && (now < failure.retry_at || self.attempts.load(Ordering::Acquire) != attempts_before)
            // A source that waited for the server's challenge gets its chance once it has one.
            && !(failure.error.is_challenge_required() && request.challenge.is_some())
        {
            return Err(caller_error(failure, expired, now));
        }
        let reason = match &entry {
            None => Reason::Empty,
            Some(e) if e.is_rejected_by(request) => Reason::Rejected,
            Some(_) if expired => Reason::Expired,
            Some(_) => Reason::Scopes,
        };
        match self.fetch(&mut guard, request, reason).await {
            Ok(token) => Ok(token),
            Err(()) => match &guard.failure {
                Some(failure) => Err(caller_error(failure, expired, now)),
                None => Err(Error::new(Kind::Expired)
                    .with_context("the access token refresh failed without an error")),
            },
        }
    }

    /// Calls the inner source once and records the outcome. Runs under the refresh lock.
    async fn fetch(
        self: &Arc<Self>,
        state: &mut RefreshState,
        request: &TokenRequest,
        reason: Reason,
    ) -> Result<AccessToken, ()> {
        let scopes = state.wanted(request);
        if reason == Reason::Rejected {
            // The server refused it: nobody gets it again, even if the refresh fails.
            self.state.store(None);
        }
        let mut inner_request = request.clone();
        inner_request.scopes = scopes.to_vec();
        debug!(reason = ?reason, scopes = ?scopes, "refreshing access token");

        let result = self.inner.token(&inner_request).await;
        self.attempts.fetch_add(1, Ordering::AcqRel);
        let now = self.clock.now();
        let result = result.and_then(|token| match token.expires_at() {
            Some(at) if at <= now => {
                let late = now.duration_since(at).unwrap_or_default();
                Err(Error::new(Kind::InvalidTokenResponse).with_context(format!(
                    "the token source returned a token that had expired {:.0} s before it arrived; \
                     is this machine's clock ahead of the token issuer's?",
                    late.as_secs_f64()
                )))
            }
            _ => Ok(token),
        });

        match result {
            Ok(token) => {
                let refresh_at = self.refresh_point(&token, now, &mut state.rng);
                state.failures = 0;
                state.failure = None;
                state.scopes = Arc::clone(&scopes);
                tracing::info!(
                    name: "mcp_auth.token.refreshed",
                    target: "mcp_auth::cache",
                    reason = ?reason,
                    scopes = ?scopes,
                    granted_scopes = ?token.scopes(),
                    expires_in_secs = token.expires_at().map(|at| secs_between(now, at)),
                    refresh_in_secs = refresh_at.map(|at| secs_between(now, at)),
                    "access token refreshed"
                );
                self.state.store(Some(Arc::new(Entry {
                    token: token.clone(),
                    refresh_at,
                    deadline: self.clock.deadline(refresh_at),
                    next_attempt: refresh_at,
                    requested: scopes,
                })));
                self.after_store();
                Ok(token)
            }
            Err(error) => {
                state.failures = state.failures.saturating_add(1);
                let delay = self.policy.backoff(state.failures, &mut state.rng);
                let retry_at = now.checked_add(delay).unwrap_or(now);
                let serving = match self.state.load_full() {
                    // Reschedule the token this fetch was refreshing; a failed fetch for more
                    // scopes leaves the current token's schedule alone.
                    Some(entry)
                        if matches!(
                            reason,
                            Reason::Proactive | Reason::Background | Reason::Expired
                        ) =>
                    {
                        let valid = !entry.token.is_expired_at(now);
                        let refresh_at = entry.token.expires_at().map(|at| at.min(retry_at));
                        self.state.store(Some(Arc::new(Entry {
                            token: entry.token.clone(),
                            refresh_at,
                            deadline: self.clock.deadline(refresh_at),
                            next_attempt: Some(retry_at),
                            requested: Arc::clone(&entry.requested),
                        })));
                        valid
                    }
                    Some(entry) => !entry.token.is_expired_at(now),
                    None => false,
                };
                warn!(
                    name: "mcp_auth.token.refresh_failed",
                    target: "mcp_auth::cache",
                    error = %error,
                    reason = ?reason,
                    consecutive_failures = state.failures,
                    retry_in_secs = delay.as_secs_f64(),
                    serving_cached_token = serving,
                    "access token refresh failed"
                );
                state.failure = Some(Failure {
                    error: Arc::new(error),
                    retry_at,
                    scopes,
                });
                Err(())
            }
        }
    }

    /// The jittered refresh point of a token received at `now` (not expired).
    fn refresh_point(
        &self,
        token: &AccessToken,
        now: SystemTime,
        rng: &mut fastrand::Rng,
    ) -> Option<SystemTime> {
        let expires = token.expires_at()?;
        let lifetime = expires.duration_since(now).unwrap_or_default();
        let window = self.policy.window.min(lifetime / 2);
        let lead = scale(window, 1.0 - self.policy.jitter * rng.f64());
        Some(expires.checked_sub(lead).unwrap_or(now))
    }

    /// After a new token is stored: start or wake the background task.
    fn after_store(self: &Arc<Self>) {
        if !self.policy.background {
            return;
        }
        if self.background.get().is_none() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let task = runtime.spawn(background(Arc::downgrade(self), Arc::clone(&self.wake)));
                if let Err(task) = self.background.set(task.abort_handle()) {
                    task.abort();
                }
            }
        } else {
            self.wake.notify_one();
        }
    }

    /// How long until the background task should try, if a token is cached with an expiry.
    fn until_next_attempt(&self) -> Option<Duration> {
        let at = self.state.load().as_deref()?.next_attempt?;
        Some(at.duration_since(self.clock.now()).unwrap_or_default())
    }
}

/// The background refresh task: holds the cache weakly and ends when it is gone.
async fn background<S: TokenSource>(cache: Weak<Shared<S>>, wake: Arc<Notify>) {
    loop {
        let wait = match cache.upgrade() {
            Some(shared) => shared.until_next_attempt(),
            None => return,
        };
        match wait {
            Some(wait) if wait.is_zero() => {}
            Some(wait) => {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = wake.notified() => continue,
                }
            }
            None => {
                wake.notified().await;
                continue;
            }
        }
        let Some(shared) = cache.upgrade() else {
            return;
        };
        let guard = Arc::clone(&shared.refresh).lock_owned().await;
        shared
            .refresh_if_due(guard, &TokenRequest::default(), Reason::Background)
            .await;
    }
}

/// The error a caller gets from the last failure (see the `# Errors` section of
/// [`CachedTokenSource`]).
fn caller_error(failure: &Failure, had_expired_token: bool, now: SystemTime) -> Error {
    let inner = kind_of(&failure.error);
    let keep = matches!(
        inner,
        Kind::TokenEndpoint
            | Kind::Config
            | Kind::ChallengeRequired
            | Kind::InsufficientScope
            | Kind::AuthorizationDenied
            | Kind::InvalidAuthorizationResponse
    );
    let kind = if had_expired_token && !keep {
        Kind::Expired
    } else {
        inner
    };
    let retry_in = failure.retry_at.duration_since(now).unwrap_or_default();
    let what = if had_expired_token {
        "the cached access token expired and refreshing it failed"
    } else {
        "getting an access token from the token source failed"
    };
    Error::new(kind)
        .with_context(format!(
            "{what}; the cache tries again in {:.1} s",
            retry_in.as_secs_f64()
        ))
        .with_source(Arc::clone(&failure.error))
}

fn kind_of(error: &Error) -> Kind {
    error.kind()
}

fn secs_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A scripted inner source: fails with `Unreachable` while `failing` is set, otherwise
    /// issues `token-<n>` valid for an hour on the test clock.
    struct Scripted {
        calls: AtomicUsize,
        failing: std::sync::atomic::AtomicBool,
        start: tokio::time::Instant,
    }

    fn base() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    impl Scripted {
        fn now(&self) -> SystemTime {
            base() + self.start.elapsed()
        }
    }

    impl TokenSource for Scripted {
        fn token<'a>(&'a self, _: &'a TokenRequest) -> BoxFuture<'a, Result<AccessToken, Error>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if self.failing.load(Ordering::SeqCst) {
                    return Err(Error::new(Kind::Unreachable).with_context("connection refused"));
                }
                Ok(AccessToken::new(
                    format!("token-{n}"),
                    Some(self.now() + Duration::from_secs(3600)),
                ))
            })
        }
    }

    fn cache() -> CachedTokenSource<Arc<Scripted>> {
        let start = tokio::time::Instant::now();
        let inner = Arc::new(Scripted {
            calls: AtomicUsize::new(0),
            failing: false.into(),
            start,
        });
        CachedTokenSource::with_clock(inner, RefreshPolicy::new().jitter(0.0), move || {
            base() + start.elapsed()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn expired_token_with_unreachable_endpoint_is_expired_with_the_cause_as_source() {
        let cache = cache();
        let req = TokenRequest::new();
        cache.get(&req).await.expect("first token");
        cache.inner().failing.store(true, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(3601)).await;

        let err = cache.get(&req).await.expect_err("expired and unreachable");
        assert!(err.is_expired(), "{err:?}");
        let source = err.source().expect("source");
        assert!(
            source.to_string().contains("connection refused"),
            "{source}"
        );
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn first_fetch_failure_keeps_the_inner_kind() {
        let cache = cache();
        cache.inner().failing.store(true, Ordering::SeqCst);
        let err = cache
            .get(&TokenRequest::new())
            .await
            .expect_err("unreachable");
        assert!(err.is_unreachable(), "{err:?}");
        assert!(!err.is_expired());
    }

    #[test]
    fn kind_of_round_trips_every_kind() {
        for kind in [
            Kind::TokenEndpoint,
            Kind::InvalidTokenResponse,
            Kind::Expired,
            Kind::Discovery,
            Kind::InsufficientScope,
            Kind::Config,
            Kind::ChallengeRequired,
            Kind::Unreachable,
        ] {
            assert_eq!(kind_of(&Error::new(kind)), kind);
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap_within_its_jitter_band() {
        let policy = RefreshPolicy::new();
        let mut rng = fastrand::Rng::with_seed(1);
        for (failures, nominal) in [(1, 1), (2, 2), (3, 4), (5, 16), (6, 30), (40, 30)] {
            let d = policy.backoff(failures, &mut rng);
            let nominal = Duration::from_secs(nominal);
            assert!(d >= nominal / 2 && d <= nominal, "{failures}: {d:?}");
        }
    }

    #[test]
    fn odd_policy_values_do_not_panic() {
        let p = RefreshPolicy::new()
            .jitter(f64::NAN)
            .retry_backoff(Duration::MAX, Duration::ZERO)
            .refresh_before(Duration::MAX);
        assert_eq!(p.jitter, 0.0);
        assert_eq!(RefreshPolicy::new().jitter(7.0).jitter, 1.0);
        let mut rng = fastrand::Rng::with_seed(3);
        let _ = p.backoff(u32::MAX, &mut rng);
        assert!(scale(Duration::MAX, 1.0) <= Duration::MAX);
    }
}
