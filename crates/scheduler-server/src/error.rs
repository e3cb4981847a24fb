//! The one error type of `scheduler-server`.

use std::error::Error as StdError;
use std::fmt;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The error type of `scheduler-server`.
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
    reason = "constructed by the capabilities that land with the scheduler-server issue"
)]
pub(crate) enum Kind {
    Store,
    Config,
    Bind,
    Fetch,
}

#[allow(
    dead_code,
    reason = "constructed by the capabilities that land with the scheduler-server issue"
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
    /// Returns true if the durable store failed.
    pub fn is_store(&self) -> bool {
        matches!(self.inner.kind, Kind::Store)
    }

    /// Returns true if the server configuration is invalid.
    pub fn is_config(&self) -> bool {
        matches!(self.inner.kind, Kind::Config)
    }

    /// Returns true if the listener could not be bound.
    pub fn is_bind(&self) -> bool {
        matches!(self.inner.kind, Kind::Bind)
    }

    /// Returns true if a remote document (the external issuer's JWK Set) could not be
    /// fetched.
    pub fn is_fetch(&self) -> bool {
        matches!(self.inner.kind, Kind::Fetch)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("scheduler_server::Error");
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
            Kind::Store => "scheduler store failed",
            Kind::Config => "invalid server configuration",
            Kind::Bind => "could not bind listener",
            Kind::Fetch => "could not fetch a remote document",
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
        let err = Error::new(Kind::Store).with_context("at `x.y`");
        assert!(err.is_store());
        assert!(!err.is_config());
        assert!(err.to_string().ends_with(": at `x.y`"));
        let err = err.with_source(std::io::Error::other("inner"));
        assert!(StdError::source(&err).is_some());
    }
}
