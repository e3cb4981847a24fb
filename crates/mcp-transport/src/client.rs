//! [`McpClient`]: the MCP client protocol over any [`Transport`]: version negotiation
//! (2026-07-28 stateless with fallback to `initialize`), `tools/list` with pagination,
//! `tools/call` with per-call timeout, progress, cancellation and `_meta` pass-through, `ping`,
//! answers to server requests, and `close`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::error::Error;
use crate::http::headers::{self, ParamHeader};
use crate::jsonrpc::{
    self, ErrorResponse, JsonRpcVersion, Message, Notification, Request, RequestId, Response,
    RpcError,
};
use crate::transport::{BoxFuture, RequestHints, Transport};
use crate::types::*;

/// Called with each `notifications/progress` of a call.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Which protocol version to speak.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolChoice {
    /// Try the stateless 2026-07-28 protocol (`server/discover`); fall back to `initialize`
    /// with the newest session version when the server does not speak it. The default.
    #[default]
    Auto,
    /// Speak exactly this version (stateless for 2026-07-28 and later, else `initialize`).
    Version(String),
}

/// Answers what the server asks of the client. Every method has a default, so implement only
/// what you support (and declare it in the client capabilities).
pub trait ClientHandler: Send + Sync + 'static {
    /// Answers a server request other than `ping` (e.g. `elicitation/create`, `roots/list`,
    /// `sampling/createMessage`). The default answers "method not found".
    fn request<'a>(
        &'a self,
        method: &'a str,
        params: Option<&'a RawValue>,
    ) -> BoxFuture<'a, Result<Value, RpcError>> {
        let _ = params;
        Box::pin(async move {
            Err(RpcError::new(
                jsonrpc::code::METHOD_NOT_FOUND,
                format!("client does not support `{method}`"),
            ))
        })
    }

    /// Receives a server log message (`notifications/message`). The default emits a
    /// `tracing` event with the server's level.
    fn log(&self, message: &LogMessage) {
        match message.level.as_str() {
            "debug" => {
                tracing::debug!(logger = ?message.logger, data = %message.data, "server log")
            }
            "info" | "notice" => {
                tracing::info!(logger = ?message.logger, data = %message.data, "server log")
            }
            "warning" => {
                tracing::warn!(logger = ?message.logger, data = %message.data, "server log")
            }
            _ => {
                tracing::error!(level = %message.level, logger = ?message.logger, data = %message.data, "server log")
            }
        }
    }

    /// Receives any other server notification. The default ignores it.
    fn notification(&self, method: &str, params: Option<&RawValue>) {
        let _ = (method, params);
    }
}

struct NoHandler;
impl ClientHandler for NoHandler {}

/// Options of one call.
#[derive(Clone, Default)]
pub struct CallOptions {
    timeout: Option<Duration>,
    progress: Option<ProgressFn>,
    meta: Option<Map<String, Value>>,
}

impl std::fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallOptions")
            .field("timeout", &self.timeout)
            .field("progress", &self.progress.is_some())
            .field(
                "meta_keys",
                &self
                    .meta
                    .as_ref()
                    .map(|m| m.keys().cloned().collect::<Vec<_>>()),
            )
            .finish()
    }
}

