//! Resilience for MCP calls: backoff with jitter, `Retry-After`, retry budgets, circuit
//! breakers and idempotency keys, composed by a retry policy around any async operation.
//!
//! - [`backoff`]: full, equal and decorrelated jitter, plain exponential and constant delays;
//!   the defaults are the design document's (3 retries, 1 s base, 10 s cap) with full jitter.
//! - [`classify`]: which outcomes are transient and whether a failed request may have been
//!   processed, for `mcp-transport` errors, HTTP responses and tool results.
//! - [`retry_after`]: the `Retry-After` parser (delta-seconds and the three HTTP-date forms),
//!   total over untrusted input.
//! - [`budget`]: the retry token bucket shared by a client's calls (smithy-rs's quota), which
//!   counts retries waiting in backoff.
//! - [`breaker`]: a circuit breaker per endpoint (failure ratio over a sliding window,
//!   minimum throughput, jittered and growing open time, half-open probes, slow calls).
//! - [`retry`]: [`RetryPolicy`] composes them; [`RetryPolicy::execute`] runs an operation
//!   under it, with the idempotency rule built in.
//! - [`layer`]: [`RetryLayer`] and [`CircuitBreakerLayer`], tower layers over the transport's
//!   HTTP service, which tell idempotent requests from the JSON-RPC body.
//!
//! # Status
//!
//! This is the policy core. Tower layers over the HTTP service and over `McpClient` calls,
//! multi-endpoint failover with health probes, and hedging land with part 2 of the
//! mcp-resilience issue; [`Error::is_no_healthy_endpoint`] belongs to failover.
//!
//! # Architecture invariants
//!
//! - Depends on `mcp-transport` for its traits only; knows nothing of auth schemes, Azure or
//!   scheduling.
//! - Decisions (what to do next, how long to wait) are pure functions of state, clock and
//!   randomness, separate from the waiting, so they test with paused time and no network:
//!   [`RetryPolicy::decide`], [`Backoff::delay`], [`retry_after::parse`], the breaker's state
//!   machine on tokio's clock, the budget's one atomic counter.
//! - A create is never retried, hedged or failed over unless it carries an idempotency key,
//!   and every attempt of one logical call carries the same key ([`Idempotency`]).
//! - Policies are `Clone + Send + Sync`; clones share their budget and breaker state.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use mcp_resilience::{
//!     Backoff, BreakerConfig, CircuitBreakers, Idempotency, IdempotencyKey, RetryPolicy,
//! };
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let breakers = CircuitBreakers::new(BreakerConfig::new());
//! let policy = RetryPolicy::new()
//!     .backoff(Backoff::new().base(Duration::from_millis(1)))
//!     .breaker(Some(breakers.get("https://scheduler-eastus.example/mcp")));
//!
//! // One key for the logical call, generated before the first attempt.
//! let key = IdempotencyKey::random();
//! let scheduled = policy
//!     .execute(Idempotency::Key(key.clone()), |attempt| {
//!         let key = attempt.idempotency_key().cloned();
//!         async move {
//!             if attempt.number() == 1 {
//!                 // The first attempt's connection resets: transient, retried with the key.
//!                 return Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
//!             }
//!             Ok(format!("scheduled with key {}", key.expect("keyed call")))
//!         }
//!     })
//!     .await?;
//! assert_eq!(scheduled, format!("scheduled with key {key}"));
//!
//! fn should_page_oncall(err: &mcp_resilience::Error) -> bool {
//!     err.is_no_healthy_endpoint() || err.is_circuit_open()
//! }
//! # let _ = should_page_oncall;
//! # Ok::<(), mcp_resilience::Error>(())
//! # }).unwrap();
//! ```

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod classify;
mod error;
pub mod failover;
pub mod hedge;
pub mod layer;
pub mod retry;
pub mod retry_after;

pub use backoff::{Backoff, Strategy};
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker, CircuitBreakers};
pub use budget::{BudgetConfig, RetryBudget};
pub use classify::{Classify, DefaultClassifier, Verdict};
pub use error::{BoxError, Error};
pub use failover::{Failover, FailoverConfig, FailoverLayer};
pub use hedge::{HedgeDelay, HedgeLayer};
pub use layer::{CircuitBreakerLayer, RetryLayer};
pub use retry::{Attempt, Idempotency, IdempotencyKey, RetryPolicy};
