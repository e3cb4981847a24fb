//! The HTTP server: `/mcp` (rmcp's Streamable HTTP service over [`SchedulerTools`], sessions
//! for pre-2026 clients, stateless for 2026-07-28, Host/Origin checks against DNS rebinding,
//! a request size limit, bearer tokens required), the authorization server's endpoints, and
//! the ops endpoints `/ping` (the design document's failover probe), `/healthz` (live) and
//! `/readyz` (store reachable). [`start`] opens the store, starts the dispatcher and serves
//! until shut down, gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio::sync::Notify;

use crate::auth::{AuthConfig, AuthState};
use crate::clock::{Clock, system_clock};
use crate::config::{RunnerConfig, ServerConfig};
use crate::dispatcher::{BuiltinRunner, ConversationRunner, Dispatcher, WebhookRunner};
use crate::error::{Error, Kind};
use crate::store::{SqliteStore, Store};
use crate::tools::SchedulerTools;

#[derive(Clone)]
struct Ops {
    store: Arc<dyn Store>,
}

async fn ping() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "live"}))
}

async fn readyz(State(ops): State<Ops>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), ops.store.ping()).await {
        Ok(Ok(())) => Json(json!({"status": "ready"})).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: store failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "store unavailable"})),
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "store timed out"})),
        )
            .into_response(),
    }
}

/// Hosts accepted on `/mcp`: the public URL's host, loopback names, and configured extras.
fn allowed_hosts(config: &ServerConfig) -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "[::1]".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(uri) = config.public_url().parse::<http::Uri>()
        && let Some(host) = uri.host()
    {
        hosts.push(host.to_owned());
    }
    hosts.extend(config.allowed_hosts.iter().cloned());
    hosts.sort();
    hosts.dedup();
    hosts
}

/// The parts a server is made of, so tests can swap the store, runner or clock.
pub struct Parts {
    /// The store.
    pub store: Arc<dyn Store>,
    /// What runs due conversations.
    pub runner: Arc<dyn ConversationRunner>,
    /// The clock.
    pub clock: Clock,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts").finish_non_exhaustive()
    }
}

impl Parts {
    /// The parts `config` asks for: its database, its runner, the system clock.
    pub fn from_config(config: &ServerConfig) -> Result<Self, Error> {
        let store: Arc<dyn Store> = if config.database == ":memory:" {
            Arc::new(SqliteStore::in_memory().map_err(store_error)?)
        } else {
            Arc::new(SqliteStore::open(&config.database).map_err(store_error)?)
        };
        let runner: Arc<dyn ConversationRunner> = match &config.runner {
            RunnerConfig::Builtin => Arc::new(BuiltinRunner),
            RunnerConfig::Webhook { url, timeout_ms } => Arc::new(
                WebhookRunner::new(url, Duration::from_millis(*timeout_ms))
                    .map_err(|e| Error::new(Kind::Config).with_context(e))?,
            ),
        };
        Ok(Self {
            store,
            runner,
            clock: system_clock(),
        })
    }
}

fn store_error(e: crate::store::StoreError) -> Error {
    Error::new(Kind::Store).with_source(e)
}

/// Ends every MCP session and stream (so graceful shutdown does not wait on open SSE streams).
type CloseSessions = Box<dyn Fn() + Send + Sync>;

/// How long shutdown waits for the `/mcp` calls in flight to answer before it ends the MCP
/// sessions (which cancels what still runs). Below [`SHUTDOWN_GRACE`].
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Builds the router (without the dispatcher). `auth` guards `/mcp` when given.
fn router(
    config: &ServerConfig,
    parts: &Parts,
    auth: Option<AuthState>,
    wake: Arc<Notify>,
    in_flight: crate::drain::InFlight,
) -> (Router, CloseSessions) {
    let tools = SchedulerTools::new(
        parts.store.clone(),
        parts.clock.clone(),
        wake,
        Duration::from_millis(config.dispatcher.idle_poll_ms),
    );
    let mut mcp_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(config.sessions)
        // Plain JSON answers wherever the call is served statelessly (2026-07-28 always, older
        // versions when sessions are off); rmcp falls back to SSE when a tool sends a
        // notification first. Session-mode answers stay SSE (rmcp ignores this there).
        .with_json_response(true);
    mcp_config.allowed_hosts = allowed_hosts(config);
    mcp_config.max_request_body_bytes = config.max_request_bytes;
    let sessions = mcp_config.cancellation_token.clone();
    let close_sessions: CloseSessions = Box::new(move || sessions.cancel());
    let mcp: StreamableHttpService<SchedulerTools, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(tools.clone()), Default::default(), mcp_config);
    let mut mcp_router = Router::new().route_service("/mcp", mcp);
    if let Some(auth) = &auth {
        mcp_router = crate::auth::protect(mcp_router, auth.clone());
    }
    // Outermost on /mcp: a call counts from arrival until its answer has left.
    let mcp_router = mcp_router.layer(axum::middleware::from_fn_with_state(
        in_flight,
        crate::drain::track,
    ));
    let ops = Router::new()
        .route("/ping", get(ping))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Ops {
            store: parts.store.clone(),
        });
    let mut app = Router::new().merge(mcp_router).merge(ops);
    if let Some(auth) = auth {
        app = app.merge(crate::auth::routes(auth));
    }
    (app, close_sessions)
}

