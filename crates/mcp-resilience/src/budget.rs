//! A retry budget: a token bucket shared by every call of a client, so retries stop when most
//! calls fail instead of multiplying the load on a struggling server.
//!
//! The accounting is gRPC A6 retry throttling's (a retry is allowed only while successes keep
//! paying for it) with smithy-rs's reservation (a retry pays when it is *scheduled*): the
//! bucket starts full; scheduling a retry withdraws its cost, which is spent whatever the
//! retry's outcome; every call that succeeds, at its first attempt or a later one, deposits a
//! refund. When the bucket cannot pay for a retry, the call fails at once with
//! [`Error::is_budget_exhausted`].
//!
//! So, whatever the load, retries stay below one per `retry cost / refund` successful calls
//! in the long run, plus a burst of `capacity / retry cost` from a full bucket: with the
//! defaults, at most one retry per ten successful calls (gRPC's `tokenRatio` 0.1) plus 100.
//! A server at capacity sees at most about 1.1× the calls its clients make, where unbudgeted
//! retries multiply them by up to 1 + the retries allowed per call. A client whose calls
//! mostly succeed never notices the budget: a 5 % failure rate spends half of what successes
//! earn.
//!
//! (smithy-rs gives a retry that succeeds its cost back; under sustained overload that lets
//! the retries that get through pay for the next ones, and amplification reaches 1.3× at a
//! quarter over capacity in `cargo xtask bench resilience`. Here a retry that succeeds earns
//! the same refund as any success.)
//!
//! Because a retry pays when it is scheduled, not when it is sent, retries sitting in
//! backoff count against the budget: a burst of failures cannot queue more retries than the
//! budget allows (Envoy#30205 is the bug this avoids). [`RetryBudget::outstanding`] counts
//! them; the retry policy uses that count to [spread](crate::RetryPolicy::spread_retries)
//! retries out.
//!
//! | setting | default | source |
//! |---|---|---|
//! | capacity | 1000 | the burst of smithy-rs's 500 tokens at 5 a retry |
//! | retry cost | 10 | with the refund, gRPC A6's token ratio 0.1 |
//! | timeout retry cost | 20 | twice the retry cost, as smithy-rs `RETRY_TIMEOUT_COST` |
//! | conflict retry cost | 0 | a conflict is a healthy server's answer |
//! | success refund | 1 | the AWS SDKs' `NO_RETRY_INCREMENT` |
//!
//! With the defaults, 100 retries in a row with no success in between empty the bucket
//! (50 after timeouts).
//!
//! The bucket is one atomic counter: no lock on any path.
//!
//! # Metric hook
//!
//! A refused retry emits a `WARN` tracing event named `mcp_resilience.retry_budget.exhausted`
//! with target `mcp_resilience::budget` and the fields `cost`, `available`, `capacity` and
//! `outstanding`. The name and fields are stable.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::classify::FailureKind;
use crate::error::{Error, Kind};

/// Name of the event emitted when the budget refuses a retry.
pub const EXHAUSTED_EVENT: &str = "mcp_resilience.retry_budget.exhausted";

/// Settings of a [`RetryBudget`]; builder-style, defaults in the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    capacity: u32,
    retry_cost: u32,
    timeout_retry_cost: u32,
    conflict_retry_cost: u32,
    success_refund: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl BudgetConfig {
    /// Capacity 1000, retry cost 10, timeout retry cost 20, conflict retry cost 0, success
    /// refund 1.
    pub const fn new() -> Self {
        Self {
            capacity: 1000,
            retry_cost: 10,
            timeout_retry_cost: 20,
            conflict_retry_cost: 0,
            success_refund: 1,
        }
    }

    /// Tokens in a full bucket (default 1000). The bucket starts full.
    #[must_use]
    pub const fn capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }

    /// Tokens a retry costs (default 10).
    #[must_use]
    pub const fn retry_cost(mut self, cost: u32) -> Self {
        self.retry_cost = cost;
        self
    }

    /// Tokens a retry after a timeout costs (default 20): a timeout ties up the server
    /// longer, and timeouts in a row mean an unreachable or overwhelmed server.
    #[must_use]
    pub const fn timeout_retry_cost(mut self, cost: u32) -> Self {
        self.timeout_retry_cost = cost;
        self
    }

    /// Tokens a retry after a [conflict](FailureKind::Conflict) costs (default 0): the server
    /// answered, healthy, that another change won the race, so retrying adds no load that
    /// the budget should ration. The retry still counts as
    /// [outstanding](RetryBudget::outstanding), and the backoff's retry limit still applies.
    #[must_use]
    pub const fn conflict_retry_cost(mut self, cost: u32) -> Self {
        self.conflict_retry_cost = cost;
        self
    }

    /// Tokens every successful call adds back (default 1), up to the capacity.
    #[must_use]
    pub const fn success_refund(mut self, refund: u32) -> Self {
        self.success_refund = refund;
        self
    }

    /// A bucket with these settings.
    pub fn build(self) -> RetryBudget {
        RetryBudget {
            shared: Arc::new(Shared {
                config: self,
                tokens: AtomicU32::new(self.capacity),
                outstanding: AtomicU32::new(0),
            }),
        }
    }

    /// The cost of a retry after a failure of `kind`.
    pub const fn cost_of(&self, kind: FailureKind) -> u32 {
        match kind {
            FailureKind::Timeout => self.timeout_retry_cost,
            FailureKind::Conflict => self.conflict_retry_cost,
            _ => self.retry_cost,
        }
    }
}

