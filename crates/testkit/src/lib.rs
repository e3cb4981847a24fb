//! Test support for the workspace (not published): fakes of the Azure services the stack talks
//! to (Key Vault, managed identity / Entra token endpoints, Application Insights ingestion), a
//! fault-injecting proxy, and launchers for real MCP peers on loopback.
//!
//! # Status
//!
//! Fakes and launchers are added by the issues that need them. Today the crate exposes only
//! its [`Error`] type.
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

mod error;

pub use error::Error;
