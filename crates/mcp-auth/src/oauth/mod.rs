//! An OAuth 2.0 client for MCP servers: discovery (RFC 9728 protected-resource metadata,
//! RFC 8414 / OpenID Connect authorization-server metadata) and two grants, as an
//! [`OAuthClient`] [`TokenSource`]:
//!
//! - **client credentials** (RFC 6749 §4.4, MCP SEP-1046), for a client acting on its own
//!   behalf, with `client_secret_basic`, `client_secret_post` or `private_key_jwt` (RFC 7523)
//!   client authentication: [`OAuthClient::client_credentials`],
//!   [`OAuthClient::private_key_jwt`];
//! - **authorization code** with PKCE `S256` (OAuth 2.1 §4.1), for a client acting for a
//!   person, per the MCP authorization spec (2025-11-25 and 2026-07-28): `state`, the exact
//!   redirect URI, the RFC 8707 `resource`, RFC 9207 `iss` checks, refresh tokens, step-up,
//!   client registration by pre-registration, Client ID Metadata Document or RFC 7591, and
//!   authorization-server migration: [`OAuthClient::authorization_code`], with an
//!   [`AuthorizationHandler`] for the user-agent step ([`LoopbackHandler`] for a browser,
//!   [`HeadlessHandler`] for servers that approve without one).
//!
//! The documents and token responses have public parsers
//! ([`ProtectedResourceMetadata::from_json`], [`AuthorizationServerMetadata::from_json`],
//! [`TokenResponse::from_json`], [`TokenErrorResponse::from_json`]) that are strict, bounded
//! and never panic.
//!
//! # Examples
//!
//! ```no_run
//! use mcp_auth::oauth::OAuthClient;
//! use mcp_auth::{CachedTokenSource, Secret, TokenRequest, TokenSource};
//!
//! # async fn run() -> Result<(), mcp_auth::Error> {
//! // Discover the authorization server from the MCP server, then use client credentials.
//! let client = OAuthClient::client_credentials("sch_abc", Secret::new(std::env::var("API_KEY").unwrap_or_default()))
//!     .server_url("https://scheduler.example.com/mcp")
//!     .build()?;
//! let token = client.token(&TokenRequest::new()).await?;
//! # let _ = token;
//! # Ok(()) }
//! ```
//!
//! A person signs in with a browser; the client registers itself dynamically, and the
//! [`AuthLayer`](crate::AuthLayer) starts the flow when the MCP server first answers `401`:
//!
//! ```no_run
//! use std::time::Duration;
//! use mcp_auth::oauth::{LoopbackHandler, OAuthClient};
//! use mcp_auth::{AuthLayer, CachedTokenSource};
//! use mcp_transport::http::{HttpClient, HttpConfig};
//! use mcp_transport::{HttpTransport, HttpTransportConfig, McpClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "https://mcp.example.com/mcp";
//! let pool = HttpClient::new(&HttpConfig::default())?;
//! // http://127.0.0.1:<free port>/callback; the URL to open is printed on stderr.
//! let browser = LoopbackHandler::bind(0)?.timeout(Duration::from_secs(120));
//! let source = OAuthClient::authorization_code(browser)
//!     .server_url(url)
//!     .client_name("My MCP app")
//!     .http(pool.clone())
//!     .build()?;
//! let service = tower::ServiceBuilder::new()
//!     .layer(AuthLayer::new(CachedTokenSource::new(source)))
//!     .service(pool);
//! let transport = HttpTransport::with_service(url, HttpTransportConfig::default(), service)?;
//! let client = McpClient::builder().connect(transport).await?;
//! # let _ = client;
//! # Ok(()) }
//! ```

mod assertion;
mod authorization_code;
mod discovery;
mod fetch;
mod json;
mod metadata;
mod pkce;
mod redirect;
mod registration;
mod token_request;
mod token_response;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mcp_transport::BoxError;
use mcp_transport::http::{HttpClient, HttpConfig, HttpRequest, HttpResponse, HttpService};
use tower::util::BoxCloneSyncService;
use url::Url;

