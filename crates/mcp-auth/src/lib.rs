//! Authentication for MCP clients: turn a client id and an API key (or a private key, or an
//! Azure managed identity) into bearer tokens, keep them in memory, refresh them before they
//! expire, and put them on every request.
//!
//! # The parts
//!
//! - [`TokenSource`]: one async method returning an [`AccessToken`] for a [`TokenRequest`].
//!   Implementations: [`OAuthClient`] (OAuth 2.0 per the MCP authorization spec: discovery
//!   from the server's `WWW-Authenticate` challenge, RFC 9728 and RFC 8414 metadata, the
//!   `client_credentials` grant with `client_secret_basic`, `client_secret_post` or
//!   `private_key_jwt`; the authorization-code grant with PKCE, RFC 9207 `iss` checks,
//!   refresh tokens, pre-registered, dynamically registered (RFC 7591) or metadata-document
//!   client ids, driven by an `AuthorizationHandler` such as the loopback browser flow),
//!   [`StaticToken`], and `AzureTokenSource` (feature `azure`: any
//!   `azure_core` `TokenCredential`, e.g. managed identity, with a configured scope).
//! - [`CachedTokenSource`]: in front of any source. A lock-free read on the hot path; a
//!   refresh before expiry at a jittered point (so a fleet does not stampede), single-flight
//!   (N callers near expiry make one token request), optional background refresh, backoff
//!   after a failed refresh while the old token is still served.
//! - [`AuthLayer`]: a tower layer over the transport's HTTP service
//!   (`mcp_transport::http::HttpClient`): `Authorization: Bearer` on every request, one replay
//!   after a 401 with a new token, one scope step-up after a 403 `insufficient_scope`.
//! - [`Secret`]: API keys, client secrets and tokens are held in it; `Debug` shows nothing of
//!   the value and the memory is zeroed when the last clone drops.
//!
//! # Architecture invariants
//!
//! - Depends on `mcp-transport` for its HTTP seam (a `tower::Service`) only; it knows nothing of
//!   retries, failover, scheduling or telemetry backends.
//! - Tokens and API keys live in memory only, in [`Secret`]: they never reach `Debug`,
//!   `Display`, errors, logs, spans or metrics (canary tests check this).
//! - Every parser of what a server sends (challenges, metadata, token responses) is strict,
//!   bounded and fuzzed.
//!
//! # Example
//!
//! A client id and API key, the authorization server discovered from the MCP server, tokens
//! cached and refreshed, the layer on the pooled HTTP client:
//!
//! ```no_run
//! use mcp_auth::{AuthLayer, CachedTokenSource, OAuthClient, Secret};
//! use mcp_transport::http::{HttpClient, HttpConfig};
//! use mcp_transport::{HttpTransport, HttpTransportConfig, McpClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "https://scheduler.example.com/mcp";
//! let pool = HttpClient::new(&HttpConfig::default())?;
//! let api_key = Secret::new(std::env::var("SCHEDULER_API_KEY")?);
//! let source = OAuthClient::client_credentials("sch_client", api_key)
//!     .server_url(url)
//!     .http(pool.clone())
//!     .build()?;
//! let service = tower::ServiceBuilder::new()
//!     .layer(AuthLayer::new(CachedTokenSource::new(source)))
//!     .service(pool);
//! let transport = HttpTransport::with_service(url, HttpTransportConfig::default(), service)?;
//! let client = McpClient::builder().connect(transport).await?;
//! let tools = client.list_tools().await?;
//! # let _ = tools;
//! # Ok(())
//! # }
//! ```
//!
//! Errors are one opaque [`Error`] with predicates:
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
