//! Resilience for MCP calls: backoff with jitter, `Retry-After`, retry budgets, circuit
//! breakers, multi-region failover with health probes, hedging and idempotency keys.
//!
//! # Status
//!
//! The policies and their tower layers land with the mcp-resilience issue. Today the crate
//! exposes only its [`Error`] type.
//!
//! # Architecture invariants
//!
//! - Depends on `mcp-transport` for its traits only; knows nothing of auth schemes, Azure or
//!   scheduling.
//! - Decisions (what to do next, how long to wait) are pure functions of state, clock and
//!   randomness, separate from the waiting, so they test with paused time and no network.
//! - A create is never retried, hedged or failed over unless it carries an idempotency key,
//!   and every attempt of one logical call carries the same key.
//!
//! # Example
//!
//! ```
//! fn should_page_oncall(err: &mcp_resilience::Error) -> bool {
//!     err.is_no_healthy_endpoint() || err.is_circuit_open()
//! }
//! # let _ = should_page_oncall;
//! ```

mod error;

pub use error::Error;