use crate::error::Kind;
use crate::{AccessToken, BoxFuture, Error, Secret, TokenRequest, TokenSource};

pub use assertion::{JWT_BEARER_ASSERTION_TYPE, PrivateKey};
pub use authorization_code::AuthorizationCodeBuilder;
pub use metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
pub use redirect::{AuthorizationHandler, AuthorizationRequest, HeadlessHandler, LoopbackHandler};
pub use token_request::AuthMethod;
pub use token_response::{MAX_EXPIRES_IN, TokenErrorResponse, TokenResponse};

use discovery::Discovered;
use fetch::{Fetcher, endpoint_url, shown};
use token_request::{Credential, Exchange};

/// Default deadline of one HTTP exchange with a metadata or token endpoint.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on a metadata document or token response (1 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The `grant_type` of the client-credentials grant.
const CLIENT_CREDENTIALS: &str = "client_credentials";

/// An OAuth 2.0 client that gets tokens for one MCP server: a [`TokenSource`].
///
/// Build it with one of the constructors:
///
/// | constructor | grant | acts for |
/// | --- | --- | --- |
/// | [`client_credentials`](OAuthClient::client_credentials) (client id and secret) | `client_credentials` | itself |
/// | [`private_key_jwt`](OAuthClient::private_key_jwt) (client id and private key) | `client_credentials` | itself |
/// | [`authorization_code`](OAuthClient::authorization_code) (an [`AuthorizationHandler`]) | `authorization_code` + PKCE, `refresh_token` | a person |
///
/// Every call of [`token`](TokenSource::token) asks the authorization server for a new token
/// (a client-credentials request, a refresh or a new authorization): put a
/// [`CachedTokenSource`](crate::CachedTokenSource) in front of it.
///
/// The sections below up to [Errors](#errors) describe the client-credentials clients; the
/// authorization-code client has [its own section](#the-authorization-code-grant).
///
/// # Where the token endpoint comes from
///
/// - **Configured** ([`token_endpoint`](OAuthClientBuilder::token_endpoint)): used as is;
///   nothing is discovered.
/// - **Discovered** (the default when a [`server_url`](OAuthClientBuilder::server_url) is
///   given): the protected-resource metadata is read from the `resource_metadata` URL of the
///   server's challenge ([`TokenRequest::challenge`]) or, without one, from the well-known URIs
///   (`/.well-known/oauth-protected-resource/<path>`, then the root one). Its `resource` must
///   identify the server; the client then reads the metadata of an authorization server it
///   lists (the one pinned with [`issuer`](OAuthClientBuilder::issuer), else the first) from
///   the RFC 8414 / OpenID Connect well-known URIs, and refuses a document whose `issuer`
///   differs from the issuer it was looked up for.
///
/// The discovered documents are kept: later calls reuse them, and they are fetched again only
/// when a challenge names a different `resource_metadata` URL. The credentials are bound to
/// the first authorization server used (MCP "Authorization Server Binding"): if the resource
/// later points elsewhere, `token()` fails with [`Error::is_discovery`] instead of sending the
/// credentials to another server. On first contact the client trusts the authorization server
/// the MCP server names: pin it with [`issuer`](OAuthClientBuilder::issuer) (or configure the
/// token endpoint) when the credentials must never reach another server.
///
/// # The challenge contract
///
/// Without a configured token endpoint, without discovered metadata and without a challenge
/// in the request, `token()` tries the well-known URIs itself. If they have no document, it
/// fails with [`Error::is_challenge_required`]: the caller (the [`AuthLayer`](crate::AuthLayer))
/// then sends its request without a token and calls again with the server's
/// `WWW-Authenticate` challenge ([`TokenRequest::challenge`]).
///
/// # Scopes
///
/// The scopes asked for are the configured [`scopes`](OAuthClientBuilder::scopes), plus the
/// challenge's `scope` if it has one, or else (when no scopes are configured) the resource's
/// `scopes_supported`, plus the request's [`scopes`](TokenRequest::scopes). When that set is
/// empty, `scope` is left out of the token request. The RFC 8707 `resource` parameter is the
/// resource metadata's `resource`, or the canonical server URL.
///
/// # Errors
///
/// [`Error::is_token_endpoint`] when the endpoint refuses (its error code is in the message),
/// [`Error::is_invalid_token_response`] for an answer that is not a valid token response,
/// [`Error::is_discovery`] when the metadata is missing, malformed or fails validation,
/// [`Error::is_unreachable`] for connection failures and timeouts, and
/// [`Error::is_challenge_required`] as above. Messages name the URL and field, never a secret.
///
/// # The authorization-code grant
///
/// Built with [`OAuthClient::authorization_code`] and an [`AuthorizationHandler`] (settings:
/// [`AuthorizationCodeBuilder`]). A call of `token()`:
///
/// 1. **Waits for the challenge.** Without a [`TokenRequest::challenge`] and before any
///    authorization it fails with [`Error::is_challenge_required`]: the
///    [`AuthLayer`](crate::AuthLayer) sends the first request without a token and calls again
///    with the server's `401` challenge, whose `scope` is the best guide to what to ask for.
/// 2. **Discovers** as above (challenge `resource_metadata`, else the well-known URIs; the
///    resource must match; issuer-validated RFC 8414 / OpenID metadata). The protected-resource
///    metadata is read again whenever the server refused a token, so a server that moved to
///    another authorization server is noticed. With
///    [`legacy_discovery`](AuthorizationCodeBuilder::legacy_discovery), a server without
///    protected-resource metadata is handled as MCP 2025-03-26 did (its origin is the
///    authorization server, with default endpoints if it has no metadata either).
/// 3. **Refuses** an authorization server whose metadata lacks `S256` in
///    `code_challenge_methods_supported` ([`Error::is_discovery`]).
/// 4. **Chooses the scopes**: those of the previous authorization (SEP-2350 union), the
///    configured [`scopes`](AuthorizationCodeBuilder::scopes), the challenge's `scope` or else
///    the resource's `scopes_supported`, the request's [`scopes`](TokenRequest::scopes) (the
///    layer's step-ups), and `offline_access` only when the authorization server lists it in
///    `scopes_supported` ([`offline_access`](AuthorizationCodeBuilder::offline_access)). An
///    empty set leaves `scope` out.
/// 5. **Refreshes** when it holds a refresh token for this authorization server, the scopes
///    are within the refreshed grant and the challenge is not `insufficient_scope`
///    (`grant_type=refresh_token` with the `resource`; a rotated refresh token replaces the
///    old one). A refused refresh drops the refresh token and falls back to step 6; an
///    unreachable server is an error. Without a refresh token, a token that expired or was
///    refused is replaced by a new authorization (with [`LoopbackHandler`], the person signs
///    in again).
/// 6. **Registers**, once per authorization server, in the MCP priority order: the
///    pre-registered [`client_id`](AuthorizationCodeBuilder::client_id) (and secret, sent with
///    `client_secret_basic` or `client_secret_post` as the server accepts); the
///    [Client ID Metadata Document URL](AuthorizationCodeBuilder::client_metadata_url) when the
///    server advertises `client_id_metadata_document_supported`; RFC 7591 dynamic
///    registration at its `registration_endpoint` (`application_type`, the redirect URI,
///    `authorization_code` and `refresh_token` grant types, and `client_secret_basic`,
///    `client_secret_post` or `none`, the first the server accepts). Otherwise
///    [`Error::is_config`].
/// 7. **Authorizes**: a fresh PKCE verifier and `state` for each authorization; the handler
///    takes the user agent to the authorization URL and returns the redirect. The response
///    must come back to the redirect URI with the `state` sent; a present `iss` must equal the
///    issuer exactly (no normalization), and a missing one is refused when the server
///    advertises `authorization_response_iss_parameter_supported` (RFC 9207, MCP 2026-07-28);
///    otherwise [`Error::is_invalid_authorization_response`], and the code is never used. An
///    `error` response is [`Error::is_authorization_denied`].
/// 8. **Exchanges the code** with the verifier, the same redirect URI and the same `resource`
///    as the authorization request, and keeps the refresh token, if one comes, in memory.
///
/// One flow runs at a time (a lock is held across it, user interaction included).
///
/// **Authorization-server binding and migration.** When the protected-resource metadata
/// names another authorization server than the one in use (and no longer lists the old one),
/// the client follows it only with credentials that are not tied to the old one: tokens and
/// refresh tokens are dropped, a dynamic registration is made again at the new server
/// (SEP-2352), a Client ID Metadata Document URL is portable. A pre-registered client is
/// bound to the server it was first used with (or the [`issuer`](AuthorizationCodeBuilder::issuer)
/// pinned), and a move is [`Error::is_discovery`], as for client credentials, whose binding
/// does not change: client credentials act without a person, so nothing but the pinned or
/// first server may receive them, while an authorization-code client gets a person's
/// consent at the new server before any token is issued.
///
/// Errors name URLs and parameters; the code, the verifier, `state`, tokens and client
/// secrets never appear in errors, logs or `Debug` (an error description that repeats one of
/// them is not shown).
#[derive(Clone)]
pub struct OAuthClient {
    inner: Arc<Inner>,
}