impl CallOptions {
    /// Default options: the client's default timeout, no progress, no `_meta`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails the call (and cancels it on the server) after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Asks the server for progress notifications and passes each to `f`.
    pub fn on_progress(mut self, f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Adds an entry to the request's `_meta` (idempotency keys, trace context, ...).
    pub fn meta(mut self, key: impl Into<String>, value: Value) -> Self {
        self.meta
            .get_or_insert_with(Map::new)
            .insert(key.into(), value);
        self
    }
}

/// Builds an [`McpClient`].
pub struct McpClientBuilder {
    client_info: Implementation,
    capabilities: ClientCapabilities,
    protocol: ProtocolChoice,
    handler: Arc<dyn ClientHandler>,
    default_timeout: Duration,
}

impl std::fmt::Debug for McpClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClientBuilder")
            .field("client_info", &self.client_info)
            .field("protocol", &self.protocol)
            .field("default_timeout", &self.default_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for McpClientBuilder {
    fn default() -> Self {
        Self {
            client_info: Implementation::new("mcp-transport", env!("CARGO_PKG_VERSION")),
            capabilities: ClientCapabilities::default(),
            protocol: ProtocolChoice::Auto,
            handler: Arc::new(NoHandler),
            default_timeout: Duration::from_secs(60),
        }
    }
}

impl McpClientBuilder {
    /// The name and version the client reports. Default: `mcp-transport` and its version.
    pub fn client_info(mut self, info: Implementation) -> Self {
        self.client_info = info;
        self
    }

    /// The capabilities the client declares. Default: none.
    pub fn capabilities(mut self, capabilities: ClientCapabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Which protocol version to speak. Default [`ProtocolChoice::Auto`].
    pub fn protocol(mut self, protocol: ProtocolChoice) -> Self {
        self.protocol = protocol;
        self
    }

    /// Who answers server requests. Default: nobody ("method not found").
    pub fn handler(mut self, handler: impl ClientHandler) -> Self {
        self.handler = Arc::new(handler);
        self
    }

    /// Timeout of every request without its own. Default 60 s.
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// Connects: negotiates the protocol version over `transport`.
    pub async fn connect(self, transport: impl Transport) -> Result<McpClient, Error> {
        McpClient::start(self, Arc::new(transport)).await
    }
}

/// What the server said about itself.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    /// Name and version, if sent.
    pub implementation: Option<Implementation>,
    /// Capabilities, as sent.
    pub capabilities: Value,
    /// Instructions for the model, if any.
    pub instructions: Option<String>,
}

struct Shared {
    transport: Arc<dyn Transport>,
    handler: Arc<dyn ClientHandler>,
    progress: Mutex<HashMap<String, ProgressFn>>,
}

struct Inner {
    shared: Arc<Shared>,
    next_id: AtomicI64,
    version: Arc<str>,
    stateless: bool,
    /// `_meta` entries every stateless request carries.
    protocol_meta: Map<String, Value>,
    server: ServerInfo,
    param_headers: RwLock<HashMap<String, Vec<ParamHeader>>>,
    default_timeout: Duration,
    dispatcher: tokio::task::AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.dispatcher.abort();
    }
}

/// An MCP client over any [`Transport`]. Cheap to clone; clones share one connection, and many
/// calls may run concurrently.
///
/// ```no_run
/// use mcp_transport::{CallOptions, HttpTransport, McpClient};
/// use std::time::Duration;
///
/// # async fn run() -> Result<(), mcp_transport::Error> {
/// let transport = HttpTransport::new("http://127.0.0.1:8080/mcp")?;
/// let client = McpClient::builder().connect(transport).await?;
/// for tool in client.list_tools().await? {
///     println!("{}", tool.name);
/// }
/// let result = client
///     .call_tool(
///         "scheduleConversation",
///         serde_json::json!({"topic": "standup"}),
///         CallOptions::new()
///             .timeout(Duration::from_secs(10))
///             .meta("idempotencyKey", "6f1c...".into()),
///     )
///     .await?;
/// println!("{}", result.text());
/// client.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct McpClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient")
            .field("protocol_version", &self.inner.version)
            .field("stateless", &self.inner.stateless)
            .field("server", &self.inner.server.implementation)
            .finish_non_exhaustive()
    }
}

/// Result of version negotiation.
struct Negotiated {
    version: String,
    stateless: bool,
    server: ServerInfo,
}

impl McpClient {
    /// A builder with default settings.
    pub fn builder() -> McpClientBuilder {
        McpClientBuilder::default()
    }

