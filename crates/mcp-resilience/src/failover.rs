//! Multi-region failover over the transport's HTTP service: an ordered list of MCP endpoint
//! URLs (the design document's regions, preferred first), health probes, outlier ejection
//! and a return to the preferred endpoint once it is healthy again.
//!
//! # Routing
//!
//! Each request goes to the first endpoint, in the configured order, that is not ejected.
//! The transport is built with the **first** endpoint's URL; the failover service replaces
//! the request URI's scheme and authority with the chosen endpoint's, and the first
//! endpoint's path prefix with the chosen endpoint's path (so regions may serve MCP on
//! different paths, `/mcp` in one and `/v2/mcp` in another). The rest of the path and the
//! query are kept; a request whose path does not start with the first endpoint's path keeps
//! its path.
//!
//! A request that fails on one endpoint moves on to the next healthy one within the same
//! call when the failure was transient and repeating it elsewhere is allowed: always when it
//! cannot have been processed ([`Delivery::NotProcessed`](crate::classify::Delivery), a
//! refused connection), and after any transient failure when the request is idempotent
//! ([`idempotency_of`], the same rule as [`RetryLayer`](crate::RetryLayer)). Otherwise the
//! failure is returned as it is. When every endpoint is ejected the call fails at once with
//! [`Error::is_no_healthy_endpoint`].
//!
//! # Keyed creates never run in two regions
//!
//! An idempotency key deduplicates only where the key is stored. Regions with their own
//! databases (the default assumption) cannot recognise each other's keys, so a keyed call
//! (a create carrying an `Idempotency-Key` header or an `idempotencyKey` argument) whose
//! attempt may have been processed by one endpoint (a reset or timeout after the request was
//! sent) is **pinned** to that endpoint: every later attempt with the same key, from any
//! retry layer above or from the application, goes to that endpoint only, where the key
//! returns the original result. If that endpoint is ejected, the attempt fails at once with
//! [`Error::is_not_retryable`], naming the endpoint that may hold the call; the call is
//! never sent to a region that would create it again. A pin is released when the endpoint
//! answers the call, and forgotten after [`pin_duration`](FailoverConfig::pin_duration)
//! (default 10 min; at most 10,000 pins are kept, the oldest dropped first). A keyed call
//! that provably never reached an endpoint (connection refused) moves on freely. Endpoints
//! that share one idempotency store (one database behind every region) can say so with
//! [`shared_idempotency`](FailoverConfig::shared_idempotency); keyed calls then fail over
//! like idempotent ones. Each pin is logged as `mcp_resilience.failover.pinned` (`WARN`,
//! fields `endpoint`).
//!
//! # Health: probes and outlier ejection
//!
//! Envoy-style outlier detection: an endpoint is ejected after
//! [`consecutive_failures`](FailoverConfig::consecutive_failures) transient failures in a
//! row, counting both real traffic (connect errors, timeouts, 5xx, judged by
//! [`HttpClassifier`]; a `429` is load shedding, not ill health, and does not count) and
//! probes. It stays ejected for `base_ejection × n` (n = its ejections in a row, capped at
//! [`max_ejection`](FailoverConfig::ejection_time)); the streak resets once the endpoint has
//! served without ejection for `base_ejection` after coming back.
//!
//! Probes: every [`probe_interval`](FailoverConfig::probe_interval), each endpoint gets
//! `GET {endpoint URL}/ping` (the design document's check), bounded by
//! [`probe_timeout`](FailoverConfig::probe_timeout) (2 s); a 2xx is healthy, anything else a
//! failure. Probes go through the same inner service as the traffic (auth included). While
//! probes run, an ejected endpoint comes back only when its ejection time has passed **and**
//! a probe then succeeds (its failure count then starts again from zero); without probes it
//! comes back when the time has passed, on probation: its failure count is not reset, so
//! its next transient failure ejects it again, for longer. Traffic then returns to the
//! preferred endpoint by itself, since routing always picks the first healthy one.
//!
//! A [`CircuitBreakerLayer`](crate::CircuitBreakerLayer) below failover (its breakers are
//! keyed by the rewritten `scheme://authority`) composes with it: an open breaker refuses
//! unsent, which failover counts as a failure of that endpoint and moves past.
//!
//! # MCP sessions
//!
//! An MCP session id belongs to the server that issued it. A switch of endpoint leaves the
//! request untouched, `Mcp-Session-Id` included: the new server does not know the session
//! and answers `404`, which `mcp-transport` takes as an expired session: it re-initializes
//! (the `initialize` goes to the endpoint now in use) and replays the request once, in the
//! new session. Stripping the header instead would make a sessionful server answer `400`
//! (a request without a session), which the transport cannot recover from. Every switch is
//! logged as the `mcp_resilience.failover.switched` event (`WARN`, target
//! `mcp_resilience::failover`, fields `from`, `to`) and counted in [`Failover::health`]
//! ([`FailoverHealth::switches`]); a switch is a change of the endpoint whose answer a call
//! returns. An ejection is the `mcp_resilience.failover.ejected` event (`WARN`, fields
//! `endpoint`, `ejections`, `ejected_ms`), a return after a successful probe
//! `mcp_resilience.failover.returned` (`INFO`, field `endpoint`). The names and fields are
//! stable metric hooks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::classify::{Classify, Delivery, FailureKind, HttpClassifier, Verdict};
use crate::error::{BoxError, Error, Kind};
use crate::layer::{BoxFuture, idempotency_of, oneshot};
use crate::retry::{Idempotency, IdempotencyKey};

