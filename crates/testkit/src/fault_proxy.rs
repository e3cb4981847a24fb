//! A fault-injecting HTTP/1.1 proxy on loopback: put it between a client and a real (loopback)
//! server, and switch at run time between passing requests through and the failures a
//! resilient client must survive.
//!
//! The proxy reads each request with hyper (so HTTP/1.1 keep-alive works, one fault decision
//! per request) and forwards it with a pooled hyper client. The [`Fault`] in force when a
//! request's head arrives decides what happens to it:
//!
//! | fault | upstream sees the request | the client sees |
//! |---|---|---|
//! | [`Fault::PassThrough`] | yes | the upstream's response |
//! | [`Fault::ResetBeforeUpstream`] | no | its connection reset (TCP RST), no response |
//! | [`Fault::ResetAfterUpstream`] | yes, and answers | its connection reset: the "maybe processed" case |
//! | [`Fault::Latency`] | yes, that much later | the upstream's response, late |
//! | [`Fault::Status`] ([`throttle`](Fault::throttle), [`unavailable`](Fault::unavailable)) | no | a 429 or 503 with `Retry-After`, for the next N requests, then pass-through |
//! | [`Fault::Blackhole`] | no | nothing, ever (the request hangs until the proxy is dropped) |
//!
//! Resets close the client's connection with `SO_LINGER` 0, so the client reads
//! `ECONNRESET`, not a clean end of stream. Bodies of forwarded requests are read whole before
//! forwarding; responses stream back as they come (SSE works). An unreachable upstream gives
//! a `502`.
//!
//! ```
//! use std::time::Duration;
//! use testkit::fault_proxy::{Fault, FaultProxy};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), testkit::Error> {
//! let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
//! let proxy = FaultProxy::start(upstream).await?;
//! assert!(proxy.url().starts_with("http://127.0.0.1:"));
//! // The next two requests get `429 Too Many Requests` with `Retry-After: 3`.
//! proxy.set_fault(Fault::throttle(2, 3));
//! assert_eq!(proxy.fault(), Fault::throttle(2, 3));
//! proxy.set_fault(Fault::Latency(Duration::from_millis(50)));
//! assert_eq!(proxy.stats().connections, 0);
//! # Ok(()) }
//! ```
//!
//! Everything binds to `127.0.0.1`. Dropping the proxy stops it and every connection it holds.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::lock;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::error::{Error, Kind};

/// What the proxy does to the requests that arrive while it is in force. See the
/// [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fault {
    /// Forward every request and stream its response back.
    #[default]
    PassThrough,
    /// Reset the client's connection as soon as a request's head arrives; the upstream never
    /// sees the request.
    ResetBeforeUpstream,
    /// Forward the request, wait for the upstream's whole response, then reset the client's
    /// connection instead of answering: the upstream processed it, the client cannot know.
    /// A response that never ends (an SSE stream left open) is never reset: use this on
    /// requests answered with JSON or a stream that closes.
    ResetAfterUpstream,
    /// Hold each request this long, then forward it.
    Latency(Duration),
    /// Answer the next `remaining` requests with `status` (and `Retry-After: <seconds>` when
    /// set) without forwarding them; then go back to [`Fault::PassThrough`].
    Status {
        /// The status to answer with (429 or 503 in the usual cases).
        status: StatusCode,
        /// The `Retry-After` value in seconds, if any.
        retry_after: Option<u64>,
        /// How many more requests get this answer.
        remaining: u32,
    },
    /// Accept requests and never answer them.
    Blackhole,
}

impl Fault {
    /// The next `count` requests get `429 Too Many Requests` with `Retry-After: <secs>`.
    pub fn throttle(count: u32, retry_after_secs: u64) -> Self {
        Self::status_burst(StatusCode::TOO_MANY_REQUESTS, count, Some(retry_after_secs))
    }

    /// The next `count` requests get `503 Service Unavailable` with `Retry-After: <secs>`.
    pub fn unavailable(count: u32, retry_after_secs: u64) -> Self {
        Self::status_burst(
            StatusCode::SERVICE_UNAVAILABLE,
            count,
            Some(retry_after_secs),
        )
    }

