//! The authorization-code grant with PKCE (OAuth 2.1 §4.1, RFC 7636 `S256`) for
//! [`OAuthClient`]: discovery from the MCP server's challenge, client registration
//! (pre-registered, Client ID Metadata Document, RFC 7591), the authorization request through
//! an [`AuthorizationHandler`], the response checks (`state`, RFC 9207 `iss`), the code
//! exchange with the RFC 8707 `resource`, refresh tokens, step-up and authorization-server
//! migration.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mcp_transport::BoxError;
use mcp_transport::http::{HttpRequest, HttpResponse};
use url::Url;

use crate::error::Kind;
use crate::{AccessToken, Challenge, Error, Secret, TokenRequest};

use super::discovery;
use super::fetch::{endpoint_url, shown};
use super::json::printable;
use super::pkce::{Pkce, S256, random_token};
use super::redirect::{AuthorizationHandler, AuthorizationRequest};
use super::registration::{self, Registration, Source};
use super::token_request::{AuthMethod, Credential, Exchange};
use super::token_response::TokenResponse;
use super::{AuthorizationServerMetadata, OAuthClient, OAuthClientBuilder};

/// The `scope` that asks for a refresh token (OpenID Connect; MCP SEP-2207).
const OFFLINE_ACCESS: &str = "offline_access";
/// Default `client_name` in a dynamic registration.
const DEFAULT_CLIENT_NAME: &str = "MCP client (mcp-auth)";

/// How the client identifies itself to authorization servers.
#[derive(Debug, Clone)]
enum Identity {
    /// The builder's client id (and secret): bound to the first authorization server used.
    PreRegistered,
    /// This HTTPS URL, where the server supports Client ID Metadata Documents; dynamic
    /// registration (if allowed) where it does not.
    MetadataDocument(String),
    /// RFC 7591 registration at each authorization server.
    Dynamic,
}

/// The authorization-code part of an [`OAuthClient`]: settings and the state of the flow.
pub(crate) struct CodeFlow {
    handler: Arc<dyn AuthorizationHandler>,
    redirect_uri: Url,
    identity: Identity,
    dynamic_registration: bool,
    client_name: String,
    offline_access: bool,
    legacy_discovery: bool,
    state: tokio::sync::Mutex<FlowState>,
}

/// What the flow has learned; one flow runs at a time (the lock is held across it).
#[derive(Default)]
struct FlowState {
    server: Option<Arc<AuthServer>>,
    registration: Option<Registration>,
    refresh: Option<Refresh>,
    /// The scopes of the last authorization: kept in every later one (SEP-2350 union).
    requested: Vec<String>,
}

/// A refresh token and the scopes of the grant it belongs to.
#[derive(Clone)]
struct Refresh {
    token: Secret,
    scopes: Vec<String>,
}

/// The authorization server in use for the MCP server, from validated metadata.
struct AuthServer {
    /// Where the protected-resource metadata came from (`None`: 2025-03-26 fallback).
    prm_url: Option<Url>,
    /// The RFC 8707 `resource`: configured, the metadata's `resource`, or the canonical URI.
    resource: String,
    prm_scopes: Option<Vec<String>>,
    metadata: AuthorizationServerMetadata,
    token_endpoint: Url,
}

impl AuthServer {
    fn issuer(&self) -> &str {
        self.metadata.issuer()
    }
}

impl fmt::Debug for CodeFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationCode")
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("identity", &self.identity)
            .field("dynamic_registration", &self.dynamic_registration)
            .field("offline_access", &self.offline_access)
            .finish_non_exhaustive()
    }
}

