//! Authentication for MCP clients: turn a client id and an API key (or a managed identity)
//! into bearer tokens, keep them in memory, and refresh them before they expire.
//!
//! # Status
//!
//! This crate is the home of the auth capability; the `TokenSource` trait, the OAuth 2.0
//! client-credentials source, the caching/refresh logic, the Azure adapter and the tower auth
//! layer land with the mcp-auth issue. Today it exposes only its [`Error`] type.
//!
//! # Architecture invariants
//!
//! - Depends on `mcp-transport` for its HTTP seam (a `tower::Service`) only; it knows nothing of
//!   retries, failover, scheduling or telemetry backends.
//! - Tokens and API keys live in memory only, in a redacting secret type: they never reach
//!   `Debug`, `Display`, errors, logs, spans or metrics.
//!
//! # Example
//!
//! ```
//! fn explain(err: &mcp_auth::Error) -> &'static str {
//!     if err.is_expired() {
//!         "token expired and could not be refreshed"
//!     } else if err.is_token_endpoint() {
//!         "credentials were refused"
//!     } else {
//!         "other auth failure"
//!     }
//! }
//! # let _ = explain;
//! ```

#[cfg(feature = "azure")]
mod azure;
mod cache;
mod challenge;
mod error;
mod layer;
pub mod oauth;
mod secret;
mod static_token;
mod token;

#[cfg(feature = "azure")]
pub use azure::AzureTokenSource;
pub use cache::{CachedTokenSource, Clock, RefreshPolicy};
pub use challenge::Challenge;
pub use error::Error;
pub use layer::{AuthLayer, AuthService};
pub use oauth::OAuthClient;
pub use secret::Secret;
pub use static_token::StaticToken;
pub use token::{AccessToken, BoxFuture, TokenRequest, TokenSource};
