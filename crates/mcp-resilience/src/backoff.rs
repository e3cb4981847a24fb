//! How long to wait before each retry: exponential backoff with a choice of jitter.
//!
//! Every delay is a pure function of the retry number, the previous delay (for decorrelated
//! jitter) and a [`fastrand::Rng`] the caller owns, so a seeded generator gives the same
//! delays every time.
//!
//! ```
//! use std::time::Duration;
//! use mcp_resilience::backoff::{Backoff, Strategy};
//!
//! let backoff = Backoff::new()
//!     .strategy(Strategy::EqualJitter)
//!     .base(Duration::from_millis(200))
//!     .cap(Duration::from_secs(5));
//! let mut rng = fastrand::Rng::with_seed(7);
//! let first = backoff.delay(1, Duration::ZERO, &mut rng);
//! assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
//! ```

use std::time::Duration;

/// How a delay is drawn from the exponential ceiling `c(n) = min(cap, base · 2^(n-1))` of the
/// `n`-th retry (`n` from 1).
///
/// The names and formulas are those of the AWS Architecture Blog's "Exponential Backoff And
/// Jitter"; its simulator found full and decorrelated jitter finish contended work soonest
/// with the fewest calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Uniform in `[0, c(n)]` (the default, as smithy-rs does).
    #[default]
    FullJitter,
    /// Uniform in `[c(n)/2, c(n)]`: never shorter than half the ceiling.
    EqualJitter,
    /// Uniform in `[base, 3 · previous]`, capped: each delay grows from the last one drawn
    /// (the first draws from `[base, 3 · base]`).
    DecorrelatedJitter,
    /// Exactly `c(n)`, no jitter: clients that failed together retry together. For tests and
    /// single-client tools.
    Exponential,
    /// Always `base` (capped), no jitter.
    Constant,
}

/// Backoff settings: strategy, base, cap and how many retries. Builder-style; the defaults are
/// the design document's (`max_retries` 3, `base_delay_ms` 1000, `max_delay_ms` 10000) with
/// full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub(crate) strategy: Strategy,
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
    pub(crate) max_retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// Full jitter, base 1 s, cap 10 s, 3 retries (4 attempts in all).
    pub const fn new() -> Self {
        Self {
            strategy: Strategy::FullJitter,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
            max_retries: 3,
        }
    }

    /// How each delay is drawn (default [`Strategy::FullJitter`]).
    #[must_use]
    pub const fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The first retry's ceiling, doubled for each later retry (default 1 s). A cap below it
    /// is raised to it.
    #[must_use]
    pub fn base(mut self, base: Duration) -> Self {
        self.base = base;
        self.cap = self.cap.max(base);
        self
    }

    /// The longest delay (default 10 s). Also bounds a server's `Retry-After`. A cap below
    /// the base is raised to the base.
    #[must_use]
    pub fn cap(mut self, cap: Duration) -> Self {
        self.cap = cap.max(self.base);
        self
    }

    /// How many retries after the first attempt (default 3); 0 turns retries off.
    #[must_use]
    pub const fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The longest delay, which also bounds a server's `Retry-After`.
    pub const fn max_delay(&self) -> Duration {
        self.cap
    }

    /// How many retries are allowed after the first attempt.
    pub const fn retries_allowed(&self) -> u32 {
        self.max_retries
    }

    /// The exponential ceiling of retry `n` (from 1): `min(cap, base · 2^(n-1))`, saturating.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(63);
        let factor = 1u64 << doublings;
        let nanos = nanos(self.base).saturating_mul(factor);
        Duration::from_nanos(nanos).min(self.cap)
    }

    /// The delay before retry `n` (from 1). `previous` is the delay drawn before retry
    /// `n - 1` (only [`Strategy::DecorrelatedJitter`] reads it; pass [`Duration::ZERO`] for
    /// the first). Never above the cap; deterministic for a seeded `rng`.
    pub fn delay(&self, retry: u32, previous: Duration, rng: &mut fastrand::Rng) -> Duration {
        match self.strategy {
            Strategy::FullJitter => uniform(rng, Duration::ZERO, self.ceiling(retry)),
            Strategy::EqualJitter => {
                let ceiling = self.ceiling(retry);
                uniform(rng, ceiling / 2, ceiling)
            }
            Strategy::DecorrelatedJitter => {
                let previous = previous.max(self.base);
                let high = previous.saturating_mul(3).min(self.cap);
                uniform(rng, self.base.min(high), high)
            }
            Strategy::Exponential => self.ceiling(retry),
            Strategy::Constant => self.base.min(self.cap),
        }
    }

    /// The delays before each allowed retry, in order, drawn from `rng`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mcp_resilience::backoff::{Backoff, Strategy};
    ///
    /// let exact: Vec<_> = Backoff::new()
    ///     .strategy(Strategy::Exponential)
    ///     .delays(fastrand::Rng::new())
    ///     .collect();
    /// assert_eq!(exact, [1, 2, 4].map(Duration::from_secs));
    /// ```
    pub fn delays(&self, rng: fastrand::Rng) -> Delays {
        Delays {
            backoff: *self,
            rng,
            retry: 0,
            previous: Duration::ZERO,
        }
    }
}

/// The delays of one call's retries; see [`Backoff::delays`].
#[derive(Debug, Clone)]
pub struct Delays {
    backoff: Backoff,
    rng: fastrand::Rng,
    retry: u32,
    previous: Duration,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.retry >= self.backoff.max_retries {
            return None;
        }
        self.retry += 1;
        self.previous = self.backoff.delay(self.retry, self.previous, &mut self.rng);
        Some(self.previous)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Uniform in `[low, high]` at nanosecond resolution (`high` below `low` gives `low`).
pub(crate) fn uniform(rng: &mut fastrand::Rng, low: Duration, high: Duration) -> Duration {
    let (low, high) = (nanos(low), nanos(high));
    if high <= low {
        return Duration::from_nanos(low);
    }
    Duration::from_nanos(rng.u64(low..=high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_saturates_instead_of_overflowing() {
        let b = Backoff::new().cap(Duration::MAX);
        assert_eq!(b.ceiling(0), Duration::from_secs(1));
        assert_eq!(b.ceiling(1), Duration::from_secs(1));
        assert_eq!(b.ceiling(3), Duration::from_secs(4));
        assert_eq!(b.ceiling(200), Duration::from_nanos(u64::MAX));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn cap_never_below_base() {
        let b = Backoff::new().cap(Duration::from_millis(1));
        assert_eq!(b.max_delay(), Duration::from_secs(1));
        let b = Backoff::new().base(Duration::from_secs(30));
        assert_eq!(b.max_delay(), Duration::from_secs(30));
    }
}
