//! Behaviour of `CachedTokenSource` on paused tokio time, with a counting scripted inner
//! source and an injected clock (`BASE` + tokio time elapsed since the test started).
//!
//! The scripted source fails with the error a `StaticToken` gives for an empty token (the
//! only public way to make an `mcp_auth::Error`); the `is_expired` mapping of an unreachable
//! endpoint is covered by the unit tests in `src/cache.rs`.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

use std::error::Error as _;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use mcp_auth::{
    AccessToken, BoxFuture, CachedTokenSource, Challenge, Error, RefreshPolicy, StaticToken,
    TokenRequest, TokenSource,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, advance};

const WINDOW: Duration = Duration::from_secs(300);
const HOUR: i64 = 3600;

fn base() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// A counting scripted token source. Call `n` issues `<prefix>-<n>`, expiring
/// `expires_in` seconds after it is issued (negative: already expired), with the requested
/// scopes; or fails while `fail` is set. Calls from `gate_from` on wait for a `gate` permit.
struct Script {
    start: Instant,
    calls: AtomicUsize,
    expires_in: AtomicI64,
    fail: AtomicBool,
    prefix: Mutex<String>,
    delay: Duration,
    gate: Arc<Semaphore>,
    gate_from: usize,
    requests: Mutex<Vec<TokenRequest>>,
}

impl Script {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            calls: AtomicUsize::new(0),
            expires_in: AtomicI64::new(HOUR),
            fail: AtomicBool::new(false),
            prefix: Mutex::new("token".to_owned()),
            delay: Duration::ZERO,
            gate: Arc::new(Semaphore::new(0)),
            gate_from: usize::MAX,
            requests: Mutex::new(Vec::new()),
        }
    }

    fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn gate_from(mut self, call: usize) -> Self {
        self.gate_from = call;
        self
    }

    fn now(&self) -> SystemTime {
        base() + self.start.elapsed()
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn clock(&self) -> impl Fn() -> SystemTime + Send + Sync + 'static {
        let start = self.start;
        move || base() + start.elapsed()
    }
}

impl TokenSource for Script {
    fn token<'a>(&'a self, request: &'a TokenRequest) -> BoxFuture<'a, Result<AccessToken, Error>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.requests.lock().unwrap().push(request.clone());
        Box::pin(async move {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if n >= self.gate_from {
                self.gate.acquire().await.unwrap().forget();
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err(config_error().await);
            }
            let secs = self.expires_in.load(Ordering::SeqCst);
            let now = self.now();
            let expires = if secs >= 0 {
                now + Duration::from_secs(secs.unsigned_abs())
            } else {
                now - Duration::from_secs(secs.unsigned_abs())
            };
            let prefix = self.prefix.lock().unwrap().clone();
            Ok(AccessToken::new(format!("{prefix}-{n}"), Some(expires))
                .with_scopes(request.scopes.iter().cloned()))
        })
    }
}

/// An `is_config` error, made the public way.
async fn config_error() -> Error {
    StaticToken::new("")
        .token(&TokenRequest::new())
        .await
        .unwrap_err()
}

fn policy() -> RefreshPolicy {
    RefreshPolicy::new()
        .refresh_before(WINDOW)
        .jitter(0.0)
        .jitter_seed(7)
}

fn cache_with(script: Script, policy: RefreshPolicy) -> Arc<CachedTokenSource<Arc<Script>>> {
    let clock = script.clock();
    Arc::new(CachedTokenSource::with_clock(
        Arc::new(script),
        policy,
        clock,
    ))
}

fn value(token: &AccessToken) -> &str {
    token.secret().expose_secret()
}

/// Lets spawned refresh tasks run.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Advances the paused clock to `at` on the script's clock.
async fn advance_to(script: &Script, at: SystemTime) {
    if let Ok(d) = at.duration_since(script.now()) {
        advance(d).await;
    }
}