/// Settings of failover; builder-style.
///
/// | setting | default |
/// |---|---|
/// | probe interval | 10 s (`None`: no probes) |
/// | probe timeout | 2 s (the design document's) |
/// | probe path | `/ping`, appended to each endpoint URL |
/// | consecutive failures to eject | 3 |
/// | ejection time | 30 s × ejections in a row, at most 5 min |
/// | shared idempotency | no: each endpoint has its own store, keyed calls are pinned |
/// | pin duration | 10 min |
#[derive(Debug, Clone)]
pub struct FailoverConfig {
    probe_interval: Option<Duration>,
    probe_timeout: Duration,
    probe_path: String,
    consecutive_failures: u32,
    base_ejection: Duration,
    max_ejection: Duration,
    shared_idempotency: bool,
    pin_duration: Duration,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl FailoverConfig {
    /// The defaults in the table above.
    pub fn new() -> Self {
        Self {
            probe_interval: Some(Duration::from_secs(10)),
            probe_timeout: Duration::from_secs(2),
            probe_path: "/ping".to_owned(),
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            shared_idempotency: false,
            pin_duration: Duration::from_secs(600),
        }
    }

    /// How often every endpoint is probed; `None` turns probes off.
    #[must_use]
    pub fn probe_interval(mut self, interval: Option<Duration>) -> Self {
        self.probe_interval = interval.map(|i| i.max(Duration::from_millis(1)));
        self
    }

    /// How long a probe may take before it counts as failed (default 2 s).
    #[must_use]
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// The path appended to each endpoint URL to probe it (default `/ping`).
    #[must_use]
    pub fn probe_path(mut self, path: impl Into<String>) -> Self {
        self.probe_path = path.into();
        self
    }

    /// Transient failures in a row that eject an endpoint (default 3, at least 1).
    #[must_use]
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = n.max(1);
        self
    }

    /// Whether the endpoints share one store of idempotency keys (default `false`). When
    /// `true`, a keyed call that may have been processed by one endpoint may be retried on
    /// another, which recognises the key; when `false` it is
    /// [pinned](self#keyed-creates-never-run-in-two-regions) to the first.
    #[must_use]
    pub fn shared_idempotency(mut self, shared: bool) -> Self {
        self.shared_idempotency = shared;
        self
    }

    /// How long a keyed call stays pinned to the endpoint that may have processed it
    /// (default 10 min; longer than any retry of the call should last).
    #[must_use]
    pub fn pin_duration(mut self, duration: Duration) -> Self {
        self.pin_duration = duration;
        self
    }

    /// The first ejection's length and the most any ejection lasts (defaults 30 s, 5 min;
    /// `max` is raised to `base` if below).
    #[must_use]
    pub fn ejection_time(mut self, base: Duration, max: Duration) -> Self {
        self.base_ejection = base;
        self.max_ejection = max.max(base);
        self
    }
}

/// The health of one endpoint at one moment; see [`Failover::health`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointHealth {
    /// The endpoint URL, as configured.
    pub url: Arc<str>,
    /// True when requests may go to it (not ejected).
    pub healthy: bool,
    /// How long it stays ejected; `Some(ZERO)` when its time is up and it waits for a probe.
    pub ejected_for: Option<Duration>,
    /// Transient failures in a row (traffic and probes).
    pub consecutive_failures: u32,
    /// How many times it was ejected since the failover was built.
    pub ejections: u32,
    /// How long the last probe took, if one finished.
    pub last_probe_latency: Option<Duration>,
    /// Why the last probe failed (`None` if it succeeded or none ran).
    pub last_probe_error: Option<String>,
}

