//! The workspace's telemetry conventions, in one place.
//!
//! Crates emit `tracing` spans and named events with these names and fields; this crate
//! exports them (spans → Application Insights `RemoteDependency`/`Request`, events →
//! `Message`) and derives the metrics below from them. `docs/observability.md` shows the
//! queries and alerts built on them.
//!
//! # Spans
//!
//! | span | kind | emitted by | fields |
//! |---|---|---|---|
//! | `mcp.client.request` | client | `mcp-transport`, per MCP request | OpenTelemetry MCP semantic conventions: `mcp.method.name`, `gen_ai.tool.name`, `gen_ai.operation.name`, `jsonrpc.request.id`, `mcp.protocol.version`, `mcp.session.id`, `server.address`, `server.port`, `network.transport`, `error.type` |
//! | `mcp.server.request` | server | `scheduler-server`, per MCP request | `mcp.method.name`, `gen_ai.tool.name`, `mcp.session.id`, `error.type`; parent from the caller's trace context |
//!
//! A span's `otel.name` field names it in the backend (`tools/call scheduleConversation`),
//! `otel.kind` sets its kind and `otel.status_code = "ERROR"` marks it failed.
//!
//! # Events
//!
//! | event | level | meaning | fields |
//! |---|---|---|---|
//! | `mcp_auth.token.refreshed` | INFO | a token was fetched or refreshed | `reason`, `scopes`, `expires_in_secs`, `refresh_in_secs` |
//! | `mcp_auth.token.refresh_failed` | WARN | a token request failed | `error`, `consecutive_failures`, `retry_in_secs`, `serving_cached_token` |
//! | `mcp_auth.request.rejected` | INFO | the server refused a token (401/403); replayed once | `status`, `scope`, `error` |
//! | `mcp_auth.request.token_failed` | WARN | no token could be had for a request | `error` |
//! | `mcp_auth.request.insufficient_scope` | WARN | still 403 after stepping up | `scope` |
//! | `mcp_resilience.retry.scheduled` | DEBUG | a retry will follow | `attempt`, `delay_ms`, `kind` |
//! | `mcp_resilience.retry.gave_up` | DEBUG | no more retries | `attempts`, `reason` |
//! | `mcp_resilience.retry_budget.exhausted` | WARN | a retry was refused by the budget | `cost`, `available`, `capacity` |
//! | `mcp_resilience.breaker.state_change` | WARN/INFO | a breaker opened, half-opened or closed | `endpoint`, `from`, `to`, `failure_ratio` |
//! | `mcp_resilience.failover.switched` | WARN | traffic moved to another endpoint | `from`, `to` |
//! | `mcp_resilience.failover.ejected` / `.returned` / `.pinned` | WARN/INFO | health probes took an endpoint out / back; a call pinned to its endpoint | `endpoint` |
//! | `mcp_resilience.hedge.sent` / `.won` | DEBUG | a hedged request was sent / answered first | |
//! | `azure_secrets.credential.chosen` / `.failed` | INFO/DEBUG | the credential chain's outcome per step | `credential` |
//! | `scheduler.health.unhealthy` | WARN | a health check failed | `reason` |
//!
//! # Metrics
//!
//! | metric | instrument | unit | from | attributes |
//! |---|---|---|---|---|
//! | [`mcp.client.operation.duration`](metric::CLIENT_OPERATION_DURATION) | histogram | s | `mcp.client.request` spans | `mcp.method.name`, `gen_ai.tool.name`, `error.type`, `server.address`, `server.port`, `network.transport`, `mcp.protocol.version` |
//! | [`mcp.server.operation.duration`](metric::SERVER_OPERATION_DURATION) | histogram | s | `mcp.server.request` spans | the same |
//! | [`mcp.client.retries`](metric::RETRIES) | counter | {retry} | `retry.scheduled` | `failure.kind` |
//! | [`mcp.client.retry_budget.exhausted`](metric::RETRY_BUDGET_EXHAUSTED) | counter | {retry} | `retry_budget.exhausted` | |
//! | [`mcp.client.auth.failures`](metric::AUTH_FAILURES) | counter | {failure} | the auth events | `reason`: `token_rejected`, `token_unavailable`, `insufficient_scope`, `token_refresh_failed` |
//! | [`mcp.client.token.refreshes`](metric::TOKEN_REFRESHES) | counter | {refresh} | `token.refreshed`, `token.refresh_failed` | `outcome`: `success`, `failure` |
//! | [`mcp.client.breaker.state`](metric::BREAKER_STATE) | gauge | | `breaker.state_change` | `endpoint`; 0 closed, 1 half-open, 2 open |
//! | [`mcp.client.failovers`](metric::FAILOVERS) | counter | {switch} | `failover.switched` | `from`, `to` |
//! | [`azure_telemetry.items.dropped`](metric::TELEMETRY_DROPPED) | counter | {item} | the export queues | `signal` (`spans`, `logs`), `reason` (`queue_full`, `export_failed`) |

