//! The Scheduler MCP service: the `scheduleConversation` family of tools over Streamable HTTP
//! (rmcp 3.x on axum), a durable store (SQLite, embedded by default), a dispatcher that runs
//! due conversations, its own OAuth 2.0 token endpoint (client credentials, ES256 JWTs), and
//! operational endpoints.
//!
//! - [`tools`]: the tools on rmcp's `ServerHandler`; bad arguments are tool errors naming the
//!   field.
//! - [`store`]: the [`Store`](store::Store) trait and [`SqliteStore`](store::SqliteStore)
//!   (one writer thread with group commit, WAL readers, migrations, backup/restore).
//! - [`dispatcher`]: lease-based claims, builtin and webhook runners, retries with capped
//!   full-jitter backoff; at-least-once.
//! - [`auth`]: client registration (keys stored hashed), `/oauth/token`, JWKS, RFC 9728 and
//!   RFC 8414 metadata, the bearer-token middleware (required scopes, `403
//!   insufficient_scope`), and an external issuer (Entra ID) whose JWK Set is fetched over
//!   HTTPS and kept fresh in the background until shutdown.
//! - [`server`]: the router (`/mcp`, auth routes, `/ping`, `/healthz`, `/readyz`), start and
//!   graceful shutdown. [`config`]: file + environment configuration.
//!
//! # Example
//!
//! ```no_run
//! use scheduler_server::config::ServerConfig;
//!
//! # async fn run() -> Result<(), scheduler_server::Error> {
//! let config = ServerConfig::from_json(r#"{"bind": "127.0.0.1:8080", "database": "scheduler.db"}"#)?;
//! let server = scheduler_server::server::start(config).await?;
//! println!("MCP endpoint: {}", server.mcp_url());
//! server.until_signal().await
//! # }
//! ```
//!
//! # Backup and recovery
//!
//! `mcp-scheduler backup export <file>` writes one JSON document with every conversation (in
//! every state, including pending retry times), every client (API keys hashed) and the
//! non-secret settings; signing keys are left out. To recover: stop the service, start from an
//! empty database (`SCHEDULER_DATABASE=new.db`), run `mcp-scheduler backup import <file>`
//! (refused unless the store is empty; one transaction), start the service. A new signing key
//! is created at start, so clients fetch new tokens (they do so on their own when the old ones
//! are refused); API keys keep working. Conversations that were `running` when the backup was
//! taken keep their lease and are run again once it expires (at-least-once).
//!
//! # Architecture invariants
//!
//! - Shares no code path with the client stack; it reuses only the tool contract types from
//!   `scheduler::domain`.
//! - An idempotency key is checked in the same store transaction that creates the record, so a
//!   retried create can never schedule twice.
//! - Time is passed into the store; nothing in the store reads the clock.
//! - Times are kept to the millisecond. Sub-millisecond digits of a `scheduledTime` (or a
//!   `from`/`to` filter) are dropped when the arguments are validated
//!   ([`scheduler::domain::parse_time`]), so the insert, the idempotency-key comparison and
//!   the result see one value: `2030-01-01T10:00:00.123456789+02:00` is stored and returned
//!   as `2030-01-01T08:00:00.123Z`, and a retry with either spelling replays the original.
//! - API keys and tokens never reach logs, errors or Debug output.

pub mod auth;
pub mod clock;
pub mod config;
pub mod dispatcher;
mod drain;
mod error;
pub mod server;
pub mod store;
pub mod tools;

pub use error::Error;
