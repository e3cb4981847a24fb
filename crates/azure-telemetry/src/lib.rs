//! One-call telemetry setup: `tracing` plus OpenTelemetry, exported to Application Insights,
//! OTLP or stdout, with the workspace's span and attribute conventions and trace-context
//! propagation helpers.
//!
//! # Status
//!
//! Here: the Application Insights [`ConnectionString`] parser. The initializer, exporters and
//! conventions land with the rest of the azure-telemetry issue.
//!
//! # Architecture invariants
//!
//! - Knows nothing of MCP or scheduling: other crates emit `tracing` spans and events; this
//!   crate only decides where they go.
//! - Never exports attribute values marked secret; connection strings are not logged.
//!
//! # Example
//!
//! ```
//! fn is_fatal_at_startup(err: &azure_telemetry::Error) -> bool {
//!     err.is_invalid_connection_string()
//! }
//! # let _ = is_fatal_at_startup;
//! ```

pub mod connection_string;
mod error;

pub use connection_string::ConnectionString;
pub use error::Error;
