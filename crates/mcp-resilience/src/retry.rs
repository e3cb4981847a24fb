//! The retry policy: backoff, classification, budget, circuit breaker, overall deadline and
//! per-attempt timeout around any async operation, with the idempotency rule built in.
//!
//! The decision after each attempt is [`RetryPolicy::decide`], a pure function of the
//! verdict, the retry state, the time left and a random source; [`RetryPolicy::execute`] is
//! the loop that runs attempts, keeps the books (budget, breaker) and waits.
//!
//! # The idempotency rule
//!
//! Every call declares what repeating it would do ([`Idempotency`]). A call that is
//! [`Idempotency::NonIdempotent`] (a create without an idempotency key) is retried only when
//! the classifier says the failed request cannot have been processed
//! ([`Delivery::NotProcessed`]: the connection was never made); after anything else it fails
//! with [`Error::is_not_retryable`], the failure as its source. Keyed calls hand the same key
//! to every attempt ([`Attempt::idempotency_key`]), so the server can deduplicate them.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::breaker::{CallOutcome, CircuitBreaker};
use crate::budget::{RetryBudget, RetryPermit};
use crate::classify::{Classify, DefaultClassifier, Delivery, FailureKind, Verdict};
use crate::error::{BoxError, Error, Kind};

/// An idempotency key: the same value on every attempt of one logical call, so the server
/// can recognise a repeat (the IETF `Idempotency-Key` draft). Not a secret. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(Arc<str>);

impl IdempotencyKey {
    /// A key with this value (generate it once per logical call, before the first attempt).
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        Self(key.into())
    }

    /// A fresh random key in the UUID version 4 format.
    pub fn random() -> Self {
        let bits = fastrand::u128(..);
        // Version 4, variant 10.
        let bits = (bits & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
        let s = format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            bits >> 96,
            (bits >> 80) & 0xffff,
            (bits >> 64) & 0xffff,
            (bits >> 48) & 0xffff,
            bits & 0xffff_ffff_ffff
        );
        Self(s.into())
    }

    /// The key's value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdempotencyKey").field(&&*self.0).finish()
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What repeating a call would do; decides whether a failure after the request was sent may
/// be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotency {
    /// Repeating it is harmless (reads, `tools/list`, deletes by id, puts of whole values).
    Idempotent,
    /// It carries this idempotency key on every attempt, so the server deduplicates repeats.
    Key(IdempotencyKey),
    /// Repeating it may act twice (a create without a key): retried only when the request
    /// cannot have been processed.
    NonIdempotent,
}

impl Idempotency {
    /// Whether a failure with this `delivery` may be retried.
    pub fn allows_retry(&self, delivery: Delivery) -> bool {
        match self {
            Self::Idempotent | Self::Key(_) => true,
            Self::NonIdempotent => delivery == Delivery::NotProcessed,
        }
    }

    /// The key, if the call carries one.
    pub fn key(&self) -> Option<&IdempotencyKey> {
        match self {
            Self::Key(k) => Some(k),
            _ => None,
        }
    }
}

/// What the operation is told about the attempt it is making.
#[derive(Debug, Clone)]
pub struct Attempt {
    number: u32,
    key: Option<IdempotencyKey>,
    deadline: Option<Instant>,
}

impl Attempt {
    /// 1 for the first attempt, 2 for the first retry, and so on.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// True for every attempt after the first.
    pub fn is_retry(&self) -> bool {
        self.number > 1
    }

    /// The call's idempotency key: the same on every attempt. Send it with the request.
    pub fn idempotency_key(&self) -> Option<&IdempotencyKey> {
        self.key.as_ref()
    }

    /// When this attempt will be abandoned (the per-attempt timeout or the overall deadline,
    /// whichever comes first), on tokio's clock; pass it on so the server can stop early.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// Where a call stands between attempts, for [`RetryPolicy::decide`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryState {
    /// Attempts made so far.
    pub attempts: u32,
    /// The delay before the last retry (zero before the first retry).
    pub previous_delay: Duration,
    /// How long the attempt that just failed took (zero when unknown).
    pub last_attempt: Duration,
    /// Other retries of the client waiting or running now ([`RetryBudget::outstanding`]);
    /// used when the policy [spreads retries](RetryPolicy::spread_retries).
    pub waiting: u32,
}

