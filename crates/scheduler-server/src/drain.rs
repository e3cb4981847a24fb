//! Graceful shutdown without lost answers: counts the `/mcp` requests in flight (until their
//! response body has been sent or dropped), so shutdown can wait for them before it ends the
//! MCP sessions and streams.
//!
//! Ending the sessions cancels rmcp's handlers; done at once, a call whose insert had already
//! committed would lose its answer (and a client would retry it, elsewhere). The standalone
//! `GET` streams are not counted: they never end on their own, and ending them is the point.
//!
//! Once shutdown begins, new requests are refused with `503` and `Retry-After: 1` (not
//! processed: a client retries them safely), so the drain only waits for the ones already
//! admitted. (Without that, requests on still-open keep-alive connections kept arriving after
//! the count had touched zero, and ending the sessions then cancelled some whose insert had
//! committed.)

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::Method;
use tokio::sync::Notify;

/// The requests in flight, shared by the middleware and the shutdown.
#[derive(Clone, Default)]
pub(crate) struct InFlight(Arc<Inner>);

#[derive(Default)]
struct Inner {
    count: AtomicUsize,
    idle: Notify,
    /// Set when shutdown begins: new requests are refused (503, not processed).
    closing: std::sync::atomic::AtomicBool,
}

/// Decrements the count when the response is done.
struct Guard(InFlight);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.0.idle.notify_waiters();
        }
    }
}

impl InFlight {
    fn enter(&self) -> Guard {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        Guard(self.clone())
    }

    /// Requests in flight now.
    pub(crate) fn count(&self) -> usize {
        self.0.count.load(Ordering::Acquire)
    }

    /// Refuses every request from now on (503 with `Retry-After`: not processed, so a client
    /// retries it safely, elsewhere), so the count can only fall. Call before
    /// [`drained`](Self::drained): a request that was admitted is already counted.
    pub(crate) fn close(&self) {
        self.0.closing.store(true, Ordering::SeqCst);
    }

    /// Waits until no request is in flight, or `limit` has passed; returns how many remain.
    pub(crate) async fn drained(&self, limit: Duration) -> usize {
        let wait = async {
            loop {
                let idle = self.0.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if self.count() == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
        self.count()
    }
}

/// Middleware: counts every request but `GET` until its response body ends.
pub(crate) async fn track(
    State(in_flight): State<InFlight>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::GET {
        return next.run(request).await;
    }
    // Counted first, then checked: a request that sees "open" is counted before shutdown
    // starts waiting, so the drain waits for it; one that sees "closing" is refused unprocessed.
    let guard = in_flight.enter();
    if in_flight.0.closing.load(Ordering::SeqCst) {
        drop(guard);
        return Response::builder()
            .status(http::StatusCode::SERVICE_UNAVAILABLE)
            .header(http::header::RETRY_AFTER, "1")
            .header(http::header::CONNECTION, "close")
            .body(Body::from("the server is shutting down; retry the request"))
            .unwrap_or_default();
    }
    next.run(request).await.map(|body| {
        Body::new(Tracked {
            inner: body,
            _guard: guard,
        })
    })
}

pin_project_lite::pin_project! {
    /// A response body that holds its request's place in the count until it is dropped.
    struct Tracked {
        #[pin]
        inner: Body,
        _guard: Guard,
    }
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drained_waits_for_the_last_guard_and_is_bounded() {
        let in_flight = InFlight::default();
        assert_eq!(in_flight.drained(Duration::from_secs(1)).await, 0);
        let a = in_flight.enter();
        let b = in_flight.enter();
        let waiter = tokio::spawn({
            let in_flight = in_flight.clone();
            async move { in_flight.drained(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(a);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished(), "one request is still in flight");
        drop(b);
        assert_eq!(waiter.await.ok(), Some(0));
        let _stuck = in_flight.enter();
        assert_eq!(
            in_flight.drained(Duration::from_secs(2)).await,
            1,
            "bounded"
        );
    }
}