/// Every endpoint's health, in the configured order; see [`Failover::health`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailoverHealth {
    /// Per endpoint, preferred first.
    pub endpoints: Vec<EndpointHealth>,
    /// The endpoint whose answer the last request returned, as an index into `endpoints`.
    pub active: Option<usize>,
    /// How many times that endpoint changed (traffic moved from one endpoint to another).
    pub switches: u64,
}

#[derive(Debug, Default)]
struct Health {
    consecutive_failures: u32,
    ejected_until: Option<Instant>,
    ejections: u32,
    streak: u32,
    returned_at: Option<Instant>,
    last_probe_latency: Option<Duration>,
    last_probe_error: Option<String>,
}

#[derive(Debug)]
struct Endpoint {
    url: Arc<str>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    path: String,
    health: Mutex<Health>,
}

#[derive(Debug)]
struct Shared {
    endpoints: Vec<Endpoint>,
    config: FailoverConfig,
    probing: bool,
    active: AtomicUsize,
    switches: AtomicU64,
    probe_task: Mutex<Option<tokio::task::AbortHandle>>,
    /// Keyed calls that may have been processed by an endpoint: key → (endpoint, since).
    pins: Mutex<HashMap<IdempotencyKey, (usize, Instant)>>,
}

/// The most pins kept; past it the oldest go first.
const MAX_PINS: usize = 10_000;

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.probe_task).take() {
            task.abort();
        }
    }
}

const NONE_ACTIVE: usize = usize::MAX;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the health consistent, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An ordered set of endpoints with their health; [`FailoverLayer`] routes through it.
/// Cheap to clone; clones share the health.
#[derive(Debug, Clone)]
pub struct Failover {
    shared: Arc<Shared>,
}

impl Failover {
    /// The endpoints (absolute `http`/`https` URLs, preferred first) under `config`. Fails
    /// with a message naming the bad URL (query and credentials left out) if one does not
    /// parse, is not `http`/`https`, carries credentials (`user:password@`: authenticate
    /// with an auth layer instead), or if the list is empty.
    pub fn new<I, U>(urls: I, config: FailoverConfig) -> Result<Self, Error>
    where
        I: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        let mut endpoints = Vec::new();
        for url in urls {
            let url = url.as_ref();
            let shown = url.split(['?', '#']).next().unwrap_or_default();
            let shown = shown.rsplit_once('@').map_or(shown, |(_, host)| host);
            let bad = || {
                Error::new(Kind::Permanent)
                    .with_context(format!("failover endpoint `{shown}` is not an http(s) URL"))
            };
            let uri: Uri = url.parse().map_err(|_| bad())?;
            let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
            else {
                return Err(bad());
            };
            // Credentials in the URL would travel in logs and health snapshots.
            if (scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS)
                || authority.as_str().contains('@')
            {
                return Err(bad());
            }
            let path = uri.path().trim_end_matches('/').to_owned();
            endpoints.push(Endpoint {
                url: shown.into(),
                scheme,
                authority,
                path,
                health: Mutex::default(),
            });
        }
        if endpoints.is_empty() {
            return Err(Error::new(Kind::Permanent).with_context("no failover endpoints given"));
        }
        Ok(Self {
            shared: Arc::new(Shared {
                endpoints,
                probing: config.probe_interval.is_some(),
                config,
                active: AtomicUsize::new(NONE_ACTIVE),
                switches: AtomicU64::new(0),
                probe_task: Mutex::new(None),
                pins: Mutex::default(),
            }),
        })
    }

    /// Every endpoint's health now.
    pub fn health(&self) -> FailoverHealth {
        let now = Instant::now();
        let endpoints = self
            .shared
            .endpoints
            .iter()
            .map(|e| {
                let h = lock(&e.health);
                let ejected_for = h.ejected_until.map(|u| u.saturating_duration_since(now));
                EndpointHealth {
                    url: e.url.clone(),
                    healthy: self.shared.available(&h, now),
                    ejected_for,
                    consecutive_failures: h.consecutive_failures,
                    ejections: h.ejections,
                    last_probe_latency: h.last_probe_latency,
                    last_probe_error: h.last_probe_error.clone(),
                }
            })
            .collect();
        let active = self.shared.active.load(Ordering::Relaxed);
        FailoverHealth {
            endpoints,
            active: (active != NONE_ACTIVE).then_some(active),
            switches: self.shared.switches.load(Ordering::Relaxed),
        }
    }

    /// Probes every endpoint once, now, through `service` (what the background task does
    /// each interval).
    pub async fn probe_once<S, B>(&self, service: &S)
    where
        S: Service<http::Request<Bytes>, Response = http::Response<B>> + Clone,
        S::Error: Into<BoxError>,
    {
        probe_all(&self.shared, service.clone()).await;
    }
}