/// Span names.
pub mod span {
    /// One MCP request, client side (`mcp-transport`).
    pub const CLIENT_REQUEST: &str = "mcp.client.request";
    /// One MCP request, server side (`scheduler-server`).
    pub const SERVER_REQUEST: &str = "mcp.server.request";
}

/// Span and metric attribute names (OpenTelemetry semantic conventions).
pub mod attr {
    /// The JSON-RPC method (`tools/call`).
    pub const METHOD: &str = "mcp.method.name";
    /// The tool a `tools/call` invokes.
    pub const TOOL: &str = "gen_ai.tool.name";
    /// How the request failed (`tool_error`, a JSON-RPC code, `timeout`, ...).
    pub const ERROR_TYPE: &str = "error.type";
    /// The MCP session.
    pub const SESSION_ID: &str = "mcp.session.id";
    /// The negotiated protocol version.
    pub const PROTOCOL_VERSION: &str = "mcp.protocol.version";
    /// The server's host.
    pub const SERVER_ADDRESS: &str = "server.address";
    /// The server's port.
    pub const SERVER_PORT: &str = "server.port";
    /// `tcp` or `pipe`.
    pub const NETWORK_TRANSPORT: &str = "network.transport";
}

/// Event names.
pub mod event {
    /// A token was fetched or refreshed.
    pub const TOKEN_REFRESHED: &str = "mcp_auth.token.refreshed";
    /// A token request failed.
    pub const TOKEN_REFRESH_FAILED: &str = "mcp_auth.token.refresh_failed";
    /// The server refused the token of a request.
    pub const AUTH_REQUEST_REJECTED: &str = "mcp_auth.request.rejected";
    /// No token could be had for a request.
    pub const AUTH_REQUEST_TOKEN_FAILED: &str = "mcp_auth.request.token_failed";
    /// Still refused for scope after stepping up.
    pub const AUTH_INSUFFICIENT_SCOPE: &str = "mcp_auth.request.insufficient_scope";
    /// A retry will follow.
    pub const RETRY_SCHEDULED: &str = "mcp_resilience.retry.scheduled";
    /// A retry was refused by the retry budget.
    pub const RETRY_BUDGET_EXHAUSTED: &str = "mcp_resilience.retry_budget.exhausted";
    /// A circuit breaker changed state.
    pub const BREAKER_STATE_CHANGE: &str = "mcp_resilience.breaker.state_change";
    /// Traffic moved to another endpoint.
    pub const FAILOVER_SWITCHED: &str = "mcp_resilience.failover.switched";
}

/// Metric names.
pub mod metric {
    /// Histogram of client-side MCP request durations, seconds.
    pub const CLIENT_OPERATION_DURATION: &str = "mcp.client.operation.duration";
    /// Histogram of server-side MCP request durations, seconds.
    pub const SERVER_OPERATION_DURATION: &str = "mcp.server.operation.duration";
    /// Counter of scheduled retries.
    pub const RETRIES: &str = "mcp.client.retries";
    /// Counter of retries refused by the budget.
    pub const RETRY_BUDGET_EXHAUSTED: &str = "mcp.client.retry_budget.exhausted";
    /// Counter of authentication failures.
    pub const AUTH_FAILURES: &str = "mcp.client.auth.failures";
    /// Counter of token refreshes.
    pub const TOKEN_REFRESHES: &str = "mcp.client.token.refreshes";
    /// Gauge of breaker state per endpoint.
    pub const BREAKER_STATE: &str = "mcp.client.breaker.state";
    /// Counter of failovers.
    pub const FAILOVERS: &str = "mcp.client.failovers";
    /// Counter of telemetry items dropped by this crate's export queues.
    pub const TELEMETRY_DROPPED: &str = "azure_telemetry.items.dropped";
}