    async fn start(b: McpClientBuilder, transport: Arc<dyn Transport>) -> Result<McpClient, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            transport,
            handler: b.handler.clone(),
            progress: Mutex::new(HashMap::new()),
        });
        // Progress is delivered inline (so it is seen before the response completes the
        // call); everything else goes to the dispatcher task.
        let progress_target = Arc::downgrade(&shared);
        shared
            .transport
            .set_inbound(Arc::new(move |message: Message| {
                if let Message::Notification(n) = &message
                    && n.method == "notifications/progress"
                {
                    if let Some(shared) = progress_target.upgrade() {
                        deliver_progress(&shared, n);
                    }
                    return;
                }
                let _ = tx.send(message);
            }));
        let dispatcher = tokio::spawn(dispatch(shared.clone(), rx)).abort_handle();
        let mut protocol_meta = Map::new();
        protocol_meta.insert(
            META_CLIENT_CAPABILITIES.into(),
            serde_json::to_value(&b.capabilities).unwrap_or_else(|_| json!({})),
        );
        protocol_meta.insert(
            META_CLIENT_INFO.into(),
            serde_json::to_value(&b.client_info).unwrap_or_else(|_| json!({})),
        );
        let mut next_id = 0;
        let negotiated = tokio::time::timeout(
            b.default_timeout,
            negotiate(&shared, &b, &mut protocol_meta, &mut next_id),
        )
        .await
        .map_err(|_| Error::timeout("connecting (protocol negotiation)"))??;
        if negotiated.stateless {
            protocol_meta.insert(
                META_PROTOCOL_VERSION.into(),
                negotiated.version.clone().into(),
            );
        }
        tracing::debug!(version = %negotiated.version, stateless = negotiated.stateless, "MCP client connected");
        Ok(McpClient {
            inner: Arc::new(Inner {
                shared,
                next_id: AtomicI64::new(next_id),
                version: negotiated.version.into(),
                stateless: negotiated.stateless,
                protocol_meta,
                server: negotiated.server,
                param_headers: RwLock::new(HashMap::new()),
                default_timeout: b.default_timeout,
                dispatcher,
            }),
        })
    }

    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> &str {
        &self.inner.version
    }

    /// True when speaking the stateless protocol (2026-07-28 and later).
    pub fn is_stateless(&self) -> bool {
        self.inner.stateless
    }

    /// What the server said about itself.
    pub fn server_info(&self) -> &ServerInfo {
        &self.inner.server
    }

    /// Lists every tool, following `nextCursor` across pages. On the stateless protocol, tools
    /// with invalid `x-mcp-header` annotations are left out (with a warning), as the spec
    /// requires.
    pub async fn list_tools(&self) -> Result<Vec<Tool>, Error> {
        const MAX_PAGES: usize = 10_000;
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            let mut params = Map::new();
            if let Some(c) = &cursor {
                params.insert("cursor".into(), c.clone().into());
            }
            let page: ListToolsResult = self
                .request_typed(
                    "tools/list",
                    params,
                    &CallOptions::default(),
                    RequestHints::default(),
                )
                .await?;
            tools.extend(page.tools);
            match page.next_cursor {
                Some(next) if !next.is_empty() => {
                    if !seen.insert(next.clone()) {
                        return Err(Error::protocol(format!(
                            "tools/list returned cursor {next:?} twice; stopping"
                        )));
                    }
                    cursor = Some(next);
                }
                _ => return Ok(self.accept_tools(tools)),
            }
        }
        Err(Error::protocol(format!(
            "tools/list has more than {MAX_PAGES} pages"
        )))
    }

    fn accept_tools(&self, tools: Vec<Tool>) -> Vec<Tool> {
        if !self.inner.stateless {
            return tools;
        }
        let mut table = self
            .inner
            .param_headers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        table.clear();
        tools
            .into_iter()
            .filter(|tool| match headers::param_headers(&tool.input_schema) {
                Ok(h) => {
                    table.insert(tool.name.clone(), h);
                    true
                }
                Err(why) => {
                    tracing::warn!(tool = %tool.name, reason = %why, "ignoring tool with an invalid x-mcp-header annotation");
                    false
                }
            })
            .collect()
    }

    /// Calls a tool. `arguments` must be a JSON object (or `null` for none). A tool that
    /// reports failure gives `Ok` with [`CallToolResult::is_error`] set; protocol and
    /// transport failures give `Err`.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Value,
        options: CallOptions,
    ) -> Result<CallToolResult, Error> {
        if !(arguments.is_object() || arguments.is_null()) {
            return Err(Error::config(format!(
                "arguments of tool `{name}` must be a JSON object"
            )));
        }
        let mut params = Map::new();
        params.insert("name".into(), name.into());
        let hints = RequestHints {
            name: Some(name.to_owned()),
            param_headers: self.param_values(name, &arguments),
            ..RequestHints::default()
        };
        if !arguments.is_null() {
            params.insert("arguments".into(), arguments);
        }
        let first = self
            .request_mrtr("tools/call", &params, &options, hints)
            .await;
        match first {
            Err(e)
                if self.inner.stateless
                    && e.rpc_error().is_some_and(|r| r.code == HEADER_MISMATCH) =>
            {
                // The server wants parameter headers we did not know about: refresh the tool
                // list once and retry with them.
                self.list_tools().await?;
                let arguments = params.get("arguments").cloned().unwrap_or(Value::Null);
                let hints = RequestHints {
                    name: Some(name.to_owned()),
                    param_headers: self.param_values(name, &arguments),
                    ..RequestHints::default()
                };
                self.request_mrtr("tools/call", &params, &options, hints)
                    .await
            }
            other => other,
        }
    }

    fn param_values(&self, tool: &str, arguments: &Value) -> Vec<(String, Value)> {
        if !self.inner.stateless {
            return Vec::new();
        }
        let table = self
            .inner
            .param_headers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        table
            .get(tool)
            .map(|specs| {
                specs
                    .iter()
                    .filter_map(|h| {
                        headers::lookup(arguments, &h.path).map(|v| (h.name.clone(), v.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Checks that the server answers: `ping` on session protocols; on the stateless protocol
    /// (2026-07-28 removed `ping`) a `server/discover`, which every such server implements.
    pub async fn ping(&self) -> Result<(), Error> {
        let method = if self.inner.stateless {
            "server/discover"
        } else {
            "ping"
        };
        self.request_raw(
            method,
            &Map::new(),
            &CallOptions::default(),
            RequestHints::default(),
        )
        .await
        .map(|_| ())
    }

    /// Sends any request and returns its raw result, for methods this crate has no typed
    /// helper for.
    pub async fn request(
        &self,
        method: &str,
        params: Map<String, Value>,
        options: CallOptions,
    ) -> Result<Box<RawValue>, Error> {
        self.request_raw(method, &params, &options, RequestHints::default())
            .await
    }

    /// Ends the session (HTTP `DELETE`, stdio: stops the child). Later calls fail with
    /// [`Error::is_closed`].
    pub async fn close(&self) -> Result<(), Error> {
        self.inner.shared.transport.close().await
    }

    async fn request_typed<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Map<String, Value>,
        options: &CallOptions,
        hints: RequestHints,
    ) -> Result<T, Error> {
        let raw = self.request_raw(method, &params, options, hints).await?;
        decode(method, &raw)
    }

    /// A request whose result may be `input_required` (multi round-trip requests, 2026-07-28):
    /// fulfil the input requests through the handler and retry, a bounded number of times.
    async fn request_mrtr(
        &self,
        method: &str,
        params: &Map<String, Value>,
        options: &CallOptions,
        hints: RequestHints,
    ) -> Result<CallToolResult, Error> {
        const MAX_ROUNDS: usize = 16;
        let mut retry: Option<Map<String, Value>> = None;
        for _ in 0..MAX_ROUNDS {
            let attempt = retry.as_ref().unwrap_or(params);
            let raw = self
                .request_raw(method, attempt, options, hints.clone())
                .await?;
            let result: CallToolResult = decode(method, &raw)?;
            match result.result_type.as_deref() {
                None | Some("complete") => return Ok(result),
                Some("input_required") => {
                    // Rare: only now look at the rest of the result.
                    let value: Value = decode(method, &raw)?;
                    let mut next = params.clone();
                    next.insert(
                        "inputResponses".into(),
                        Value::Object(self.answer_input_requests(&value).await?),
                    );
                    if let Some(state) = value.get("requestState") {
                        next.insert("requestState".into(), state.clone());
                    }
                    retry = Some(next);
                }
                Some(other) => {
                    return Err(Error::protocol(format!(
                        "{method} returned unknown resultType {other:?}"
                    )));
                }
            }
        }
        Err(Error::protocol(format!(
            "{method} still needs input after {MAX_ROUNDS} rounds"
        )))
    }

    /// Answers the `inputRequests` of an `input_required` result through the handler.
    async fn answer_input_requests(&self, result: &Value) -> Result<Map<String, Value>, Error> {
        let mut responses = Map::new();
        let Some(Value::Object(requests)) = result.get("inputRequests") else {
            return Ok(responses);
        };
        for (key, req) in requests {
            let method = req
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let params = req
                .get("params")
                .map(jsonrpc::to_raw)
                .transpose()
                .map_err(|e| Error::protocol("bad inputRequests params").with_source(e))?;
            let answer = self
                .inner
                .shared
                .handler
                .request(method, params.as_deref())
                .await
                .map_err(|e| {
                    Error::rpc(e).with_context(format!("answering input request `{key}`"))
                })?;
            responses.insert(key.clone(), answer);
        }
        Ok(responses)
    }

    async fn request_raw(
        &self,
        method: &str,
        params: &Map<String, Value>,
        options: &CallOptions,
        mut hints: RequestHints,
    ) -> Result<Box<RawValue>, Error> {
        let inner = &self.inner;
        let id = RequestId::Number(inner.next_id.fetch_add(1, Ordering::Relaxed));
        let mut guard = CallGuard {
            shared: &inner.shared,
            id: id.clone(),
            progress_key: None,
            cancel_on_drop: !inner.stateless,
            version: inner.version.clone(),
        };
        if let Some(progress) = &options.progress {
            let key = id.to_string();
            lock(&inner.shared.progress).insert(key.clone(), progress.clone());
            guard.progress_key = Some(key);
        }
        if hints.name.is_none() && matches!(method, "tools/call" | "prompts/get" | "resources/read")
        {
            let key = if method == "resources/read" {
                "uri"
            } else {
                "name"
            };
            hints.name = params.get(key).and_then(Value::as_str).map(str::to_owned);
        }
        hints.protocol_version = Some(inner.version.clone());
        hints.stateless = inner.stateless;
        let span =
            crate::telemetry::request_span(method, hints.name.as_deref(), &id, &inner.version);
        // W3C trace context, in `_meta` and (by the HTTP transport) in headers.
        hints.trace_context = crate::telemetry::trace_context(&span);
        let trace_meta: Map<String, Value> = hints
            .trace_context
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
            .collect();
        let outgoing = OutgoingParams {
            params,
            user_meta: options.meta.as_ref(),
            protocol_meta: inner.stateless.then_some(&inner.protocol_meta),
            trace_meta: (!trace_meta.is_empty()).then_some(&trace_meta),
            progress_token: options.progress.as_ref().map(|_| &id),
        };
        let raw = jsonrpc::to_raw(&outgoing).map_err(|e| {
            Error::config(format!("parameters of `{method}` are not serializable")).with_source(e)
        })?;
        let request = Request {
            jsonrpc: JsonRpcVersion,
            id,
            method: method.to_owned(),
            params: Some(raw),
        };
        let timeout = options.timeout.unwrap_or(inner.default_timeout);
        let outcome =
            tokio::time::timeout(timeout, inner.shared.transport.request(request, &hints))
                .instrument(span.clone())
                .await;
        let result = match outcome {
            Ok(Ok(response)) => {
                guard.cancel_on_drop = false;
                Ok(response.result)
            }
            Ok(Err(e)) => {
                guard.cancel_on_drop = false;
                Err(e)
            }
            Err(_) => Err(Error::timeout(format!("`{method}` after {timeout:?}"))),
        };
        crate::telemetry::record_outcome(&span, method, &result);
        result
    }
}

/// Request parameters as sent: the caller's members, with `_meta` merged from the caller's
/// own `_meta` member, [`CallOptions::meta`], the protocol fields of stateless requests and
/// the progress token. Serialized directly, without copying the arguments.
struct OutgoingParams<'a> {
    params: &'a Map<String, Value>,
    user_meta: Option<&'a Map<String, Value>>,
    protocol_meta: Option<&'a Map<String, Value>>,
    trace_meta: Option<&'a Map<String, Value>>,
    progress_token: Option<&'a RequestId>,
}

impl serde::Serialize for OutgoingParams<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let own_meta = match self.params.get("_meta") {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        let has_meta = own_meta.is_some()
            || self.user_meta.is_some()
            || self.protocol_meta.is_some()
            || self.trace_meta.is_some()
            || self.progress_token.is_some();
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.params {
            if k != "_meta" || !has_meta {
                map.serialize_entry(k, v)?;
            }
        }
        if has_meta {
            map.serialize_entry("_meta", &MergedMeta(self, own_meta))?;
        }
        map.end()
    }
}

struct MergedMeta<'a>(&'a OutgoingParams<'a>, Option<&'a Map<String, Value>>);

impl serde::Serialize for MergedMeta<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        // Later sources win: the caller's `_meta`, then `CallOptions::meta`, then the protocol
        // fields, the trace context and the progress token, which the client owns.
        let mut merged: Vec<(&str, &Value)> = Vec::new();
        let sources = [
            self.1,
            self.0.user_meta,
            self.0.protocol_meta,
            self.0.trace_meta,
        ];
        for source in sources.into_iter().flatten() {
            for (k, v) in source {
                match merged.iter_mut().find(|(key, _)| *key == k.as_str()) {
                    Some(slot) => slot.1 = v,
                    None => merged.push((k.as_str(), v)),
                }
            }
        }
        let mut map = s.serialize_map(None)?;
        for (k, v) in merged {
            if self.0.progress_token.is_none() || k != "progressToken" {
                map.serialize_entry(k, v)?;
            }
        }
        if let Some(token) = self.0.progress_token {
            map.serialize_entry("progressToken", token)?;
        }
        map.end()
    }
}

