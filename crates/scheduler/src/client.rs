//! [`McpSdkClient`]: one configured MCP server with its whole client stack composed once —
//! the design document's `MCPSdkClient` and `_initialize_http_azure`, done in one place.
//!
//! For an `http` server the stack is, from the caller inwards:
//!
//! 1. [`McpClient`] over [`HttpTransport`] (sessions or stateless, per the protocol);
//! 2. [`RetryLayer`]: backoff with jitter and `Retry-After`, the retry budget, the overall
//!    deadline (`resilience.deadline_ms`) and the per-attempt timeout (`timeout_ms`); a keyed
//!    create is retried with its key, an unkeyed one only when it cannot have been processed;
//! 3. [`AuthLayer`] over a [`CachedTokenSource`] of an [`OAuthClient`] (client id + API key →
//!    JWT, refreshed before expiry with jitter; one replay after a `401`), or, with
//!    `azure.use_managed_identity`, of the managed identity's token for `azure.token_scope`
//!    (through `azure-secrets`' credential chain, managed identity only);
//! 4. [`FailoverLayer`] when `failover_urls` are configured: the regions in order, probed
//!    with `GET /ping`, keyed creates pinned to the region that may have processed them;
//! 5. [`CircuitBreakerLayer`]: one breaker per region;
//! 6. [`HedgeLayer`] when `resilience.hedge_delay_ms` is set (idempotent reads only);
//! 7. the pooled [`HttpClient`] (`pool` settings).
//!
//! Token requests go straight to the pool: they are not retried by the MCP retry layer (the
//! token cache has its own backoff) and not failed over. All regions must accept the same
//! tokens (one issuer, such as Entra ID, or a shared signing key).
//!
//! Where a region's `/ping` is: beside its MCP path. `https://h/mcp` is probed at
//! `https://h/ping`, `https://h/v2/mcp` at `https://h/v2/ping`; a URL whose last path segment
//! is not `mcp` is probed at `{url}/ping`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;

use bytes::Bytes;
use mcp_auth::{AuthLayer, CachedTokenSource, OAuthClient};
use mcp_resilience::failover::FailoverHealth;
use mcp_resilience::{
    Backoff, BreakerConfig, CircuitBreakerLayer, CircuitBreakers, Failover, FailoverConfig,
    FailoverLayer, HedgeDelay, HedgeLayer, RetryLayer, RetryPolicy,
};
use mcp_transport::http::{HttpClient, HttpConfig, HttpRequest, HttpResponse};
use mcp_transport::{
    BoxError, HttpTransport, HttpTransportConfig, McpClient, ProtocolChoice, StdioConfig,
    StdioTransport,
};
use tower::util::BoxCloneSyncService;
use tower::{Layer as _, ServiceExt as _};

use crate::Error;
use crate::config::{AzureConfig, Config, ServerConfig, TransportKind};
use crate::error::Kind;

/// The HTTP service type at every point of the stack: what a [custom layer](Stack::wrap_http)
/// receives and returns.
pub type HttpService = BoxCloneSyncService<HttpRequest, HttpResponse, BoxError>;

type Wrap = Box<dyn FnOnce(HttpService) -> HttpService + Send>;

/// Where a custom layer goes in the stack; see [`McpSdkClient::builder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Position {
    /// Around the pooled client, below auth and resilience: sees every attempt (after
    /// failover chose the region and auth set the token), e.g. to log or measure each one.
    Attempt,
    /// Outermost, around the retry layer: sees each MCP request once, whatever happens
    /// below, e.g. to add a header that every attempt carries.
    Request,
}

/// Builds an [`McpSdkClient`] with custom layers; see [`McpSdkClient::builder`].
pub struct Stack<'a> {
    server: &'a ServerConfig,
    azure: AzureConfig,
    credential: Option<Arc<dyn TokenCredential>>,
    attempt: Vec<Wrap>,
    request: Vec<Wrap>,
}

impl std::fmt::Debug for Stack<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("server", &self.server.name)
            .field("attempt_layers", &self.attempt.len())
            .field("request_layers", &self.request.len())
            .finish()
    }
}

