//! The default minimal MCP server behind [`ScriptedMcpServer::mcp`]: sessions from
//! `initialize`, `202` for notifications and client responses, `tools/list`, an echoing
//! `tools/call`; tests override single methods.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::Method;
use serde_json::{Value, json};

use super::{BoxFuture, Error, RecordedRequest, ScriptedMcpServer, ScriptedResponse};

type Override =
    Arc<dyn Fn(RecordedRequest, McpDefaults) -> BoxFuture<ScriptedResponse> + Send + Sync>;

/// The default behaviour of the scripted MCP server, handed to every override so it can fall
/// back to it ([`respond`](McpDefaults::respond)). Cheap to clone; clones share the session
/// counter.
///
/// Defaults:
/// - `POST initialize`: a result with the configured `protocolVersion` (default `2025-11-25`),
///   `capabilities: {tools: {}}`, `serverInfo: {name: "scripted", ...}`, and header
///   `MCP-Session-Id: {prefix}-{n}` where `n` counts initializations from 1 (default prefix
///   `session`);
/// - `POST server/discover`: a 2026-07-28 discovery result if
///   [`stateless`](McpServerBuilder::stateless) is on, else JSON-RPC error `-32601`;
/// - `POST tools/list`: the configured tools (default one tool, `echo`), in one page;
/// - `POST tools/call`: echoes the arguments as `structuredContent` and as JSON text;
/// - `POST ping`: `{}`; any other request: JSON-RPC error `-32601` (HTTP 200);
/// - notifications and client responses: `202`; a body that is not JSON-RPC: `400`;
/// - `GET`: `405` (no standalone stream); `DELETE`: `200`; any other HTTP method: `405`.
///
/// No session id is checked: overrides do that where a test needs it.
#[derive(Clone, Debug)]
pub struct McpDefaults {
    protocol_version: String,
    session_prefix: String,
    tools: Vec<Value>,
    stateless: bool,
    sessions: Arc<AtomicUsize>,
}