fn decode<T: DeserializeOwned>(method: &str, raw: &RawValue) -> Result<T, Error> {
    serde_json::from_str(raw.get())
        .map_err(|e| Error::protocol(format!("invalid `{method}` result")).with_source(e))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Cleans up after a request: unregisters its progress callback and, if the request was
/// abandoned (dropped or timed out) on a session protocol, tells the server with
/// `notifications/cancelled`.
struct CallGuard<'a> {
    shared: &'a Arc<Shared>,
    id: RequestId,
    progress_key: Option<String>,
    cancel_on_drop: bool,
    version: Arc<str>,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.progress_key.take() {
            lock(&self.shared.progress).remove(&key);
        }
        if !self.cancel_on_drop {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let shared = self.shared.clone();
        let id = self.id.clone();
        let version = self.version.clone();
        runtime.spawn(async move {
            let params = json!({"requestId": id, "reason": "request abandoned by the client"});
            let note = Notification {
                jsonrpc: JsonRpcVersion,
                method: "notifications/cancelled".into(),
                params: jsonrpc::to_raw(&params).ok(),
            };
            let hints = RequestHints {
                protocol_version: Some(version),
                ..RequestHints::default()
            };
            if let Err(e) = shared.transport.notify(note, &hints).await {
                tracing::debug!(error = %e, "could not send notifications/cancelled");
            }
        });
    }
}