    /// The next `count` requests get `status`, with `Retry-After: <secs>` if given.
    pub fn status_burst(status: StatusCode, count: u32, retry_after_secs: Option<u64>) -> Self {
        Self::Status {
            status,
            retry_after: retry_after_secs,
            remaining: count,
        }
    }
}

/// The proxy's counters; see [`FaultProxy::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyStats {
    /// TCP connections accepted from clients.
    pub connections: u64,
    /// Requests whose head arrived from clients.
    pub requests: u64,
    /// Requests the upstream answered (forwarded and a response head came back), including
    /// those whose answer [`Fault::ResetAfterUpstream`] then withheld.
    pub forwarded: u64,
    /// Requests a fault other than [`Fault::PassThrough`] acted on.
    pub faults: u64,
}

struct State {
    upstream: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    fault: Mutex<Fault>,
    connections: AtomicU64,
    requests: AtomicU64,
    forwarded: AtomicU64,
    faults: AtomicU64,
}

impl State {
    /// The fault for a request that just arrived; counts down a status burst.
    fn take_fault(&self) -> Fault {
        let mut fault = lock(&self.fault);
        let current = fault.clone();
        if let Fault::Status { remaining, .. } = &mut *fault {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                *fault = Fault::PassThrough;
            }
        }
        match current {
            // A burst of zero: nothing left to inject.
            Fault::Status { remaining: 0, .. } => Fault::PassThrough,
            other => other,
        }
    }

    fn stats(&self) -> ProxyStats {
        ProxyStats {
            connections: self.connections.load(Ordering::SeqCst),
            requests: self.requests.load(Ordering::SeqCst),
            forwarded: self.forwarded.load(Ordering::SeqCst),
            faults: self.faults.load(Ordering::SeqCst),
        }
    }
}

/// Changes a running [`FaultProxy`]'s fault and reads its counters from anywhere (another
/// task, a scripted server's handler). Cheap to clone.
#[derive(Clone)]
pub struct FaultHandle {
    state: Arc<State>,
}

impl std::fmt::Debug for FaultHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultHandle")
            .field("upstream", &self.state.upstream)
            .field("fault", &*lock(&self.state.fault))
            .field("stats", &self.state.stats())
            .finish()
    }
}

impl FaultHandle {
    /// Puts `fault` in force for the requests that arrive from now on (requests already
    /// being handled keep theirs).
    pub fn set_fault(&self, fault: Fault) {
        *lock(&self.state.fault) = fault;
    }

    /// The fault in force (a status burst shows what is left of it).
    pub fn fault(&self) -> Fault {
        lock(&self.state.fault).clone()
    }

    /// The counters so far.
    pub fn stats(&self) -> ProxyStats {
        self.state.stats()
    }
}

