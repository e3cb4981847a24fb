//! Time as a value: everything that reads the clock takes a [`Clock`], so tests drive time.

use std::sync::Arc;

use jiff::Timestamp;

/// Returns "now".
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(Timestamp::now)
}
