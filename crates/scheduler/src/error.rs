//! The one error type of `scheduler`.

use std::error::Error as StdError;
use std::fmt;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The error type of `scheduler`.
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
#[cfg_attr(
    not(feature = "client"),
    allow(dead_code, reason = "the client constructs them")
)]
pub(crate) enum Kind {
    Config,
    Transport,
    Tool,
    InvalidResponse,
    InvalidArgument,
}

#[cfg_attr(
    not(feature = "client"),
    allow(dead_code, reason = "the client constructs them")
)]
impl Error {
    /// A configuration error; `context` names the setting's path and what is wrong.
    pub(crate) fn config(context: impl Into<String>) -> Self {
        Self::new(Kind::Config).with_context(context)
    }

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
        let context = context.into();
        // A second context goes in front: the outer detail first.
        self.inner.context = Some(match self.inner.context.take() {
            Some(inner) => format!("{context}: {inner}"),
            None => context,
        });
        self
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }
}

impl Error {
    /// Returns true if the configuration is invalid; the message names the path of the offending setting.
    pub fn is_config(&self) -> bool {
        matches!(self.inner.kind, Kind::Config)
    }

    /// Returns true if the MCP call failed in the transport, auth or resilience layers.
    pub fn is_transport(&self) -> bool {
        matches!(self.inner.kind, Kind::Transport)
    }

    /// Returns true if the Scheduler tool answered with an error result.
    pub fn is_tool(&self) -> bool {
        matches!(self.inner.kind, Kind::Tool)
    }

    /// Returns true if a request argument is invalid (checked before any call, with the
    /// server's rules); the message names the argument.
    pub fn is_invalid_argument(&self) -> bool {
        matches!(self.inner.kind, Kind::InvalidArgument)
    }

    /// Returns true if the tool's result did not have the documented shape.
    pub fn is_invalid_response(&self) -> bool {
        matches!(self.inner.kind, Kind::InvalidResponse)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("scheduler::Error");
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
            Kind::Config => "invalid scheduler configuration",
            Kind::Transport => "scheduler call failed",
            Kind::Tool => "scheduler tool reported an error",
            Kind::InvalidResponse => "scheduler returned an unexpected result",
            Kind::InvalidArgument => "invalid scheduler request",
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
        let err = Error::new(Kind::Config).with_context("at `x.y`");
        assert!(err.is_config());
        assert!(!err.is_transport());
        assert!(err.to_string().ends_with(": at `x.y`"));
        let err = err.with_source(std::io::Error::other("inner"));
        assert!(StdError::source(&err).is_some());
    }
}