struct Inner {
    client_id: String,
    credential: Credential,
    auth_method: Option<AuthMethod>,
    scopes: Vec<String>,
    server_url: Option<Url>,
    resource: Option<String>,
    endpoint: Endpoint,
    issuer: Option<String>,
    assertion_audience: Option<String>,
    allow_insecure_http: bool,
    fetcher: Fetcher,
    discovered: tokio::sync::Mutex<Option<Arc<Discovered>>>,
    /// The authorization-code grant's settings and state (`None`: client credentials).
    code: Option<authorization_code::CodeFlow>,
}

#[derive(Debug, Clone)]
enum Endpoint {
    Configured(Url),
    Discover,
}

impl OAuthClient {
    /// A client-credentials client that authenticates with `client_id` and `secret`
    /// (`client_secret_basic` unless the server or [`auth_method`](OAuthClientBuilder::auth_method)
    /// says otherwise).
    ///
    /// ```
    /// use mcp_auth::oauth::OAuthClient;
    ///
    /// let client = OAuthClient::client_credentials("my-client", "my-secret")
    ///     .token_endpoint("https://auth.example.com/oauth/token")
    ///     .scopes(["scheduler"])
    ///     .build()?;
    /// assert!(!format!("{client:?}").contains("my-secret"));
    /// # Ok::<(), mcp_auth::Error>(())
    /// ```
    pub fn client_credentials(
        client_id: impl Into<String>,
        secret: impl Into<Secret>,
    ) -> OAuthClientBuilder {
        OAuthClientBuilder::new(client_id.into(), Credential::Secret(secret.into()))
    }