/// Waits for every caller; each must have got a token.
async fn all_ok(tasks: JoinSet<Result<AccessToken, Error>>) -> Vec<AccessToken> {
    let results = tasks.join_all().await;
    results.into_iter().map(Result::unwrap).collect()
}

async fn get(cache: &CachedTokenSource<Arc<Script>>) -> AccessToken {
    cache.get(&TokenRequest::new()).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn refresh_happens_at_the_jittered_point_with_a_fixed_seed() {
    logs();
    let policy = RefreshPolicy::new().refresh_before(WINDOW).jitter_seed(42);
    let cache = cache_with(Script::new(), policy.clone());
    let script = Arc::clone(cache.inner());
    let first = get(&cache).await;
    let expiry = first.expires_at().unwrap();
    let point = cache.next_refresh().unwrap();
    assert!(
        point >= expiry - WINDOW && point <= expiry - WINDOW / 2,
        "{point:?}"
    );

    // Same seed, same draw.
    let twin = cache_with(Script::new(), policy);
    get(&twin).await;
    assert_eq!(twin.next_refresh(), Some(point));

    advance_to(&script, point - Duration::from_secs(1)).await;
    assert!(get(&cache).await.same_token(&first));
    settle().await;
    assert_eq!(script.calls(), 1, "no refresh before the point");

    advance(Duration::from_secs(2)).await;
    assert!(
        get(&cache).await.same_token(&first),
        "the caller past the point still gets the valid token"
    );
    settle().await;
    assert_eq!(script.calls(), 2, "one refresh past the point");
    let second = get(&cache).await;
    assert_eq!(value(&second), "token-1");
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_refresh_points_across_seeds_within_the_window() {
    logs();
    let jitter = 0.5;
    let mut points = Vec::new();
    let mut expiry = None;
    for seed in 0..100 {
        let policy = RefreshPolicy::new()
            .refresh_before(WINDOW)
            .jitter(jitter)
            .jitter_seed(seed);
        let cache = cache_with(Script::new(), policy);
        expiry = get(&cache).await.expires_at();
        points.push(cache.next_refresh().unwrap());
    }
    let expiry = expiry.unwrap();
    let (earliest, latest) = (expiry - WINDOW, expiry - WINDOW.mul_f64(1.0 - jitter));
    for p in &points {
        assert!(*p >= earliest && *p <= latest, "{p:?} outside the window");
    }
    points.sort();
    points.dedup();
    assert!(points.len() > 90, "only {} distinct points", points.len());
    let spread = points[points.len() - 1].duration_since(points[0]).unwrap();
    assert!(spread > WINDOW / 4, "spread {spread:?}");
}

#[tokio::test(start_paused = true)]
async fn a_thousand_callers_on_an_empty_cache_make_one_inner_call() {
    logs();
    let cache = cache_with(Script::new().delay(Duration::from_millis(100)), policy());
    let mut tasks = JoinSet::new();
    for i in 0..1000 {
        let cache = Arc::clone(&cache);
        tasks.spawn(async move {
            let request = TokenRequest::new();
            if i % 2 == 0 {
                cache.token(&request).await
            } else {
                cache.get(&request).await
            }
        });
    }
    let tokens = all_ok(tasks).await;
    assert_eq!(cache.inner().calls(), 1);
    assert!(tokens.iter().all(|t| t.same_token(&tokens[0])));
}

#[tokio::test(start_paused = true)]
async fn a_thousand_callers_past_the_refresh_point_make_one_call_and_none_waits() {
    logs();
    // The refresh (call #1) blocks until the test opens the gate.
    let cache = cache_with(Script::new().gate_from(1), policy());
    let script = Arc::clone(cache.inner());
    let first = get(&cache).await;
    advance_to(
        &script,
        cache.next_refresh().unwrap() + Duration::from_secs(1),
    )
    .await;

    let mut tasks = JoinSet::new();
    for _ in 0..1000 {
        let cache = Arc::clone(&cache);
        tasks.spawn(async move { cache.token(&TokenRequest::new()).await });
    }
    // Nobody waits for the blocked refresh: all return, with the still-valid token. (A
    // waiter would hang on the closed gate; paused time then fires the timeout.)
    let all = tokio::time::timeout(Duration::from_secs(1), tasks.join_all())
        .await
        .expect("a caller waited for the refresh");
    assert!(all.into_iter().all(|t| t.unwrap().same_token(&first)));
    settle().await;
    assert_eq!(script.calls(), 2, "exactly one refresh in flight");

    script.gate.add_permits(1);
    settle().await;
    assert_eq!(value(&get(&cache).await), "token-1");
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn fifty_concurrent_rejections_of_one_token_make_one_refresh() {
    logs();
    let cache = cache_with(Script::new().delay(Duration::from_millis(50)), policy());
    let old = get(&cache).await;
    let mut tasks = JoinSet::new();
    for _ in 0..50 {
        let cache = Arc::clone(&cache);
        let old = old.clone();
        tasks.spawn(async move { cache.token(&TokenRequest::new().rejected(old)).await });
    }
    let tokens = all_ok(tasks).await;
    assert_eq!(cache.inner().calls(), 2);
    assert!(tokens.iter().all(|t| value(t) == "token-1"));
    // The inner source was told which token was rejected.
    let requests = cache.inner().requests.lock().unwrap().clone();
    assert!(requests[1].rejected.as_ref().unwrap().same_token(&old));
    // A late 401 for the old token is answered from the cache.
    let late = cache.get(&TokenRequest::new().rejected(old)).await.unwrap();
    assert_eq!(value(&late), "token-1");
    assert_eq!(cache.inner().calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_serving_the_valid_token_and_backs_off() {
    logs();
    let policy = policy().retry_backoff(Duration::from_secs(1), Duration::from_secs(30));
    let cache = cache_with(Script::new(), policy);
    let script = Arc::clone(cache.inner());
    let first = get(&cache).await;
    script.fail.store(true, Ordering::SeqCst);

    advance_to(&script, cache.next_refresh().unwrap()).await;
    let mut calls = 1;
    // Each round: past the retry point one caller triggers one attempt; hammering the cache
    // until the next retry point causes no further attempt. Nominal backoff 1, 2, 4, 8 s.
    for nominal in [1u64, 2, 4, 8] {
        for _ in 0..100 {
            assert!(get(&cache).await.same_token(&first));
            settle().await;
        }
        calls += 1;
        assert_eq!(script.calls(), calls);
        let retry = cache.next_refresh().unwrap();
        let wait = retry.duration_since(script.now()).unwrap();
        let nominal = Duration::from_secs(nominal);
        assert!(
            wait >= nominal / 2 && wait <= nominal,
            "{wait:?} for {nominal:?}"
        );
        advance(wait - Duration::from_millis(10)).await;
        get(&cache).await;
        settle().await;
        assert_eq!(script.calls(), calls, "no attempt before the retry point");
        advance(Duration::from_millis(10)).await;
    }

    // The source recovers: the next attempt brings a new token.
    script.fail.store(false, Ordering::SeqCst);
    assert!(get(&cache).await.same_token(&first));
    settle().await;
    assert_eq!(script.calls(), calls + 1);
    assert_eq!(value(&get(&cache).await), format!("token-{calls}"));
}

#[tokio::test(start_paused = true)]
async fn an_expired_token_whose_refresh_fails_is_an_error_not_the_stale_token() {
    logs();
    let cache = cache_with(Script::new(), policy());
    let script = Arc::clone(cache.inner());
    let first = get(&cache).await;

    // The refresh brings a token that is already expired (a clock-skewed issuer): the cache
    // reports `is_expired`, with the cause as the source.
    script.expires_in.store(-10, Ordering::SeqCst);
    advance_to(
        &script,
        first.expires_at().unwrap() + Duration::from_secs(1),
    )
    .await;
    let err = cache.get(&TokenRequest::new()).await.unwrap_err();
    assert!(err.is_expired(), "{err:?}");
    assert!(err.to_string().contains("expired"), "{err}");
    let source = err.source().unwrap();
    assert!(source.to_string().contains("clock"), "{source}");

    // A definitive cause (here `is_config`) keeps its kind; the message still says expired.
    script.fail.store(true, Ordering::SeqCst);
    advance(Duration::from_secs(60)).await;
    let err = cache.get(&TokenRequest::new()).await.unwrap_err();
    assert!(err.is_config(), "{err:?}");
    assert!(err.to_string().contains("expired"), "{err}");
    assert!(err.source().is_some());
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_one_failed_fetch() {
    logs();
    let cache = cache_with(Script::new().delay(Duration::from_millis(50)), policy());
    cache.inner().fail.store(true, Ordering::SeqCst);
    let mut tasks = JoinSet::new();
    for _ in 0..100 {
        let cache = Arc::clone(&cache);
        tasks.spawn(async move { cache.token(&TokenRequest::new()).await });
    }
    for result in tasks.join_all().await {
        let err = result.unwrap_err();
        assert!(err.is_config() && !err.is_expired(), "{err:?}");
    }
    assert_eq!(cache.inner().calls(), 1);
    // During the backoff, callers get the error at once; after it, one new attempt.
    assert!(cache.get(&TokenRequest::new()).await.is_err());
    assert_eq!(cache.inner().calls(), 1);
    cache.inner().fail.store(false, Ordering::SeqCst);
    advance(Duration::from_secs(1)).await;
    assert_eq!(value(&get(&cache).await), "token-1");
    assert_eq!(cache.inner().calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn background_refresh_runs_without_callers_and_stops_when_dropped() {
    logs();
    let cache = cache_with(Script::new(), policy().background_refresh(true));
    let script = Arc::clone(cache.inner());
    let first = get(&cache).await;
    let point = cache.next_refresh().unwrap();

    tokio::time::sleep(point.duration_since(script.now()).unwrap() + Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(script.calls(), 2, "refreshed with no caller");
    let fresh = cache
        .cached(&TokenRequest::new())
        .expect("fresh token without a fetch");
    assert!(!fresh.same_token(&first));
    assert_eq!(value(&fresh), "token-1");

    // Another refresh point passes: the task keeps going.
    tokio::time::sleep(Duration::from_secs(2 * HOUR as u64)).await;
    settle().await;
    let calls = script.calls();
    assert!(calls >= 3, "{calls}");

    drop(cache);
    tokio::time::sleep(Duration::from_secs(10 * HOUR as u64)).await;
    settle().await;
    assert_eq!(script.calls(), calls, "no refresh after drop");
    assert_eq!(
        Arc::strong_count(&script),
        1,
        "the task holds no strong reference"
    );
}

#[tokio::test(start_paused = true)]
async fn scopes_the_token_lacks_are_fetched_with_the_union_and_the_callers_request() {
    logs();
    let cache = cache_with(Script::new(), policy());
    let a = cache.get(&TokenRequest::new().scopes(["a"])).await.unwrap();
    assert_eq!(a.scopes(), ["a"]);
    let challenge = Challenge::parse(r#"Bearer error="insufficient_scope", scope="b""#).unwrap();
    let ab = cache
        .get(
            &TokenRequest::new()
                .scopes(["b"])
                .challenge(challenge.clone()),
        )
        .await
        .unwrap();
    assert_eq!(ab.scopes(), ["a", "b"]);
    for scopes in [vec!["a"], vec!["b"], vec!["b", "a"], vec![]] {
        let t = cache
            .get(&TokenRequest::new().scopes(scopes))
            .await
            .unwrap();
        assert!(t.same_token(&ab));
    }
    let script = cache.inner();
    assert_eq!(script.calls(), 2);
    let requests = script.requests.lock().unwrap().clone();
    assert_eq!(requests[1].scopes, ["a", "b"]);
    assert_eq!(requests[1].challenge.as_ref(), Some(&challenge));
}

#[tokio::test(start_paused = true)]
async fn a_token_shorter_lived_than_the_window_refreshes_in_the_last_half_of_its_life() {
    logs();
    let script = Script::new();
    script.expires_in.store(60, Ordering::SeqCst);
    let cache = cache_with(
        script,
        RefreshPolicy::new().refresh_before(WINDOW).jitter_seed(3),
    );
    let script = Arc::clone(cache.inner());
    let first = get(&cache).await;
    let expiry = first.expires_at().unwrap();
    let point = cache.next_refresh().unwrap();
    let half = Duration::from_secs(30);
    assert!(
        point >= expiry - half && point <= expiry - half / 2,
        "{point:?}"
    );

    advance(Duration::from_secs(29)).await;
    for _ in 0..100 {
        get(&cache).await;
    }
    settle().await;
    assert_eq!(script.calls(), 1, "not refreshed continuously");
    advance_to(&script, point + Duration::from_millis(1)).await;
    get(&cache).await;
    settle().await;
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_token_expired_on_arrival_is_an_error_and_does_not_loop() {
    logs();
    let script = Script::new();
    script.expires_in.store(-5, Ordering::SeqCst);
    let cache = cache_with(script, policy());
    let err = cache.get(&TokenRequest::new()).await.unwrap_err();
    assert!(err.is_invalid_token_response(), "{err:?}");
    assert!(err.source().unwrap().to_string().contains("clock"));
    for _ in 0..100 {
        assert!(cache.get(&TokenRequest::new()).await.is_err());
    }
    assert_eq!(cache.inner().calls(), 1, "no fetch loop");
    advance(Duration::from_secs(1)).await;
    assert!(cache.get(&TokenRequest::new()).await.is_err());
    assert_eq!(cache.inner().calls(), 2, "one retry after the backoff");
}

#[tokio::test(start_paused = true)]
async fn a_rotated_credential_is_seen_after_the_refresh() {
    logs();
    let script = Script::new();
    *script.prefix.lock().unwrap() = "key-a".to_owned();
    let cache = cache_with(script, policy());
    let script = Arc::clone(cache.inner());
    assert_eq!(value(&get(&cache).await), "key-a-0");

    *script.prefix.lock().unwrap() = "key-b".to_owned();
    assert_eq!(
        value(&get(&cache).await),
        "key-a-0",
        "cached until the refresh point"
    );
    advance_to(&script, cache.next_refresh().unwrap()).await;
    assert_eq!(
        value(&get(&cache).await),
        "key-a-0",
        "still valid while refreshing"
    );
    settle().await;
    assert_eq!(value(&get(&cache).await), "key-b-1");
}

#[tokio::test(start_paused = true)]
async fn the_default_clock_follows_tokio_time_and_works_behind_a_trait_object() {
    logs();
    /// Issues tokens valid for 10 minutes of wall-clock time.
    struct WallClock(AtomicUsize);
    impl TokenSource for WallClock {
        fn token<'a>(&'a self, _: &'a TokenRequest) -> BoxFuture<'a, Result<AccessToken, Error>> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            let expires = SystemTime::now() + Duration::from_secs(600);
            Box::pin(std::future::ready(Ok(AccessToken::new(
                format!("wall-{n}"),
                Some(expires),
            ))))
        }
    }
    let inner = Arc::new(WallClock(AtomicUsize::new(0)));
    let dyn_inner: Arc<dyn TokenSource> = inner.clone();
    let cache: CachedTokenSource<Arc<dyn TokenSource>> =
        CachedTokenSource::with_policy(dyn_inner, policy());
    let source: Arc<dyn TokenSource> = Arc::new(cache);
    let req = TokenRequest::new();
    assert_eq!(value(&source.token(&req).await.unwrap()), "wall-0");
    advance(Duration::from_secs(299)).await;
    source.token(&req).await.unwrap();
    settle().await;
    assert_eq!(inner.0.load(Ordering::SeqCst), 1);
    advance(Duration::from_secs(2)).await;
    source.token(&req).await.unwrap();
    settle().await;
    assert_eq!(
        inner.0.load(Ordering::SeqCst),
        2,
        "paused tokio time moved the clock"
    );
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Every event and span of this test binary, at TRACE, captured as text.
///
/// One process-wide subscriber, installed before any test emits an event: with per-test
/// `set_default` subscribers, a callsite first hit by a test running in parallel without one
/// can keep a cached "not interested" and lose the canary test's events.
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_writer({
                let captured = captured.clone();
                move || captured.clone()
            })
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        captured
    })
}

/// Issues the canary token (one `Secret`, shared by every clone) until told to fail.
struct Canary {
    token: AccessToken,
    fail: AtomicBool,
    start: Instant,
}

impl TokenSource for Canary {
    fn token<'a>(&'a self, request: &'a TokenRequest) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(async move {
            if self.fail.load(Ordering::SeqCst) {
                // A static source refusing its own rejected canary: its error must not
                // contain the value either.
                return StaticToken::new(self.token.secret().clone())
                    .token(&TokenRequest::new().rejected(self.token.clone()))
                    .await;
            }
            if request.rejected.is_some() {
                let expires = base() + self.start.elapsed() + Duration::from_secs(3600);
                return Ok(AccessToken::new(self.token.secret().clone(), Some(expires)));
            }
            Ok(self.token.clone())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn canary_token_never_reaches_logs_errors_or_debug_output() {
    logs();
    let canary = format!(
        "canary-token-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    );
    let start = Instant::now();
    let issued = AccessToken::new(canary.as_str(), Some(base() + Duration::from_secs(3600)))
        .with_scopes(["s"]);
    let canary_source = Canary {
        token: issued.clone(),
        fail: AtomicBool::new(false),
        start,
    };
    let clock = move || base() + start.elapsed();
    let cache = Arc::new(CachedTokenSource::with_clock(
        canary_source,
        policy().background_refresh(true),
        clock,
    ));
    let mut shown: Vec<String> = Vec::new();

    // Success.
    let token = cache.get(&TokenRequest::new()).await.unwrap();
    assert_eq!(value(&token), canary);
    shown.push(format!(
        "{token:?} {token:#?} {cache:?} {:?}",
        cache.policy()
    ));

    // Rejection: single-flight refresh to a new token carrying the same value.
    let rejected = TokenRequest::new().rejected(token.clone()).scopes(["s"]);
    shown.push(format!("{rejected:?} {rejected:#?}"));
    let renewed = cache.get(&rejected).await.unwrap();
    shown.push(format!("{renewed:?}"));

    // Failure while valid (proactive and background), then failure after expiry, then a
    // rejection while failing.
    cache.inner().fail.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3400)).await;
    cache.get(&TokenRequest::new()).await.unwrap();
    settle().await;
    tokio::time::sleep(Duration::from_secs(400)).await;
    let expired = cache.get(&TokenRequest::new()).await.unwrap_err();
    let rejected_again = cache
        .get(&TokenRequest::new().rejected(renewed.clone()))
        .await
        .unwrap_err();
    for err in [&expired, &rejected_again] {
        shown.push(format!("{err} {err:?} {err:#?}"));
        let mut source = err.source();
        while let Some(s) = source {
            shown.push(format!("{s} {s:?}"));
            source = s.source();
        }
    }
    shown.push(format!("{cache:?}"));

    // The log holds every test's events (one process-wide subscriber); none knows the canary.
    let logs = logs().text();
    assert!(logs.contains("access token refreshed"), "{logs}");
    assert!(logs.contains("access token refresh failed"), "{logs}");
    assert!(!logs.contains(&canary), "token in logs:\n{logs}");
    for text in &shown {
        assert!(!text.contains(&canary), "token in: {text}");
    }
}
