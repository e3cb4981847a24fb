//! The one error type of `mcp-transport`.

use std::error::Error as StdError;
use std::fmt;

use crate::jsonrpc::RpcError;

/// A boxed error, the error type at the `tower::Service` HTTP seam.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// The error type of `mcp-transport`.
///
/// Opaque on purpose: ask it what happened with the `is_*()` predicates, read the HTTP status
/// with [`status()`](Error::status) or the server's JSON-RPC error with
/// [`rpc_error()`](Error::rpc_error), and walk [`source()`](StdError::source) for the cause.
/// The wording of `Display` is not API. Messages never contain header values or query strings.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: Kind,
    context: Option<String>,
    source: Option<BoxError>,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Connect,
    Timeout,
    Status(http::StatusCode),
    Protocol,
    Rpc(RpcError),
    Closed,
    Config,
    TooLarge,
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

    pub(crate) fn with_context(mut self, context: impl Into<String>) -> Self {
        self.inner.context = Some(context.into());
        self
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    pub(crate) fn protocol(context: impl Into<String>) -> Self {
        Self::new(Kind::Protocol).with_context(context)
    }

    pub(crate) fn config(context: impl Into<String>) -> Self {
        Self::new(Kind::Config).with_context(context)
    }

    pub(crate) fn rpc(error: RpcError) -> Self {
        Self::new(Kind::Rpc(error))
    }

    pub(crate) fn closed(context: impl Into<String>) -> Self {
        Self::new(Kind::Closed).with_context(context)
    }

    pub(crate) fn timeout(context: impl Into<String>) -> Self {
        Self::new(Kind::Timeout).with_context(context)
    }

    /// Wraps an error that came out of the HTTP service stack. Our own errors pass through
    /// unchanged; anything else (an auth or resilience layer's error) is kept as the source.
    pub(crate) fn from_service(err: BoxError) -> Self {
        match err.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(other) => {
                let kind = if other.is::<hyper_util::client::legacy::Error>() {
                    classify_hyper(&*other)
                } else {
                    Kind::Io
                };
                Self::new(kind).with_source(other)
            }
        }
    }

    /// True if a connection to the server could not be established (DNS, TCP, TLS).
    pub fn is_connect(&self) -> bool {
        matches!(self.inner.kind, Kind::Connect)
    }

    /// True if an operation hit one of its timeouts (connect, response, read, per-call).
    pub fn is_timeout(&self) -> bool {
        matches!(self.inner.kind, Kind::Timeout)
    }

    /// True if the server answered with an HTTP status the transport could not use.
    pub fn is_status(&self) -> bool {
        matches!(self.inner.kind, Kind::Status(_))
    }

    /// The HTTP status, if this error is an unexpected HTTP status.
    pub fn status(&self) -> Option<http::StatusCode> {
        match self.inner.kind {
            Kind::Status(s) => Some(s),
            _ => None,
        }
    }

    /// True if the peer sent something that is not valid MCP, JSON-RPC or SSE.
    pub fn is_protocol(&self) -> bool {
        matches!(self.inner.kind, Kind::Protocol)
    }

    /// True if the server answered the request with a JSON-RPC error.
    pub fn is_rpc(&self) -> bool {
        matches!(self.inner.kind, Kind::Rpc(_))
    }

    /// The server's JSON-RPC error, if this is one.
    pub fn rpc_error(&self) -> Option<&RpcError> {
        match &self.inner.kind {
            Kind::Rpc(e) => Some(e),
            _ => None,
        }
    }

    /// True if the transport or client is closed (or the peer went away).
    pub fn is_closed(&self) -> bool {
        matches!(self.inner.kind, Kind::Closed)
    }

    /// True if the configuration is invalid (bad URL, insecure scheme, bad header value).
    pub fn is_config(&self) -> bool {
        matches!(self.inner.kind, Kind::Config)
    }

    /// True if a response exceeded the configured size cap.
    pub fn is_too_large(&self) -> bool {
        matches!(self.inner.kind, Kind::TooLarge)
    }

    /// True for I/O failures after the connection was established (reset, broken pipe, a
    /// child process that exited), and for errors from outer service layers.
    pub fn is_io(&self) -> bool {
        matches!(self.inner.kind, Kind::Io)
    }
}

fn classify_hyper(err: &(dyn StdError + 'static)) -> Kind {
    match err.downcast_ref::<hyper_util::client::legacy::Error>() {
        Some(e) if e.is_connect() => {
            // A connect timeout surfaces as a connect error whose cause is a timeout.
            let mut cause = e.source();
            while let Some(c) = cause {
                if let Some(io) = c.downcast_ref::<std::io::Error>()
                    && io.kind() == std::io::ErrorKind::TimedOut
                {
                    return Kind::Timeout;
                }
                cause = c.source();
            }
            Kind::Connect
        }
        _ => Kind::Io,
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("mcp_transport::Error");
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
        match &self.inner.kind {
            Kind::Connect => f.write_str("connection failed")?,
            Kind::Timeout => f.write_str("timed out")?,
            Kind::Status(s) => write!(f, "unexpected HTTP status {s}")?,
            Kind::Protocol => f.write_str("protocol violation")?,
            Kind::Rpc(e) => write!(f, "server returned {e}")?,
            Kind::Closed => f.write_str("transport closed")?,
            Kind::Config => f.write_str("invalid transport configuration")?,
            Kind::TooLarge => f.write_str("response too large")?,
            Kind::Io => f.write_str("I/O error")?,
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
    fn predicates_and_accessors() {
        let e = Error::new(Kind::Status(http::StatusCode::BAD_GATEWAY)).with_context("POST /mcp");
        assert!(e.is_status());
        assert_eq!(e.status(), Some(http::StatusCode::BAD_GATEWAY));
        assert!(e.to_string().contains("502"));
        let e = Error::rpc(RpcError::new(-32601, "Method not found"));
        assert_eq!(e.rpc_error().map(|r| r.code), Some(-32601));
        assert!(!e.is_status());
    }

    #[test]
    fn service_errors_round_trip() {
        let ours: BoxError = Box::new(Error::timeout("response head"));
        assert!(Error::from_service(ours).is_timeout());
        let other: BoxError = Box::new(std::io::Error::other("layer failed"));
        let e = Error::from_service(other);
        assert!(e.is_io());
        assert!(StdError::source(&e).is_some());
    }
}