    /// A client-credentials client that authenticates with a JWT signed by `key`
    /// (`private_key_jwt`, RFC 7523 §2.2).
    pub fn private_key_jwt(client_id: impl Into<String>, key: PrivateKey) -> OAuthClientBuilder {
        OAuthClientBuilder::new(client_id.into(), Credential::PrivateKey(key))
    }

    /// An authorization-code client (OAuth 2.1 with PKCE `S256`) acting for a person: `handler`
    /// takes the user agent through each authorization ([`LoopbackHandler`] for a browser,
    /// [`HeadlessHandler`] for servers that approve without one). The client registers
    /// itself (pre-registered [`client_id`](AuthorizationCodeBuilder::client_id), a
    /// [Client ID Metadata Document](AuthorizationCodeBuilder::client_metadata_url), or RFC
    /// 7591 dynamic registration) and keeps refresh tokens in memory. See
    /// [the authorization-code grant](OAuthClient#the-authorization-code-grant).
    ///
    /// ```
    /// use mcp_auth::oauth::{HeadlessHandler, OAuthClient};
    ///
    /// let client = OAuthClient::authorization_code(HeadlessHandler::new())
    ///     .server_url("https://mcp.example.com/mcp")
    ///     .client_id("registered-client")
    ///     .client_secret("its-secret")
    ///     .build()?;
    /// assert!(!format!("{client:?}").contains("its-secret"));
    /// # Ok::<(), mcp_auth::Error>(())
    /// ```
    pub fn authorization_code(handler: impl AuthorizationHandler) -> AuthorizationCodeBuilder {
        AuthorizationCodeBuilder::new(Arc::new(handler))
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The authorization server metadata discovered so far, if any.
    pub async fn authorization_server_metadata(&self) -> Option<AuthorizationServerMetadata> {
        let discovered = self.inner.discovered.lock().await;
        discovered.as_ref().map(|d| d.metadata.clone())
    }

    /// The protected-resource metadata discovered so far, if any.
    pub async fn protected_resource_metadata(&self) -> Option<ProtectedResourceMetadata> {
        let discovered = self.inner.discovered.lock().await;
        discovered.as_ref().map(|d| d.resource_metadata.clone())
    }

    async fn fetch(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        let inner = &*self.inner;
        let discovered = match &inner.endpoint {
            Endpoint::Configured(_) => None,
            Endpoint::Discover => Some(self.discover(request).await?),
        };
        let endpoint = match (&inner.endpoint, &discovered) {
            (Endpoint::Configured(url), _) => url,
            (Endpoint::Discover, Some(d)) => &d.token_endpoint,
            (Endpoint::Discover, None) => {
                return Err(Error::new(Kind::Discovery).with_context("no token endpoint"));
            }
        };
        let metadata = discovered.as_ref().map(|d| &d.metadata);
        let scopes = self.scopes_for(request, discovered.as_deref());
        let method = self.method(metadata)?;
        let audience = inner
            .assertion_audience
            .as_deref()
            .or(metadata.map(AuthorizationServerMetadata::issuer))
            .or(inner.issuer.as_deref())
            .unwrap_or(endpoint.as_str());
        let canonical = inner.server_url.as_ref().map(discovery::canonical_resource);
        let resource = inner
            .resource
            .as_deref()
            .or(discovered
                .as_deref()
                .map(|d| d.resource_metadata.resource()))
            .or(canonical.as_deref());
        Exchange {
            fetcher: &inner.fetcher,
            endpoint,
            client_id: &inner.client_id,
            credential: &inner.credential,
            method,
            audience,
            resource,
            scopes: &scopes,
        }
        .send(&[("grant_type", CLIENT_CREDENTIALS)])
        .await
    }

    /// The discovered documents: cached, or fetched (again) as the request's challenge says.
    async fn discover(&self, request: &TokenRequest) -> Result<Arc<Discovered>, Error> {
        let inner = &*self.inner;
        let Some(server) = &inner.server_url else {
            return Err(Error::new(Kind::Config).with_context("discovery needs server_url"));
        };
        let from_challenge = request
            .challenge
            .as_ref()
            .and_then(|c| c.resource_metadata());
        let mut cached = inner.discovered.lock().await;
        if let Some(d) = cached.as_ref() {
            let same = match from_challenge {
                None => true,
                Some(url) => server
                    .join(url.trim())
                    .is_ok_and(|u| u == d.resource_metadata_url),
            };
            if same {
                return Ok(Arc::clone(d));
            }
            tracing::debug!(
                resource_metadata = %from_challenge.unwrap_or(""),
                "the challenge names other resource metadata; discovering again"
            );
        }
        let bound = cached.as_ref().map(|d| d.issuer().to_owned());
        let challenged = request.challenge.is_some();
        let result = self
            .discover_once(server, from_challenge, challenged, bound)
            .await;
        match result {
            Ok(d) => {
                let d = Arc::new(d);
                *cached = Some(Arc::clone(&d));
                Ok(d)
            }
            Err(e) => {
                if !e.is_challenge_required() {
                    tracing::warn!(server = %shown(server), error = %e, "authorization server discovery failed");
                }
                Err(e)
            }
        }
    }

    async fn discover_once(
        &self,
        server: &Url,
        from_challenge: Option<&str>,
        challenged: bool,
        bound: Option<String>,
    ) -> Result<Discovered, Error> {
        let inner = &*self.inner;
        let found = discovery::find_resource_metadata(
            &inner.fetcher,
            server,
            from_challenge,
            inner.allow_insecure_http,
        )
        .await?;
        let Some((resource_metadata_url, resource_metadata)) = found else {
            let tried: Vec<String> = discovery::resource_metadata_urls(server)
                .iter()
                .map(shown)
                .collect();
            let tried = tried.join(" or ");
            return Err(if challenged {
                Error::new(Kind::Discovery).with_context(format!(
                    "the server's challenge names no resource_metadata and there is no \
                     protected resource metadata at {tried}"
                ))
            } else {
                Error::new(Kind::ChallengeRequired).with_context(format!(
                    "no protected resource metadata at {tried}; the server's WWW-Authenticate \
                     challenge is needed to find its authorization server"
                ))
            });
        };
        let expected = inner.issuer.as_deref().or(bound.as_deref());
        let issuer =
            discovery::choose_issuer(&resource_metadata, &resource_metadata_url, expected)?;
        let (metadata, token_endpoint) =
            discovery::find_authorization_server(&inner.fetcher, issuer, inner.allow_insecure_http)
                .await?;
        if let Some(grants) = metadata.grant_types_supported()
            && !grants.iter().any(|g| g == CLIENT_CREDENTIALS)
        {
            tracing::debug!(
                issuer,
                ?grants,
                "grant_types_supported does not list client_credentials; trying anyway"
            );
        }
        Ok(Discovered {
            resource_metadata_url,
            resource_metadata,
            metadata,
            token_endpoint,
        })
    }

    fn scopes_for(&self, request: &TokenRequest, discovered: Option<&Discovered>) -> Vec<String> {
        let inner = &*self.inner;
        let mut scopes: Vec<String> = Vec::new();
        let mut add = |s: &str| {
            if !s.is_empty() && !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_owned());
            }
        };
        inner.scopes.iter().for_each(|s| add(s));
        match request.challenge.as_ref().filter(|c| c.has_scope()) {
            Some(challenge) => challenge.scopes().for_each(&mut add),
            None if inner.scopes.is_empty() => {
                if let Some(supported) =
                    discovered.and_then(|d| d.resource_metadata.scopes_supported())
                {
                    supported.iter().for_each(|s| add(s));
                }
            }
            None => {}
        }
        request.scopes.iter().for_each(|s| add(s));
        scopes
    }

    /// The client authentication: the configured one, or the best the server accepts.
    fn method(&self, metadata: Option<&AuthorizationServerMetadata>) -> Result<AuthMethod, Error> {
        let inner = &*self.inner;
        let refuse = |method: AuthMethod, m: &AuthorizationServerMetadata| {
            Error::new(Kind::Config).with_context(format!(
                "authorization server `{}` does not accept {method} (token_endpoint_auth_methods_supported: {:?})",
                m.issuer(),
                m.token_endpoint_auth_methods_supported().unwrap_or(&["client_secret_basic".to_owned()])
            ))
        };
        match &inner.credential {
            Credential::PrivateKey(key) => {
                if let Some(m) = metadata {
                    if !m.supports_auth_method(AuthMethod::PrivateKeyJwt.as_str()) {
                        return Err(refuse(AuthMethod::PrivateKeyJwt, m));
                    }
                    if let Some(algs) = m.token_endpoint_auth_signing_alg_values_supported()
                        && !algs.iter().any(|a| a == key.algorithm())
                    {
                        return Err(Error::new(Kind::Config).with_context(format!(
                            "authorization server `{}` does not accept {}-signed assertions \
                             (token_endpoint_auth_signing_alg_values_supported: {algs:?})",
                            m.issuer(),
                            key.algorithm()
                        )));
                    }
                }
                Ok(AuthMethod::PrivateKeyJwt)
            }
            Credential::Secret(_) => match (inner.auth_method, metadata) {
                (Some(method), _) => Ok(method),
                (None, None) => Ok(AuthMethod::ClientSecretBasic),
                (None, Some(m)) => [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost]
                    .into_iter()
                    .find(|method| m.supports_auth_method(method.as_str()))
                    .ok_or_else(|| refuse(AuthMethod::ClientSecretBasic, m)),
            },
            // Only authorization-code clients are public; their flow picks its own method.
            Credential::None => Ok(AuthMethod::None),
        }
    }
}