impl CodeFlow {
    /// A token for `request`: refreshed, or from a new authorization (see [`OAuthClient`]).
    pub(crate) async fn token(
        &self,
        client: &OAuthClient,
        request: &TokenRequest,
    ) -> Result<AccessToken, Error> {
        let mut state = self.state.lock().await;
        if request.challenge.is_none() && state.server.is_none() {
            return Err(Error::new(Kind::ChallengeRequired).with_context(
                "the authorization-code flow starts from the MCP server's WWW-Authenticate \
                 challenge (its scope and resource metadata)",
            ));
        }
        let server = self.server(client, &mut state, request).await?;
        let scopes = self.scopes(client, &state, request, &server);
        let step_up = request
            .challenge
            .as_ref()
            .is_some_and(Challenge::is_insufficient_scope);
        if let Some(refresh) = state.refresh.clone()
            && !step_up
            && scopes.iter().all(|s| refresh.scopes.contains(s))
            && let Some(registration) = state.registration.clone()
        {
            match self.refresh(client, &server, &registration, &refresh).await {
                Ok((token, rotated)) => {
                    if let Some(token) = rotated {
                        state.refresh = Some(Refresh {
                            token,
                            scopes: refresh.scopes,
                        });
                    }
                    return Ok(token);
                }
                Err(e) if e.is_unreachable() => return Err(e),
                Err(e) => {
                    tracing::warn!(
                        issuer = server.issuer(),
                        error = %e,
                        "refreshing the access token failed; authorizing again"
                    );
                    state.refresh = None;
                }
            }
        }
        let registration = self.registration(client, &mut state, &server).await?;
        let (response, issued_at) = self
            .authorize(client, &server, &registration, &scopes)
            .await?;
        state.refresh = response.refresh_token().map(|token| Refresh {
            token: token.clone(),
            scopes: scopes.clone(),
        });
        state.requested.clone_from(&scopes);
        Ok(response.into_access_token(&scopes, issued_at))
    }

    /// The authorization server to use: cached, or read again when the challenge names other
    /// metadata or the server refused a token (it may have moved to another authorization
    /// server: MCP "Authorization Server Binding").
    async fn server(
        &self,
        client: &OAuthClient,
        state: &mut FlowState,
        request: &TokenRequest,
    ) -> Result<Arc<AuthServer>, Error> {
        let inner = &*client.inner;
        let Some(server_url) = &inner.server_url else {
            return Err(Error::new(Kind::Config).with_context("discovery needs server_url"));
        };
        let from_challenge = request
            .challenge
            .as_ref()
            .and_then(Challenge::resource_metadata);
        if let Some(current) = &state.server {
            let same_metadata = from_challenge.is_none_or(|named| {
                current.prm_url.is_none() || server_url.join(named.trim()).ok() == current.prm_url
            });
            if same_metadata && request.rejected.is_none() {
                return Ok(Arc::clone(current));
            }
        }
        let found = discovery::find_resource_metadata(
            &inner.fetcher,
            server_url,
            from_challenge,
            inner.allow_insecure_http,
        )
        .await?;
        let Some((prm_url, prm)) = found else {
            if self.legacy_discovery {
                let server = Arc::new(self.legacy_server(client, server_url).await?);
                state.server = Some(Arc::clone(&server));
                return Ok(server);
            }
            let tried: Vec<String> = discovery::resource_metadata_urls(server_url)
                .iter()
                .map(shown)
                .collect();
            return Err(Error::new(Kind::Discovery).with_context(format!(
                "no protected resource metadata: the challenge names none and {} have none",
                tried.join(" and ")
            )));
        };
        let current = state.server.as_ref().map(|s| s.issuer().to_owned());
        let bound = inner.issuer.clone().or_else(|| {
            state
                .registration
                .as_ref()
                .filter(|r| r.source == Source::PreRegistered)
                .map(|r| r.issuer.clone())
        });
        let issuer = match (&bound, &current) {
            (Some(bound), _) => discovery::choose_issuer(&prm, &prm_url, Some(bound))?,
            // Stay with the authorization server in use while the resource still lists it.
            (None, Some(current)) if prm.authorization_servers().contains(current) => current,
            (None, _) => discovery::choose_issuer(&prm, &prm_url, None)?,
        }
        .to_owned();
        let reuse = state
            .server
            .as_ref()
            .filter(|s| s.prm_url.is_some() && s.issuer() == issuer);
        let (metadata, token_endpoint) = match reuse {
            Some(s) => (s.metadata.clone(), s.token_endpoint.clone()),
            None => {
                discovery::find_authorization_server(
                    &inner.fetcher,
                    &issuer,
                    inner.allow_insecure_http,
                )
                .await?
            }
        };
        if let Some(previous) = current.filter(|c| *c != issuer) {
            tracing::info!(
                previous = %previous,
                issuer = %issuer,
                "the MCP server moved to another authorization server; its tokens and dynamic \
                 registration are dropped"
            );
            state.refresh = None;
            if state
                .registration
                .as_ref()
                .is_some_and(|r| r.source == Source::Dynamic)
            {
                state.registration = None;
            }
        }
        let server = Arc::new(AuthServer {
            resource: inner
                .resource
                .clone()
                .unwrap_or_else(|| prm.resource().to_owned()),
            prm_scopes: prm.scopes_supported().map(<[String]>::to_vec),
            prm_url: Some(prm_url),
            metadata,
            token_endpoint,
        });
        state.server = Some(Arc::clone(&server));
        Ok(server)
    }

