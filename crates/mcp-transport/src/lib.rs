//! An MCP client over Streamable HTTP and stdio.
//!
//! Work in progress (the mcp-transport issue): the JSON-RPC codec ([`jsonrpc`]) and the SSE
//! decoder ([`sse`]) are here; the transports and `McpClient` are being built.
//!
//! # Architecture invariants
//!
//! - Knows nothing of auth schemes, retries, Azure or scheduling. It exposes the seams the
//!   other crates plug into: the HTTP stack is a `tower::Service`, and a message-level
//!   `Transport` trait makes stdio and HTTP interchangeable.
//! - Every network operation has a timeout with a documented default; nothing can hang forever.

mod error;
pub mod jsonrpc;
pub mod sse;

pub use error::Error;
