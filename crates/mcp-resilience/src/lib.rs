//! Resilience for MCP calls: backoff with jitter, `Retry-After`, retry budgets, circuit
//! breakers and idempotency keys, composed by a retry policy around any async operation,
//! and tower layers over the transport's HTTP service: retries, breakers, multi-region
//! failover with health probes, and hedging.
//!
//! - [`backoff`]: full, equal and decorrelated jitter, plain exponential and constant delays;
//!   the defaults are the design document's (3 retries, 1 s base, 10 s cap) with full jitter.
//! - [`classify`]: which outcomes are transient and whether a failed request may have been
//!   processed, for `mcp-transport` errors, HTTP responses and tool results.
//! - [`retry_after`]: the `Retry-After` parser (delta-seconds and the three HTTP-date forms),
//!   total over untrusted input.
//! - [`budget`]: the retry token bucket shared by a client's calls (gRPC A6's ratio: at most
//!   one retry per ten successful calls in the long run), which counts retries waiting in
//!   backoff so the policy can spread them.
//! - [`breaker`]: a circuit breaker per endpoint (failure ratio over a sliding window,
//!   minimum throughput, jittered and growing open time, half-open probes, slow calls).
//! - [`retry`]: [`RetryPolicy`] composes them; [`RetryPolicy::execute`] runs an operation
//!   under it, with the idempotency rule built in.
//! - [`layer`]: [`RetryLayer`] and [`CircuitBreakerLayer`], tower layers over the transport's
//!   HTTP service, which tell idempotent requests from the JSON-RPC body
//!   ([`layer::idempotency_of`]).
//! - [`failover`]: [`FailoverLayer`] sends each request to the preferred healthy region,
//!   probes `GET {url}/ping`, ejects failing endpoints for growing times and reports
//!   [`Failover::health`].
//! - [`hedge`]: [`HedgeLayer`] sends a second copy of a slow idempotent request.
//!
//! # The HTTP stack
//!
//! The layers wrap the pooled [`HttpClient`](mcp_transport::http::HttpClient) (or an auth
//! layer around it) and go under
//! [`HttpTransport::with_service`](mcp_transport::HttpTransport::with_service). From the
//! outside in:
//!
//! 1. [`RetryLayer`]: the whole call, with backoff, `Retry-After`, the budget and the
//!    deadline;
//! 2. [`FailoverLayer`]: each attempt to the preferred healthy region, moving on within the
//!    attempt when allowed;
//! 3. [`CircuitBreakerLayer`]: below failover, so each region has its breaker (an open one
//!    refuses unsent, and failover moves on);
//! 4. [`HedgeLayer`]: a slow idempotent request gets a second copy on the same region;
//! 5. auth (`mcp-auth`), then the pooled client.
//!
//! ```
//! use std::time::Duration;
//! use mcp_resilience::{
//!     Backoff, BreakerConfig, CircuitBreakerLayer, CircuitBreakers, Failover, FailoverConfig,
//!     FailoverLayer, HedgeDelay, HedgeLayer, RetryLayer, RetryPolicy,
//! };
//! use mcp_transport::http::{HttpClient, HttpConfig};
//! use mcp_transport::{HttpTransport, HttpTransportConfig};
//! use tower::ServiceBuilder;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let regions = [
//!     "https://scheduler-eastus.example/mcp",
//!     "https://scheduler-westus.example/mcp",
//! ];
//! let policy = RetryPolicy::new().backoff(Backoff::new().base(Duration::from_secs(1)));
//! let failover = Failover::new(regions, FailoverConfig::new())?;
//! let stack = ServiceBuilder::new()
//!     .layer(RetryLayer::new(policy.clone()))
//!     .layer(FailoverLayer::new(failover.clone())) // starts the probes on this runtime
//!     .layer(CircuitBreakerLayer::new(CircuitBreakers::new(BreakerConfig::new())))
//!     .layer(
//!         HedgeLayer::new(HedgeDelay::Fixed(Duration::from_millis(500)))
//!             .budget(policy.retry_budget().cloned()),
//!     )
//!     .service(HttpClient::new(&HttpConfig::default())?);
//! // The transport talks to the first region; failover rewrites each request's target.
//! let transport = HttpTransport::with_service(regions[0], HttpTransportConfig::default(), stack)?;
//! # let _ = transport;
//! assert_eq!(failover.health().endpoints.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! # }).unwrap();
//! ```
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
//! # Example: the policy around any operation
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
