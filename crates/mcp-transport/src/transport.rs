//! The message-level seam: a [`Transport`] carries JSON-RPC messages to one MCP server and
//! brings back its responses, so stdio and HTTP are interchangeable under
//! [`McpClient`](crate::McpClient).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use crate::Error;
use crate::jsonrpc::{Message, Notification, Request, Response};

/// A boxed, `Send` future (the trait stays object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a transport delivers what the server sends outside a response: notifications
/// (progress, logging) and server-to-client requests (ping, elicitation, ...).
///
/// Transports call it inline, in arrival order, before completing the request the messages
/// arrived with; so a progress notification sent before a response is seen before the call
/// returns. It must not block.
pub type Inbound = Arc<dyn Fn(Message) + Send + Sync>;

/// Facts about a request that a transport may expose outside the body. HTTP mirrors them into
/// headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`); stdio ignores
/// them.
#[derive(Debug, Clone, Default)]
pub struct RequestHints {
    /// The protocol version this request speaks; `None` before a version is agreed.
    pub protocol_version: Option<Arc<str>>,
    /// True when the request speaks the stateless protocol (2026-07-28 and later).
    pub stateless: bool,
    /// `params.name` (`tools/call`, `prompts/get`) or `params.uri` (`resources/read`).
    pub name: Option<String>,
    /// Values of tool arguments annotated `x-mcp-header`: `(Name, value)`.
    pub param_headers: Vec<(String, Value)>,
    /// W3C trace context of the request's span (`traceparent`, `tracestate`); HTTP sends
    /// them as headers. Empty unless a context injector is installed
    /// ([`telemetry::set_context_injector`](crate::telemetry::set_context_injector)).
    pub trace_context: Vec<(&'static str, String)>,
}

/// Carries JSON-RPC messages to one server.
///
/// A request's future resolves with the server's response; dropping it abandons the request
/// (on the stateless HTTP transport, that closes the response stream, which is how the
/// protocol cancels). Messages that arrive before the response — progress and log
/// notifications, requests from the server — go to the [`Inbound`] channel given to
/// [`set_inbound`](Transport::set_inbound).
///
/// ```
/// use mcp_transport::transport::{BoxFuture, Inbound, RequestHints, Transport};
/// use mcp_transport::jsonrpc::{Message, Notification, Request, Response};
/// use mcp_transport::Error;
///
/// /// A transport that answers every request with `{}`: handy in unit tests.
/// struct Echo;
///
/// impl Transport for Echo {
///     fn request<'a>(&'a self, req: Request, _: &'a RequestHints) -> BoxFuture<'a, Result<Response, Error>> {
///         Box::pin(async move {
///             let result = serde_json::value::to_raw_value(&serde_json::json!({})).unwrap();
///             Ok(Response { jsonrpc: Default::default(), id: req.id, result })
///         })
///     }
///     fn notify<'a>(&'a self, _: Notification, _: &'a RequestHints) -> BoxFuture<'a, Result<(), Error>> {
///         Box::pin(async { Ok(()) })
///     }
///     fn respond(&self, _: Message) -> BoxFuture<'_, Result<(), Error>> {
///         Box::pin(async { Ok(()) })
///     }
///     fn set_inbound(&self, _: Inbound) {}
///     fn close(&self) -> BoxFuture<'_, Result<(), Error>> {
///         Box::pin(async { Ok(()) })
///     }
/// }
/// let _boxed: Box<dyn Transport> = Box::new(Echo);
/// ```
pub trait Transport: Send + Sync + 'static {
    /// Sends a request and resolves with its response. A JSON-RPC error response is an
    /// [`Error`] for which [`is_rpc()`](Error::is_rpc) is true.
    fn request<'a>(
        &'a self,
        request: Request,
        hints: &'a RequestHints,
    ) -> BoxFuture<'a, Result<Response, Error>>;

    /// Sends a notification.
    fn notify<'a>(
        &'a self,
        notification: Notification,
        hints: &'a RequestHints,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Sends the client's answer (a response or an error response) to a server request.
    fn respond(&self, message: Message) -> BoxFuture<'_, Result<(), Error>>;

    /// Sets where server-initiated messages go. Called once, before the first request.
    fn set_inbound(&self, inbound: Inbound);

    /// Ends the connection or session (HTTP: `DELETE` the session; stdio: stop the child).
    fn close(&self) -> BoxFuture<'_, Result<(), Error>>;
}

macro_rules! forward_transport {
    ($($ptr:ident),*) => {$(
        impl<T: Transport + ?Sized> Transport for $ptr<T> {
            fn request<'a>(
                &'a self,
                request: Request,
                hints: &'a RequestHints,
            ) -> BoxFuture<'a, Result<Response, Error>> {
                (**self).request(request, hints)
            }
            fn notify<'a>(
                &'a self,
                notification: Notification,
                hints: &'a RequestHints,
            ) -> BoxFuture<'a, Result<(), Error>> {
                (**self).notify(notification, hints)
            }
            fn respond(&self, message: Message) -> BoxFuture<'_, Result<(), Error>> {
                (**self).respond(message)
            }
            fn set_inbound(&self, inbound: Inbound) {
                (**self).set_inbound(inbound)
            }
            fn close(&self) -> BoxFuture<'_, Result<(), Error>> {
                (**self).close()
            }
        }
    )*};
}

forward_transport!(Arc, Box);

#[cfg(test)]
fn _object_safe(_: Box<dyn Transport>) {}