async fn negotiate(
    shared: &Shared,
    b: &McpClientBuilder,
    protocol_meta: &mut Map<String, Value>,
    next_id: &mut i64,
) -> Result<Negotiated, Error> {
    let (wanted, auto) = match &b.protocol {
        ProtocolChoice::Auto => (STATELESS_VERSION.to_owned(), true),
        ProtocolChoice::Version(v) => (v.clone(), false),
    };
    if wanted.as_str() < STATELESS_VERSION {
        return initialize(shared, b, &wanted, next_id).await;
    }
    // Stateless: `server/discover`. A server may refuse the first version it sees (-32022);
    // retry with a version from its `supported` list that we speak, once per version.
    let mut version = wanted;
    let mut tried: Vec<String> = Vec::new();
    loop {
        match discover(shared, protocol_meta, &version, next_id).await {
            Ok(server) => {
                return Ok(Negotiated {
                    version,
                    stateless: true,
                    server,
                });
            }
            Err(e) => {
                let unsupported = e
                    .rpc_error()
                    .filter(|r| r.code == UNSUPPORTED_PROTOCOL_VERSION)
                    .map(|r| supported_versions(r.data.as_ref()));
                tried.push(version.clone());
                match unsupported {
                    Some(supported) => {
                        let next = SUPPORTED_PROTOCOL_VERSIONS.iter().find(|v| {
                            supported.iter().any(|s| s == *v)
                                && tried.iter().filter(|t| t == v).count() < 2
                        });
                        match next {
                            Some(v) if *v >= STATELESS_VERSION => version = (*v).to_owned(),
                            Some(v) => return initialize(shared, b, v, next_id).await,
                            None => {
                                return Err(e.with_context(format!(
                                    "no common protocol version (server supports {supported:?})"
                                )));
                            }
                        }
                    }
                    None if auto => {
                        tracing::debug!(error = %e, "server/discover failed; falling back to initialize");
                        return initialize(shared, b, LATEST_SESSION_VERSION, next_id).await;
                    }
                    None => return Err(e),
                }
            }
        }
    }
}