impl RetryState {
    /// The state after `attempts` attempts, the last retry having waited `previous_delay`.
    pub const fn new(attempts: u32, previous_delay: Duration) -> Self {
        Self {
            attempts,
            previous_delay,
            last_attempt: Duration::ZERO,
            waiting: 0,
        }
    }

    /// The same state, the failed attempt having taken `took` while `waiting` other retries
    /// of the client were waiting or running.
    #[must_use]
    pub const fn with_load(mut self, took: Duration, waiting: u32) -> Self {
        self.last_attempt = took;
        self.waiting = waiting;
        self
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Wait `delay`, then try again; the retry costs the budget what a `kind` failure costs.
    Retry {
        /// How long to wait.
        delay: Duration,
        /// The failure being retried.
        kind: FailureKind,
    },
    /// Do not try again.
    Stop(Stop),
}

/// Why a call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// The attempt succeeded.
    Success,
    /// The attempt failed permanently.
    Permanent,
    /// The failure may have been processed and the call is neither idempotent nor keyed.
    NotRetryable,
    /// Every allowed retry was used.
    Exhausted,
    /// The next attempt would start after the overall deadline.
    Deadline,
}

impl Stop {
    /// A stable lower-case name, as used in tracing fields.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Permanent => "permanent",
            Self::NotRetryable => "not_retryable",
            Self::Exhausted => "exhausted",
            Self::Deadline => "deadline",
        }
    }
}

/// Backoff, classifier, budget, breaker, deadline and per-attempt timeout, composed. Cheap to
/// clone; clones share the budget and breaker. `Send + Sync` when the classifier is.
///
/// | setting | default |
/// |---|---|
/// | backoff | [`Backoff::new`]: full jitter, base 1 s, cap 10 s, 3 retries |
/// | classifier | [`DefaultClassifier`] |
/// | budget | a new [`RetryBudget`] (1000 tokens), shared by clones |
/// | spread retries | on ([`spread_retries`](Self::spread_retries)) |
/// | breaker | none (attach the endpoint's with [`breaker`](Self::breaker)) |
/// | overall deadline | 60 s (azure_core's total retry time) |
/// | per-attempt timeout | 10 s (the design document's `timeout_ms`) |
/// | random source | seeded from entropy per call |
#[derive(Clone)]
pub struct RetryPolicy<C = DefaultClassifier> {
    backoff: Backoff,
    classifier: C,
    budget: Option<RetryBudget>,
    breaker: Option<CircuitBreaker>,
    deadline: Option<Duration>,
    attempt_timeout: Option<Duration>,
    seed: Option<u64>,
    spread: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> fmt::Debug for RetryPolicy<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("backoff", &self.backoff)
            .field("budget", &self.budget)
            .field("breaker", &self.breaker)
            .field("deadline", &self.deadline)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("spread", &self.spread)
            .finish_non_exhaustive()
    }
}

impl RetryPolicy {
    /// The defaults in the table above.
    pub fn new() -> Self {
        Self {
            backoff: Backoff::new(),
            classifier: DefaultClassifier,
            budget: Some(RetryBudget::new()),
            breaker: None,
            deadline: Some(Duration::from_secs(60)),
            attempt_timeout: Some(Duration::from_secs(10)),
            seed: None,
            spread: true,
        }
    }
}

impl<C> RetryPolicy<C> {
    /// The backoff (strategy, base, cap, retries).
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The classifier deciding which outcomes are transient.
    #[must_use]
    pub fn classifier<C2>(self, classifier: C2) -> RetryPolicy<C2> {
        RetryPolicy {
            backoff: self.backoff,
            classifier,
            budget: self.budget,
            breaker: self.breaker,
            deadline: self.deadline,
            attempt_timeout: self.attempt_timeout,
            seed: self.seed,
            spread: self.spread,
        }
    }

