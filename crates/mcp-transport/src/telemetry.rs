//! The span of every MCP request, following OpenTelemetry's semantic conventions for MCP
//! (client side). Emitted as a `tracing` span (target `mcp_transport::client`, name
//! `mcp.client.request`, level INFO); `azure-telemetry` exports it, `tracing-opentelemetry`
//! reads the `otel.*` fields.
//!
//! | field | value |
//! |---|---|
//! | `otel.name` | `{mcp.method.name} {target}` (`tools/call scheduleConversation`), else the method |
//! | `otel.kind` | `client` |
//! | `otel.status_code` | `ERROR` when the request failed or the tool reported an error |
//! | `mcp.method.name` | the JSON-RPC method |
//! | `gen_ai.tool.name`, `gen_ai.operation.name` | the tool and `execute_tool`, for `tools/call` |
//! | `jsonrpc.request.id` | the request id |
//! | `mcp.protocol.version` | the negotiated protocol version |
//! | `mcp.session.id` | the session, when there is one (Streamable HTTP) |
//! | `server.address`, `server.port` | the MCP endpoint (Streamable HTTP) |
//! | `network.transport` | `tcp` (Streamable HTTP) or `pipe` (stdio) |
//! | `error.type` | the JSON-RPC error code, `tool_error`, `timeout`, `connect`, `http_<status>`, `closed` or `_OTHER` |
//!
//! Argument and result values are never recorded. With no subscriber interested in the
//! span, nothing is formatted or parsed.
//!
//! # Trace context
//!
//! With a context injector installed ([`set_context_injector`]), each request carries its
//! span's W3C trace context in `params._meta` (`traceparent`, `tracestate`) and, over
//! Streamable HTTP, in the same-named headers, so the server's span joins the client's
//! trace. This crate has no OpenTelemetry dependency; `azure-telemetry` provides one:
//!
//! ```
//! # fn inject(_: &tracing::Span, _: &mut dyn FnMut(&'static str, String)) {}
//! // With azure-telemetry: `set_context_injector(azure_telemetry::propagation::inject)`.
//! mcp_transport::telemetry::set_context_injector(inject);
//! ```

use serde_json::value::RawValue;
use tracing::Span;
use tracing::field::Empty;

use crate::error::Error;
use crate::jsonrpc::RequestId;

/// Writes a span's trace context through a setter (`traceparent`, then `tracestate`).
pub type ContextInjector = fn(&Span, &mut dyn FnMut(&'static str, String));

static INJECTOR: std::sync::OnceLock<ContextInjector> = std::sync::OnceLock::new();

/// Installs the process-wide trace-context injector; returns `false` (and keeps the first)
/// when one is already installed.
pub fn set_context_injector(injector: ContextInjector) -> bool {
    INJECTOR.set(injector).is_ok()
}

/// The trace context to send with a request made in `span`.
pub(crate) fn trace_context(span: &Span) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(inject) = INJECTOR.get()
        && !span.is_disabled()
    {
        inject(span, &mut |k, v| out.push((k, v)));
    }
    out
}

/// The span of one request.
pub(crate) fn request_span(
    method: &str,
    target: Option<&str>,
    id: &RequestId,
    version: &str,
) -> Span {
    let span = tracing::info_span!(
        target: "mcp_transport::client",
        "mcp.client.request",
        otel.name = Empty,
        otel.kind = "client",
        otel.status_code = Empty,
        mcp.method.name = method,
        gen_ai.tool.name = Empty,
        gen_ai.operation.name = Empty,
        jsonrpc.request.id = %id,
        mcp.protocol.version = version,
        mcp.session.id = Empty,
        server.address = Empty,
        server.port = Empty,
        network.transport = Empty,
        error.type = Empty,
    );
    if !span.is_disabled() {
        match target {
            Some(t) => span.record("otel.name", format!("{method} {t}")),
            None => span.record("otel.name", method),
        };
        if method == "tools/call"
            && let Some(tool) = target
        {
            span.record("gen_ai.tool.name", tool);
            span.record("gen_ai.operation.name", "execute_tool");
        }
    }
    span
}

/// Records how the request ended on its span.
pub(crate) fn record_outcome(span: &Span, method: &str, result: &Result<Box<RawValue>, Error>) {
    if span.is_disabled() {
        return;
    }
    let error_type = match result {
        Err(e) => Some(error_type(e)),
        Ok(raw) if method == "tools/call" => {
            #[derive(serde::Deserialize)]
            struct IsError {
                #[serde(default, rename = "isError")]
                is_error: bool,
            }
            serde_json::from_str::<IsError>(raw.get())
                .ok()
                .filter(|r| r.is_error)
                .map(|_| "tool_error".to_owned())
        }
        Ok(_) => None,
    };
    if let Some(t) = error_type {
        span.record("error.type", t.as_str());
        span.record("otel.status_code", "ERROR");
    }
}

fn error_type(e: &Error) -> String {
    if let Some(rpc) = e.rpc_error() {
        rpc.code.to_string()
    } else if e.is_timeout() {
        "timeout".to_owned()
    } else if e.is_connect() {
        "connect".to_owned()
    } else if let Some(status) = e.status() {
        format!("http_{}", status.as_u16())
    } else if e.is_closed() {
        "closed".to_owned()
    } else {
        "_OTHER".to_owned()
    }
}

/// Records the transport's facts on the current request span (called inside it).
pub(crate) fn record_endpoint(address: Option<&str>, port: Option<u16>, transport: &str) {
    let span = Span::current();
    if span.is_disabled() {
        return;
    }
    if let Some(a) = address {
        span.record("server.address", a);
    }
    if let Some(p) = port {
        span.record("server.port", p);
    }
    span.record("network.transport", transport);
}

/// Records the MCP session on the current request span.
pub(crate) fn record_session(session: &str) {
    let span = Span::current();
    if !span.is_disabled() {
        span.record("mcp.session.id", session);
    }
}
