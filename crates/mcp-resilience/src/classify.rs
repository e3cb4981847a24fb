//! Which outcomes are worth retrying, and whether a failed request may have reached the
//! server.
//!
//! A [`Classify`] implementation looks at one attempt's outcome and returns a [`Verdict`]:
//! success, a [`Transient`] failure (with its [`FailureKind`], its [`Delivery`] and the wait
//! the server asked for, if any) or a permanent failure. Classification is pure: no clock
//! reads except the wall time a `Retry-After` date is measured from, which the HTTP
//! classifier takes from an injectable clock.
//!
//! The defaults:
//!
//! | outcome | verdict | delivery |
//! |---|---|---|
//! | connect error (DNS, TCP refused, TLS) | transient, [`Connect`](FailureKind::Connect) | [`NotProcessed`](Delivery::NotProcessed) |
//! | timeout (connect, response, per attempt) | transient, [`Timeout`](FailureKind::Timeout) | [`MaybeProcessed`](Delivery::MaybeProcessed) |
//! | HTTP 408, 504 | transient, `Timeout` | `MaybeProcessed` |
//! | HTTP 429 | transient, [`Throttled`](FailureKind::Throttled) | `NotProcessed` (a rate limiter refuses before the work) |
//! | HTTP 503 with `Retry-After` | transient, [`ServerError`](FailureKind::ServerError) | `NotProcessed` (the origin refusing for a while: overload or maintenance) |
//! | HTTP 500, 502, 503 without `Retry-After` | transient, `ServerError` | `MaybeProcessed` (a gateway's 503 can follow an upstream reset) |
//! | HTTP 404 on a request with `MCP-Session-Id` | transient, [`SessionExpired`](FailureKind::SessionExpired) | `NotProcessed` (the spec has the server refuse it unprocessed) |
//! | connection reset or broken mid-request | transient, [`Io`](FailureKind::Io) | `MaybeProcessed` |
//! | an `mcp-transport` I/O error from a layer of its HTTP stack | the verdict on the layer's error (its source): this crate's [`Error`] (see below) or an I/O error | as that verdict |
//! | JSON-RPC `-32603` internal error | transient, `ServerError` | `MaybeProcessed` |
//! | other 4xx, other JSON-RPC errors (invalid params, ...), protocol violations, bad config, closed client | permanent | — |
//! | tool result with `isError: true` | permanent | — |
//! | an unknown error type | transient, [`Other`](FailureKind::Other) | `MaybeProcessed` |
//!
//! `mcp-transport` handles MCP session expiry itself: on a 404 to a request that carried a
//! session id it re-initializes once and replays the request once. A 404 that still reaches
//! the caller as an [`mcp_transport::Error`] is therefore permanent (wrong URL, or the new
//! session was refused too). A classifier below the transport, which sees the raw HTTP
//! exchange, can tell a session 404 from the request: see [`HttpClassifier::session_request`].

use std::error::Error as StdError;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use mcp_transport::CallToolResult;

use crate::error::{BoxError, Error, Kind};

/// What one attempt's outcome means for the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// It worked: do not retry.
    Success,
    /// It failed in a way that may not happen again: retry if the policy allows.
    Transient(Transient),
    /// It failed in a way that will happen again (bad input, not found, a tool error): do not
    /// retry. For breaker health this counts as an answer from a working server.
    Permanent,
}

impl Verdict {
    /// A transient failure of `kind` whose request `delivery` says how far it got.
    pub const fn transient(kind: FailureKind, delivery: Delivery) -> Self {
        Self::Transient(Transient {
            kind,
            delivery,
            retry_after: None,
        })
    }

    /// The transient details, if this is a transient failure.
    pub const fn as_transient(&self) -> Option<&Transient> {
        match self {
            Self::Transient(t) => Some(t),
            _ => None,
        }
    }

    /// True for [`Verdict::Transient`].
    pub const fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    /// Sets the wait the server asked for (`Retry-After`); no effect unless transient.
    #[must_use]
    pub const fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        if let Self::Transient(t) = &mut self {
            t.retry_after = wait;
        }
        self
    }
}

