//! Injectable time for the authorization server: token lifetimes, `exp`/`nbf` checks and the
//! failed-attempt rate limiter all read a [`Clock`], so tests move time instead of sleeping.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

pub use crate::clock::{Clock, system_clock};

/// A clock that only moves when told to (for tests and simulations).
///
/// ```
/// use std::time::Duration;
/// use scheduler_server::auth::ManualClock;
///
/// let manual = ManualClock::new(jiff::Timestamp::from_second(1_000).unwrap());
/// let clock = manual.clock();
/// manual.advance(Duration::from_secs(61));
/// assert_eq!(clock().as_second(), 1_061);
/// ```
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Arc<Self> {
        Arc::new(Self {
            now: Mutex::new(start),
        })
    }

    /// A [`Clock`] reading this manual clock.
    pub fn clock(self: &Arc<Self>) -> Clock {
        let this = Arc::clone(self);
        Arc::new(move || this.now())
    }

    /// The time it stands at.
    pub fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the clock to `now` (backwards too).
    pub fn set(&self, now: Timestamp) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// Moves the clock forward by `by` (saturating at the end of time).
    pub fn advance(&self, by: Duration) {
        let by = SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX);
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = now.saturating_add(by).unwrap_or(Timestamp::MAX);
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}