impl Shared {
    /// The endpoint `key`'s call is pinned to, if any.
    fn pinned(&self, key: &IdempotencyKey, now: Instant) -> Option<usize> {
        let pins = lock(&self.pins);
        let &(i, since) = pins.get(key)?;
        (now.saturating_duration_since(since) < self.config.pin_duration).then_some(i)
    }

    fn pin(&self, key: &IdempotencyKey, i: usize, now: Instant) {
        let mut pins = lock(&self.pins);
        if pins.len() >= MAX_PINS {
            let ttl = self.config.pin_duration;
            pins.retain(|_, (_, since)| now.saturating_duration_since(*since) < ttl);
            while pins.len() >= MAX_PINS {
                let Some(oldest) = pins
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                pins.remove(&oldest);
            }
        }
        if pins.insert(key.clone(), (i, now)).is_none() {
            let endpoint = &*self.endpoints[i].url;
            tracing::warn!(
                name: "mcp_resilience.failover.pinned",
                target: "mcp_resilience::failover",
                endpoint,
                "a keyed call may have been processed here; its retries stay on this endpoint"
            );
        }
    }

    fn unpin(&self, key: &IdempotencyKey) {
        lock(&self.pins).remove(key);
    }

    fn is_ejected(&self, i: usize, now: Instant) -> bool {
        !self.available(&lock(&self.endpoints[i].health), now)
    }

    fn available(&self, h: &Health, now: Instant) -> bool {
        match h.ejected_until {
            None => true,
            // With probes, a probe brings it back once the time is up.
            Some(until) => !self.probing && now >= until,
        }
    }

    /// Records a transient failure (`true`) or an answer (`false`) of endpoint `i`.
    fn record(&self, i: usize, failed: bool, now: Instant) {
        let e = &self.endpoints[i];
        let mut h = lock(&e.health);
        if h.ejected_until.is_some_and(|until| now >= until) && !self.probing {
            // Its time is up: back on probation.
            h.ejected_until = None;
            h.returned_at = Some(now);
        }
        if !failed {
            h.consecutive_failures = 0;
            if h.ejected_until.is_none()
                && h.returned_at.is_some_and(|at| {
                    now.saturating_duration_since(at) >= self.config.base_ejection
                })
            {
                h.streak = 0;
                h.returned_at = None;
            }
            return;
        }
        h.consecutive_failures = h.consecutive_failures.saturating_add(1);
        if h.ejected_until.is_none() && h.consecutive_failures >= self.config.consecutive_failures {
            h.streak = h.streak.saturating_add(1);
            h.ejections = h.ejections.saturating_add(1);
            let time = self
                .config
                .base_ejection
                .saturating_mul(h.streak)
                .min(self.config.max_ejection);
            h.ejected_until = Some(now + time);
            h.returned_at = None;
            let (endpoint, ejections) = (&*e.url, h.ejections);
            let ejected_ms = u64::try_from(time.as_millis()).unwrap_or(u64::MAX);
            tracing::warn!(
                name: "mcp_resilience.failover.ejected",
                target: "mcp_resilience::failover",
                endpoint,
                ejections,
                ejected_ms,
                "endpoint ejected after consecutive failures"
            );
        }
    }