/// A transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transient {
    /// What went wrong; timeouts cost more of the retry budget.
    pub kind: FailureKind,
    /// Whether the server may have acted on the request.
    pub delivery: Delivery,
    /// The wait the server asked for, already measured from when the response arrived.
    pub retry_after: Option<Duration>,
}

/// What kind of transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// No connection could be made (DNS, TCP, TLS); nothing was sent.
    Connect,
    /// A timeout, ours or the server's (408) or a gateway's (504).
    Timeout,
    /// The server is shedding load (429).
    Throttled,
    /// The server or a gateway failed (500, 502, 503, JSON-RPC internal error).
    ServerError,
    /// The MCP session the request named is gone (404 on a session request).
    SessionExpired,
    /// The connection broke while the request or response was in flight.
    Io,
    /// An error no classifier knows; treated as transient and possibly processed.
    Other,
    /// The circuit breaker refused the call; nothing was sent.
    CircuitOpen,
    /// The server, healthy, refused the request because a concurrent change won (an
    /// optimistic-concurrency conflict: HTTP 409 or 412 where the application says retrying
    /// is right). No default classifier returns it; a custom one does. It costs no
    /// [retry budget](crate::budget::BudgetConfig::conflict_retry_cost) and does not count
    /// against the endpoint's circuit breaker.
    Conflict,
}

impl FailureKind {
    /// A stable lower-case name, as used in tracing fields.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Throttled => "throttled",
            Self::ServerError => "server_error",
            Self::SessionExpired => "session_expired",
            Self::Io => "io",
            Self::Other => "other",
            Self::CircuitOpen => "circuit_open",
            Self::Conflict => "conflict",
        }
    }
}

/// Whether the server may have acted on a failed request. A call that is not idempotent and
/// carries no idempotency key is retried only after [`Delivery::NotProcessed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The server cannot have acted on it: the connection was never made, or the protocol
    /// has the server refuse it unprocessed (404 for an unknown MCP session).
    NotProcessed,
    /// The request was written, at least in part: the server may have acted on it, even if
    /// the answer was an error or never came.
    MaybeProcessed,
}

/// Says what an attempt's outcome means: the seam for custom retry rules.
///
/// Any `Fn(Result<&T, &E>) -> Verdict` closure is a classifier:
///
/// ```
/// use mcp_resilience::classify::{Classify, Delivery, FailureKind, Verdict};
///
/// let only_busy = |outcome: Result<&u16, &std::io::Error>| match outcome {
///     Ok(503) => Verdict::transient(FailureKind::ServerError, Delivery::MaybeProcessed),
///     Ok(_) => Verdict::Success,
///     Err(_) => Verdict::Permanent,
/// };
/// assert!(only_busy.classify(Ok(&503)).is_transient());
/// ```
pub trait Classify<T, E>: Send + Sync {
    /// The verdict on one attempt's outcome.
    fn classify(&self, outcome: Result<&T, &E>) -> Verdict;
}

impl<T, E, F> Classify<T, E> for F
where
    F: Fn(Result<&T, &E>) -> Verdict + Send + Sync,
{
    fn classify(&self, outcome: Result<&T, &E>) -> Verdict {
        self(outcome)
    }
}

/// An error type the built-in classifiers understand (see the [module docs](self) for the
/// table). Implemented for [`mcp_transport::Error`], this crate's [`Error`], [`std::io::Error`],
/// boxed errors (by downcasting along the source chain) and tokio's `Elapsed`.
pub trait ClassifyError {
    /// The verdict on this error.
    fn verdict(&self) -> Verdict;
}

/// The default classifier: any `Ok` is a success; errors are judged by [`ClassifyError`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultClassifier;

impl<T, E: ClassifyError> Classify<T, E> for DefaultClassifier {
    fn classify(&self, outcome: Result<&T, &E>) -> Verdict {
        match outcome {
            Ok(_) => Verdict::Success,
            Err(e) => e.verdict(),
        }
    }
}

