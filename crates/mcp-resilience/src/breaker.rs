//! Circuit breakers, one per endpoint: stop calling an endpoint that keeps failing, then let a
//! few probe calls find out when it has recovered.
//!
//! - **Closed** (normal): every call goes through; outcomes fill a sliding window, the last
//!   `n` calls ([`Window::Calls`]) or the last stretch of time ([`Window::Time`], ten buckets).
//!   Once the window holds at least `min_throughput` calls and the failure ratio reaches
//!   `failure_ratio`, the breaker opens. A success slower than `slow_call` counts as a
//!   failure (resilience4j's slow-call rule, folded into the one ratio).
//! - **Open**: calls fail at once with [`Error::is_circuit_open`] for the open duration,
//!   jittered so a fleet of clients does not probe together.
//! - **Half-open**: the first call after the open duration moves the breaker here; up to
//!   `half_open_probes` probe calls are admitted (others are refused as if open). When all of
//!   them succeed the breaker closes with an empty window; when one fails it opens again for
//!   twice as long as last time (up to `max_open_duration`).
//!
//! Outcomes of calls admitted before a state change (a slow call that ends after the breaker
//! opened) are ignored. The decision logic is a pure state machine over explicit instants on
//! tokio's clock, so `tokio::time::pause` drives it in tests; the breaker itself is one small
//! mutex held for a few instructions.
//!
//! | setting | default | why |
//! |---|---|---|
//! | failure ratio | 0.5 | resilience4j's `failureRateThreshold` |
//! | window | last 100 calls | resilience4j's `slidingWindowSize` |
//! | minimum throughput | 20 calls | below resilience4j's 100: an SDK client makes few calls, and must fail over within minutes |
//! | open duration | 30 s, ×2 on each reopen, at most 5 min | Envoy's 30 s base ejection, growing with each ejection |
//! | open jitter | ±20 % | spreads a fleet's probes |
//! | half-open probes | 3 | fewer than resilience4j's 10, for the same low call volume |
//! | slow call | 60 s | resilience4j's `slowCallDurationThreshold` (above the default per-attempt timeout, so off unless that is raised) |
//!
//! # Events
//!
//! Every state change emits a tracing event named `mcp_resilience.breaker.state_change`
//! (target `mcp_resilience::breaker`; `WARN` when opening, `INFO` otherwise) with the fields
//! `endpoint`, `from`, `to`, `failure_ratio`, `calls`, `failures`, `slow` and `open_ms` (0
//! unless opening). The name and fields are stable.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Kind};

/// Name of the event emitted on every state change.
pub const STATE_CHANGE_EVENT: &str = "mcp_resilience.breaker.state_change";

/// Number of buckets of a time-based window.
const TIME_BUCKETS: usize = 10;

/// The sliding window failures are counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Window {
    /// The last `n` calls (at least 1).
    Calls(u32),
    /// The calls of the last stretch of time, in ten buckets (each a tenth of it, at least
    /// 1 ms): calls age out a bucket at a time.
    Time(Duration),
}