impl Stack<'_> {
    /// The Azure settings (default: none of Azure's features).
    #[must_use]
    pub fn azure(mut self, azure: &AzureConfig) -> Self {
        self.azure = azure.clone();
        self
    }

    /// The Azure credential of `azure.use_managed_identity` (default: `azure-secrets`'
    /// credential chain, managed identity only, with `azure.managed_identity_client_id`).
    #[must_use]
    pub fn azure_credential(mut self, credential: Arc<dyn TokenCredential>) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Adds a layer at `position`: `wrap` gets the service below it and returns the service
    /// to use instead (wrap a tower `Layer` with `BoxCloneSyncService::new(layer.layer(s))`).
    /// Layers added to one position apply in order, the first innermost. HTTP servers only;
    /// ignored for stdio.
    #[must_use]
    pub fn wrap_http(
        mut self,
        position: Position,
        wrap: impl FnOnce(HttpService) -> HttpService + Send + 'static,
    ) -> Self {
        match position {
            Position::Attempt => self.attempt.push(Box::new(wrap)),
            Position::Request => self.request.push(Box::new(wrap)),
        }
        self
    }

    /// Connects.
    ///
    /// Requests carry their span's W3C trace context (the `traceparent` header and MCP
    /// `_meta`) whenever `azure-telemetry` is exporting, so the server's spans join the
    /// caller's trace.
    pub async fn connect(self) -> Result<McpSdkClient, Error> {
        // Process-wide and idempotent; a no-op for spans without an OpenTelemetry context.
        let _ =
            mcp_transport::telemetry::set_context_injector(azure_telemetry::propagation::inject);
        match self.server.transport.kind {
            TransportKind::Http => connect_http(self).await,
            TransportKind::Stdio => connect_stdio(self.server).await,
        }
    }
}

/// How long a `/ping` check may take (the design document's probe timeout).
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// One configured MCP server, connected, with its client stack. Cheap to clone (the
/// underlying [`McpClient`] is shared).
#[derive(Clone)]
pub struct McpSdkClient {
    name: String,
    client: McpClient,
    endpoints: Vec<String>,
    failover: Option<Failover>,
    pool: Option<HttpClient>,
}

impl std::fmt::Debug for McpSdkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSdkClient")
            .field("name", &self.name)
            .field("endpoints", &self.endpoints)
            .field("protocol_version", &self.client.protocol_version())
            .finish_non_exhaustive()
    }
}

/// The answer of one region's `GET /ping`; see [`McpSdkClient::ping_endpoints`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointCheck {
    /// The MCP URL of the region, as configured.
    pub url: String,
    /// The URL probed.
    pub ping_url: String,
    /// True when it answered 2xx within 2 s.
    pub healthy: bool,
    /// How long it took to answer (or to fail).
    pub latency: Duration,
    /// Why it is not healthy (status or error), if it is not.
    pub error: Option<String>,
}

impl McpSdkClient {
    /// Connects to the server named `name` in `config`, composing its stack (see the
    /// [module docs](self)).
    pub async fn from_config(config: &Config, name: &str) -> Result<Self, Error> {
        let server = config.server(name)?;
        Self::connect(server, &config.azure).await
    }

    /// Connects to `server`, composing its stack (see the [module docs](self)).
    pub async fn connect(server: &ServerConfig, azure: &AzureConfig) -> Result<Self, Error> {
        Self::builder(server).azure(azure).connect().await
    }

    /// A builder for `server`'s client, to add custom tower layers to its HTTP stack.
    ///
    /// ```no_run
    /// use scheduler::client::{McpSdkClient, Position};
    /// use scheduler::config::{ServerConfig, TransportConfig};
    /// use tower::util::BoxCloneSyncService;
    ///
    /// # async fn run() -> Result<(), scheduler::Error> {
    /// let server = ServerConfig::new("Scheduler", TransportConfig::http("https://scheduler.example/mcp"));
    /// let client = McpSdkClient::builder(&server)
    ///     .wrap_http(Position::Request, |inner| {
    ///         // Any tower layer over `http::Request<Bytes>`; here a header on every request.
    ///         BoxCloneSyncService::new(tower::util::MapRequestLayer::new(
    ///             |mut req: http::Request<bytes::Bytes>| {
    ///                 req.headers_mut().insert("x-team", http::HeaderValue::from_static("billing"));
    ///                 req
    ///             },
    ///         ).layer(inner))
    ///     })
    ///     .connect()
    ///     .await?;
    /// # let _ = client;
    /// # Ok(())
    /// # }
    /// # use tower::Layer as _;
    /// ```
    pub fn builder(server: &ServerConfig) -> Stack<'_> {
        Stack {
            server,
            azure: AzureConfig::default(),
            credential: None,
            attempt: Vec::new(),
            request: Vec::new(),
        }
    }

    /// The server's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The MCP client, for calls this crate does not wrap.
    pub fn mcp(&self) -> &McpClient {
        &self.client
    }

    /// The configured MCP URLs, preferred first (empty for stdio).
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The failover health snapshot (ejections, probes, switches), when the server has
    /// failover URLs.
    pub fn failover_health(&self) -> Option<FailoverHealth> {
        self.failover.as_ref().map(Failover::health)
    }

    /// `GET /ping` on every region now (2 s each, concurrently, through the pool but not the
    /// auth or retry layers): the design document's connectivity check. Empty for stdio.
    pub async fn ping_endpoints(&self) -> Vec<EndpointCheck> {
        let Some(pool) = &self.pool else {
            return Vec::new();
        };
        let handles: Vec<_> = self
            .endpoints
            .iter()
            .map(|url| {
                let (pool, url, ping_url) = (pool.clone(), url.clone(), ping_url(url));
                tokio::spawn(async move {
                    let started = Instant::now();
                    let outcome = ping(pool, &ping_url).await;
                    EndpointCheck {
                        url,
                        ping_url,
                        healthy: outcome.is_ok(),
                        latency: started.elapsed(),
                        error: outcome.err(),
                    }
                })
            })
            .collect();
        let mut results = Vec::with_capacity(handles.len());
        for h in handles {
            if let Ok(check) = h.await {
                results.push(check);
            }
        }
        results
    }

    /// Closes the MCP session (if any) and the transport.
    pub async fn close(&self) -> Result<(), Error> {
        self.client.close().await.map_err(transport_error)
    }
}