    /// The retry budget; share one among every policy of a client. `None` turns it off.
    #[must_use]
    pub fn budget(mut self, budget: Option<RetryBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// The circuit breaker of the endpoint the calls go to. `None` (the default) turns it off.
    #[must_use]
    pub fn breaker(mut self, breaker: Option<CircuitBreaker>) -> Self {
        self.breaker = breaker;
        self
    }

    /// The most time one call may take, all attempts and waits included (default 60 s).
    /// `None` means no overall deadline (each attempt still has its timeout).
    #[must_use]
    pub fn deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// The most time one attempt may take (default 10 s). `None` means attempts are bounded
    /// only by the overall deadline.
    #[must_use]
    pub fn attempt_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Spreads a client's retries over time when many wait at once (default on).
    ///
    /// When `n` other retries of the client are already waiting or running, a backoff delay
    /// is at least a uniform draw from `[0, n × the failed attempt's duration]`, capped by
    /// the backoff cap. One failing call retries on its backoff alone; a hundred calls that
    /// failed together (a conflict storm, a server blip) come back spread over about a
    /// hundred attempt-lengths instead of together, so fewer of them collide again.
    /// `Retry-After` delays are kept as the server gave them. Counting needs the budget:
    /// without one, or when `false`, delays are the backoff's alone.
    #[must_use]
    pub fn spread_retries(mut self, spread: bool) -> Self {
        self.spread = spread;
        self
    }

    /// Seeds the jitter of every call, for reproducible tests: each call then draws the same
    /// delays (default: a fresh random seed per call).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The backoff settings.
    pub fn backoff_settings(&self) -> &Backoff {
        &self.backoff
    }

    /// The retry budget, if any.
    pub fn retry_budget(&self) -> Option<&RetryBudget> {
        self.budget.as_ref()
    }

    /// The circuit breaker, if any.
    pub fn circuit_breaker(&self) -> Option<&CircuitBreaker> {
        self.breaker.as_ref()
    }

    /// What to do after an attempt whose outcome got `verdict`, with `remaining` time before
    /// the overall deadline. Pure: no clock, no budget, no waiting (the client's load arrives in
    /// `state`).
    ///
    /// In order: a success or permanent failure stops; a transient failure stops when every
    /// retry is used, or when `idempotency` forbids repeating a request that may have been
    /// processed; otherwise the delay is the server's `Retry-After` (capped by the backoff
    /// cap) or the backoff's next delay, and the call stops instead if that delay would reach
    /// the deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mcp_resilience::classify::{Delivery, FailureKind, Verdict};
    /// use mcp_resilience::retry::{Decision, Idempotency, RetryPolicy, RetryState, Stop};
    ///
    /// let policy = RetryPolicy::new();
    /// let mut rng = fastrand::Rng::with_seed(1);
    /// let sent = Verdict::transient(FailureKind::ServerError, Delivery::MaybeProcessed);
    /// let first = RetryState::new(1, Duration::ZERO);
    /// assert_eq!(
    ///     policy.decide(&Idempotency::NonIdempotent, &sent, &first, None, &mut rng),
    ///     Decision::Stop(Stop::NotRetryable)
    /// );
    /// let busy = sent.with_retry_after(Some(Duration::from_secs(2)));
    /// assert_eq!(
    ///     policy.decide(&Idempotency::Idempotent, &busy, &first, None, &mut rng),
    ///     Decision::Retry { delay: Duration::from_secs(2), kind: FailureKind::ServerError }
    /// );
    /// ```
    pub fn decide(
        &self,
        idempotency: &Idempotency,
        verdict: &Verdict,
        state: &RetryState,
        remaining: Option<Duration>,
        rng: &mut fastrand::Rng,
    ) -> Decision {
        let t = match verdict {
            Verdict::Success => return Decision::Stop(Stop::Success),
            Verdict::Permanent => return Decision::Stop(Stop::Permanent),
            Verdict::Transient(t) => t,
        };
        if state.attempts > self.backoff.max_retries {
            return Decision::Stop(Stop::Exhausted);
        }
        if !idempotency.allows_retry(t.delivery) {
            return Decision::Stop(Stop::NotRetryable);
        }
        let delay = match t.retry_after {
            Some(wait) => crate::retry_after::clamp(wait, self.backoff.cap, None),
            None => {
                let own = self
                    .backoff
                    .delay(state.attempts, state.previous_delay, rng);
                if self.spread && self.budget.is_some() && state.waiting > 0 {
                    let window = state
                        .last_attempt
                        .saturating_mul(state.waiting)
                        .min(self.backoff.cap);
                    own.max(crate::backoff::uniform(rng, Duration::ZERO, window))
                } else {
                    own
                }
            }
        };
        if remaining.is_some_and(|r| delay >= r) {
            return Decision::Stop(Stop::Deadline);
        }
        Decision::Retry {
            delay,
            kind: t.kind,
        }
    }

    /// Runs `op` until it succeeds, fails permanently, or the policy stops retrying.
    ///
    /// Each attempt: the breaker admits it (or the call fails with
    /// [`Error::is_circuit_open`]); `op` runs under the per-attempt timeout and the overall
    /// deadline; the classifier judges the outcome; the breaker and the budget record it;
    /// [`decide`](Self::decide) says whether to retry; a retry reserves its budget tokens
    /// (or the call fails with [`Error::is_budget_exhausted`]) and then waits.
    ///
    /// Returns the value of the last attempt when it is `Ok`, even if the classifier judged
    /// it a failure (a 503 response, a tool result with `isError`), so the caller can read
    /// it. Otherwise returns an [`Error`] saying why the call ended
    /// ([`is_permanent`](Error::is_permanent), [`is_retries_exhausted`](Error::is_retries_exhausted),
    /// [`is_not_retryable`](Error::is_not_retryable), [`is_deadline_exceeded`](Error::is_deadline_exceeded),
    /// [`is_budget_exhausted`](Error::is_budget_exhausted), [`is_circuit_open`](Error::is_circuit_open)),
    /// with [`attempts`](Error::attempts) and the last attempt's error as its source (an
    /// attempt that timed out has an [`Error::is_timeout`] there).
    pub async fn execute<T, E, F, Fut>(
        &self,
        idempotency: Idempotency,
        mut op: F,
    ) -> Result<T, Error>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<BoxError>,
        C: Classify<T, E>,
    {
        let start = Instant::now();
        let deadline = self.deadline.and_then(|d| start.checked_add(d));
        let mut state = RetryState::default();
        let mut rng: Option<fastrand::Rng> = None;
        let mut permit: Option<RetryPermit> = None;
        let mut last_error: Option<BoxError> = None;
        loop {
            state.attempts += 1;
            let admission = match &self.breaker {
                Some(breaker) => match breaker.try_acquire() {
                    Ok(admission) => Some(admission),
                    Err(e) => {
                        return Err(e
                            .with_attempts(state.attempts - 1)
                            .with_source_opt(last_error));
                    }
                },
                None => None,
            };
            let attempt_start = if state.attempts == 1 {
                start
            } else {
                Instant::now()
            };
            let attempt_deadline = match (
                self.attempt_timeout
                    .and_then(|t| attempt_start.checked_add(t)),
                deadline,
            ) {
                (Some(a), Some(d)) => Some(a.min(d)),
                (a, d) => a.or(d),
            };
            let attempt = Attempt {
                number: state.attempts,
                key: idempotency.key().cloned(),
                deadline: attempt_deadline,
            };
            let outcome = match attempt_deadline {
                Some(at) => tokio::time::timeout_at(at, op(attempt)).await.ok(),
                None => Some(op(attempt).await),
            };
            let verdict = match &outcome {
                Some(result) => self.classifier.classify(result.as_ref()),
                None => Verdict::transient(FailureKind::Timeout, Delivery::MaybeProcessed),
            };
            if let Some(admission) = admission {
                let failed = verdict
                    .as_transient()
                    .is_some_and(|t| t.kind != FailureKind::Conflict);
                admission.record(if failed {
                    CallOutcome::Failure
                } else {
                    CallOutcome::Success
                });
            }
            match (&verdict, permit.take()) {
                // A retry that worked earns the success refund.
                (Verdict::Success, Some(p)) => p.succeeded(),
                (Verdict::Success, None) => {
                    if let Some(budget) = &self.budget {
                        budget.record_success();
                    }
                }
                // A failed retry spends its tokens (the permit drops here).
                _ => {}
            }

            // Keep the value, or the error as the source of ours.
            let value = match outcome {
                Some(Ok(value)) => Some(value),
                Some(Err(e)) => {
                    last_error = Some(e.into());
                    None
                }
                None => {
                    let now = Instant::now();
                    if deadline.is_some_and(|d| now >= d) {
                        finished(Stop::Deadline, state.attempts);
                        return Err(Error::new(Kind::DeadlineExceeded)
                            .with_attempts(state.attempts)
                            .with_context("the overall deadline passed during an attempt")
                            .with_source_opt(last_error));
                    }
                    last_error = Some(Box::new(Error::new(Kind::Timeout).with_context(format!(
                        "attempt {} ran past its {} ms timeout",
                        state.attempts,
                        self.attempt_timeout.unwrap_or_default().as_millis()
                    ))));
                    None
                }
            };

            let decision = match verdict {
                Verdict::Success => Decision::Stop(Stop::Success),
                Verdict::Permanent => Decision::Stop(Stop::Permanent),
                Verdict::Transient(_) => {
                    let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    let rng = rng.get_or_insert_with(|| {
                        self.seed
                            .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed)
                    });
                    let waiting = self.budget.as_ref().map_or(0, RetryBudget::outstanding);
                    let load = state.with_load(attempt_start.elapsed(), waiting);
                    self.decide(&idempotency, &verdict, &load, remaining, rng)
                }
            };
            let (delay, kind) = match decision {
                Decision::Retry { delay, kind } => (delay, kind),
                Decision::Stop(stop) => {
                    if let Some(value) = value {
                        return Ok(value);
                    }
                    let kind = match stop {
                        Stop::Success | Stop::Permanent => Kind::Permanent,
                        Stop::NotRetryable => Kind::NotRetryable,
                        Stop::Exhausted => Kind::RetriesExhausted,
                        Stop::Deadline => Kind::DeadlineExceeded,
                    };
                    if !matches!(stop, Stop::Success | Stop::Permanent) {
                        finished(stop, state.attempts);
                    }
                    return Err(Error::new(kind)
                        .with_attempts(state.attempts)
                        .with_source_opt(last_error));
                }
            };
            if let Some(budget) = &self.budget {
                match budget.try_reserve(kind) {
                    Ok(p) => permit = Some(p),
                    Err(e) => {
                        if let Some(value) = value {
                            return Ok(value);
                        }
                        return Err(e.with_attempts(state.attempts).with_source_opt(last_error));
                    }
                }
            }
            drop(value);
            let attempt = state.attempts;
            let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            tracing::debug!(
                name: "mcp_resilience.retry.scheduled",
                target: "mcp_resilience::retry",
                attempt,
                delay_ms,
                kind = kind.as_str(),
                "retrying after a transient failure"
            );
            tokio::time::sleep(delay).await;
            state.previous_delay = delay;
        }
    }
}

/// The event of a call that ended on a failure the policy could not retry.
fn finished(stop: Stop, attempts: u32) {
    tracing::info!(
        name: "mcp_resilience.retry.gave_up",
        target: "mcp_resilience::retry",
        reason = stop.as_str(),
        attempts,
        "call failed; not retrying"
    );
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<RetryPolicy>();
};
