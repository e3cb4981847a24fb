//! The Scheduler's own OAuth 2.0 authorization server and the token check in front of `/mcp`.
//!
//! - **Clients** are registered with [`register_client`]: a random id (`sch_…`) and a random
//!   256-bit API key, shown once in a redacting [`ApiKey`]; only `sha256:<hex>` of the key is
//!   stored, and presented keys are compared by hash in constant time.
//! - **Tokens** come from `POST /oauth/token` (the `client_credentials` grant; client
//!   authentication by HTTP Basic or form parameters). They are ES256 JWTs shaped like
//!   RFC 9068 (`typ: at+jwt`, claims `iss sub aud iat nbf exp jti client_id scope`), valid for
//!   [`AuthConfig::token_ttl`]. Failed client authentications are limited per client id and
//!   per peer address ([`RateLimitConfig`]); over the limit the endpoint answers `429` with
//!   `Retry-After`.
//! - **Signing keys** are P-256 key pairs kept in the store as one secret setting (left out
//!   of backups), created on first start, so tokens survive restarts. The key id is the
//!   RFC 7638 thumbprint. [`AuthState::rotate_signing_key`] adds a key that signs from then
//!   on while older keys still verify; `/jwks.json` lists them all.
//! - **Verification** ([`Verifier::verify`]) pins the algorithm (ES256 for this server's
//!   keys; `none`, HS256 and everything else are refused before any signature work), and
//!   checks `typ`, `kid`, the signature, `iss`, `aud`, `exp`/`nbf` (60 s leeway) and size
//!   (8 KiB at most). Tokens of an external issuer (Microsoft Entra ID, for managed-identity
//!   callers) are accepted too when [`AuthConfig::external`] is set: RS256 against the JWK
//!   Set given in that configuration, or fetched over HTTPS from its `jwks_uri`, refreshed
//!   hourly and on an unknown `kid` (rate limited; see [`ExternalIssuer`] for the details).
//! - **Discovery**: RFC 8414 metadata at `/.well-known/oauth-authorization-server`, RFC 9728
//!   protected-resource metadata at `/.well-known/oauth-protected-resource` and at
//!   `/.well-known/oauth-protected-resource/<resource path>` (`…/mcp`).
//! - **Protection**: [`require_bearer`] answers `401` with a `WWW-Authenticate: Bearer`
//!   challenge pointing at the resource metadata, and hands verified [`Claims`] to the route.
//!   With [`AuthConfig::required_scopes`] set, a valid token that lacks one of them gets
//!   `403` and `error="insufficient_scope", scope="<required scopes>"` (RFC 6750 §3.1); the
//!   `401` challenge then names the required scopes, and the metadata documents list them in
//!   `scopes_supported`. A token's scopes are its `scope` and `scp` claims (space-separated)
//!   and, for the external issuer's tokens, its `roles` (Entra ID app roles, which is what
//!   managed identities carry).
//!
//! API keys and tokens never appear in `Debug`, `Display`, errors or logs; log events carry
//! the client id (only when it has the shape of one this server issued) and a reason.
//!
//! The failed-attempt limits are kept in memory per process, and the peer address is the TCP
//! peer (`ConnectInfo<SocketAddr>`; `X-Forwarded-For` is not trusted). Serve the router with
//! `into_make_service_with_connect_info::<SocketAddr>()` for the per-address limit to apply.
//!
//! ```no_run
//! use std::{net::SocketAddr, sync::Arc};
//! use axum::{Router, routing::post};
//! use scheduler_server::auth::{self, AuthConfig, AuthState};
//! use scheduler_server::store::Store;
//!
//! # async fn run(store: Arc<dyn Store>) -> Result<(), Box<dyn std::error::Error>> {
//! let config = AuthConfig::new("http://127.0.0.1:8080", "http://127.0.0.1:8080/mcp");
//! let state = AuthState::new(store, config, auth::system_clock()).await?;
//! let mcp = auth::protect(Router::new().route("/mcp", post(|| async { "tools here" })), state.clone());
//! let app = auth::routes(state).merge(mcp);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(()) }
//! ```

mod client;
mod clock;
mod endpoint;
mod external;
mod form;
mod jwks_fetch;
mod jwt;
mod keys;
mod middleware;
mod rate_limit;
mod secret;
mod state;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

pub use client::{CLIENT_ID_PREFIX, hash_api_key, register_client, verify_api_key};
pub use clock::{Clock, ManualClock, system_clock};
pub use external::{ExternalIssuer, ExternalIssuerConfig};
pub use jwks_fetch::MAX_JWKS_BYTES;
pub use jwt::{Claims, LEEWAY, MAX_TOKEN_LEN, TokenError, Verifier};
pub use middleware::require_bearer;
pub use rate_limit::RateLimitConfig;
pub use secret::{AccessToken, ApiKey};
pub use state::{
    AUTHORIZATION_SERVER_METADATA_PATH, AuthConfig, AuthState, IssuedToken, JWKS_PATH,
    PROTECTED_RESOURCE_METADATA_PATH, TOKEN_PATH,
};

/// The authorization server's routes: `POST /oauth/token`, `GET /jwks.json`,
/// `GET /.well-known/oauth-authorization-server`, and the protected-resource metadata at
/// `GET /.well-known/oauth-protected-resource` and `…/oauth-protected-resource/<resource path>`.
///
/// Merge it with the service's other routes; guard those with [`protect`].
pub fn routes(state: AuthState) -> Router {
    let mut router = Router::new()
        .route(TOKEN_PATH, post(endpoint::token))
        .route(JWKS_PATH, get(endpoint::jwks))
        .route(
            AUTHORIZATION_SERVER_METADATA_PATH,
            get(endpoint::authorization_server_metadata),
        )
        .route(
            PROTECTED_RESOURCE_METADATA_PATH,
            get(endpoint::protected_resource_metadata),
        );
    if state.resource_metadata_path() != PROTECTED_RESOURCE_METADATA_PATH {
        router = router.route(
            state.resource_metadata_path(),
            get(endpoint::protected_resource_metadata),
        );
    }
    router.with_state(state)
}

/// Puts [`require_bearer`] in front of every route of `router` (routes added to the result
/// afterwards are not covered).
pub fn protect(router: Router, state: AuthState) -> Router {
    router.layer(from_fn_with_state(state, require_bearer))
}