/// How long shutdown waits for open connections after closing the MCP sessions.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A running server (for the CLI and tests).
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    url: String,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl RunningServer {
    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MCP endpoint URL.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.url)
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops accepting, finishes in-flight requests and runs (bounded), and returns.
    ///
    /// In order: new connections are refused; `/mcp` calls in flight get up to 5 s to send
    /// their answers (so nothing committed goes unanswered); then the MCP sessions and their
    /// open streams are ended; the dispatcher stops after its current runs; anything still open
    /// after 10 s is closed.
    pub async fn shutdown(self) -> Result<(), Error> {
        let _ = self.shutdown.send(true);
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(Error::new(Kind::Bind)
                .with_context("server task panicked")
                .with_source(e)),
        }
    }

    /// Serves until the process gets Ctrl-C or SIGTERM, then shuts down gracefully.
    pub async fn until_signal(self) -> Result<(), Error> {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await
    }
}

/// Resolves once `stopped` turns true (or its sender is gone).
async fn until_stopped(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM: what ends a server run from the command line or
/// by a process manager.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Starts the server with the parts `config` names.
pub async fn start(config: ServerConfig) -> Result<RunningServer, Error> {
    let parts = Parts::from_config(&config)?;
    start_with(config, parts).await
}

/// Starts the server with the given parts: binds, starts the dispatcher, serves.
pub async fn start_with(mut config: ServerConfig, parts: Parts) -> Result<RunningServer, Error> {
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| {
            Error::new(Kind::Bind)
                .with_context(format!("cannot listen on {}", config.bind))
                .with_source(e)
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::new(Kind::Bind).with_source(e))?;
    config.bind = addr; // resolve port 0 before deriving the public URL
    let url = config.public_url();
    let auth = if config.auth.required {
        let mut auth_config = AuthConfig::new(&url, format!("{url}/mcp"))
            .with_token_ttl(Duration::from_secs(config.auth.token_ttl_secs))
            .with_scopes(config.auth.scopes.clone())
            .with_required_scopes(config.auth.required_scopes.clone())
            .with_allow_insecure_http(config.auth.allow_insecure_http);
        if let Some(external) = &config.auth.external {
            auth_config = auth_config.with_external(external.to_issuer_config()?);
        }
        Some(
            AuthState::new(parts.store.clone(), auth_config, parts.clock.clone())
                .await
                .map_err(|e| {
                    Error::new(Kind::Config)
                        .with_context("starting the authorization server")
                        .with_source(e)
                })?,
        )
    } else {
        tracing::warn!("auth.required is false: /mcp accepts unauthenticated calls");
        None
    };
    let wake = Arc::new(Notify::new());
    let background = auth.clone();
    let in_flight = crate::drain::InFlight::default();
    let (app, close_sessions) = router(&config, &parts, auth, wake.clone(), in_flight.clone());
    let (shutdown, stopped) = tokio::sync::watch::channel(false);
    let dispatcher = Dispatcher::new(
        parts.store.clone(),
        parts.runner.clone(),
        config.dispatcher.clone(),
        parts.clock.clone(),
        wake,
    );
    let task = tokio::spawn(async move {
        let dispatcher = tokio::spawn(dispatcher.run(until_stopped(stopped.clone())));
        // Auth background work (the external issuer's JWKS refresh), stopped with the server.
        let auth_background = background
            .map(|auth| tokio::spawn(auth.run_background(until_stopped(stopped.clone()))));
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        // On shutdown: stop accepting at once; let the calls in flight answer (bounded); then
        // end the MCP sessions and streams, so the open SSE streams let the connections close.
        let drain_after = until_stopped(stopped.clone());
        let closer = tokio::spawn(async move {
            drain_after.await;
            in_flight.close();
            let left = in_flight.drained(DRAIN_LIMIT).await;
            if left > 0 {
                tracing::warn!(
                    calls = left,
                    "shutdown: calls still running after the drain limit; cancelling them"
                );
            }
            close_sessions();
        });
        let served =
            axum::serve(listener, app).with_graceful_shutdown(until_stopped(stopped.clone()));
        let hard_stop = async {
            until_stopped(stopped).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let served = tokio::select! {
            served = served => served,
            () = hard_stop => {
                tracing::warn!("shutdown: connections still open after the grace period; closing them");
                Ok(())
            }
        };
        closer.abort();
        let _ = dispatcher.await;
        if let Some(task) = auth_background {
            let _ = task.await;
        }
        served.map_err(|e| {
            Error::new(Kind::Bind)
                .with_context("serving")
                .with_source(e)
        })
    });
    tracing::info!(%addr, url = %url, "scheduler server listening");
    Ok(RunningServer {
        addr,
        url,
        shutdown,
        task,
    })
}
