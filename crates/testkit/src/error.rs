//! The one error type of `testkit`.

use std::error::Error as StdError;
use std::fmt;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The error type of `testkit`.
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
pub(crate) enum Kind {
    Launch,
    Io,
}

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
    /// Returns true if a peer process or fake service could not be started.
    pub fn is_launch(&self) -> bool {
        matches!(self.inner.kind, Kind::Launch)
    }

    /// Returns true if an I/O error while talking to a peer.
    pub fn is_io(&self) -> bool {
        matches!(self.inner.kind, Kind::Io)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("testkit::Error");
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
            Kind::Launch => "failed to launch test peer",
            Kind::Io => "test peer I/O error",
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
        let err = Error::new(Kind::Launch).with_context("at `x.y`");
        assert!(err.is_launch());
        assert!(!err.is_io());
        assert!(err.to_string().ends_with(": at `x.y`"));
        let err = err.with_source(std::io::Error::other("inner"));
        assert!(StdError::source(&err).is_some());
    }
}
