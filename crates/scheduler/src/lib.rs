//! The Scheduler client: the configuration model (the design document's JSON shape, with a
//! documented default for every setting) and a typed `SchedulerService` (`scheduleConversation`,
//! status checks) built by composing transport, auth, resilience, secrets and telemetry.
//!
//! # Status
//!
//! The tool contract ([`domain`]) is here: the arguments and results of the Scheduler's tools
//! with their validation, shared with `scheduler-server`. The configuration model and
//! `SchedulerService` land with the scheduler + CLI issue.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `schema` | no | `schemars::JsonSchema` for the [`domain`] types (servers publishing tool schemas) |
//!
//! # Architecture invariants
//!
//! - The one place that composes the layers from configuration; the layers do not know it.
//! - Domain types shared with `scheduler-server` live in a small module that pulls no client
//!   stack.
//!
//! # Example
//!
//! ```
//! fn exit_code(err: &scheduler::Error) -> i32 {
//!     if err.is_config() { 78 } else { 1 }
//! }
//! # let _ = exit_code;
//! ```

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub mod config;
pub mod domain;
mod error;
#[cfg(feature = "client")]
pub mod service;

#[cfg(feature = "client")]
pub use client::{EndpointCheck, McpSdkClient};
#[cfg(feature = "client")]
pub use config::Config;
pub use error::Error;
#[cfg(feature = "client")]
pub use service::{HealthMonitor, HealthReport, Pages, SchedulerService};