    /// The 2025-03-26 discovery, for servers without protected-resource metadata: the MCP
    /// server's origin is the authorization server; its RFC 8414 metadata, or else the
    /// default endpoints `/authorize`, `/token` and `/register`.
    async fn legacy_server(
        &self,
        client: &OAuthClient,
        server_url: &Url,
    ) -> Result<AuthServer, Error> {
        let inner = &*client.inner;
        let origin = server_url.origin().ascii_serialization();
        let origin_url = endpoint_url(
            &origin,
            "the MCP server's origin",
            inner.allow_insecure_http,
            Kind::Discovery,
        )?;
        let probe = discovery::authorization_server_metadata_urls(&origin_url);
        let probe = probe.first().ok_or_else(|| {
            Error::new(Kind::Discovery).with_context("no authorization server metadata URL")
        })?;
        let what = format!("authorization server metadata at {}", shown(probe));
        let reply = inner
            .fetcher
            .get(probe)
            .await
            .map_err(|e| e.into_error(Kind::Discovery, &what))?;
        let (metadata, token_endpoint) = if reply.status.is_success() {
            discovery::find_authorization_server(&inner.fetcher, &origin, inner.allow_insecure_http)
                .await?
        } else if reply.status == http::StatusCode::NOT_FOUND {
            tracing::debug!(origin = %origin, "no metadata: using the 2025-03-26 default endpoints");
            let defaults = serde_json::json!({
                "issuer": origin,
                "authorization_endpoint": format!("{origin}/authorize"),
                "token_endpoint": format!("{origin}/token"),
                "registration_endpoint": format!("{origin}/register"),
                "code_challenge_methods_supported": [S256],
            });
            let metadata = AuthorizationServerMetadata::from_json(defaults.to_string().as_bytes())?;
            let token = endpoint_url(
                &format!("{origin}/token"),
                "default token endpoint",
                inner.allow_insecure_http,
                Kind::Discovery,
            )?;
            (metadata, token)
        } else {
            return Err(
                Error::new(Kind::Discovery).with_context(format!("{what}: HTTP {}", reply.status))
            );
        };
        Ok(AuthServer {
            prm_url: None,
            resource: inner
                .resource
                .clone()
                .unwrap_or_else(|| discovery::canonical_resource(server_url)),
            prm_scopes: None,
            metadata,
            token_endpoint,
        })
    }