/// For `McpClient::call_tool`: a result with `isError: true` is permanent (the tool ran and
/// refused); errors are judged by [`ClassifyError`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToolCallClassifier;

impl<E: ClassifyError> Classify<CallToolResult, E> for ToolCallClassifier {
    fn classify(&self, outcome: Result<&CallToolResult, &E>) -> Verdict {
        match outcome {
            Ok(r) if r.is_error => Verdict::Permanent,
            Ok(_) => Verdict::Success,
            Err(e) => e.verdict(),
        }
    }
}

/// For raw HTTP exchanges (the layer over the transport's HTTP service): the status decides
/// (see [`classify_status`]), `Retry-After` (or Azure's `retry-after-ms`) sets the wait;
/// errors are judged by [`ClassifyError`].
#[derive(Debug, Clone, Copy)]
pub struct HttpClassifier {
    session_request: bool,
    clock: fn() -> SystemTime,
}

impl Default for HttpClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClassifier {
    /// A classifier for requests without an MCP session id, on the system clock.
    pub fn new() -> Self {
        Self {
            session_request: false,
            clock: SystemTime::now,
        }
    }

    /// Whether the request carried `MCP-Session-Id`, making a 404 mean "session expired"
    /// (transient, not processed) instead of "not found" (permanent).
    #[must_use]
    pub fn session_request(mut self, carried_session_id: bool) -> Self {
        self.session_request = carried_session_id;
        self
    }

    /// The wall clock `Retry-After` dates are measured from (default [`SystemTime::now`]).
    #[must_use]
    pub fn clock(mut self, clock: fn() -> SystemTime) -> Self {
        self.clock = clock;
        self
    }
}

impl<B, E: ClassifyError> Classify<http::Response<B>, E> for HttpClassifier {
    fn classify(&self, outcome: Result<&http::Response<B>, &E>) -> Verdict {
        match outcome {
            Ok(resp) => classify_response(
                resp.status(),
                resp.headers(),
                self.session_request,
                (self.clock)(),
            ),
            Err(e) => e.verdict(),
        }
    }
}

/// The verdict on an HTTP status alone: 2xx/3xx/1xx success; 429 transient and not
/// processed; 408, 500, 502, 503, 504 transient (possibly processed); a 404 transient and
/// not processed when `session_request` (the request carried `MCP-Session-Id`); every other
/// status permanent.
pub fn classify_status(status: StatusCode, session_request: bool) -> Verdict {
    let kind = match status.as_u16() {
        s if s < 400 => return Verdict::Success,
        404 if session_request => {
            return Verdict::transient(FailureKind::SessionExpired, Delivery::NotProcessed);
        }
        408 | 504 => FailureKind::Timeout,
        429 => return Verdict::transient(FailureKind::Throttled, Delivery::NotProcessed),
        500 | 502 | 503 => FailureKind::ServerError,
        _ => return Verdict::Permanent,
    };
    Verdict::transient(kind, Delivery::MaybeProcessed)
}

/// [`classify_status`] plus the wait the headers ask for (see
/// [`retry_after::from_headers`](crate::retry_after::from_headers)), measured from `now`.
/// A `503` that carries a `Retry-After` is the origin refusing the request for a while, so
/// it was not processed.
pub fn classify_response(
    status: StatusCode,
    headers: &http::HeaderMap,
    session_request: bool,
    now: SystemTime,
) -> Verdict {
    let mut verdict = classify_status(status, session_request);
    if let Verdict::Transient(t) = &mut verdict {
        if status == StatusCode::SERVICE_UNAVAILABLE
            && headers.contains_key(http::header::RETRY_AFTER)
        {
            t.delivery = Delivery::NotProcessed;
        }
        verdict.with_retry_after(crate::retry_after::from_headers(headers, now))
    } else {
        verdict
    }
}