/// A fault-injecting HTTP/1.1 proxy on `127.0.0.1`. See the [module docs](self).
pub struct FaultProxy {
    addr: SocketAddr,
    handle: FaultHandle,
    task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("handle", &self.handle)
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` that forwards to `upstream`, passing requests through
    /// until told otherwise. Refuses an upstream outside loopback. Must be called inside a
    /// Tokio runtime; the proxy runs on it until dropped.
    pub async fn start(upstream: SocketAddr) -> Result<Self, Error> {
        if !upstream.ip().is_loopback() {
            return Err(Error::new(Kind::Launch).with_context(format!(
                "the fault proxy forwards to loopback only, not {upstream}"
            )));
        }
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| {
            Error::new(Kind::Launch)
                .with_context("binding the fault proxy to 127.0.0.1:0")
                .with_source(e)
        })?;
        let addr = listener.local_addr().map_err(|e| {
            Error::new(Kind::Io)
                .with_context("reading the fault proxy's address")
                .with_source(e)
        })?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let state = Arc::new(State {
            upstream,
            client: Client::builder(TokioExecutor::new()).build(connector),
            fault: Mutex::new(Fault::PassThrough),
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            faults: AtomicU64::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone())).abort_handle();
        Ok(Self {
            addr,
            handle: FaultHandle { state },
            task,
        })
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:{port}`: the base URL to give clients instead of the upstream's
    /// (paths are forwarded unchanged).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The upstream address requests are forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.handle.state.upstream
    }

    /// A handle to change the fault and read the counters from elsewhere.
    pub fn handle(&self) -> FaultHandle {
        self.handle.clone()
    }

    /// Puts `fault` in force for the requests that arrive from now on.
    pub fn set_fault(&self, fault: Fault) {
        self.handle.set_fault(fault);
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        self.handle.fault()
    }

    /// The counters so far.
    pub fn stats(&self) -> ProxyStats {
        self.handle.stats()
    }

    /// TCP connections accepted from clients so far.
    pub fn connections(&self) -> u64 {
        self.stats().connections
    }

    /// Requests the upstream answered so far.
    pub fn requests_forwarded(&self) -> u64 {
        self.stats().forwarded
    }

    /// Requests a fault acted on so far.
    pub fn faults_injected(&self) -> u64 {
        self.stats().faults
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its `JoinSet`, which aborts every connection task.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    state.connections.fetch_add(1, Ordering::SeqCst);
                    connections.spawn(serve(stream, state.clone()));
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::debug!(error = %e, "fault proxy: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Lets a request's handler reset the connection it came on.
#[derive(Default)]
struct Reset {
    requested: AtomicBool,
    notify: Notify,
}

impl Reset {
    /// Resets the connection: its task drops it, and the stream closes with `SO_LINGER` 0.
    async fn now(&self) -> Response<ProxyBody> {
        self.requested.store(true, Ordering::SeqCst);
        self.notify.notify_one();
        // The connection task drops this future with the connection.
        std::future::pending().await
    }
}

/// The client's TCP stream; closes with a reset (RST) once one was requested.
struct ClientStream {
    stream: TcpStream,
    reset: Arc<Reset>,
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        if self.reset.requested.load(Ordering::SeqCst) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

async fn serve(stream: TcpStream, state: Arc<State>) {
    let _ = stream.set_nodelay(true);
    let reset = Arc::new(Reset::default());
    let io = TokioIo::new(ClientStream {
        stream,
        reset: reset.clone(),
    });
    let on_request = reset.clone();
    let service = service_fn(move |req| {
        let (state, reset) = (state.clone(), on_request.clone());
        async move { Ok::<_, Infallible>(handle(req, &state, &reset).await) }
    });
    let connection = http1::Builder::new().serve_connection(io, service);
    tokio::select! {
        ended = connection => {
            if let Err(e) = ended {
                tracing::debug!(error = %e, "fault proxy: connection ended with an error");
            }
        }
        // Dropping the connection drops the stream, which resets it.
        () = reset.notify.notified() => {}
    }
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

async fn handle(req: Request<Incoming>, state: &State, reset: &Reset) -> Response<ProxyBody> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let fault = state.take_fault();
    if fault != Fault::PassThrough {
        state.faults.fetch_add(1, Ordering::SeqCst);
    }
    match fault {
        Fault::ResetBeforeUpstream => reset.now().await,
        Fault::Blackhole => std::future::pending().await,
        Fault::Status {
            status,
            retry_after,
            ..
        } => {
            let mut response = Response::new(empty());
            *response.status_mut() = status;
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
        Fault::Latency(delay) => {
            tokio::time::sleep(delay).await;
            forward(req, state).await
        }
        Fault::ResetAfterUpstream => {
            let response = forward(req, state).await;
            // Let the upstream finish its answer, then withhold it.
            let _ = response.into_body().collect().await;
            reset.now().await
        }
        Fault::PassThrough => forward(req, state).await,
    }
}

fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn bad_gateway(why: impl std::fmt::Display) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from(format!("fault proxy: {why}\n")))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

/// Hop-by-hop headers (RFC 9110 §7.6.1); hyper redoes the framing.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

async fn forward(req: Request<Incoming>, state: &State) -> Response<ProxyBody> {
    let (mut parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return bad_gateway(format!("reading the request body: {e}")),
    };
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match Uri::try_from(format!("http://{}{target}", state.upstream)) {
        Ok(uri) => uri,
        Err(e) => return bad_gateway(format!("request target {target:?}: {e}")),
    };
    strip_hop_by_hop(&mut parts.headers);
    match state
        .client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
    {
        Ok(response) => {
            state.forwarded.fetch_add(1, Ordering::SeqCst);
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => bad_gateway(format!("upstream {}: {e}", state.upstream)),
    }
}