    /// The scopes to ask for (MCP "Scope Selection Strategy" and SEP-2350): those of the last
    /// authorization, the configured ones, the challenge's `scope` or else the resource's
    /// `scopes_supported`, the request's, and `offline_access` when the authorization server
    /// lists it (and refresh tokens are wanted). Empty: `scope` is left out.
    fn scopes(
        &self,
        client: &OAuthClient,
        state: &FlowState,
        request: &TokenRequest,
        server: &AuthServer,
    ) -> Vec<String> {
        let mut scopes: Vec<String> = Vec::new();
        let mut add = |s: &str| {
            if !s.is_empty() && !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_owned());
            }
        };
        state.requested.iter().for_each(|s| add(s));
        client.inner.scopes.iter().for_each(|s| add(s));
        match request.challenge.as_ref().filter(|c| c.has_scope()) {
            Some(challenge) => challenge.scopes().for_each(&mut add),
            None => server.prm_scopes.iter().flatten().for_each(|s| add(s)),
        }
        request.scopes.iter().for_each(|s| add(s));
        if self.offline_access
            && server
                .metadata
                .scopes_supported()
                .is_some_and(|s| s.iter().any(|s| s == OFFLINE_ACCESS))
        {
            add(OFFLINE_ACCESS);
        }
        scopes
    }

    /// The client's identity at `server`: kept from before when it belongs to it, else
    /// pre-registered, a metadata document URL, or a new dynamic registration.
    async fn registration(
        &self,
        client: &OAuthClient,
        state: &mut FlowState,
        server: &AuthServer,
    ) -> Result<Registration, Error> {
        if let Some(r) = state
            .registration
            .as_ref()
            .filter(|r| r.issuer == server.issuer())
        {
            return Ok(r.clone());
        }
        let inner = &*client.inner;
        let metadata = &server.metadata;
        let registration = match &self.identity {
            Identity::PreRegistered => {
                let secret = match &inner.credential {
                    Credential::Secret(s) => Some(s.clone()),
                    _ => None,
                };
                Registration {
                    issuer: server.issuer().to_owned(),
                    client_id: inner.client_id.clone(),
                    method: pre_registered_method(inner.auth_method, secret.is_some(), metadata)?,
                    secret,
                    source: Source::PreRegistered,
                }
            }
            Identity::MetadataDocument(url) if metadata.client_id_metadata_document_supported() => {
                Registration {
                    issuer: server.issuer().to_owned(),
                    client_id: url.clone(),
                    secret: None,
                    method: AuthMethod::None,
                    source: Source::MetadataDocument,
                }
            }
            _ => {
                let endpoint = metadata
                    .registration_endpoint()
                    .filter(|_| self.dynamic_registration)
                    .ok_or_else(|| {
                        Error::new(Kind::Config).with_context(format!(
                            "authorization server `{}` offers no way to register this client: \
                             {}; configure a pre-registered client id",
                            metadata.issuer(),
                            match (&self.identity, self.dynamic_registration) {
                                (Identity::MetadataDocument(_), true) => "it supports neither client ID metadata documents nor dynamic registration",
                                (Identity::MetadataDocument(_), false) => "it does not support client ID metadata documents (and dynamic registration is off)",
                                (_, true) => "it has no registration_endpoint",
                                (_, false) => "dynamic registration is off",
                            }
                        ))
                    })?;
                let endpoint = endpoint_url(
                    endpoint,
                    "authorization server metadata `registration_endpoint`",
                    inner.allow_insecure_http,
                    Kind::Discovery,
                )?;
                registration::register(
                    &inner.fetcher,
                    &endpoint,
                    metadata.issuer(),
                    &registration::Request {
                        client_name: &self.client_name,
                        redirect_uri: &self.redirect_uri,
                        method: registration::dynamic_method(metadata)?,
                        refresh: true,
                    },
                )
                .await?
            }
        };
        state.registration = Some(registration.clone());
        Ok(registration)
    }

    /// One authorization: the request through the handler, the response checked, the code
    /// exchanged.
    async fn authorize(
        &self,
        client: &OAuthClient,
        server: &AuthServer,
        registration: &Registration,
        scopes: &[String],
    ) -> Result<(TokenResponse, SystemTime), Error> {
        let inner = &*client.inner;
        let metadata = &server.metadata;
        let issuer = metadata.issuer();
        if !metadata
            .code_challenge_methods_supported()
            .is_some_and(|m| m.iter().any(|m| m == S256))
        {
            return Err(Error::new(Kind::Discovery).with_context(format!(
                "authorization server `{issuer}` does not support PKCE with S256 \
                 (code_challenge_methods_supported: {:?}); refusing to proceed",
                metadata
                    .code_challenge_methods_supported()
                    .unwrap_or_default()
            )));
        }
        let endpoint = metadata.authorization_endpoint().ok_or_else(|| {
            Error::new(Kind::Discovery).with_context(format!(
                "authorization server `{issuer}` has no authorization_endpoint"
            ))
        })?;
        let endpoint = endpoint_url(
            endpoint,
            "authorization server metadata `authorization_endpoint`",
            inner.allow_insecure_http,
            Kind::Discovery,
        )?;
        let pkce = Pkce::new()?;
        let sent_state = Secret::new(random_token()?);
        let mut url = endpoint.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &registration.client_id)
                .append_pair("redirect_uri", self.redirect_uri.as_str())
                .append_pair("code_challenge", &pkce.challenge)
                .append_pair("code_challenge_method", S256)
                .append_pair("state", sent_state.expose_secret());
            if !scopes.is_empty() {
                query.append_pair("scope", &scopes.join(" "));
            }
            query.append_pair("resource", &server.resource);
        }
        tracing::debug!(
            authorization_endpoint = %shown(&endpoint),
            issuer,
            client_id = %printable(&registration.client_id, 200),
            scope = %scopes.join(" "),
            resource = %server.resource,
            "authorization request"
        );
        let request = AuthorizationRequest {
            url,
            authorization_endpoint: endpoint,
            redirect_uri: self.redirect_uri.clone(),
            issuer: issuer.to_owned(),
        };
        let callback = self.handler.authorize(&request).await?;
        let code = read_callback(&callback, &self.redirect_uri, &sent_state, metadata)?;
        tracing::debug!(
            issuer,
            "authorization response accepted; exchanging the code"
        );
        let credential = credential(registration);
        Exchange {
            fetcher: &inner.fetcher,
            endpoint: &server.token_endpoint,
            client_id: &registration.client_id,
            credential: &credential,
            method: registration.method,
            audience: issuer,
            resource: Some(&server.resource),
            scopes: &[],
        }
        .exchange(
            &[
                ("grant_type", "authorization_code"),
                ("code", code.expose_secret()),
                ("redirect_uri", self.redirect_uri.as_str()),
                ("code_verifier", pkce.verifier.expose_secret()),
            ],
            &[&code, &pkce.verifier],
        )
        .await
    }

    /// `grant_type=refresh_token` (OAuth 2.1 §4.3): the new token, and the new refresh token
    /// if the server rotated it.
    async fn refresh(
        &self,
        client: &OAuthClient,
        server: &AuthServer,
        registration: &Registration,
        refresh: &Refresh,
    ) -> Result<(AccessToken, Option<Secret>), Error> {
        let inner = &*client.inner;
        tracing::debug!(issuer = server.issuer(), "refreshing the access token");
        let credential = credential(registration);
        let (response, issued_at) = Exchange {
            fetcher: &inner.fetcher,
            endpoint: &server.token_endpoint,
            client_id: &registration.client_id,
            credential: &credential,
            method: registration.method,
            audience: server.issuer(),
            resource: Some(&server.resource),
            scopes: &[],
        }
        .exchange(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.token.expose_secret()),
            ],
            &[&refresh.token],
        )
        .await?;
        let rotated = response.refresh_token().cloned();
        Ok((
            response.into_access_token(&refresh.scopes, issued_at),
            rotated,
        ))
    }
}

