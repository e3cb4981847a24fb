//! The one error type of `mcp-auth`.

use std::error::Error as StdError;
use std::fmt;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The error type of `mcp-auth`.
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
    TokenEndpoint,
    InvalidTokenResponse,
    Expired,
    Discovery,
    InsufficientScope,
    Config,
    ChallengeRequired,
    Unreachable,
    AuthorizationDenied,
    InvalidAuthorizationResponse,
    Other,
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

    pub(crate) fn kind(&self) -> Kind {
        self.inner.kind
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }
}

/// Constructors for [`TokenSource`](crate::TokenSource) implementations outside this crate.
impl Error {
    /// A source's own failure (for example a secret store or a custom identity provider that
    /// failed). All `is_*()` predicates are false; `source()` returns `err`.
    pub fn other(err: impl Into<BoxError>) -> Self {
        Self::new(Kind::Other).with_source(err)
    }

    /// The failure [`is_challenge_required`](Self::is_challenge_required) reports: the source
    /// cannot get a token until the resource server has sent its `WWW-Authenticate` challenge.
    pub fn challenge_required() -> Self {
        Self::new(Kind::ChallengeRequired)
    }
}

impl Error {
    /// Returns true if the token endpoint refused the credentials or answered with an error.
    pub fn is_token_endpoint(&self) -> bool {
        matches!(self.inner.kind, Kind::TokenEndpoint)
    }

    /// Returns true if the token endpoint's answer could not be understood.
    pub fn is_invalid_token_response(&self) -> bool {
        matches!(self.inner.kind, Kind::InvalidTokenResponse)
    }

    /// Returns true if the cached token expired and refreshing it failed.
    pub fn is_expired(&self) -> bool {
        matches!(self.inner.kind, Kind::Expired)
    }

    /// Returns true if the authorization server could not be discovered from the resource's metadata.
    pub fn is_discovery(&self) -> bool {
        matches!(self.inner.kind, Kind::Discovery)
    }

    /// Returns true if the server still refused the call after one step-up to the requested scope.
    pub fn is_insufficient_scope(&self) -> bool {
        matches!(self.inner.kind, Kind::InsufficientScope)
    }

    /// Returns true if the source cannot get a token before the resource server has answered
    /// with a `WWW-Authenticate` challenge (discovery starts from the challenge). The auth
    /// layer then sends the request without a token and retries with the challenge.
    pub fn is_challenge_required(&self) -> bool {
        matches!(self.inner.kind, Kind::ChallengeRequired)
    }

    /// Returns true if an authorization server or metadata endpoint could not be reached
    /// (connection, TLS or timeout); see `source()` for the cause.
    pub fn is_unreachable(&self) -> bool {
        matches!(self.inner.kind, Kind::Unreachable)
    }

    /// Returns true if the auth configuration is invalid.
    pub fn is_config(&self) -> bool {
        matches!(self.inner.kind, Kind::Config)
    }

    /// Returns true if the authorization-code flow ended without a grant: the authorization
    /// endpoint answered with an error (`access_denied` when the user declined, or
    /// `invalid_scope`, `unauthorized_client`, ...; the code is in the message), refused the
    /// request outright, or no answer came back before the handler's deadline.
    pub fn is_authorization_denied(&self) -> bool {
        matches!(self.inner.kind, Kind::AuthorizationDenied)
    }

    /// Returns true if the authorization response was refused as invalid before its code was
    /// used: a `state` that is not the one sent, an RFC 9207 `iss` that is not the
    /// authorization server's issuer (or missing when the server advertises it), a callback
    /// to another address than the redirect URI, or no `code`.
    pub fn is_invalid_authorization_response(&self) -> bool {
        matches!(self.inner.kind, Kind::InvalidAuthorizationResponse)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("mcp_auth::Error");
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
            Kind::TokenEndpoint => "token endpoint rejected the request",
            Kind::InvalidTokenResponse => "token endpoint answered with an invalid token response",
            Kind::Expired => "access token expired and could not be refreshed",
            Kind::Discovery => "authorization server discovery failed",
            Kind::InsufficientScope => "server requires a scope the client could not obtain",
            Kind::Config => "invalid auth configuration",
            Kind::ChallengeRequired => {
                "token source needs the resource server's WWW-Authenticate challenge first"
            }
            Kind::Unreachable => "authorization server unreachable",
            Kind::AuthorizationDenied => "authorization was not granted",
            Kind::InvalidAuthorizationResponse => "authorization response refused",
            Kind::Other => "token source failed",
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
        let err = Error::new(Kind::TokenEndpoint).with_context("at `x.y`");
        assert!(err.is_token_endpoint());
        assert!(!err.is_invalid_token_response());
        assert!(err.to_string().ends_with(": at `x.y`"));
        let err = err.with_source(std::io::Error::other("inner"));
        assert!(StdError::source(&err).is_some());
    }
}
