//! `mcp-scheduler functions-handler`: an Azure Functions custom handler.
//!
//! The Functions host starts this process with `FUNCTIONS_CUSTOMHANDLER_PORT` set and, with
//! `enableForwardingHttpRequest` (see `deploy/functions/host.json`), forwards the HTTP
//! trigger's request as it is. One function: `GET /api/status?conversation_id=<id>` answers
//! `200 {"status": "<status>"}` through the client stack (`SchedulerService`), `400` with a
//! message when the parameter is missing or empty, `404` when the Scheduler does not know the
//! conversation, and `502` when the Scheduler cannot be reached. The client configuration
//! comes from `--config` / `MCP_SCHEDULER_CONFIG` (an app setting), secrets from the
//! `SCHEDULER_CLIENT_ID` / `SCHEDULER_API_KEY` app settings (Key Vault references there are
//! resolved by App Service).

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use scheduler::SchedulerService;
use serde_json::json;

use crate::{Failure, chain, exit};

/// The port the Functions host gives its custom handler.
pub(crate) const PORT_VARIABLE: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";

/// Serves until Ctrl-C or SIGTERM.
pub(crate) async fn run(service: SchedulerService, port: Option<u16>) -> Result<(), Failure> {
    let port = match port {
        Some(p) => p,
        None => {
            let value = std::env::var(PORT_VARIABLE).map_err(|_| {
                Failure::new(
                    exit::CONFIG,
                    format!(
                        "{PORT_VARIABLE} is not set (the Functions host sets it; or pass --port)"
                    ),
                )
            })?;
            value.parse().map_err(|_| {
                Failure::new(
                    exit::CONFIG,
                    format!("{PORT_VARIABLE}: `{value}` is not a port number"),
                )
            })?
        }
    };
    // The host talks to its handler over loopback.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::new(exit::UNAVAILABLE, format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().unwrap_or(addr);
    let app = axum::Router::new()
        .route("/api/status", get(status))
        .with_state(service);
    eprintln!(
        "functions handler listening on http://{local} (GET /api/status?conversation_id=...)"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(scheduler_server::server::shutdown_signal())
        .await
        .map_err(|e| Failure::new(exit::FAILURE, format!("functions handler: {e}")))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn status(
    State(service): State<SchedulerService>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(id) = query
        .get("conversation_id")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing query parameter `conversation_id`: call /api/status?conversation_id=<id>",
        );
    };
    match service.conversation_status(id).await {
        Ok(details) => Json(json!({ "status": details.status })).into_response(),
        Err(e) if e.is_tool() => error(StatusCode::NOT_FOUND, chain(&e)),
        Err(e) if e.is_invalid_argument() => error(StatusCode::BAD_REQUEST, chain(&e)),
        Err(e) => {
            tracing::warn!(error = %chain(&e), "status check failed");
            error(
                StatusCode::BAD_GATEWAY,
                "the Scheduler could not be reached",
            )
        }
    }
}