fn credential(registration: &Registration) -> Credential {
    match &registration.secret {
        Some(secret) => Credential::Secret(secret.clone()),
        None => Credential::None,
    }
}

/// The token endpoint authentication of a pre-registered client: the configured one, else
/// for a secret the first of `client_secret_basic` and `client_secret_post` the server
/// accepts, and `none` without one.
fn pre_registered_method(
    configured: Option<AuthMethod>,
    has_secret: bool,
    metadata: &AuthorizationServerMetadata,
) -> Result<AuthMethod, Error> {
    if let Some(method) = configured {
        return Ok(method);
    }
    if !has_secret {
        return Ok(AuthMethod::None);
    }
    [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost]
        .into_iter()
        .find(|m| metadata.supports_auth_method(m.as_str()))
        .ok_or_else(|| {
            Error::new(Kind::Config).with_context(format!(
                "authorization server `{}` accepts neither client_secret_basic nor \
                 client_secret_post (token_endpoint_auth_methods_supported: {:?})",
                metadata.issuer(),
                metadata
                    .token_endpoint_auth_methods_supported()
                    .unwrap_or_default()
            ))
        })
}

/// Checks an authorization response and returns its code: it came back to the redirect URI,
/// carries the `state` that was sent, passes the RFC 9207 `iss` rules (a present `iss` is
/// compared exactly with the issuer; a missing one is refused when the server advertises
/// it), and is not an error response.
pub(crate) fn read_callback(
    callback: &Url,
    redirect_uri: &Url,
    sent_state: &Secret,
    metadata: &AuthorizationServerMetadata,
) -> Result<Secret, Error> {
    let invalid = |why: String| Error::new(Kind::InvalidAuthorizationResponse).with_context(why);
    if callback.scheme() != redirect_uri.scheme()
        || callback.host() != redirect_uri.host()
        || callback.port_or_known_default() != redirect_uri.port_or_known_default()
        || callback.path() != redirect_uri.path()
    {
        return Err(invalid(format!(
            "the authorization response went to {} instead of the redirect URI {}",
            shown(callback),
            shown(redirect_uri)
        )));
    }
    let pairs: Vec<(String, String)> = callback.query_pairs().into_owned().collect();
    let one = |name: &str| -> Result<Option<&str>, Error> {
        let mut values = pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(invalid(format!(
                "the authorization response repeats `{name}`; refusing it"
            )));
        }
        Ok(first)
    };
    let state_matches = one("state")?.is_some_and(|s| Secret::new(s) == *sent_state);
    if !state_matches {
        return Err(invalid(
            "the authorization response does not carry the `state` that was sent (a response \
             to another request, or forged); refusing it"
                .to_owned(),
        ));
    }
    let issuer = metadata.issuer();
    match one("iss")? {
        Some(iss) if iss != issuer => {
            return Err(invalid(format!(
                "the authorization response's `iss` `{}` is not `{issuer}`, the issuer of the \
                 authorization server it was sent to (RFC 9207, compared exactly); refusing it",
                printable(iss, 200)
            )));
        }
        None if metadata.authorization_response_iss_parameter_supported() => {
            return Err(invalid(format!(
                "authorization server `{issuer}` advertises \
                 authorization_response_iss_parameter_supported, but its response has no `iss` \
                 (RFC 9207); refusing it"
            )));
        }
        _ => {}
    }
    if let Some(error) = one("error")? {
        let description = one("error_description")?
            .map(|d| format!(": {}", printable(d, 200)))
            .unwrap_or_default();
        return Err(Error::new(Kind::AuthorizationDenied).with_context(format!(
            "authorization server `{issuer}` answered the authorization request with `{}`{description}",
            printable(error, 64)
        )));
    }
    match one("code")? {
        Some(code) if !code.is_empty() => Ok(Secret::new(code)),
        _ => Err(invalid(
            "the authorization response has neither a `code` nor an `error`".to_owned(),
        )),
    }
}