/// Settings of a [`CircuitBreaker`]; builder-style, defaults in the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    failure_ratio: f64,
    window: Window,
    min_throughput: u32,
    open_duration: Duration,
    max_open_duration: Duration,
    open_jitter: f64,
    half_open_probes: u32,
    slow_call: Option<Duration>,
    seed: Option<u64>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl BreakerConfig {
    /// The defaults of the [module docs](self).
    pub const fn new() -> Self {
        Self {
            failure_ratio: 0.5,
            window: Window::Calls(100),
            min_throughput: 20,
            open_duration: Duration::from_secs(30),
            max_open_duration: Duration::from_secs(300),
            open_jitter: 0.2,
            half_open_probes: 3,
            slow_call: Some(Duration::from_secs(60)),
            seed: None,
        }
    }

    /// The failure ratio, in `(0, 1]`, at which the breaker opens (default 0.5). Values out
    /// of range are clamped; NaN keeps the current value.
    #[must_use]
    pub fn failure_ratio(mut self, ratio: f64) -> Self {
        if !ratio.is_nan() {
            self.failure_ratio = ratio.clamp(f64::MIN_POSITIVE, 1.0);
        }
        self
    }

    /// The sliding window (default the last 100 calls).
    #[must_use]
    pub fn window(mut self, window: Window) -> Self {
        self.window = match window {
            Window::Calls(n) => Window::Calls(n.max(1)),
            Window::Time(d) => Window::Time(d.max(Duration::from_millis(TIME_BUCKETS as u64))),
        };
        self
    }

    /// How many calls the window must hold before the breaker may open (default 20, at
    /// least 1).
    #[must_use]
    pub fn min_throughput(mut self, calls: u32) -> Self {
        self.min_throughput = calls.max(1);
        self
    }

    /// How long the breaker stays open the first time (default 30 s), and the most it stays
    /// open after reopening again and again (default 5 min; raised to `first` if below).
    #[must_use]
    pub fn open_duration(mut self, first: Duration, max: Duration) -> Self {
        self.open_duration = first;
        self.max_open_duration = max.max(first);
        self
    }

    /// The open duration is multiplied by a factor drawn uniformly from
    /// `[1 - jitter, 1 + jitter]` (default 0.2). Clamped to `[0, 1]`; NaN means 0.
    #[must_use]
    pub fn open_jitter(mut self, jitter: f64) -> Self {
        self.open_jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        self
    }

    /// How many probe calls half-open admits, all of which must succeed to close (default
    /// 3, at least 1).
    #[must_use]
    pub fn half_open_probes(mut self, probes: u32) -> Self {
        self.half_open_probes = probes.max(1);
        self
    }

    /// A success that took at least this long counts as a failure (default 60 s); `None`
    /// turns the rule off.
    #[must_use]
    pub fn slow_call(mut self, threshold: Option<Duration>) -> Self {
        self.slow_call = threshold;
        self
    }

    /// Seeds the open-duration jitter, for reproducible tests (default: a random seed per
    /// breaker).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

/// The state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls are refused.
    Open,
    /// A few probe calls are admitted to test recovery.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`, as in the state-change event.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A breaker's state and counts at one moment; see [`CircuitBreaker::snapshot`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerSnapshot {
    /// The endpoint the breaker guards.
    pub endpoint: Arc<str>,
    /// The state. An open breaker whose open time has passed reports `Open` until the next
    /// call moves it to half-open.
    pub state: BreakerState,
    /// Calls in the window (closed) or probes finished (half-open).
    pub calls: u32,
    /// Failures among them, slow successes included.
    pub failures: u32,
    /// Slow successes among them.
    pub slow: u32,
    /// `failures / calls`, 0 when there are no calls.
    pub failure_ratio: f64,
    /// Probe calls admitted and not yet finished (half-open).
    pub probes_in_flight: u32,
    /// Time until half-open (open).
    pub open_remaining: Option<Duration>,
    /// How many times the breaker opened since it was last closed.
    pub consecutive_opens: u32,
}

/// How one admitted call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The endpoint answered (including with a permanent error such as a 400).
    Success,
    /// A transient failure: the endpoint is struggling or unreachable.
    Failure,
}

/// Admission of one call, as the state machine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ticket {
    epoch: u64,
    probe: bool,
}

/// A state change, reported after the lock is released.
#[derive(Debug, Clone, Copy)]
struct Transition {
    from: BreakerState,
    to: BreakerState,
    calls: u32,
    failures: u32,
    slow: u32,
    open_for: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    calls: u32,
    failures: u32,
    slow: u32,
}

impl Counts {
    fn ratio(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            f64::from(self.failures) / f64::from(self.calls)
        }
    }
}

const FAILED: u8 = 1;
const SLOW: u8 = 2;
const PRESENT: u8 = 4;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    index: u64,
    counts: Counts,
}

/// The sliding window's storage.
enum Outcomes {
    Calls {
        ring: Box<[u8]>,
        next: usize,
        counts: Counts,
    },
    Time {
        buckets: Box<[Bucket; TIME_BUCKETS]>,
        span: Duration,
        origin: Instant,
    },
}

impl Outcomes {
    fn new(window: Window, origin: Instant) -> Self {
        match window {
            Window::Calls(n) => Self::Calls {
                ring: vec![0; usize::try_from(n).unwrap_or(usize::MAX).max(1)].into_boxed_slice(),
                next: 0,
                counts: Counts::default(),
            },
            Window::Time(d) => Self::Time {
                buckets: Box::new([Bucket::default(); TIME_BUCKETS]),
                span: (d / TIME_BUCKETS as u32).max(Duration::from_millis(1)),
                origin,
            },
        }
    }

    fn clear(&mut self) {
        match self {
            Self::Calls { ring, next, counts } => {
                ring.fill(0);
                *next = 0;
                *counts = Counts::default();
            }
            Self::Time { buckets, .. } => **buckets = [Bucket::default(); TIME_BUCKETS],
        }
    }

