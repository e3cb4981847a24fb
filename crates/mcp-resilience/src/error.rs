//! The one error type of `mcp-resilience`.

use std::error::Error as StdError;
use std::fmt;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The error type of `mcp-resilience`.
///
/// Opaque on purpose: ask it what happened with the `is_*()` predicates and walk
/// [`source()`](StdError::source) for the cause. The wording of `Display` is not API.
/// Messages never contain secret values.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: Kind,
    context: Option<String>,
    source: Option<BoxError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    dead_code,
    reason = "constructed by the capabilities that land with the mcp-resilience issue (#5)"
)]
pub(crate) enum Kind {
    RetriesExhausted,
    BudgetExhausted,
    CircuitOpen,
    NoHealthyEndpoint,
    DeadlineExceeded,
    NotRetryable,
}

#[allow(
    dead_code,
    reason = "constructed by the capabilities that land with the mcp-resilience issue (#5)"
)]
impl Error {
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
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

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }
}

impl Error {
    /// Returns true if every allowed attempt failed; the last failure is the source.
    pub fn is_retries_exhausted(&self) -> bool {
        matches!(self.inner.kind, Kind::RetriesExhausted)
    }

    /// Returns true if the retry budget refused another attempt.
    pub fn is_budget_exhausted(&self) -> bool {
        matches!(self.inner.kind, Kind::BudgetExhausted)
    }

    /// Returns true if the circuit breaker for the endpoint is open.
    pub fn is_circuit_open(&self) -> bool {
        matches!(self.inner.kind, Kind::CircuitOpen)
    }

    /// Returns true if failover found no healthy endpoint.
    pub fn is_no_healthy_endpoint(&self) -> bool {
        matches!(self.inner.kind, Kind::NoHealthyEndpoint)
    }

    /// Returns true if the overall deadline passed.
    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self.inner.kind, Kind::DeadlineExceeded)
    }

    /// Returns true if the request may have reached the server and carries no idempotency key, so it was not retried.
    pub fn is_not_retryable(&self) -> bool {
        matches!(self.inner.kind, Kind::NotRetryable)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("mcp_resilience::Error");
        d.field("kind", &self.inner.kind);
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
        })?;
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
        let err = err.with_source(std::io::Error::other("inner"));
        assert!(StdError::source(&err).is_some());
    }
}