impl Default for McpDefaults {
    fn default() -> Self {
        Self {
            protocol_version: "2025-11-25".into(),
            session_prefix: "session".into(),
            tools: vec![json!({
                "name": "echo",
                "description": "Echoes its arguments.",
                "inputSchema": {"type": "object"}
            })],
            stateless: false,
            sessions: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl McpDefaults {
    /// The session id the `n`th `initialize` gets (from 1): `{prefix}-{n}`.
    pub fn session_id(&self, n: usize) -> String {
        format!("{}-{n}", self.session_prefix)
    }

    /// How many `initialize` requests the default handler has answered.
    pub fn sessions_started(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
    }

    /// The session id of the latest `initialize` answered, if any.
    pub fn current_session_id(&self) -> Option<String> {
        match self.sessions_started() {
            0 => None,
            n => Some(self.session_id(n)),
        }
    }

    /// The default answer to `req` (see the type docs).
    pub fn respond(&self, req: &RecordedRequest) -> ScriptedResponse {
        if req.method == Method::GET {
            return ScriptedResponse::status(405).with_header("allow", "POST, DELETE");
        }
        if req.method == Method::DELETE {
            return ScriptedResponse::status(200);
        }
        if req.method != Method::POST {
            return ScriptedResponse::status(405).with_header("allow", "POST, GET, DELETE");
        }
        let Some(id) = req.rpc_id().cloned() else {
            return match req.rpc_method() {
                Some(_) => ScriptedResponse::accepted(),
                None => ScriptedResponse::status(400).with_body("not a JSON-RPC message"),
            };
        };
        let Some(method) = req.rpc_method() else {
            return ScriptedResponse::accepted(); // the client's answer to a server request
        };
        let params = req.params().cloned().unwrap_or(Value::Null);
        match method {
            "initialize" => {
                let n = self.sessions.fetch_add(1, Ordering::SeqCst) + 1;
                ScriptedResponse::result(
                    &id,
                    json!({
                        "protocolVersion": self.protocol_version,
                        "capabilities": {"tools": {}},
                        "serverInfo": {"name": "scripted", "version": "0.0.0"}
                    }),
                )
                .with_session_id(&self.session_id(n))
            }
            "server/discover" if self.stateless => ScriptedResponse::result(
                &id,
                json!({
                    "resultType": "complete",
                    "supportedVersions": ["2026-07-28"],
                    "capabilities": {"tools": {}},
                    "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "scripted", "version": "0.0.0"}}
                }),
            ),
            "tools/list" => ScriptedResponse::result(&id, json!({"tools": self.tools})),
            "tools/call" => ScriptedResponse::result(&id, echo(&params)),
            "ping" => ScriptedResponse::result(&id, json!({})),
            other => {
                ScriptedResponse::rpc_error(&id, -32601, &format!("method not found: {other}"))
            }
        }
    }
}

/// The echo tool's result: the arguments as `structuredContent` and as JSON text.
fn echo(params: &Value) -> Value {
    let arguments = params
        .get("arguments")
        .cloned()
        .unwrap_or_else(|| json!({}));
    json!({
        "content": [{"type": "text", "text": arguments.to_string()}],
        "structuredContent": arguments
    })
}

/// Builds the default MCP session server of [`ScriptedMcpServer::mcp`] and its per-method
/// overrides. Every override receives the request and the [`McpDefaults`] to fall back to.
///
/// ```
/// use testkit::mcp_http::{ScriptedMcpServer, ScriptedResponse};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), testkit::Error> {
/// // Sessions expire after their first tools/call.
/// let server = ScriptedMcpServer::mcp()
///     .on("tools/call", |req, defaults| async move {
///         if req.session_id() == Some(defaults.session_id(1).as_str())
///             && defaults.sessions_started() == 1
///         {
///             return ScriptedResponse::status(404);
///         }
///         defaults.respond(&req)
///     })
///     .start()
///     .await?;
/// # drop(server);
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct McpServerBuilder {
    defaults: McpDefaults,
    methods: HashMap<String, Override>,
    get: Option<Override>,
    delete: Option<Override>,
    client_response: Option<Override>,
}

impl std::fmt::Debug for McpServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServerBuilder")
            .field("defaults", &self.defaults)
            .field("overridden", &self.methods.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn boxed<F, Fut>(handler: F) -> Override
where
    F: Fn(RecordedRequest, McpDefaults) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ScriptedResponse> + Send + 'static,
{
    Arc::new(move |req, defaults| Box::pin(handler(req, defaults)))
}

impl McpServerBuilder {
    /// The `protocolVersion` `initialize` answers with. Default `2025-11-25`.
    pub fn protocol_version(mut self, version: impl Into<String>) -> Self {
        self.defaults.protocol_version = version.into();
        self
    }

    /// The prefix of session ids (`{prefix}-{n}`). Default `session`.
    pub fn session_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.defaults.session_prefix = prefix.into();
        self
    }

    /// The tools `tools/list` returns (JSON objects as in the spec). Default: one `echo` tool.
    pub fn tools(mut self, tools: Vec<Value>) -> Self {
        self.defaults.tools = tools;
        self
    }

    /// Answer `server/discover` (the 2026-07-28 stateless protocol). Default off: the server
    /// answers `-32601`, so clients fall back to `initialize`.
    pub fn stateless(mut self, on: bool) -> Self {
        self.defaults.stateless = on;
        self
    }

    /// Overrides the answer to `POST`s whose JSON-RPC method is `method` (a request or a
    /// notification).
    pub fn on<F, Fut>(mut self, method: &str, handler: F) -> Self
    where
        F: Fn(RecordedRequest, McpDefaults) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ScriptedResponse> + Send + 'static,
    {
        self.methods.insert(method.to_owned(), boxed(handler));
        self
    }

    /// Overrides the answer to `GET` (the standalone stream and `Last-Event-ID` resumption).
    pub fn on_get<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(RecordedRequest, McpDefaults) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ScriptedResponse> + Send + 'static,
    {
        self.get = Some(boxed(handler));
        self
    }

    /// Overrides the answer to `DELETE` (session termination).
    pub fn on_delete<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(RecordedRequest, McpDefaults) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ScriptedResponse> + Send + 'static,
    {
        self.delete = Some(boxed(handler));
        self
    }

    /// Overrides the answer to `POST`s that carry the client's response or error response to
    /// a server request.
    pub fn on_client_response<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(RecordedRequest, McpDefaults) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ScriptedResponse> + Send + 'static,
    {
        self.client_response = Some(boxed(handler));
        self
    }

    /// Starts the server on `127.0.0.1:0`.
    pub async fn start(self) -> Result<ScriptedMcpServer, Error> {
        let McpServerBuilder {
            defaults,
            methods,
            get,
            delete,
            client_response,
        } = self;
        let route = Arc::new(move |req: &RecordedRequest| -> Option<Override> {
            if req.method == Method::GET {
                return get.clone();
            }
            if req.method == Method::DELETE {
                return delete.clone();
            }
            if req.is_client_response() {
                return client_response.clone();
            }
            req.rpc_method().and_then(|m| methods.get(m).cloned())
        });
        ScriptedMcpServer::start(move |req| {
            let defaults = defaults.clone();
            let handler = route(&req);
            async move {
                match handler {
                    Some(handler) => handler(req, defaults).await,
                    None => defaults.respond(&req),
                }
            }
        })
        .await
    }
}