    fn bucket_index(now: Instant, origin: Instant, span: Duration) -> u64 {
        let elapsed = now.saturating_duration_since(origin).as_nanos();
        u64::try_from(elapsed / span.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    fn record(&mut self, now: Instant, flags: u8) {
        let failed = u32::from(flags & FAILED != 0);
        let slow = u32::from(flags & SLOW != 0);
        match self {
            Self::Calls { ring, next, counts } => {
                let old = std::mem::replace(&mut ring[*next], flags | PRESENT);
                if old & PRESENT != 0 {
                    counts.calls -= 1;
                    counts.failures -= u32::from(old & FAILED != 0);
                    counts.slow -= u32::from(old & SLOW != 0);
                }
                counts.calls += 1;
                counts.failures += failed;
                counts.slow += slow;
                *next = (*next + 1) % ring.len();
            }
            Self::Time {
                buckets,
                span,
                origin,
            } => {
                let index = Self::bucket_index(now, *origin, *span);
                let slot = &mut buckets[(index % TIME_BUCKETS as u64) as usize];
                if slot.index != index || slot.counts.calls == 0 {
                    *slot = Bucket {
                        index,
                        counts: Counts::default(),
                    };
                }
                slot.counts.calls += 1;
                slot.counts.failures += failed;
                slot.counts.slow += slow;
            }
        }
    }

    fn counts(&self, now: Instant) -> Counts {
        match self {
            Self::Calls { counts, .. } => *counts,
            Self::Time {
                buckets,
                span,
                origin,
            } => {
                let current = Self::bucket_index(now, *origin, *span);
                let oldest = current.saturating_sub(TIME_BUCKETS as u64 - 1);
                buckets
                    .iter()
                    .filter(|b| b.counts.calls > 0 && (oldest..=current).contains(&b.index))
                    .fold(Counts::default(), |mut acc, b| {
                        acc.calls += b.counts.calls;
                        acc.failures += b.counts.failures;
                        acc.slow += b.counts.slow;
                        acc
                    })
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { admitted: u32, probes: Counts },
}

/// The pure state machine: every method takes the time from its caller.
struct Core {
    config: BreakerConfig,
    state: State,
    outcomes: Outcomes,
    rng: fastrand::Rng,
    opens: u32,
    epoch: u64,
}

impl Core {
    fn new(config: BreakerConfig, now: Instant) -> Self {
        Self {
            state: State::Closed,
            outcomes: Outcomes::new(config.window, now),
            rng: config
                .seed
                .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            opens: 0,
            epoch: 0,
            config,
        }
    }

    fn public_state(&self) -> BreakerState {
        match self.state {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Admits a call, or says how long until the next probe (zero when half-open is full).
    fn admit(&mut self, now: Instant) -> (Result<Ticket, Duration>, Option<Transition>) {
        let mut transition = None;
        if let State::Open { until } = self.state {
            if now < until {
                return (Err(until - now), None);
            }
            transition = Some(self.enter(BreakerState::HalfOpen, now, Counts::default()));
        }
        let epoch = self.epoch;
        let admitted = match &mut self.state {
            State::Closed => Ok(Ticket {
                epoch,
                probe: false,
            }),
            State::HalfOpen { admitted, .. } => {
                if *admitted < self.config.half_open_probes {
                    *admitted += 1;
                    Ok(Ticket { epoch, probe: true })
                } else {
                    Err(Duration::ZERO)
                }
            }
            State::Open { .. } => Err(Duration::ZERO),
        };
        (admitted, transition)
    }

    fn record(
        &mut self,
        now: Instant,
        ticket: Ticket,
        outcome: CallOutcome,
        elapsed: Duration,
    ) -> Option<Transition> {
        if ticket.epoch != self.epoch {
            return None; // admitted before a state change
        }
        let slow =
            outcome == CallOutcome::Success && self.config.slow_call.is_some_and(|t| elapsed >= t);
        let failed = outcome == CallOutcome::Failure || slow;
        match &mut self.state {
            State::Closed => {
                self.outcomes
                    .record(now, (u8::from(failed) * FAILED) | (u8::from(slow) * SLOW));
                let counts = self.outcomes.counts(now);
                if counts.calls >= self.config.min_throughput
                    && counts.ratio() >= self.config.failure_ratio
                {
                    return Some(self.enter(BreakerState::Open, now, counts));
                }
                None
            }
            State::HalfOpen { probes, .. } if ticket.probe => {
                probes.calls += 1;
                probes.failures += u32::from(failed);
                probes.slow += u32::from(slow);
                let probes = *probes;
                if failed {
                    Some(self.enter(BreakerState::Open, now, probes))
                } else if probes.calls >= self.config.half_open_probes {
                    Some(self.enter(BreakerState::Closed, now, probes))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// An admitted call ended without an outcome (cancelled): free its probe slot.
    fn release(&mut self, ticket: Ticket) {
        if ticket.epoch != self.epoch || !ticket.probe {
            return;
        }
        if let State::HalfOpen { admitted, .. } = &mut self.state {
            *admitted = admitted.saturating_sub(1);
        }
    }

    fn enter(&mut self, to: BreakerState, now: Instant, counts: Counts) -> Transition {
        let from = self.public_state();
        self.epoch += 1;
        let mut open_for = Duration::ZERO;
        self.state = match to {
            BreakerState::Closed => {
                self.opens = 0;
                self.outcomes.clear();
                State::Closed
            }
            BreakerState::Open => {
                open_for = self.open_duration();
                self.opens = self.opens.saturating_add(1);
                State::Open {
                    until: now + open_for,
                }
            }
            BreakerState::HalfOpen => State::HalfOpen {
                admitted: 0,
                probes: Counts::default(),
            },
        };
        Transition {
            from,
            to,
            calls: counts.calls,
            failures: counts.failures,
            slow: counts.slow,
            open_for,
        }
    }

    /// `first · 2^opens`, at most the max, times the jitter factor.
    fn open_duration(&mut self) -> Duration {
        let c = &self.config;
        let nominal = c
            .open_duration
            .saturating_mul(1u32 << self.opens.min(31))
            .min(c.max_open_duration);
        let factor = 1.0 - c.open_jitter + 2.0 * c.open_jitter * self.rng.f64();
        Duration::try_from_secs_f64(nominal.as_secs_f64() * factor).unwrap_or(nominal)
    }

    fn snapshot(&self, endpoint: &Arc<str>, now: Instant) -> BreakerSnapshot {
        let (counts, in_flight, remaining) = match self.state {
            State::Closed => (self.outcomes.counts(now), 0, None),
            State::Open { until } => (
                Counts::default(),
                0,
                Some(until.saturating_duration_since(now)),
            ),
            State::HalfOpen { admitted, probes } => {
                (probes, admitted.saturating_sub(probes.calls), None)
            }
        };
        BreakerSnapshot {
            endpoint: endpoint.clone(),
            state: self.public_state(),
            calls: counts.calls,
            failures: counts.failures,
            slow: counts.slow,
            failure_ratio: counts.ratio(),
            probes_in_flight: in_flight,
            open_remaining: remaining,
            consecutive_opens: self.opens,
        }
    }
}

/// The circuit breaker of one endpoint. Cheap to clone; clones share the state. See the
/// [module docs](self).
///
/// ```
/// use mcp_resilience::breaker::{BreakerConfig, BreakerState, CallOutcome, CircuitBreaker};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let breaker = CircuitBreaker::new(
///     "https://scheduler-eastus.example/mcp",
///     BreakerConfig::new().min_throughput(2),
/// );
/// for _ in 0..2 {
///     let permit = breaker.try_acquire().expect("closed");
///     permit.record(CallOutcome::Failure);
/// }
/// assert_eq!(breaker.state(), BreakerState::Open);
/// assert!(breaker.try_acquire().unwrap_err().is_circuit_open());
/// # });
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

struct Shared {
    endpoint: Arc<str>,
    core: Mutex<Core>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("endpoint", &self.shared.endpoint)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    // Every update leaves the state machine consistent, so a poisoned lock is still usable.
    core.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CircuitBreaker {
    /// A closed breaker for `endpoint` (a name or URL, used in events and errors; it must not
    /// contain secrets). Time is read from tokio's clock (paused in tests).
    pub fn new(endpoint: impl Into<Arc<str>>, config: BreakerConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                endpoint: endpoint.into(),
                core: Mutex::new(Core::new(config, Instant::now())),
            }),
        }
    }

    /// The endpoint this breaker guards.
    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }

    /// The current state (an open breaker whose time is up stays `Open` until the next call).
    pub fn state(&self) -> BreakerState {
        lock(&self.shared.core).public_state()
    }

    /// The state and counts now.
    pub fn snapshot(&self) -> BreakerSnapshot {
        lock(&self.shared.core).snapshot(&self.shared.endpoint, Instant::now())
    }

    /// Admits one call, or refuses it with [`Error::is_circuit_open`]. Record the outcome on
    /// the permit; a permit dropped unrecorded (a cancelled call) counts for nothing and
    /// frees its probe slot.
    pub fn try_acquire(&self) -> Result<BreakerPermit, Error> {
        let now = Instant::now();
        let (admitted, transition) = lock(&self.shared.core).admit(now);
        if let Some(t) = transition {
            emit(&self.shared.endpoint, &t);
        }
        match admitted {
            Ok(ticket) => Ok(BreakerPermit {
                shared: Some(self.shared.clone()),
                ticket,
                started: now,
            }),
            Err(wait) => {
                let context = if wait.is_zero() {
                    format!(
                        "endpoint `{}`: every half-open probe slot is taken",
                        self.shared.endpoint
                    )
                } else {
                    format!(
                        "endpoint `{}`: next probe in {} ms",
                        self.shared.endpoint,
                        wait.as_millis()
                    )
                };
                Err(Error::new(Kind::CircuitOpen).with_context(context))
            }
        }
    }
}

/// Admission of one call; record how it went with [`record`](BreakerPermit::record). The
/// call's duration (for the slow-call rule) is measured from [`CircuitBreaker::try_acquire`].
#[must_use = "record the call's outcome on the permit"]
pub struct BreakerPermit {
    shared: Option<Arc<Shared>>,
    ticket: Ticket,
    started: Instant,
}

impl fmt::Debug for BreakerPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("probe", &self.ticket.probe)
            .finish_non_exhaustive()
    }
}

impl BreakerPermit {
    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.ticket.probe
    }

    /// Records the call's outcome, measuring its duration now.
    pub fn record(mut self, outcome: CallOutcome) {
        if let Some(shared) = self.shared.take() {
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(self.started);
            let transition = lock(&shared.core).record(now, self.ticket, outcome, elapsed);
            if let Some(t) = transition {
                emit(&shared.endpoint, &t);
            }
        }
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            lock(&shared.core).release(self.ticket);
        }
    }
}

fn emit(endpoint: &str, t: &Transition) {
    let from = t.from.as_str();
    let to = t.to.as_str();
    let counts = Counts {
        calls: t.calls,
        failures: t.failures,
        slow: t.slow,
    };
    let failure_ratio = counts.ratio();
    let (calls, failures, slow) = (t.calls, t.failures, t.slow);
    let open_ms = u64::try_from(t.open_for.as_millis()).unwrap_or(u64::MAX);
    // One event shape; the level is part of an event's static metadata, hence the macro.
    macro_rules! state_change {
        ($level:ident, $message:literal) => {
            tracing::$level!(
                name: "mcp_resilience.breaker.state_change",
                target: "mcp_resilience::breaker",
                endpoint,
                from,
                to,
                failure_ratio,
                calls,
                failures,
                slow,
                open_ms,
                $message
            )
        };
    }
    match t.to {
        BreakerState::Open => state_change!(warn, "circuit breaker opened"),
        BreakerState::HalfOpen => {
            state_change!(info, "circuit breaker half-open: admitting probe calls")
        }
        BreakerState::Closed => state_change!(info, "circuit breaker closed"),
    }
}

/// The breakers of a set of endpoints, created on first use with one configuration: the
/// per-endpoint seam failover picks healthy endpoints from. Cheap to clone; clones share the
/// breakers.
///
/// ```
/// use mcp_resilience::breaker::{BreakerConfig, CircuitBreakers};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let breakers = CircuitBreakers::new(BreakerConfig::new());
/// let east = breakers.get("eastus");
/// assert_eq!(breakers.get("eastus").endpoint(), east.endpoint()); // the same breaker
/// assert_eq!(breakers.snapshots().len(), 1);
/// # });
/// ```
#[derive(Clone, Default)]
pub struct CircuitBreakers {
    config: BreakerConfig,
    map: Arc<Mutex<HashMap<Arc<str>, CircuitBreaker>>>,
}

impl fmt::Debug for CircuitBreakers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakers")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CircuitBreakers {
    /// An empty set; each endpoint's breaker gets `config` (a seed, if set, is offset by the
    /// order endpoints are first seen, so breakers do not jitter in lockstep).
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            map: Arc::default(),
        }
    }

    /// The breaker of `endpoint`, created closed on first use.
    pub fn get(&self, endpoint: &str) -> CircuitBreaker {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = map.get(endpoint) {
            return b.clone();
        }
        let mut config = self.config;
        if let Some(seed) = config.seed {
            config.seed = Some(seed.wrapping_add(map.len() as u64));
        }
        let breaker = CircuitBreaker::new(endpoint, config);
        map.insert(breaker.shared.endpoint.clone(), breaker.clone());
        breaker
    }

    /// Snapshots of every breaker, in no particular order.
    pub fn snapshots(&self) -> Vec<BreakerSnapshot> {
        let breakers: Vec<CircuitBreaker> = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        breakers.iter().map(CircuitBreaker::snapshot).collect()
    }
}
