//! A scripted MCP Streamable HTTP server on loopback, for client tests that need exact
//! sequences a real server produces only by chance: a `404` for an expired session, an SSE
//! stream that breaks before the response, a server request in the middle of a call, a
//! response held until the test releases it.
//!
//! [`ScriptedMcpServer::start`] hands every request (method, headers, body) to a test-supplied
//! async handler and sends back the [`ScriptedResponse`] it returns; every request is recorded
//! for assertions ([`requests`](ScriptedMcpServer::requests),
//! [`wait_for`](ScriptedMcpServer::wait_for)). [`ScriptedMcpServer::mcp`] starts from a
//! minimal MCP session server (see [`McpServerBuilder`]) and lets the test override single
//! methods.
//!
//! ```
//! use testkit::mcp_http::{ScriptedMcpServer, ScriptedResponse};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), testkit::Error> {
//! // The default MCP server, except that `tools/call` fails with HTTP 503.
//! let server = ScriptedMcpServer::mcp()
//!     .on("tools/call", |_req, _defaults| async { ScriptedResponse::status(503) })
//!     .start()
//!     .await?;
//! assert!(server.url().starts_with("http://127.0.0.1:"));
//! assert!(server.requests().is_empty());
//! # Ok(()) }
//! ```
//!
//! Everything binds to `127.0.0.1`. Dropping the server stops it and every connection, held
//! response and SSE stream it has open.

mod response;
mod session;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::lock;

use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use response::{
    Gate, ScriptedResponse, SseEvent, SseStep, rpc_error, rpc_notification, rpc_request, rpc_result,
};
pub use session::{McpDefaults, McpServerBuilder};

use crate::error::{Error, Kind};
use response::ScriptBody;

/// A boxed, `Send` future, as scripted handlers return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

type Handler = Arc<dyn Fn(RecordedRequest) -> BoxFuture<ScriptedResponse> + Send + Sync>;

/// One request the scripted server received, as the client sent it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Arrival order, from 0.
    pub seq: usize,
    /// Which TCP connection carried it (connections are numbered from 0 as accepted).
    pub connection: usize,
    /// HTTP method.
    pub method: Method,
    /// Request target (path and query).
    pub uri: Uri,
    /// Request headers.
    pub headers: HeaderMap,
    /// The whole request body.
    pub body: Bytes,
    /// When the request head and body had arrived (Tokio's clock, so paused time applies).
    pub received_at: tokio::time::Instant,
    json: Option<Value>,
}

impl RecordedRequest {
    /// The value of header `name` (the first one, if repeated), if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `MCP-Session-Id`, if sent.
    pub fn session_id(&self) -> Option<&str> {
        self.header("mcp-session-id")
    }

    /// `MCP-Protocol-Version`, if sent.
    pub fn protocol_version(&self) -> Option<&str> {
        self.header("mcp-protocol-version")
    }

    /// `Last-Event-ID`, if sent.
    pub fn last_event_id(&self) -> Option<&str> {
        self.header("last-event-id")
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<&Value> {
        self.json.as_ref()
    }

    /// The JSON-RPC `method` of the body (requests and notifications).
    pub fn rpc_method(&self) -> Option<&str> {
        self.json.as_ref()?.get("method")?.as_str()
    }

    /// The JSON-RPC `id` of the body (requests, responses and errors).
    pub fn rpc_id(&self) -> Option<&Value> {
        self.json.as_ref()?.get("id")
    }

    /// The JSON-RPC `params` of the body.
    pub fn params(&self) -> Option<&Value> {
        self.json.as_ref()?.get("params")
    }

    /// True for a `POST` whose JSON-RPC method is `method`.
    pub fn is_rpc(&self, method: &str) -> bool {
        self.method == Method::POST && self.rpc_method() == Some(method)
    }

    /// True for a `POST` carrying the client's answer (a response or an error response) to a
    /// server request: an `id` and no `method`.
    pub fn is_client_response(&self) -> bool {
        self.method == Method::POST && self.rpc_method().is_none() && self.rpc_id().is_some()
    }
}

struct State {
    handler: Handler,
    requests: Mutex<Vec<RecordedRequest>>,
    seen: watch::Sender<usize>,
    connections: AtomicUsize,
    open: AtomicUsize,
}

/// A scripted HTTP server on `127.0.0.1`. See the [module docs](self).
pub struct ScriptedMcpServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for ScriptedMcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedMcpServer")
            .field("addr", &self.addr)
            .field("requests", &lock(&self.state.requests).len())
            .finish_non_exhaustive()
    }
}