impl TokenSource for OAuthClient {
    fn token<'a>(&'a self, request: &'a TokenRequest) -> BoxFuture<'a, Result<AccessToken, Error>> {
        match &self.inner.code {
            Some(flow) => Box::pin(flow.token(self, request)),
            None => Box::pin(self.fetch(request)),
        }
    }
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("OAuthClient")
            .field("client_id", &inner.client_id)
            .field("credential", &inner.credential)
            .field("auth_method", &inner.auth_method)
            .field("scopes", &inner.scopes)
            .field("server_url", &inner.server_url.as_ref().map(shown))
            .field(
                "token_endpoint",
                &match &inner.endpoint {
                    Endpoint::Configured(url) => shown(url),
                    Endpoint::Discover => "(discovered)".to_owned(),
                },
            )
            .field("issuer", &inner.issuer)
            .field("authorization_code", &inner.code)
            .finish_non_exhaustive()
    }
}

/// Builds an [`OAuthClient`]; see its documentation for what each setting does.
pub struct OAuthClientBuilder {
    client_id: String,
    credential: Credential,
    auth_method: Option<AuthMethod>,
    scopes: Vec<String>,
    server_url: Option<String>,
    resource: Option<String>,
    token_endpoint: Option<String>,
    issuer: Option<String>,
    assertion_audience: Option<String>,
    http: Option<HttpService>,
    timeout: Duration,
    max_response_bytes: usize,
    allow_insecure_http: bool,
    code: Option<authorization_code::CodeFlow>,
}

