//! The one error type of `azure-secrets`.

use std::error::Error as StdError;
use std::fmt;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The error type of `azure-secrets`.
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
    NotFound,
    Forbidden,
    Credential,
    InvalidReference,
    Transport,
}

impl Error {
    /// A not-found error for store authors: `id` is not in `store` (a short description such
    /// as "environment"). A [`ChainStore`](crate::ChainStore) then asks its next store.
    pub fn not_found(id: &crate::SecretId, store: &str) -> Self {
        Self::new(Kind::NotFound).with_context(format!("{id}: not in the {store}"))
    }

    /// Any other failure of a store written outside this crate, with its cause (which must
    /// not contain secret values).
    pub fn other(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::new(Kind::Transport)
            .with_context(context)
            .with_source(source)
    }

    pub(crate) fn kind(&self) -> Kind {
        self.inner.kind
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
        self.inner.context = Some(context.into());
        self
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }
}

impl Error {
    /// Returns true if the secret does not exist in the store.
    pub fn is_not_found(&self) -> bool {
        matches!(self.inner.kind, Kind::NotFound)
    }

    /// Returns true if the store refused access (missing permission or disabled secret).
    pub fn is_forbidden(&self) -> bool {
        matches!(self.inner.kind, Kind::Forbidden)
    }

    /// Returns true if no credential in the chain could obtain a token.
    pub fn is_credential(&self) -> bool {
        matches!(self.inner.kind, Kind::Credential)
    }

    /// Returns true if a `@Microsoft.KeyVault(...)` reference in configuration is malformed.
    pub fn is_invalid_reference(&self) -> bool {
        matches!(self.inner.kind, Kind::InvalidReference)
    }

    /// Returns true if the request to the store failed before an answer arrived.
    pub fn is_transport(&self) -> bool {
        matches!(self.inner.kind, Kind::Transport)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("azure_secrets::Error");
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
            Kind::NotFound => "secret not found",
            Kind::Forbidden => "access to the secret was refused",
            Kind::Credential => "no Azure credential could obtain a token",
            Kind::InvalidReference => "malformed Key Vault reference",
            Kind::Transport => "request to the secret store failed",
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
        let err = Error::new(Kind::NotFound).with_context("at `x.y`");
        assert!(err.is_not_found());
        assert!(!err.is_forbidden());
        assert!(err.to_string().ends_with(": at `x.y`"));
        let err = err.with_source(std::io::Error::other("inner"));
        assert!(StdError::source(&err).is_some());
    }
}