pub(crate) fn transport_error(e: mcp_transport::Error) -> Error {
    Error::new(Kind::Transport).with_source(e)
}

/// `https://h/mcp` → `https://h/ping`; `https://h/x` → `https://h/x/ping`.
fn base_url(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    match trimmed.strip_suffix("/mcp") {
        Some(base) if base.contains("://") && !base.ends_with('/') => base.to_owned(),
        _ => trimmed.to_owned(),
    }
}

fn ping_url(url: &str) -> String {
    format!("{}/ping", base_url(url))
}

async fn ping(pool: HttpClient, url: &str) -> Result<(), String> {
    let request = http::Request::get(url)
        .body(Bytes::new())
        .map_err(|e| format!("bad URL: {e}"))?;
    match tokio::time::timeout(PING_TIMEOUT, pool.oneshot(request)).await {
        Err(_) => Err(format!("no answer within {} s", PING_TIMEOUT.as_secs())),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(resp)) if resp.status().is_success() => Ok(()),
        Ok(Ok(resp)) => Err(format!("HTTP {}", resp.status())),
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn protocol(server: &ServerConfig) -> ProtocolChoice {
    server
        .transport
        .protocol_version
        .clone()
        .map_or(ProtocolChoice::Auto, ProtocolChoice::Version)
}

async fn connect_http(stack: Stack<'_>) -> Result<McpSdkClient, Error> {
    let Stack {
        server,
        azure,
        credential,
        attempt,
        request,
    } = stack;
    let azure = &azure;
    let at = |field: &str| format!("server `{}`: transport.{field}", server.name);
    let url = server
        .transport
        .url
        .clone()
        .ok_or_else(|| Error::config(format!("{} is required for http", at("url"))))?;
    let pool_config = {
        let p = &server.pool;
        let mut h = HttpConfig::default();
        h.max_connections = p.max_connections;
        h.max_idle_per_host = p.max_keepalive_connections;
        h.idle_timeout = ms(p.idle_timeout_ms);
        h.connect_timeout = ms(p.connect_timeout_ms);
        h
    };
    let pool = HttpClient::new(&pool_config)
        .map_err(|e| Error::config(format!("server `{}`: pool", server.name)).with_source(e))?;
    let r = &server.resilience;

    // Innermost first: pool → hedge → breaker → failover → auth → retry.
    let mut service: HttpService = BoxCloneSyncService::new(pool.clone());
    for wrap in attempt {
        service = wrap(service);
    }
    let budget = r.retry_budget.then(mcp_resilience::RetryBudget::new);
    if let Some(delay) = r.hedge_delay_ms {
        service = BoxCloneSyncService::new(
            HedgeLayer::new(HedgeDelay::Fixed(ms(delay)))
                .budget(budget.clone())
                .layer(service),
        );
    }
    if r.circuit_breaker {
        let breakers = CircuitBreakers::new(BreakerConfig::new());
        service = BoxCloneSyncService::new(CircuitBreakerLayer::new(breakers).layer(service));
    }
    let mut endpoints = vec![url.clone()];
    endpoints.extend(server.transport.failover_urls.iter().cloned());
    let failover = if endpoints.len() > 1 {
        let failover = Failover::new(
            endpoints.iter().map(|u| base_url(u)),
            FailoverConfig::new()
                .probe_interval(r.probe_interval_ms.map(ms))
                .probe_timeout(ms(r.probe_timeout_ms))
                .shared_idempotency(r.shared_idempotency),
        )
        .map_err(|e| Error::config(format!("{}: {e}", at("failover_urls"))))?;
        // Building the layer's service starts the probes on this runtime.
        service = BoxCloneSyncService::new(FailoverLayer::new(failover.clone()).layer(service));
        Some(failover)
    } else {
        None
    };
    if azure.use_managed_identity {
        // The managed identity's token for the Scheduler's Entra scope, cached and refreshed
        // before expiry like any other token.
        let chain: Arc<dyn TokenCredential> = match credential {
            Some(credential) => credential,
            None => Arc::new(
                azure_secrets::CredentialChain::new(azure.chain_options(true))
                    .map_err(|e| Error::config("azure.use_managed_identity").with_source(e))?,
            ),
        };
        let scope = azure.token_scope.clone().ok_or_else(|| {
            Error::config("azure.token_scope: required with use_managed_identity")
        })?;
        let source = mcp_auth::AzureTokenSource::new(chain, [scope])
            .map_err(|e| Error::config("azure.token_scope").with_source(e))?;
        service =
            BoxCloneSyncService::new(AuthLayer::new(CachedTokenSource::new(source)).layer(service));
    } else if let Some(auth) = &server.transport.auth {
        let mut source =
            OAuthClient::client_credentials(auth.client_id.clone(), auth.api_key.clone())
                .scopes(auth.scopes.iter().cloned())
                .allow_insecure_http(server.transport.allow_insecure_http)
                .http(pool.clone());
        source = match &auth.token_endpoint {
            Some(endpoint) => source.token_endpoint(endpoint.clone()),
            None => source.server_url(url.clone()),
        };
        let source = source
            .build()
            .map_err(|e| Error::config(at("auth")).with_source(e))?;
        service =
            BoxCloneSyncService::new(AuthLayer::new(CachedTokenSource::new(source)).layer(service));
    }
    let policy = RetryPolicy::new()
        .backoff(
            Backoff::new()
                .base(ms(r.base_delay_ms))
                .cap(ms(r.max_delay_ms))
                .max_retries(r.max_retries),
        )
        .budget(budget)
        .deadline(Some(ms(r.deadline_ms)))
        .attempt_timeout(Some(ms(server.timeout_ms)));
    service = BoxCloneSyncService::new(RetryLayer::new(policy).layer(service));
    for wrap in request {
        service = wrap(service);
    }

    let mut transport_config = HttpTransportConfig::default();
    transport_config.allow_insecure_http = server.transport.allow_insecure_http;
    let transport = HttpTransport::with_service(&url, transport_config, service)
        .map_err(|e| Error::config(at("url")).with_source(e))?;
    let client = McpClient::builder()
        .protocol(protocol(server))
        // The retry layer's deadline bounds each request; this bounds the call around it.
        .default_timeout(ms(r.deadline_ms).saturating_add(ms(server.timeout_ms)))
        .connect(transport)
        .await
        .map_err(|e| {
            Error::new(Kind::Transport)
                .with_context(format!("connecting to `{}` at {url}", server.name))
                .with_source(e)
        })?;
    Ok(McpSdkClient {
        name: server.name.clone(),
        client,
        endpoints,
        failover,
        pool: Some(pool),
    })
}

async fn connect_stdio(server: &ServerConfig) -> Result<McpSdkClient, Error> {
    let command = server.transport.command.clone().ok_or_else(|| {
        Error::config(format!(
            "server `{}`: transport.command is required for stdio",
            server.name
        ))
    })?;
    let mut config = StdioConfig::new(command);
    for arg in &server.transport.args {
        config = config.arg(arg.clone());
    }
    for (k, v) in &server.transport.env {
        config = config.env(k.clone(), v.clone());
    }
    let transport = StdioTransport::spawn(&config).map_err(|e| {
        Error::new(Kind::Transport)
            .with_context(format!("starting `{}`", server.name))
            .with_source(e)
    })?;
    let client = McpClient::builder()
        .protocol(protocol(server))
        .default_timeout(ms(server.timeout_ms))
        .connect(transport)
        .await
        .map_err(|e| {
            Error::new(Kind::Transport)
                .with_context(format!("connecting to `{}` over stdio", server.name))
                .with_source(e)
        })?;
    Ok(McpSdkClient {
        name: server.name.clone(),
        client,
        endpoints: Vec::new(),
        failover: None,
        pool: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_sits_beside_the_mcp_path() {
        assert_eq!(ping_url("https://h.example/mcp"), "https://h.example/ping");
        assert_eq!(
            ping_url("https://h.example/v2/mcp/"),
            "https://h.example/v2/ping"
        );
        assert_eq!(
            ping_url("https://h.example/api"),
            "https://h.example/api/ping"
        );
        assert_eq!(
            ping_url("http://127.0.0.1:8080/mcp"),
            "http://127.0.0.1:8080/ping"
        );
    }
}