/// Builds an authorization-code [`OAuthClient`]; made by
/// [`OAuthClient::authorization_code`]. See [`OAuthClient`] for what each setting does.
pub struct AuthorizationCodeBuilder {
    base: OAuthClientBuilder,
    handler: Arc<dyn AuthorizationHandler>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    metadata_url: Option<String>,
    dynamic_registration: bool,
    client_name: String,
    offline_access: bool,
    legacy_discovery: bool,
}

impl AuthorizationCodeBuilder {
    pub(crate) fn new(handler: Arc<dyn AuthorizationHandler>) -> Self {
        Self {
            base: OAuthClientBuilder::new(String::new(), Credential::None),
            handler,
            client_id: None,
            client_secret: None,
            metadata_url: None,
            dynamic_registration: true,
            client_name: DEFAULT_CLIENT_NAME.to_owned(),
            offline_access: true,
            legacy_discovery: false,
        }
    }

    /// The MCP server's URL (its Streamable HTTP endpoint): discovery starts from it.
    /// Required.
    #[must_use]
    pub fn server_url(mut self, url: impl Into<String>) -> Self {
        self.base = self.base.server_url(url);
        self
    }

    /// A pre-registered client id: used instead of any registration, and bound to the
    /// authorization server it is first used with.
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The pre-registered client's secret (with [`client_id`](Self::client_id)); sent with
    /// `client_secret_basic` or `client_secret_post`, whichever the server accepts, unless
    /// [`auth_method`](Self::auth_method) says which.
    #[must_use]
    pub fn client_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// Pins the pre-registered client's token endpoint authentication
    /// ([`AuthMethod::ClientSecretBasic`], [`AuthMethod::ClientSecretPost`] or
    /// [`AuthMethod::None`]).
    #[must_use]
    pub fn auth_method(mut self, method: AuthMethod) -> Self {
        self.base = self.base.auth_method(method);
        self
    }