    fn record_probe(&self, i: usize, result: Result<Duration, String>, now: Instant) {
        let e = &self.endpoints[i];
        {
            let mut h = lock(&e.health);
            match &result {
                Ok(latency) => {
                    h.last_probe_latency = Some(*latency);
                    h.last_probe_error = None;
                    if h.ejected_until.is_some_and(|until| now >= until) {
                        h.ejected_until = None;
                        h.returned_at = Some(now);
                        h.consecutive_failures = 0;
                        let endpoint = &*e.url;
                        tracing::info!(
                            name: "mcp_resilience.failover.returned",
                            target: "mcp_resilience::failover",
                            endpoint,
                            "endpoint healthy again after its ejection"
                        );
                    }
                }
                Err(error) => {
                    h.last_probe_error = Some(error.clone());
                }
            }
        }
        if result.is_ok() {
            self.record(i, false, now);
        } else {
            self.record(i, true, now);
        }
    }

    /// The first endpoint at or after `from` that may take a request.
    fn pick(&self, from: usize, now: Instant) -> Option<usize> {
        (from..self.endpoints.len())
            .find(|&i| self.available(&lock(&self.endpoints[i].health), now))
    }

    fn route(&self, i: usize, uri: &Uri) -> Result<Uri, BoxError> {
        let e = &self.endpoints[i];
        let primary = &self.endpoints[0].path;
        let path = uri.path();
        let rest = path
            .strip_prefix(primary.as_str())
            .filter(|rest| rest.is_empty() || rest.starts_with('/'));
        let mut path_and_query = match rest {
            Some(rest) => format!("{}{rest}", e.path),
            None => path.to_owned(),
        };
        if path_and_query.is_empty() {
            path_and_query.push('/');
        }
        if let Some(q) = uri.query() {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        Ok(Uri::builder()
            .scheme(e.scheme.clone())
            .authority(e.authority.clone())
            .path_and_query(path_and_query)
            .build()?)
    }

    fn note_active(&self, i: usize) {
        let previous = self.active.swap(i, Ordering::Relaxed);
        if previous != i && previous != NONE_ACTIVE {
            self.switches.fetch_add(1, Ordering::Relaxed);
            let from = &*self.endpoints[previous].url;
            let to = &*self.endpoints[i].url;
            tracing::warn!(
                name: "mcp_resilience.failover.switched",
                target: "mcp_resilience::failover",
                from,
                to,
                "traffic moved to another endpoint; its MCP session will be re-initialized"
            );
        }
    }
}

async fn probe_all<S, B>(shared: &Shared, service: S)
where
    S: Service<http::Request<Bytes>, Response = http::Response<B>> + Clone,
    S::Error: Into<BoxError>,
{
    let probes = shared.endpoints.iter().enumerate().map(|(i, e)| {
        let url = format!(
            "{}://{}{}{}",
            e.scheme, e.authority, e.path, shared.config.probe_path
        );
        let service = service.clone();
        let timeout = shared.config.probe_timeout;
        async move {
            let started = Instant::now();
            let result = match http::Request::get(url).body(Bytes::new()) {
                Err(e) => Err(format!("bad probe URL: {e}")),
                Ok(req) => match tokio::time::timeout(timeout, oneshot(service, req)).await {
                    Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
                    Ok(Err(e)) => Err(e.to_string()),
                    Ok(Ok(resp)) if resp.status().is_success() => Ok(started.elapsed()),
                    Ok(Ok(resp)) => Err(format!("status {}", resp.status())),
                },
            };
            (i, result)
        }
    });
    for (i, result) in futures_util::future::join_all(probes).await {
        shared.record_probe(i, result, Instant::now());
    }
}

/// Routes each request to the preferred healthy endpoint of a [`Failover`] and probes the
/// endpoints in the background. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct FailoverLayer {
    failover: Failover,
}

impl FailoverLayer {
    /// A layer routing through `failover` (keep a clone to read its [`health`](Failover::health)).
    pub fn new(failover: Failover) -> Self {
        Self { failover }
    }
}

impl<S, B> Layer<S> for FailoverLayer
where
    S: Service<http::Request<Bytes>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Service = FailoverService<S>;

    /// Wraps `inner`, and starts the probe task on the current tokio runtime if probes are
    /// on and none runs yet for this [`Failover`] (outside a runtime, no probes run). The
    /// task stops when the last clone of the `Failover` is dropped.
    fn layer(&self, inner: S) -> Self::Service {
        let shared = &self.failover.shared;
        if let Some(interval) = shared.config.probe_interval {
            let mut task = lock(&shared.probe_task);
            if task.is_none()
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                let weak = Arc::downgrade(shared);
                let service = inner.clone();
                *task = Some(
                    runtime
                        .spawn(probe_loop(weak, service, interval))
                        .abort_handle(),
                );
            }
        }
        FailoverService {
            inner,
            failover: self.failover.clone(),
        }
    }
}

