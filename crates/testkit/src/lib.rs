//! Test support for the workspace (not published): fakes of the Azure services the stack talks
//! to (Key Vault, managed identity / Entra token endpoints, Application Insights ingestion), a
//! fault-injecting proxy, and launchers for real MCP peers on loopback.
//!
//! # What is here
//!
//! - [`mcp_http`]: a scripted MCP Streamable HTTP server ([`mcp_http::ScriptedMcpServer`]) for
//!   the client behaviours a real server cannot easily be made to show (expired sessions,
//!   broken SSE streams, held responses); it records every request for assertions.
//! - [`Error`]: the crate's error type.
//!
//! Fakes of the Azure services and peer launchers are added by the issues that need them.
//!
//! # Architecture invariants
//!
//! - Everything binds to loopback (127.0.0.0/8, `::1`) or to a network namespace the test made;
//!   nothing here ever sends traffic to another address.
//! - Only ever a dev-dependency.
//!
//! # Example
//!
//! ```
//! fn retryable(err: &testkit::Error) -> bool {
//!     err.is_io()
//! }
//! # let _ = retryable;
//! ```

pub mod azure;
mod error;
pub mod fault_proxy;
pub mod mcp_http;

pub use error::Error;
pub use fault_proxy::{Fault, FaultProxy};

/// Locks `m`, recovering from poisoning: every update under the fakes' locks is a single
/// assignment, push or read, so a poisoned lock is still consistent.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