    /// The HTTPS URL of this client's Client ID Metadata Document: the `client_id` at
    /// authorization servers that advertise `client_id_metadata_document_supported`
    /// (others get a dynamic registration, if allowed). The document itself is served by the
    /// application; its `redirect_uris` must list the handler's redirect URI.
    #[must_use]
    pub fn client_metadata_url(mut self, url: impl Into<String>) -> Self {
        self.metadata_url = Some(url.into());
        self
    }

    /// Whether RFC 7591 dynamic registration may be used (default true). Registrations are
    /// kept in memory, one per authorization server, and reused.
    #[must_use]
    pub fn dynamic_registration(mut self, allowed: bool) -> Self {
        self.dynamic_registration = allowed;
        self
    }

    /// The `client_name` of dynamic registrations (the name a consent page shows).
    #[must_use]
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = name.into();
        self
    }

    /// Whether to ask for refresh tokens: `offline_access` is added to the scopes when the
    /// authorization server lists it in `scopes_supported` (default true).
    #[must_use]
    pub fn offline_access(mut self, wanted: bool) -> Self {
        self.offline_access = wanted;
        self
    }

    /// Scopes to ask for in every authorization, besides those the MCP server names.
    #[must_use]
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.base = self.base.scopes(scopes);
        self
    }

    /// Only this authorization server (issuer identifier) may be used: the MCP server's
    /// metadata must list it.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.base = self.base.issuer(issuer);
        self
    }

    /// The RFC 8707 `resource` to send, instead of the metadata's `resource`.
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.base = self.base.resource(resource);
        self
    }

    /// The MCP 2025-03-26 fallback for servers without protected-resource metadata: the MCP
    /// server's origin is taken as the authorization server (its RFC 8414 metadata, else
    /// `/authorize`, `/token` and `/register`). Default false: such a server is a discovery
    /// error.
    #[must_use]
    pub fn legacy_discovery(mut self, enabled: bool) -> Self {
        self.legacy_discovery = enabled;
        self
    }

    /// The HTTP stack for metadata, registration and token requests (default: a new pooled
    /// [`HttpClient`](mcp_transport::http::HttpClient)).
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
        self.base = self.base.http(service);
        self
    }

    /// Deadline of one HTTP exchange. Default [`DEFAULT_TIMEOUT`](super::DEFAULT_TIMEOUT).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.base = self.base.timeout(timeout);
        self
    }

    /// Cap on a metadata document, registration or token response.
    #[must_use]
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.base = self.base.max_response_bytes(bytes);
        self
    }

    /// Allows plain `http://` endpoints on non-loopback hosts. Default false.
    #[must_use]
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.base = self.base.allow_insecure_http(allow);
        self
    }

    /// Checks the settings and builds the client.
    ///
    /// # Errors
    ///
    /// [`Error::is_config`] naming the setting: no server URL, a secret without a client id,
    /// an empty client id or secret, a metadata document URL that is not an `https` URL with
    /// a path, an auth method that does not fit, a malformed scope or URL.
    pub fn build(self) -> Result<OAuthClient, Error> {
        let config = |what: String| Error::new(Kind::Config).with_context(what);
        if self.base.server_url.is_none() {
            return Err(config(
                "the authorization-code grant needs server_url (discovery starts there)".into(),
            ));
        }
        let redirect_uri = self.handler.redirect_uri();
        let mut base = self.base;
        let identity = match (self.client_id, self.client_secret) {
            (Some(id), _) if id.is_empty() => return Err(config("the client id is empty".into())),
            (Some(_), Some(secret)) if secret.is_empty() => {
                return Err(config("the client secret is empty".into()));
            }
            (Some(id), secret) => {
                match (base.auth_method, &secret) {
                    (Some(AuthMethod::PrivateKeyJwt), _) => {
                        return Err(config(
                            "private_key_jwt is not available for the authorization-code grant"
                                .into(),
                        ));
                    }
                    (Some(AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost), None) => {
                        return Err(config(format!(
                            "auth method {} needs a client secret",
                            base.auth_method.map_or("", AuthMethod::as_str)
                        )));
                    }
                    _ => {}
                }
                base.client_id = id;
                if let Some(secret) = secret {
                    base.credential = Credential::Secret(secret);
                }
                Identity::PreRegistered
            }
            (None, Some(_)) => {
                return Err(config("a client secret needs its client id".into()));
            }
            (None, None) => match self.metadata_url {
                Some(url) => {
                    let parsed = endpoint_url(&url, "client_metadata_url", false, Kind::Config)?;
                    if parsed.scheme() != "https" || parsed.path().len() <= 1 {
                        return Err(config(format!(
                            "client_metadata_url `{}` must be an https URL with a path",
                            shown(&parsed)
                        )));
                    }
                    base.client_id.clone_from(&url);
                    Identity::MetadataDocument(url)
                }
                None => Identity::Dynamic,
            },
        };
        if !matches!(identity, Identity::PreRegistered) && base.auth_method.is_some() {
            return Err(config(
                "auth_method applies to a pre-registered client (client_id)".into(),
            ));
        }
        base.code = Some(CodeFlow {
            handler: self.handler,
            redirect_uri,
            identity,
            dynamic_registration: self.dynamic_registration,
            client_name: self.client_name,
            offline_access: self.offline_access,
            legacy_discovery: self.legacy_discovery,
            state: tokio::sync::Mutex::new(FlowState::default()),
        });
        base.build()
    }
}

