//! Hedged requests over the transport's HTTP service: when an idempotent request has not been
//! answered after a delay, a second copy is sent; the first good answer wins and the other
//! attempt is dropped (its connection is cancelled).
//!
//! - Only `POST`s that are safe to repeat are hedged: [`Idempotency::Idempotent`] or keyed,
//!   by the same rules as [`RetryLayer`](crate::RetryLayer) ([`idempotency_of`]). Everything
//!   else passes through untouched, the transport's `GET` streams included (a second
//!   standalone stream would be refused by the server, and the transport resumes streams
//!   itself).
//! - The delay runs until the response *head*: a response whose head has arrived is never
//!   hedged, even if its body (an SSE stream) is slow.
//! - The delay is fixed, or a percentile of recent latencies ([`HedgeDelay`]): with the
//!   95th percentile, about one request in twenty is hedged.
//! - Bounded: at most [`max_extra`](HedgeLayer::max_extra) extra attempts (default 1), each
//!   sent a delay after the previous one.
//! - Each extra attempt costs the [`RetryBudget`] what a retry costs (share the retry
//!   layer's budget); when the budget refuses, the request is not hedged and waits for the
//!   attempts in flight. The cost is spent whichever attempt wins; a win earns the success
//!   refund, like a retry that works, so hedges stay within the budget's long-run share.
//! - "Good" is judged by [`HttpClassifier`]: a success or a permanent answer (a `400`, a
//!   session `404`) wins at once; a transient failure (a `503`, a reset) waits for the other
//!   attempts, and is returned only if every attempt fails (the last failure).
//!
//! Events (`DEBUG`, target `mcp_resilience::hedge`, field `attempt`):
//! `mcp_resilience.hedge.sent` when an extra attempt goes out, `mcp_resilience.hedge.won`
//! when an extra attempt's answer is the one returned.
//!
//! Hedging is not retrying: a request that fails fast is not hedged. Put [`HedgeLayer`]
//! below the retry layer, so each retry attempt may be hedged.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::budget::{RetryBudget, RetryPermit};
use crate::classify::{Classify, FailureKind, HttpClassifier};
use crate::error::BoxError;
use crate::layer::{BoxFuture, idempotency_of, oneshot, replay};
use crate::retry::Idempotency;

/// How long to wait for an answer before sending another attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum HedgeDelay {
    /// Always this long.
    Fixed(Duration),
    /// This percentile (in `(0, 1]`, e.g. 0.95) of the latencies of the last
    /// [`PERCENTILE_WINDOW`] good answers; `fallback` until `min_samples` are known.
    Percentile {
        /// The percentile, clamped to `(0, 1]`.
        percentile: f64,
        /// Answers needed before the percentile is trusted.
        min_samples: usize,
        /// The delay until then.
        fallback: Duration,
    },
}

/// How many recent latencies [`HedgeDelay::Percentile`] looks at.
pub const PERCENTILE_WINDOW: usize = 256;

#[derive(Debug, Default)]
struct Latencies {
    recent: VecDeque<Duration>,
}

impl Latencies {
    fn record(&mut self, latency: Duration) {
        if self.recent.len() == PERCENTILE_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(latency);
    }

    fn percentile(&self, p: f64) -> Option<Duration> {
        if self.recent.is_empty() {
            return None;
        }
        let mut sorted: Vec<Duration> = self.recent.iter().copied().collect();
        let p = if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) };
        // Nearest rank.
        let rank = (p * sorted.len() as f64).ceil() as usize;
        let index = rank.clamp(1, sorted.len()) - 1;
        let (_, value, _) = sorted.select_nth_unstable(index);
        Some(*value)
    }
}

/// Hedges idempotent requests; see the [module docs](self). Clones share the latency
/// window and the budget.
#[derive(Debug, Clone)]
pub struct HedgeLayer {
    delay: HedgeDelay,
    max_extra: u32,
    budget: Option<RetryBudget>,
    latencies: Arc<Mutex<Latencies>>,
}

impl HedgeLayer {
    /// A layer hedging after `delay`, with at most one extra attempt and no budget.
    pub fn new(delay: HedgeDelay) -> Self {
        Self {
            delay,
            max_extra: 1,
            budget: None,
            latencies: Arc::default(),
        }
    }

    /// The most extra attempts per request (default 1; 0 turns hedging off).
    #[must_use]
    pub fn max_extra(mut self, n: u32) -> Self {
        self.max_extra = n;
        self
    }