impl OAuthClientBuilder {
    fn new(client_id: String, credential: Credential) -> Self {
        Self {
            client_id,
            credential,
            auth_method: None,
            scopes: Vec::new(),
            server_url: None,
            resource: None,
            token_endpoint: None,
            issuer: None,
            assertion_audience: None,
            http: None,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            allow_insecure_http: false,
            code: None,
        }
    }

    /// The MCP server's URL (its Streamable HTTP endpoint). Discovery starts from it, and its
    /// canonical form is the RFC 8707 `resource` when no metadata says otherwise.
    #[must_use]
    pub fn server_url(mut self, url: impl Into<String>) -> Self {
        self.server_url = Some(url.into());
        self
    }

    /// Uses this token endpoint: no discovery at all.
    #[must_use]
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    /// Discovers the token endpoint from the [`server_url`](Self::server_url) (the default
    /// when no token endpoint is set; undoes [`token_endpoint`](Self::token_endpoint)).
    #[must_use]
    pub fn discover(mut self) -> Self {
        self.token_endpoint = None;
        self
    }

    /// The authorization server the credentials belong to (its issuer identifier). Discovery
    /// then uses only this one and refuses a resource that does not list it; it is also the
    /// `aud` of `private_key_jwt` assertions with a configured token endpoint.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Pins the client authentication method (by default: `private_key_jwt` for a key; for
    /// a secret `client_secret_basic`, or `client_secret_post` when the discovered server
    /// accepts only that).
    #[must_use]
    pub fn auth_method(mut self, method: AuthMethod) -> Self {
        self.auth_method = Some(method);
        self
    }