impl fmt::Debug for AuthorizationCodeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationCodeBuilder")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_metadata_url", &self.metadata_url)
            .field("dynamic_registration", &self.dynamic_registration)
            .field("offline_access", &self.offline_access)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asm(iss_supported: bool) -> AuthorizationServerMetadata {
        AuthorizationServerMetadata::from_json(
            format!(
                r#"{{"issuer": "https://as.example", "authorization_response_iss_parameter_supported": {iss_supported}}}"#
            )
            .as_bytes(),
        )
        .expect("asm")
    }

    fn check(callback: &str, iss_supported: bool) -> Result<Secret, Error> {
        let redirect = Url::parse("http://127.0.0.1:4000/callback").expect("url");
        read_callback(
            &Url::parse(callback).expect("url"),
            &redirect,
            &Secret::new("st"),
            &asm(iss_supported),
        )
    }

    #[test]
    fn callbacks_follow_the_rfc9207_table() {
        let base = "http://127.0.0.1:4000/callback?code=c&state=st";
        let iss = "&iss=https%3A%2F%2Fas.example";
        assert_eq!(
            check(&format!("{base}{iss}"), true)
                .expect("ok")
                .expose_secret(),
            "c"
        );
        assert!(
            check(base, true)
                .expect_err("missing")
                .is_invalid_authorization_response()
        );
        assert_eq!(
            check(&format!("{base}{iss}"), false)
                .expect("ok")
                .expose_secret(),
            "c"
        );
        assert!(check(base, false).is_ok());
        for wrong in [
            "https://evil.example",
            "https://as.example/",
            "HTTPS://as.example",
            "https://as.example:443",
        ] {
            let url = format!(
                "{base}&iss={}",
                form_urlencoded::byte_serialize(wrong.as_bytes()).collect::<String>()
            );
            for supported in [true, false] {
                let err = check(&url, supported).expect_err("mismatch");
                assert!(err.is_invalid_authorization_response(), "{err}");
            }
        }
    }

    #[test]
    fn callbacks_need_the_state_the_redirect_and_one_value_each() {
        let err =
            check("http://127.0.0.1:4000/callback?code=c&state=other", false).expect_err("state");
        assert!(err.is_invalid_authorization_response() && err.to_string().contains("state"));
        assert!(check("http://127.0.0.1:4000/callback?code=c", false).is_err());
        assert!(check("http://127.0.0.1:4001/callback?code=c&state=st", false).is_err());
        assert!(check("http://127.0.0.1:4000/other?code=c&state=st", false).is_err());
        assert!(
            check(
                "http://127.0.0.1:4000/callback?code=c&state=st&state=st",
                false
            )
            .is_err()
        );
        assert!(check("http://127.0.0.1:4000/callback?state=st", false).is_err());
        let err = check(
            "http://127.0.0.1:4000/callback?error=access_denied&error_description=no&state=st",
            false,
        )
        .expect_err("denied");
        assert!(
            err.is_authorization_denied() && err.to_string().contains("access_denied"),
            "{err}"
        );
        // A forged error (wrong state) is not believed.
        let err = check(
            "http://127.0.0.1:4000/callback?error=access_denied&state=x",
            false,
        )
        .expect_err("forged");
        assert!(err.is_invalid_authorization_response());
    }
}