    /// The budget extra attempts are paid from (share the retry policy's:
    /// [`RetryPolicy::retry_budget`](crate::RetryPolicy::retry_budget)). `None` (the default)
    /// means hedges are bounded by `max_extra` only.
    #[must_use]
    pub fn budget(mut self, budget: Option<RetryBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// The delay the next request would wait before hedging.
    pub fn current_delay(&self) -> Duration {
        current_delay(&self.delay, &self.latencies)
    }
}

fn current_delay(delay: &HedgeDelay, latencies: &Mutex<Latencies>) -> Duration {
    match *delay {
        HedgeDelay::Fixed(d) => d,
        HedgeDelay::Percentile {
            percentile,
            min_samples,
            fallback,
        } => {
            let l = latencies.lock().unwrap_or_else(PoisonError::into_inner);
            if l.recent.len() < min_samples.max(1) {
                fallback
            } else {
                l.percentile(percentile).unwrap_or(fallback)
            }
        }
    }
}

impl<S> Layer<S> for HedgeLayer {
    type Service = HedgeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HedgeService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`HedgeLayer`].
#[derive(Debug, Clone)]
pub struct HedgeService<S> {
    inner: S,
    layer: HedgeLayer,
}

impl<S, B> Service<http::Request<Bytes>> for HedgeService<S>
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
        let layer = self.layer.clone();
        Box::pin(async move {
            let hedgeable = layer.max_extra > 0
                && req.method() == http::Method::POST
                && matches!(
                    idempotency_of(&req),
                    Idempotency::Idempotent | Idempotency::Key(_)
                );
            if !hedgeable {
                return oneshot(inner, req).await;
            }
            hedged(inner, layer, req).await
        })
    }
}

async fn hedged<S, B>(
    inner: S,
    layer: HedgeLayer,
    req: http::Request<Bytes>,
) -> Result<http::Response<B>, BoxError>
where
    S: Service<http::Request<Bytes>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let classifier = HttpClassifier::new();
    let attempt = move |n: usize| {
        let call = oneshot(inner.clone(), replay(&req));
        async move {
            let started = Instant::now();
            let result = call.await;
            (n, started.elapsed(), result)
        }
    };
    let mut inflight = FuturesUnordered::new();
    inflight.push(attempt(0));
    // Permits of the extra attempts, by attempt number - 1.
    let mut permits: Vec<Option<RetryPermit>> = Vec::new();
    let mut can_hedge = true;
    let timer = tokio::time::sleep(current_delay(&layer.delay, &layer.latencies));
    tokio::pin!(timer);
    loop {
        tokio::select! {
            Some((n, latency, result)) = inflight.next() => {
                let verdict = classifier.classify(result.as_ref());
                if !verdict.is_transient() {
                    if result.is_ok() {
                        layer
                            .latencies
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .record(latency);
                    }
                    if n > 0
                        && let Some(permit) = permits.get_mut(n - 1).and_then(Option::take)
                    {
                        permit.succeeded();
                    }
                    if n > 0 {
                        tracing::debug!(
                            name: "mcp_resilience.hedge.won",
                            target: "mcp_resilience::hedge",
                            attempt = n + 1,
                            "a hedged attempt answered first"
                        );
                    }
                    // Dropping `inflight` cancels the other attempts.
                    return result;
                }
                if inflight.is_empty() {
                    return result;
                }
            }
            () = &mut timer, if can_hedge => {
                let sent = permits.len();
                let permit = match &layer.budget {
                    Some(budget) => match budget.try_reserve(FailureKind::Other) {
                        Ok(p) => Some(Some(p)),
                        Err(_) => None,
                    },
                    None => Some(None),
                };
                match permit {
                    Some(permit) => {
                        permits.push(permit);
                        inflight.push(attempt(sent + 1));
                        tracing::debug!(
                            name: "mcp_resilience.hedge.sent",
                            target: "mcp_resilience::hedge",
                            attempt = sent + 2,
                            "no answer yet: sending a hedged attempt"
                        );
                        can_hedge = permits.len() < layer.max_extra as usize;
                        let next = current_delay(&layer.delay, &layer.latencies);
                        timer.as_mut().reset(Instant::now() + next);
                    }
                    None => can_hedge = false,
                }
            }
        }
    }
}
