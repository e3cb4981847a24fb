//! The one error type of `azure-telemetry`.

use std::error::Error as StdError;
use std::fmt;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The error type of `azure-telemetry`.
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
    InvalidConnectionString,
    InvalidConfig,
    AlreadyInitialized,
    Exporter,
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

    pub(crate) fn invalid_config(context: impl Into<String>) -> Self {
        Self::new(Kind::InvalidConfig).with_context(context)
    }

    pub(crate) fn exporter(context: impl Into<String>) -> Self {
        Self::new(Kind::Exporter).with_context(context)
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }
}

impl Error {
    /// Returns true if the Application Insights connection string is malformed.
    pub fn is_invalid_connection_string(&self) -> bool {
        matches!(self.inner.kind, Kind::InvalidConnectionString)
    }

    /// Returns true if a setting is out of range or malformed (a sampling ratio, a filter).
    pub fn is_invalid_config(&self) -> bool {
        matches!(self.inner.kind, Kind::InvalidConfig)
    }

    /// Returns true if a global tracing subscriber or OpenTelemetry provider was already installed.
    pub fn is_already_initialized(&self) -> bool {
        matches!(self.inner.kind, Kind::AlreadyInitialized)
    }

    /// Returns true if an exporter could not be built or failed to flush.
    pub fn is_exporter(&self) -> bool {
        matches!(self.inner.kind, Kind::Exporter)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("azure_telemetry::Error");
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
            Kind::InvalidConnectionString => "invalid Application Insights connection string",
            Kind::InvalidConfig => "invalid telemetry configuration",
            Kind::AlreadyInitialized => "telemetry was already initialized",
            Kind::Exporter => "telemetry exporter failed",
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
        let err = Error::new(Kind::InvalidConnectionString).with_context("at `x.y`");
        assert!(err.is_invalid_connection_string());
        assert!(!err.is_already_initialized());
        assert!(err.to_string().ends_with(": at `x.y`"));
        let err = err.with_source(std::io::Error::other("inner"));
        assert!(StdError::source(&err).is_some());
    }
}
