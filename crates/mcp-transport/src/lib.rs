//! An MCP client over Streamable HTTP and stdio.
//!
//! - [`McpClient`]: connect (protocol version negotiation), [`list_tools`](McpClient::list_tools)
//!   across pages, [`call_tool`](McpClient::call_tool) with per-call timeout, progress,
//!   cancellation and `_meta` pass-through, [`ping`](McpClient::ping),
//!   [`close`](McpClient::close). Many concurrent calls over one client are safe.
//! - [`Transport`]: the message-level seam; [`HttpTransport`] implements Streamable HTTP
//!   (spec 2025-11-25 and older with sessions, 2026-07-28 stateless) and [`StdioTransport`]
//!   runs the server as a child process.
//! - [`http::HttpClient`]: the pooled hyper-util client as a `tower::Service`, the seam where
//!   auth, resilience and telemetry layers go.
//! - [`jsonrpc`] and [`sse`]: the codecs, usable on their own.
//!
//! ```no_run
//! use mcp_transport::{CallOptions, HttpTransport, McpClient};
//!
//! # async fn run() -> Result<(), mcp_transport::Error> {
//! let client = McpClient::builder()
//!     .connect(HttpTransport::new("http://127.0.0.1:8080/mcp")?)
//!     .await?;
//! let result = client
//!     .call_tool("echo", serde_json::json!({"text": "hi"}), CallOptions::new())
//!     .await?;
//! assert!(!result.is_error);
//! # Ok(()) }
//! ```
//!
//! # Architecture invariants
//!
//! - Knows nothing of auth schemes, retries, Azure or scheduling. It exposes the seams the
//!   other crates plug into: the HTTP stack is a `tower::Service`, and the message-level
//!   [`Transport`] trait makes stdio and HTTP interchangeable.
//! - Every network operation has a timeout with a documented default; nothing can hang forever.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `rustls` | yes | HTTPS with rustls (ring provider), webpki or native roots, HTTP/2 via ALPN |

mod client;
pub mod config;
mod error;
pub mod http;
pub mod jsonrpc;
pub mod sse;
pub mod stdio;
pub mod telemetry;
pub mod transport;
pub mod types;

pub use client::{
    CallOptions, ClientHandler, McpClient, McpClientBuilder, ProgressFn, ProtocolChoice, ServerInfo,
};
pub use config::TransportConfig;
pub use error::{BoxError, Error};
pub use http::{HttpTransport, HttpTransportConfig};
pub use stdio::{StdioConfig, StdioTransport};
pub use transport::{RequestHints, Transport};
pub use types::{CallToolResult, Content, Implementation, Progress, Tool};