/// The retry token bucket. Cheap to clone; clones share the bucket. See the
/// [module docs](self).
///
/// ```
/// use mcp_resilience::budget::BudgetConfig;
/// use mcp_resilience::classify::FailureKind;
///
/// let budget = BudgetConfig::new().capacity(20).build();
/// let first = budget.try_reserve(FailureKind::ServerError).expect("20 tokens pay for one");
/// let second = budget.try_reserve(FailureKind::ServerError).expect("and a second");
/// assert_eq!(budget.outstanding(), 2);
/// assert!(budget.try_reserve(FailureKind::ServerError).unwrap_err().is_budget_exhausted());
/// first.succeeded(); // a success earns the refund, like any other
/// drop(second); // a failed retry
/// assert_eq!((budget.available(), budget.outstanding()), (1, 0));
/// // Ten more successful calls pay for the next retry.
/// (0..9).for_each(|_| budget.record_success());
/// assert!(budget.try_reserve(FailureKind::ServerError).is_ok());
/// ```
#[derive(Clone)]
pub struct RetryBudget {
    shared: Arc<Shared>,
}

struct Shared {
    config: BudgetConfig,
    tokens: AtomicU32,
    /// Retries holding a permit: waiting in backoff or running.
    outstanding: AtomicU32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("available", &self.available())
            .field("capacity", &self.shared.config.capacity)
            .field("outstanding", &self.outstanding())
            .finish()
    }
}

impl RetryBudget {
    /// A full bucket with the default settings.
    pub fn new() -> Self {
        BudgetConfig::new().build()
    }

    /// The bucket's settings.
    pub fn config(&self) -> &BudgetConfig {
        &self.shared.config
    }

    /// Tokens left.
    pub fn available(&self) -> u32 {
        self.shared.tokens.load(Ordering::Relaxed)
    }

    /// Retries that hold tokens now: scheduled and waiting in backoff, or running.
    pub fn outstanding(&self) -> u32 {
        self.shared.outstanding.load(Ordering::Relaxed)
    }

    /// Withdraws the cost of a retry after a failure of `kind`; the retry counts as
    /// [outstanding](Self::outstanding) until its permit ends ([`RetryPermit::succeeded`]
    /// when it works, a drop otherwise). Fails at once (and emits the
    /// [metric event](self#metric-hook)) when the bucket cannot pay.
    pub fn try_reserve(&self, kind: FailureKind) -> Result<RetryPermit, Error> {
        let cost = self.shared.config.cost_of(kind);
        let taken = self
            .shared
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(cost));
        match taken {
            Ok(_) => {
                self.shared.outstanding.fetch_add(1, Ordering::Relaxed);
                Ok(RetryPermit {
                    shared: self.shared.clone(),
                    cost,
                })
            }
            Err(available) => {
                let capacity = self.shared.config.capacity;
                let outstanding = self.outstanding();
                tracing::warn!(
                    name: "mcp_resilience.retry_budget.exhausted",
                    target: "mcp_resilience::budget",
                    cost,
                    available,
                    capacity,
                    outstanding,
                    "retry budget exhausted: failing fast instead of retrying"
                );
                Err(Error::new(Kind::BudgetExhausted).with_context(format!(
                    "a retry costs {cost} tokens, {available} of {capacity} left, \
                     {outstanding} retries outstanding"
                )))
            }
        }
    }

    /// Records a call that succeeded at its first attempt: adds the success refund, up to
    /// the capacity. (A retry that succeeds says so through its permit.)
    pub fn record_success(&self) {
        deposit(&self.shared, self.shared.config.success_refund);
    }
}

fn deposit(shared: &Shared, amount: u32) {
    if amount == 0 {
        return;
    }
    let capacity = shared.config.capacity;
    // A full bucket (the common case) needs no write.
    let _ = shared
        .tokens
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
            (t < capacity).then(|| t.saturating_add(amount).min(capacity))
        });
}

/// Tokens held by one scheduled retry; see [`RetryBudget::try_reserve`].
#[must_use = "call `succeeded` when the retry works, so the success earns its refund"]
pub struct RetryPermit {
    shared: Arc<Shared>,
    cost: u32,
}

impl fmt::Debug for RetryPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPermit")
            .field("cost", &self.cost)
            .finish()
    }
}

impl RetryPermit {
    /// The tokens this retry cost.
    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// The retry worked: the call earns the success refund (the cost stays spent).
    pub fn succeeded(self) {
        deposit(&self.shared, self.shared.config.success_refund);
    }
}

impl Drop for RetryPermit {
    fn drop(&mut self) {
        self.shared.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}
