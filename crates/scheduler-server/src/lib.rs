//! The Scheduler MCP service: the `scheduleConversation` and status tools over Streamable
//! HTTP, a durable store (SQLite by default), a dispatcher, its own OAuth token endpoint and
//! operational endpoints.
//!
//! # Status
//!
//! The service lands with the scheduler-server issue. Today the crate exposes only its
//! [`Error`] type.
//!
//! # Architecture invariants
//!
//! - Shares no code path with the client stack; it may reuse domain types from `scheduler`'s
//!   small domain module only.
//! - An idempotency key is checked in the same store transaction that creates the record, so a
//!   retried create can never schedule twice.
//!
//! # Example
//!
//! ```
//! fn is_startup_error(err: &scheduler_server::Error) -> bool {
//!     err.is_bind() || err.is_config()
//! }
//! # let _ = is_startup_error;
//! ```

pub mod auth;
pub mod clock;
pub mod config;
pub mod dispatcher;
mod error;
pub mod server;
pub mod store;
pub mod tools;

pub use error::Error;