impl ClassifyError for mcp_transport::Error {
    fn verdict(&self) -> Verdict {
        if self.is_connect() {
            Verdict::transient(FailureKind::Connect, Delivery::NotProcessed)
        } else if self.is_timeout() {
            // The transport reports a connect timeout as a timeout too, so it cannot be told
            // apart from a response timeout: assume the request was sent.
            Verdict::transient(FailureKind::Timeout, Delivery::MaybeProcessed)
        } else if let Some(status) = self.status() {
            // The transport already re-initialized and replayed after a session 404.
            classify_status(status, false)
        } else if let Some(rpc) = self.rpc_error() {
            if rpc.code == mcp_transport::jsonrpc::code::INTERNAL_ERROR {
                Verdict::transient(FailureKind::ServerError, Delivery::MaybeProcessed)
            } else {
                Verdict::Permanent
            }
        } else if self.is_io() {
            // The transport reports an error from a layer of its HTTP stack as I/O, with the
            // layer's error as the source: this crate's layers (an inner policy's verdict
            // holds, so nested policies never multiply retries) or a plain I/O error.
            layer_verdict(self).unwrap_or(Verdict::transient(
                FailureKind::Io,
                Delivery::MaybeProcessed,
            ))
        } else {
            // Protocol violations, bad configuration, oversized responses, a closed client
            // (the transport already resumed broken SSE streams as far as it allows).
            Verdict::Permanent
        }
    }
}

/// The verdict on the first of this crate's errors or I/O errors along `err`'s source chain
/// (not `err` itself).
fn layer_verdict(err: &mcp_transport::Error) -> Option<Verdict> {
    let mut next = StdError::source(err);
    while let Some(e) = next {
        if let Some(e) = e.downcast_ref::<Error>() {
            return Some(e.verdict());
        }
        if let Some(e) = e.downcast_ref::<std::io::Error>() {
            return Some(e.verdict());
        }
        next = e.source();
    }
    None
}

impl ClassifyError for Error {
    /// An inner policy's verdict seen from an outer one: a call the breaker refused was not
    /// sent (transient); an attempt timeout is a timeout; everything else already went through
    /// a retry policy and is permanent, so nested policies never multiply retries.
    fn verdict(&self) -> Verdict {
        match self.kind() {
            Kind::CircuitOpen => {
                Verdict::transient(FailureKind::CircuitOpen, Delivery::NotProcessed)
            }
            Kind::Timeout => Verdict::transient(FailureKind::Timeout, Delivery::MaybeProcessed),
            _ => Verdict::Permanent,
        }
    }
}

impl ClassifyError for std::io::Error {
    fn verdict(&self) -> Verdict {
        use std::io::ErrorKind as K;
        match self.kind() {
            K::ConnectionRefused
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::AddrNotAvailable
            | K::NetworkDown => Verdict::transient(FailureKind::Connect, Delivery::NotProcessed),
            K::TimedOut => Verdict::transient(FailureKind::Timeout, Delivery::MaybeProcessed),
            K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::UnexpectedEof
            | K::Interrupted
            | K::NotConnected => Verdict::transient(FailureKind::Io, Delivery::MaybeProcessed),
            _ => Verdict::Permanent,
        }
    }
}

impl ClassifyError for tokio::time::error::Elapsed {
    fn verdict(&self) -> Verdict {
        Verdict::transient(FailureKind::Timeout, Delivery::MaybeProcessed)
    }
}

impl ClassifyError for BoxError {
    fn verdict(&self) -> Verdict {
        classify_dyn(&**self)
    }
}

/// Judges any error by the first error along its source chain that a built-in classifier
/// knows; an error chain with none is transient ([`FailureKind::Other`]) and possibly
/// processed, so only idempotent or keyed calls retry it.
pub fn classify_dyn(err: &(dyn StdError + 'static)) -> Verdict {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(e) = e.downcast_ref::<mcp_transport::Error>() {
            return e.verdict();
        }
        if let Some(e) = e.downcast_ref::<Error>() {
            return e.verdict();
        }
        if let Some(e) = e.downcast_ref::<std::io::Error>() {
            return e.verdict();
        }
        if let Some(e) = e.downcast_ref::<tokio::time::error::Elapsed>() {
            return e.verdict();
        }
        next = e.source();
    }
    Verdict::transient(FailureKind::Other, Delivery::MaybeProcessed)
}