impl ScriptedMcpServer {
    /// Starts a server on `127.0.0.1:0` that answers every request with what `handler`
    /// returns. Requests are recorded before the handler runs. Must be called inside a Tokio
    /// runtime; the server runs on it until dropped.
    pub async fn start<F, Fut>(handler: F) -> Result<Self, Error>
    where
        F: Fn(RecordedRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ScriptedResponse> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        Self::start_boxed(handler).await
    }

    /// A builder for the default MCP session server, with per-method overrides.
    pub fn mcp() -> McpServerBuilder {
        McpServerBuilder::default()
    }

    pub(crate) async fn start_boxed(handler: Handler) -> Result<Self, Error> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| {
            Error::new(Kind::Launch)
                .with_context("binding the scripted MCP server to 127.0.0.1:0")
                .with_source(e)
        })?;
        let addr = listener.local_addr().map_err(|e| {
            Error::new(Kind::Io)
                .with_context("reading the scripted MCP server's address")
                .with_source(e)
        })?;
        let state = Arc::new(State {
            handler,
            requests: Mutex::new(Vec::new()),
            seen: watch::Sender::new(0),
            connections: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone())).abort_handle();
        Ok(Self { addr, state, task })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MCP endpoint URL: `http://127.0.0.1:{port}/mcp`. The server answers on every path.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// The `POST`s received so far whose JSON-RPC method is `method`, in arrival order.
    pub fn rpc_requests(&self, method: &str) -> Vec<RecordedRequest> {
        self.requests_where(|r| r.is_rpc(method))
    }

    /// The requests received so far with this HTTP method, in arrival order.
    pub fn http_requests(&self, method: &Method) -> Vec<RecordedRequest> {
        self.requests_where(|r| r.method == *method)
    }

    /// The requests received so far for which `pred` holds, in arrival order.
    pub fn requests_where(&self, pred: impl Fn(&RecordedRequest) -> bool) -> Vec<RecordedRequest> {
        lock(&self.state.requests)
            .iter()
            .filter(|r| pred(r))
            .cloned()
            .collect()
    }

    /// How many TCP connections the server has accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// How many TCP connections are open right now (accepted and not yet closed by either side).
    pub fn open_connections(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }

    /// Waits until `pred` holds for the requests recorded so far, and returns them. Waits as
    /// long as it takes: bound it with `tokio::time::timeout`.
    pub async fn wait_for(
        &self,
        pred: impl Fn(&[RecordedRequest]) -> bool,
    ) -> Vec<RecordedRequest> {
        // Subscribe before looking, so a request recorded in between still wakes us.
        let mut rx = self.state.seen.subscribe();
        loop {
            {
                let requests = lock(&self.state.requests);
                if pred(&requests) {
                    return requests.clone();
                }
            }
            if rx.changed().await.is_err() {
                return self.requests();
            }
        }
    }

    /// Waits until at least `count` `POST`s with JSON-RPC method `method` have arrived, and
    /// returns them. Bound it with `tokio::time::timeout`.
    pub async fn wait_for_rpc(&self, method: &str, count: usize) -> Vec<RecordedRequest> {
        self.wait_for(|all| all.iter().filter(|r| r.is_rpc(method)).count() >= count)
            .await;
        self.rpc_requests(method)
    }
}

