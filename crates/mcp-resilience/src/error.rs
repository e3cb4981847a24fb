//! The one error type of `mcp-resilience`.

use std::error::Error as StdError;
use std::fmt;

/// A boxed error, as the failed operation's error is kept.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// The error type of `mcp-resilience`.
///
/// Opaque on purpose: ask it what happened with the `is_*()` predicates, how many attempts
/// were made with [`attempts()`](Error::attempts), and walk [`source()`](StdError::source) for
/// the last attempt's error (downcast it to the operation's own error type). The wording of
/// `Display` is not API. Messages never contain secret values.
///
/// ```
/// use std::error::Error as _;
///
/// fn last_transport_error(err: &mcp_resilience::Error) -> Option<&mcp_transport::Error> {
///     err.source()?.downcast_ref::<mcp_transport::Error>()
/// }
/// # let _ = last_transport_error;
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: Kind,
    attempts: Option<u32>,
    context: Option<String>,
    source: Option<BoxError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    RetriesExhausted,
    BudgetExhausted,
    CircuitOpen,
    NoHealthyEndpoint,
    DeadlineExceeded,
    NotRetryable,
    Timeout,
    Permanent,
}

impl Error {
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                attempts: None,
                context: None,
                source: None,
            }),
        }
    }

    /// Adds a human-readable detail (what and where) to the message.
    pub(crate) fn with_context(mut self, context: impl Into<String>) -> Self {
        self.inner.context = Some(context.into());
        self
    }

    pub(crate) fn with_source_opt(mut self, source: Option<BoxError>) -> Self {
        self.inner.source = source;
        self
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.inner.attempts = Some(attempts);
        self
    }

    pub(crate) fn kind(&self) -> Kind {
        self.inner.kind
    }
}

impl Error {
    /// Returns true if every allowed attempt failed with a transient error; the last failure
    /// is the source.
    pub fn is_retries_exhausted(&self) -> bool {
        matches!(self.inner.kind, Kind::RetriesExhausted)
    }

    /// Returns true if the retry budget refused another attempt (too many retries across
    /// all calls sharing the budget); the last failure is the source.
    pub fn is_budget_exhausted(&self) -> bool {
        matches!(self.inner.kind, Kind::BudgetExhausted)
    }

    /// Returns true if the circuit breaker for the endpoint is open (or half-open with every
    /// probe slot taken), so the call was not sent.
    pub fn is_circuit_open(&self) -> bool {
        matches!(self.inner.kind, Kind::CircuitOpen)
    }

    /// Returns true if failover found no healthy endpoint.
    pub fn is_no_healthy_endpoint(&self) -> bool {
        matches!(self.inner.kind, Kind::NoHealthyEndpoint)
    }

    /// Returns true if the overall deadline passed, or a retry would have started after it.
    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self.inner.kind, Kind::DeadlineExceeded)
    }

    /// Returns true if the request may have reached the server and carries no idempotency key, so it was not retried.
    pub fn is_not_retryable(&self) -> bool {
        matches!(self.inner.kind, Kind::NotRetryable)
    }

    /// Returns true if one attempt ran longer than the per-attempt timeout. Found as the
    /// source of the error that ended the call (retries exhausted, not retryable, budget).
    pub fn is_timeout(&self) -> bool {
        matches!(self.inner.kind, Kind::Timeout)
    }

    /// Returns true if the operation failed in a way retrying cannot fix (a 4xx status,
    /// invalid params); the operation's error is the source.
    pub fn is_permanent(&self) -> bool {
        matches!(self.inner.kind, Kind::Permanent)
    }

    /// How many attempts were made before the call ended (`Some(0)` when the first one was
    /// refused by the circuit breaker); `None` for errors that are not about a call.
    pub fn attempts(&self) -> Option<u32> {
        self.inner.attempts
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("mcp_resilience::Error");
        d.field("kind", &self.inner.kind);
        if let Some(attempts) = self.inner.attempts {
            d.field("attempts", &attempts);
        }
        if let Some(context) = &self.inner.context {
            d.field("context", context);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.inner.kind {
            Kind::RetriesExhausted => "all retry attempts failed",
            Kind::BudgetExhausted => "retry budget exhausted",
            Kind::CircuitOpen => "circuit breaker is open",
            Kind::NoHealthyEndpoint => "no healthy endpoint available",
            Kind::DeadlineExceeded => "deadline exceeded",
            Kind::NotRetryable => {
                "request not retried: it may have reached the server and has no idempotency key"
            }
            Kind::Timeout => "attempt timed out",
            Kind::Permanent => "failed with an error retrying cannot fix",
        })?;
        if let Some(attempts) = self.inner.attempts {
            let s = if attempts == 1 { "" } else { "s" };
            write!(f, " ({attempts} attempt{s})")?;
        }
        if let Some(context) = &self.inner.context {
            write!(f, ": {context}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source.as_deref().map(|e| e as _)
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Error>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_match_kind_and_message_carries_context() {
        let err = Error::new(Kind::RetriesExhausted).with_context("at `x.y`");
        assert!(err.is_retries_exhausted());
        assert!(!err.is_budget_exhausted());
        assert!(err.to_string().ends_with(": at `x.y`"));
        let err = err
            .with_source_opt(Some(Box::new(std::io::Error::other("inner"))))
            .with_attempts(4);
        assert!(StdError::source(&err).is_some());
        assert_eq!(err.attempts(), Some(4));
        let shown = err.to_string();
        assert!(shown.contains("(4 attempts)"), "{shown}");
    }
}