    /// Scopes to ask for on every request (see [`OAuthClient`] for how they combine).
    #[must_use]
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The RFC 8707 `resource` to send, instead of the discovered or canonical server URI.
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// The `aud` of `private_key_jwt` assertions. Default: the authorization server's issuer
    /// (discovered or [configured](Self::issuer)), else the token endpoint URL. Some servers
    /// (Microsoft Entra ID) want the token endpoint URL.
    #[must_use]
    pub fn assertion_audience(mut self, audience: impl Into<String>) -> Self {
        self.assertion_audience = Some(audience.into());
        self
    }

    /// The HTTP stack for metadata and token requests (default: a new pooled
    /// [`HttpClient`] with default settings).
    #[must_use]
    pub fn http<S>(mut self, service: S) -> Self
    where
        S: tower_service::Service<HttpRequest, Response = HttpResponse, Error = BoxError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.http = Some(BoxCloneSyncService::new(service));
        self
    }

    /// Deadline of one HTTP exchange, response body included. Default [`DEFAULT_TIMEOUT`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Cap on a metadata document or token response. Default
    /// [`DEFAULT_MAX_RESPONSE_BYTES`] (1 MiB).
    #[must_use]
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Allows plain `http://` endpoints on non-loopback hosts (credentials then travel
    /// unencrypted). Default false: loopback only.
    #[must_use]
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Checks the settings and builds the client.
    ///
    /// # Errors
    ///
    /// [`Error::is_config`] naming the setting: an empty client id or secret, a URL that is not
    /// `https` (or loopback `http`), neither a token endpoint nor a server URL, an auth method
    /// that does not fit the credential, a malformed scope, or an HTTP client that cannot be
    /// built.
    pub fn build(self) -> Result<OAuthClient, Error> {
        let config = |what: String| Error::new(Kind::Config).with_context(what);
        if self.client_id.is_empty() && self.code.is_none() {
            return Err(config("the client id is empty".into()));
        }
        match (&self.credential, self.auth_method) {
            (Credential::Secret(s), _) if s.is_empty() => {
                return Err(config("the client secret is empty".into()));
            }
            (Credential::Secret(_), Some(AuthMethod::None)) if self.code.is_none() => {
                return Err(config(
                    "auth method none sends no credential; the client-credentials grant needs one"
                        .into(),
                ));
            }
            (Credential::Secret(_), Some(AuthMethod::PrivateKeyJwt)) => {
                return Err(config(
                    "auth method private_key_jwt needs a private key (OAuthClient::private_key_jwt)"
                        .into(),
                ));
            }
            (Credential::PrivateKey(_), Some(m)) if m != AuthMethod::PrivateKeyJwt => {
                return Err(config(format!("auth method {m} needs a client secret")));
            }
            _ => {}
        }
        for scope in &self.scopes {
            if scope.is_empty()
                || !scope
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
            {
                return Err(config(format!(
                    "scope {scope:?} is not an OAuth scope token (RFC 6749 §3.3: printable ASCII \
                     without spaces, quotes or backslashes)"
                )));
            }
        }
        let insecure = self.allow_insecure_http;
        let server_url = self
            .server_url
            .as_deref()
            .map(|u| endpoint_url(u, "server_url", insecure, Kind::Config))
            .transpose()?;
        let endpoint = match (&self.token_endpoint, &server_url) {
            (Some(url), _) => {
                Endpoint::Configured(endpoint_url(url, "token_endpoint", insecure, Kind::Config)?)
            }
            (None, Some(_)) => Endpoint::Discover,
            (None, None) => {
                return Err(config(
                    "set token_endpoint, or server_url to discover it".into(),
                ));
            }
        };
        if let Some(issuer) = &self.issuer {
            endpoint_url(issuer, "issuer", insecure, Kind::Config)?;
        }
        let service = match self.http {
            Some(s) => s,
            None => {
                BoxCloneSyncService::new(HttpClient::new(&HttpConfig::default()).map_err(|e| {
                    Error::new(Kind::Config)
                        .with_context("the HTTP client cannot be built")
                        .with_source(e)
                })?)
            }
        };
        Ok(OAuthClient {
            inner: Arc::new(Inner {
                client_id: self.client_id,
                credential: self.credential,
                auth_method: self.auth_method,
                scopes: self.scopes,
                server_url,
                resource: self.resource,
                endpoint,
                issuer: self.issuer,
                assertion_audience: self.assertion_audience,
                allow_insecure_http: insecure,
                fetcher: Fetcher::new(service, self.timeout, self.max_response_bytes),
                discovered: tokio::sync::Mutex::new(None),
                code: self.code,
            }),
        })
    }
}

impl fmt::Debug for OAuthClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClientBuilder")
            .field("client_id", &self.client_id)
            .field("credential", &self.credential)
            .field("auth_method", &self.auth_method)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}