impl Drop for ScriptedMcpServer {
    fn drop(&mut self) {
        // Aborting the accept loop drops its `JoinSet`, which aborts every connection task;
        // that drops held responses and closes SSE bodies, which ends their writers.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let id = state.connections.fetch_add(1, Ordering::SeqCst);
                    connections.spawn(serve(stream, id, state.clone()));
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::debug!(error = %e, "scripted server: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Counts a connection as open while it lives (also when its task is aborted).
struct OpenGuard(Arc<State>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(stream: TcpStream, connection: usize, state: Arc<State>) {
    state.open.fetch_add(1, Ordering::SeqCst);
    let _open = OpenGuard(state.clone());
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| handle(req, connection, state.clone()));
    if let Err(e) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(error = %e, connection, "scripted server: connection ended with an error");
    }
}

async fn handle(
    req: http::Request<Incoming>,
    connection: usize,
    state: Arc<State>,
) -> Result<http::Response<ScriptBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::debug!(error = %e, "scripted server: could not read a request body");
            let mut resp = http::Response::new(ScriptBody::full(Bytes::from_static(
                b"could not read the request body",
            )));
            *resp.status_mut() = http::StatusCode::BAD_REQUEST;
            return Ok(resp);
        }
    };
    let json = serde_json::from_slice(&body).ok();
    let recorded = {
        let mut requests = lock(&state.requests);
        let recorded = RecordedRequest {
            seq: requests.len(),
            connection,
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
            received_at: tokio::time::Instant::now(),
            json,
        };
        requests.push(recorded.clone());
        recorded
    };
    state.seen.send_modify(|n| *n += 1);
    let scripted = (state.handler)(recorded).await;
    Ok(scripted.into_response().await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn bounded<F: Future>(f: F) -> F::Output {
        tokio::time::timeout(std::time::Duration::from_secs(20), f)
            .await
            .expect("test did not finish in time")
    }

    /// A minimal HTTP/1.1 exchange over a fresh connection; returns the raw response.
    async fn exchange(server: &ScriptedMcpServer, head: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        let request = format!(
            "{head}\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn records_requests_and_serves_the_default_mcp_session() {
        bounded(async {
            let server = ScriptedMcpServer::mcp().start().await.unwrap();
            let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#;
            let resp = exchange(&server, "POST /mcp HTTP/1.1", init).await;
            assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
            assert!(
                resp.to_ascii_lowercase()
                    .contains("mcp-session-id: session-1")
            );
            assert!(resp.contains(r#""protocolVersion":"2025-11-25""#));
            let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
            let resp = exchange(&server, "POST /mcp HTTP/1.1", note).await;
            assert!(resp.starts_with("HTTP/1.1 202"), "{resp}");
            let resp = exchange(&server, "GET /mcp HTTP/1.1", "").await;
            assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");

            let all = server.requests();
            assert_eq!(all.len(), 3);
            assert!(all[0].is_rpc("initialize"));
            assert_eq!(all[0].rpc_id(), Some(&json!(0)));
            assert!(all[1].is_rpc("notifications/initialized"));
            assert_eq!(all[2].method, Method::GET);
            assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1, 2]);
            assert_eq!(server.connections(), 3);
        })
        .await;
    }

    #[tokio::test]
    async fn streams_sse_scripts_and_holds_responses_until_released() {
        bounded(async {
            let gate = response::Gate::new();
            let held = gate.clone();
            let server = ScriptedMcpServer::start(move |req| {
                let held = held.clone();
                async move {
                    if req.method == Method::GET {
                        ScriptedResponse::sse([
                            SseEvent::priming("e1")
                                .retry(std::time::Duration::from_millis(10))
                                .into(),
                            SseEvent::message(&rpc_notification("n", json!({"a": 1}))).into(),
                            SseStep::Comment("done".into()),
                        ])
                    } else {
                        ScriptedResponse::status(503).with_body("later").after(&held)
                    }
                }
            })
            .await
            .unwrap();
            let resp = exchange(&server, "GET /mcp HTTP/1.1", "").await;
            assert!(resp.contains("content-type: text/event-stream"), "{resp}");
            assert!(resp.contains("id: e1\nretry: 10\ndata: \n\n"), "{resp}");
            assert!(resp.contains(r#"data: {"jsonrpc":"2.0","method":"n","params":{"a":1}}"#));
            assert!(resp.contains(": done\n\n"));

            let post = tokio::spawn({
                let addr = server.addr();
                async move {
                    let mut stream = TcpStream::connect(addr).await.unwrap();
                    stream
                        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                        .await
                        .unwrap();
                    let mut out = String::new();
                    stream.read_to_string(&mut out).await.unwrap();
                    out
                }
            });
            server
                .wait_for(|all| all.iter().any(|r| r.method == Method::POST))
                .await;
            assert!(!post.is_finished());
            gate.open();
            let resp = post.await.unwrap();
            assert!(resp.starts_with("HTTP/1.1 503") && resp.ends_with("later"), "{resp}");
        })
        .await;
    }

    #[tokio::test]
    async fn invalid_scripted_headers_become_a_visible_500() {
        bounded(async {
            let server = ScriptedMcpServer::start(|_req| async {
                ScriptedResponse::accepted().with_header("bad header", "x")
            })
            .await
            .unwrap();
            let resp = exchange(&server, "POST /mcp HTTP/1.1", "{}").await;
            assert!(resp.starts_with("HTTP/1.1 500"), "{resp}");
            assert!(resp.contains("not valid HTTP"));
        })
        .await;
    }

    #[test]
    fn multi_line_data_becomes_several_data_lines() {
        assert_eq!(
            SseEvent::data("a\nb").event("x").id("7").encode(),
            "event: x\nid: 7\ndata: a\ndata: b\n\n"
        );
    }
}
