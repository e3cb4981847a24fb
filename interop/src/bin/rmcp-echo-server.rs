//! `rmcp-echo-server`: an MCP server built on the official Rust SDK (rmcp) and axum, for interop
//! tests and benchmarks of our client against a server this project did not write.
//!
//! ```text
//! rmcp-echo-server [--port <port>] [--stateless]
//! ```
//!
//! - Binds `127.0.0.1` only, on `--port`, else `$PORT`, else an ephemeral port (`0`), and
//!   prints `listening on http://127.0.0.1:<port>/mcp` on stdout once bound.
//! - Default: sessions for protocol versions before 2026-07-28 (rmcp's
//!   `legacy_session_mode = true`; answers come as SSE). `--stateless`: no sessions
//!   (`legacy_session_mode = false`, `json_response = true`: plain JSON unless a tool sends
//!   notifications first). rmcp serves 2026-07-28 requests statelessly in both modes.
//! - Tools: `echo {text}` → the text; `add {a, b}` → the sum as text (and as structured
//!   content `{"sum": ...}`); `slow {steps?, delay_ms?}` → one `notifications/progress` per
//!   step (when the request carries a progress token), then `done after <steps> steps`.
//!   Tools are cheap: benchmarks call `echo`.
//! - Sockets get `TCP_NODELAY`, as a production server would set.

#![allow(clippy::print_stdout, reason = "the readiness line goes to stdout")]

use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ProgressNotificationParam, RequestMetaObject,
    ServerCapabilities, ServerConfig,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;

const USAGE: &str = "usage: rmcp-echo-server [--port <port>] [--stateless]";

/// Most progress steps `slow` accepts (keeps every call short).
const MAX_STEPS: u32 = 100;
/// Longest pause between steps `slow` accepts, in milliseconds.
const MAX_DELAY_MS: u64 = 1_000;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct AddArgs {
    /// Left operand.
    a: i64,
    /// Right operand.
    b: i64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct SlowArgs {
    /// How many progress notifications to send (default 3, at most 100).
    #[serde(default)]
    steps: Option<u32>,
    /// Pause before each step, in milliseconds (default 10, at most 1000).
    #[serde(default)]
    delay_ms: Option<u64>,
}

/// The server; cheap to clone (one per session, or per request when stateless).
#[derive(Debug, Clone)]
struct EchoServer {
    tool_router: Arc<ToolRouter<Self>>,
}

#[tool_router]
impl EchoServer {
    fn new() -> Self {
        Self {
            tool_router: Arc::new(Self::tool_router()),
        }
    }

    #[tool(description = "Returns the text it was given")]
    fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text(args.text)])
    }

    #[tool(description = "Adds two integers")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> CallToolResult {
        let sum = a.saturating_add(b);
        let mut result = CallToolResult::success(vec![ContentBlock::text(sum.to_string())]);
        result.structured_content = Some(serde_json::json!({ "sum": sum }));
        result
    }

    #[tool(description = "Sends progress notifications, then answers")]
    async fn slow(
        &self,
        Parameters(args): Parameters<SlowArgs>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let steps = args.steps.unwrap_or(3).min(MAX_STEPS);
        let delay = Duration::from_millis(args.delay_ms.unwrap_or(10).min(MAX_DELAY_MS));
        let token = meta.get_progress_token();
        for step in 1..=steps {
            tokio::time::sleep(delay).await;
            if let Some(token) = &token {
                peer.notify_progress(
                    ProgressNotificationParam::new(token.clone(), f64::from(step))
                        .with_total(f64::from(steps))
                        .with_message(format!("step {step} of {steps}")),
                )
                .await
                .map_err(|e| ErrorData::internal_error(format!("progress: {e}"), None))?;
            }
        }
        Ok(CallToolResult::success(vec![ContentBlock::text(format!(
            "done after {steps} steps"
        ))]))
    }
}

// Without `router = ...` the macro would rebuild the router on every call.
#[tool_handler(router = self.tool_router)]
impl ServerHandler for EchoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "rmcp-echo-server",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("Interop test server: echo, add, slow")
    }
}

struct Args {
    port: u16,
    stateless: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut port = match std::env::var("PORT") {
        Ok(p) => Some(p),
        Err(std::env::VarError::NotPresent) => None,
        Err(e) => return Err(format!("$PORT: {e}")),
    };
    let mut stateless = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = Some(args.next().ok_or("`--port` needs a value")?),
            "--stateless" => stateless = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let port = match port {
        Some(p) => p.parse().map_err(|e| format!("bad port `{p}`: {e}"))?,
        None => 0,
    };
    Ok(Args { port, stateless })
}

async fn serve(args: Args) -> std::io::Result<()> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(!args.stateless)
        .with_json_response(args.stateless);
    let server = EchoServer::new();
    let service: StreamableHttpService<EchoServer, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(server.clone()), Default::default(), config);
    let router = axum::Router::new().route_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let port = listener.local_addr()?.port();
    println!("listening on http://127.0.0.1:{port}/mcp");
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("rmcp-echo-server: {e}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rmcp-echo-server: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rmcp-echo-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