fn supported_versions(data: Option<&Value>) -> Vec<String> {
    data.and_then(|d| d.get("supported"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn discover(
    shared: &Shared,
    protocol_meta: &Map<String, Value>,
    version: &str,
    next_id: &mut i64,
) -> Result<ServerInfo, Error> {
    let mut meta = protocol_meta.clone();
    meta.insert(META_PROTOCOL_VERSION.into(), version.into());
    let params = json!({"_meta": meta});
    let id = RequestId::Number(*next_id);
    *next_id += 1;
    let request = Request {
        jsonrpc: JsonRpcVersion,
        id,
        method: "server/discover".into(),
        params: jsonrpc::to_raw(&params).ok(),
    };
    let hints = RequestHints {
        protocol_version: Some(version.into()),
        stateless: true,
        ..RequestHints::default()
    };
    let resp = shared.transport.request(request, &hints).await?;
    let result: DiscoverResult = decode("server/discover", &resp.result)?;
    let implementation = result.server_info.or_else(|| {
        result
            .meta
            .as_ref()
            .and_then(|m| m.get(META_SERVER_INFO))
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    });
    Ok(ServerInfo {
        implementation,
        capabilities: result.capabilities,
        instructions: result.instructions,
    })
}

async fn initialize(
    shared: &Shared,
    b: &McpClientBuilder,
    version: &str,
    next_id: &mut i64,
) -> Result<Negotiated, Error> {
    let params = InitializeParams {
        protocol_version: version,
        capabilities: &b.capabilities,
        client_info: &b.client_info,
    };
    let id = RequestId::Number(*next_id);
    *next_id += 1;
    let request = Request {
        jsonrpc: JsonRpcVersion,
        id,
        method: "initialize".into(),
        params: jsonrpc::to_raw(&params).ok(),
    };
    let resp = shared
        .transport
        .request(request, &RequestHints::default())
        .await?;
    let result: InitializeResult = decode("initialize", &resp.result)?;
    if !SUPPORTED_PROTOCOL_VERSIONS.contains(&result.protocol_version.as_str()) {
        let _ = shared.transport.close().await;
        return Err(Error::protocol(format!(
            "server chose protocol version {:?}, which this client does not speak",
            result.protocol_version
        )));
    }
    let hints = RequestHints {
        protocol_version: Some(result.protocol_version.as_str().into()),
        ..RequestHints::default()
    };
    let note = Notification {
        jsonrpc: JsonRpcVersion,
        method: "notifications/initialized".into(),
        params: None,
    };
    shared.transport.notify(note, &hints).await?;
    Ok(Negotiated {
        version: result.protocol_version,
        stateless: false,
        server: ServerInfo {
            implementation: result.server_info,
            capabilities: result.capabilities,
            instructions: result.instructions,
        },
    })
}

fn deliver_progress(shared: &Shared, n: &Notification) {
    let Some(p) = n
        .params
        .as_deref()
        .and_then(|p| serde_json::from_str::<Progress>(p.get()).ok())
    else {
        tracing::debug!("ignoring a malformed progress notification");
        return;
    };
    let key = match &p.progress_token {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    let callback = lock(&shared.progress).get(&key).cloned();
    if let Some(callback) = callback {
        callback(p);
    }
}

/// Handles what the server sends outside responses.
async fn dispatch(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Message>) {
    while let Some(message) = rx.recv().await {
        match message {
            Message::Notification(n) => match n.method.as_str() {
                "notifications/progress" => deliver_progress(&shared, &n),
                "notifications/message" => {
                    if let Some(m) = n
                        .params
                        .as_deref()
                        .and_then(|p| serde_json::from_str::<LogMessage>(p.get()).ok())
                    {
                        shared.handler.log(&m);
                    }
                }
                _ => shared.handler.notification(&n.method, n.params.as_deref()),
            },
            Message::Request(r) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let answer = if r.method == "ping" {
                        Ok(json!({}))
                    } else {
                        shared.handler.request(&r.method, r.params.as_deref()).await
                    };
                    let reply = match answer.and_then(|v| {
                        jsonrpc::to_raw(&v).map_err(|e| {
                            RpcError::new(jsonrpc::code::INTERNAL_ERROR, e.to_string())
                        })
                    }) {
                        Ok(result) => Message::Response(Response {
                            jsonrpc: JsonRpcVersion,
                            id: r.id,
                            result,
                        }),
                        Err(error) => Message::Error(ErrorResponse {
                            jsonrpc: JsonRpcVersion,
                            id: Some(r.id),
                            error,
                        }),
                    };
                    if let Err(e) = shared.transport.respond(reply).await {
                        tracing::warn!(error = %e, method = %r.method, "could not answer a server request");
                    }
                });
            }
            Message::Response(r) => {
                tracing::debug!(id = %r.id, "ignoring a response nobody waits for")
            }
            Message::Error(e) => {
                tracing::debug!(error = %e.error, "ignoring an error response nobody waits for")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test input is an object"),
        }
    }

    #[test]
    fn outgoing_params_merge_meta_sources_in_order() {
        let params = object(json!({
            "name": "t",
            "arguments": {"a": 1},
            "_meta": {"mine": 1, "progressToken": "caller"}
        }));
        let user = object(json!({"idempotencyKey": "k-1", "mine": 2}));
        let protocol = object(json!({META_PROTOCOL_VERSION: "2026-07-28"}));
        let id = RequestId::Number(7);
        let trace = object(json!({
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        }));
        let out = OutgoingParams {
            params: &params,
            user_meta: Some(&user),
            protocol_meta: Some(&protocol),
            trace_meta: Some(&trace),
            progress_token: Some(&id),
        };
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["arguments"]["a"], 1);
        assert_eq!(
            v["_meta"]["mine"], 2,
            "CallOptions::meta wins over the caller's _meta"
        );
        assert_eq!(
            v["_meta"]["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert_eq!(v["_meta"]["idempotencyKey"], "k-1");
        assert_eq!(v["_meta"][META_PROTOCOL_VERSION], "2026-07-28");
        assert_eq!(
            v["_meta"]["progressToken"], 7,
            "the client owns the progress token"
        );
        let text = serde_json::to_string(&out).unwrap();
        assert_eq!(text.matches("progressToken").count(), 1);
    }

    #[test]
    fn outgoing_params_without_meta_are_the_params() {
        let params = object(json!({"cursor": "c2"}));
        let out = OutgoingParams {
            params: &params,
            user_meta: None,
            protocol_meta: None,
            trace_meta: None,
            progress_token: None,
        };
        assert_eq!(serde_json::to_string(&out).unwrap(), r#"{"cursor":"c2"}"#);
    }
}