async fn probe_loop<S, B>(shared: Weak<Shared>, service: S, interval: Duration)
where
    S: Service<http::Request<Bytes>, Response = http::Response<B>> + Clone,
    S::Error: Into<BoxError>,
{
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        probe_all(&shared, service.clone()).await;
    }
}

/// An attempt of a keyed call pinned to endpoint `i`: sent there only; the pin is released
/// once the endpoint answers, kept while the outcome stays unknown.
async fn pinned_attempt<S, B>(
    shared: &Shared,
    inner: S,
    req: &http::Request<Bytes>,
    key: &IdempotencyKey,
    i: usize,
) -> Result<http::Response<B>, BoxError>
where
    S: Service<http::Request<Bytes>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
{
    if shared.is_ejected(i, Instant::now()) {
        return Err(Error::new(Kind::NotRetryable)
            .with_context(format!(
                "an earlier attempt of this keyed call may have been processed by {}, which is \
                 ejected now; the other endpoints cannot recognise its idempotency key, so it is \
                 not sent to them (check the call on that endpoint once it is back)",
                shared.endpoints[i].url
            ))
            .into());
    }
    let mut attempt = crate::layer::replay(req);
    *attempt.uri_mut() = shared.route(i, req.uri())?;
    let result = oneshot(inner, attempt).await;
    let verdict = HttpClassifier::new().classify(result.as_ref());
    let transient = verdict.as_transient().copied();
    let now = Instant::now();
    shared.record(
        i,
        transient.is_some_and(|t| t.kind != FailureKind::Throttled),
        now,
    );
    match transient {
        Some(t) if t.delivery == Delivery::MaybeProcessed => shared.pin(key, i, now),
        Some(_) => {}
        None => shared.unpin(key),
    }
    shared.note_active(i);
    result
}

/// The service of [`FailoverLayer`].
#[derive(Debug, Clone)]
pub struct FailoverService<S> {
    inner: S,
    failover: Failover,
}

impl<S, B> Service<http::Request<Bytes>> for FailoverService<S>
where
    S: Service<http::Request<Bytes>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = BoxError;
    type Future = BoxFuture<Result<http::Response<B>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each attempt drives a clone of the inner service to readiness itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Bytes>) -> Self::Future {
        let inner = self.inner.clone();
        let shared = self.failover.shared.clone();
        Box::pin(async move {
            let idempotency = idempotency_of(&req);
            let classifier = HttpClassifier::new();
            // The key whose call must stay where it may have been processed.
            let pin_key = match &idempotency {
                Idempotency::Key(key) if !shared.config.shared_idempotency => Some(key),
                _ => None,
            };
            if let Some(key) = pin_key
                && let Some(i) = shared.pinned(key, Instant::now())
            {
                return pinned_attempt(&shared, inner, &req, key, i).await;
            }
            let mut next = 0;
            let mut tried = 0u32;
            loop {
                let Some(i) = shared.pick(next, Instant::now()) else {
                    let context = if tried == 0 {
                        "every endpoint is ejected".to_owned()
                    } else {
                        format!("{tried} endpoint(s) failed and no other is healthy")
                    };
                    return Err(Error::new(Kind::NoHealthyEndpoint)
                        .with_attempts(tried)
                        .with_context(context)
                        .into());
                };
                let mut attempt = crate::layer::replay(&req);
                *attempt.uri_mut() = shared.route(i, req.uri())?;
                tried += 1;
                let result = oneshot(inner.clone(), attempt).await;
                let verdict = classifier.classify(result.as_ref());
                let transient = verdict.as_transient().copied();
                let counts = transient.is_some_and(|t| t.kind != FailureKind::Throttled);
                shared.record(i, counts, Instant::now());
                if let (Some(key), Some(t)) = (pin_key, transient)
                    && t.delivery == Delivery::MaybeProcessed
                {
                    // Only this endpoint can recognise the key now.
                    shared.pin(key, i, Instant::now());
                    return result;
                }
                match (verdict, transient) {
                    (Verdict::Transient(_), Some(t))
                        if idempotency.allows_retry(t.delivery)
                            && shared.pick(i + 1, Instant::now()).is_some() =>
                    {
                        next = i + 1;
                    }
                    _ => {
                        shared.note_active(i);
                        return result;
                    }
                }
            }
        })
    }
}
