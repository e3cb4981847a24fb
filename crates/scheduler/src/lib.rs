//! The Scheduler client: the configuration model (the design document's JSON shape, with a
//! documented default for every setting), [`McpSdkClient`] (one configured MCP server with
//! transport, auth, resilience and pooling composed once) and [`SchedulerService`] (the
//! Scheduler's tools as typed async methods).
//!
//! ```no_run
//! use scheduler::domain::ScheduleConversation;
//! use scheduler::{Config, SchedulerService};
//!
//! # async fn run() -> Result<(), scheduler::Error> {
//! // mcp.mcp_servers[] with transport {type, url, auth {client_id, api_key}}; the
//! // SCHEDULER_CLIENT_ID / SCHEDULER_API_KEY environment variables override the file.
//! let config = Config::load("scheduler.json".as_ref())?;
//! let scheduler = SchedulerService::connect(&config, "Scheduler").await?;
//! let scheduled = scheduler
//!     .schedule_conversation(ScheduleConversation {
//!         topic: "Quarterly planning".into(),
//!         participants: vec!["ana@contoso.example".into()],
//!         scheduled_time: "2026-12-01T09:30:00+01:00".into(),
//!         timezone: Some("Europe/Paris".into()),
//!         duration_minutes: None,
//!         metadata: None,
//!         // None: one key is generated for this call and sent with every retry.
//!         idempotency_key: None,
//!     })
//!     .await?;
//! let status = scheduler.conversation_status(&scheduled.conversation_id).await?;
//! println!("{} is {}", status.conversation_id, status.status.as_str());
//! # Ok(())
//! # }
//! ```
//!
//! Errors say what happened through predicates:
//!
//! ```
//! fn exit_code(err: &scheduler::Error) -> i32 {
//!     if err.is_config() {
//!         78 // the message names the setting's path
//!     } else if err.is_invalid_argument() {
//!         65 // caught before any call, naming the argument
//!     } else if err.is_tool() {
//!         4 // the Scheduler refused (e.g. cancelling a completed conversation)
//!     } else {
//!         69 // unreachable, or the call failed after its retries
//!     }
//! }
//! # let _ = exit_code;
//! ```
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `client` | yes | [`config`], [`client`], [`service`]: the client over `mcp-transport`, `mcp-auth`, `mcp-resilience` |
//! | `schema` | no | `schemars::JsonSchema` for the [`domain`] types (servers publishing tool schemas) |
//!
//! Without `client` the crate is the tool contract alone ([`domain`]): what
//! `scheduler-server` depends on, so the server does not build the client stack.
//!
//! # Architecture invariants
//!
//! - The one place that composes the layers from configuration; the layers do not know it.
//! - Domain types shared with `scheduler-server` live in a small module that pulls no client
//!   stack.
//! - Every logical `scheduleConversation` call has one idempotency key, chosen before the
//!   first attempt.

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
