//! Streamable HTTP transport (spec 2025-11-25, 2025-06-18, 2025-03-26 with sessions; 2026-07-28
//! stateless), on the pooled [`HttpClient`] or any `tower::Service` stack around it.
//!
//! What it does, per the spec:
//! - every message is its own `POST` with `Accept: application/json, text/event-stream`;
//!   responses may be JSON or an SSE stream; notifications and responses get `202`;
//! - sessions: `MCP-Session-Id` from the `initialize` response is sent on every later request,
//!   and `MCP-Protocol-Version` after initialization; a `404` on a request that carried a
//!   session id means the session is gone: the transport re-initializes once (replaying the
//!   original `initialize` and `notifications/initialized`) and replays the request once;
//! - SSE resumption: when a stream ends before the response, the transport waits the server's
//!   `retry` time (capped) and resumes with `GET` + `Last-Event-ID`, a bounded number of times;
//! - the optional standalone `GET` stream for server-initiated messages (`405` = none);
//! - `DELETE` of the session on [`close`](crate::Transport::close);
//! - stateless requests carry `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*` headers.
//!
//! Plain `http://` is refused for non-loopback hosts unless
//! [`HttpTransportConfig::allow_insecure_http`] is set (then a warning is logged).

mod client;
pub mod headers;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

pub use client::{HttpBody, HttpClient, HttpConfig, HttpRequest, HttpResponse, TlsRoots};

use crate::error::{BoxError, Error, Kind};
use crate::jsonrpc::{self, Message, Notification, Request, RequestId, Response};
use crate::sse::Decoder;
use crate::transport::{BoxFuture, Inbound, RequestHints, Transport};

/// The HTTP service stack the transport sends through: the pooled [`HttpClient`], possibly
/// wrapped in auth, resilience or telemetry layers.
pub type HttpService = BoxCloneSyncService<HttpRequest, HttpResponse, BoxError>;

/// `MCP-Session-Id`.
pub const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
/// `MCP-Protocol-Version`.
pub const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// `Mcp-Method` (2026-07-28).
pub const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
/// `Mcp-Name` (2026-07-28).
pub const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
/// How long the `notifications/initialized` step waits for the server to answer the
/// standalone GET before going on without it.
const GET_STREAM_OPEN_WAIT: Duration = Duration::from_secs(2);
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
const ACCEPT_BOTH: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const ACCEPT_SSE: HeaderValue = HeaderValue::from_static("text/event-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Settings of the Streamable HTTP transport. Every wait is bounded.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpTransportConfig {
    /// Most bytes accepted in one response body or one SSE event. Default 16 MiB.
    pub max_response_bytes: usize,
    /// Longest silence tolerated on a response body or SSE stream (keep-alive comments count
    /// as activity). Default 5 minutes.
    pub read_timeout: Duration,
    /// How many times a broken SSE response stream is resumed with `Last-Event-ID` before the
    /// request fails (the count resets whenever an event arrives). Default 5.
    pub max_resumptions: u32,
    /// Wait before resuming when the server sent no `retry` field. Default 1 s.
    pub default_retry: Duration,
    /// Upper bound on a server-requested `retry` wait. Default 30 s.
    pub max_retry: Duration,
    /// Open the optional standalone `GET` stream after initialization, for server-initiated
    /// requests and notifications. Default true.
    pub open_get_stream: bool,
    /// Allow plain `http://` to non-loopback hosts (logs a warning). Default false.
    pub allow_insecure_http: bool,
    /// After the response arrives on an SSE stream, how long the call waits for the server
    /// to end the stream (servers do so right after the response, usually in the next TCP
    /// segment). Waiting lets the connection go back to the pool before the caller's next
    /// request, which would otherwise open a new connection; a stream still open after this
    /// is drained in the background. Default 25 ms.
    pub stream_end_grace: Duration,
}

impl Default for HttpTransportConfig {
    fn default() -> Self {
        Self {
            max_response_bytes: 16 * 1024 * 1024,
            read_timeout: Duration::from_secs(300),
            max_resumptions: 5,
            default_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(30),
            open_get_stream: true,
            allow_insecure_http: false,
            stream_end_grace: Duration::from_millis(25),
        }
    }
}

#[derive(Default)]
struct Session {
    id: Option<HeaderValue>,
    version: Option<HeaderValue>,
    /// The `initialize` request body, replayed when the session expires.
    initialize: Option<Bytes>,
    /// Counts sessions, so concurrent 404s re-initialize once.
    generation: u64,
}

struct Shared {
    endpoint: Uri,
    service: HttpService,
    config: HttpTransportConfig,
    session: Mutex<Session>,
    reinit: tokio::sync::Mutex<()>,
    inbound: OnceLock<Inbound>,
    get_stream_started: AtomicBool,
    closed: AtomicBool,
    shutdown: tokio::sync::Notify,
    /// Signalled when a re-initialization starts a new session.
    session_changed: tokio::sync::Notify,
    /// Requests waiting on an SSE stream: a response that arrives on another stream (the
    /// standalone GET stream, another response stream) is handed to its waiter.
    waiting: Mutex<HashMap<RequestId, oneshot::Sender<Result<Response, Error>>>>,
}

/// MCP Streamable HTTP transport. See the [module docs](self).
pub struct HttpTransport {
    shared: Arc<Shared>,
    get_task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("endpoint", &redacted(&self.shared.endpoint))
            .finish_non_exhaustive()
    }
}

/// Scheme, authority and path only: query strings may carry secrets.
fn redacted(uri: &Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("?"),
        uri.authority().map_or("", |a| a.host()),
        uri.path()
    )
}

impl HttpTransport {
    /// A transport to `url` over a new pooled [`HttpClient`] with default settings.
    pub fn new(url: &str) -> Result<Self, Error> {
        let client = HttpClient::new(&HttpConfig::default())?;
        Self::with_service(url, HttpTransportConfig::default(), client)
    }

    /// A transport to `url` that sends through `service`: the pooled [`HttpClient`] wrapped in
    /// whatever layers the caller adds (auth, retries, telemetry, tower-http). Layers see
    /// every HTTP request the transport makes (POST, the GET streams, DELETE) with the whole
    /// body in memory, so they can replay it.
    ///
    /// ```
    /// use http::HeaderValue;
    /// use mcp_transport::http::{HttpClient, HttpConfig, HttpRequest};
    /// use mcp_transport::{HttpTransport, HttpTransportConfig};
    /// use tower::ServiceBuilder;
    ///
    /// let pool = HttpClient::new(&HttpConfig::default())?;
    /// // Any tower layer goes here: this one tags every request with a tenant header.
    /// let stack = ServiceBuilder::new()
    ///     .map_request(|mut req: HttpRequest| {
    ///         req.headers_mut().insert("x-tenant", HeaderValue::from_static("contoso"));
    ///         req
    ///     })
    ///     .service(pool);
    /// let transport = HttpTransport::with_service(
    ///     "http://127.0.0.1:8080/mcp",
    ///     HttpTransportConfig::default(),
    ///     stack,
    /// )?;
    /// # Ok::<(), mcp_transport::Error>(())
    /// ```
    pub fn with_service<S>(
        url: &str,
        config: HttpTransportConfig,
        service: S,
    ) -> Result<Self, Error>
    where
        S: tower_service::Service<HttpRequest, Response = HttpResponse, Error = BoxError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let endpoint = check_url(url, config.allow_insecure_http)?;
        Ok(Self {
            shared: Arc::new(Shared {
                endpoint,
                service: BoxCloneSyncService::new(service),
                config,
                session: Mutex::new(Session::default()),
                reinit: tokio::sync::Mutex::new(()),
                inbound: OnceLock::new(),
                get_stream_started: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                shutdown: tokio::sync::Notify::new(),
                session_changed: tokio::sync::Notify::new(),
                waiting: Mutex::new(HashMap::new()),
            }),
            get_task: Mutex::new(None),
        })
    }

    /// The session id the server assigned, if any.
    pub fn session_id(&self) -> Option<String> {
        lock(&self.shared.session)
            .id
            .as_ref()
            .and_then(|v| v.to_str().ok().map(str::to_owned))
    }
}

/// Validates the endpoint URL: http or https, a host, and plain http only to loopback unless
/// allowed.
fn check_url(url: &str, allow_insecure_http: bool) -> Result<Uri, Error> {
    let uri: Uri = url.parse().map_err(|e| {
        // Show only what precedes any query or credentials: they may hold secrets.
        let shown = url.split(['?', '#']).next().unwrap_or_default();
        let shown = shown.rsplit_once('@').map_or(shown, |(_, host)| host);
        Error::config(format!("endpoint URL `{shown}` is not a valid URL")).with_source(e)
    })?;
    let host = uri
        .host()
        .ok_or_else(|| Error::config(format!("URL `{}` has no host", redacted(&uri))))?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        // Credentials in the URL would travel in logs (hyper-util traces the authority).
        return Err(Error::config(format!(
            "URL `{}` carries credentials (user:password@); authenticate with an auth layer \
             (mcp-auth) instead",
            redacted(&uri)
        )));
    }
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") => {
            if !is_loopback(host) {
                if !allow_insecure_http {
                    return Err(Error::config(format!(
                        "refusing plain http to non-loopback host `{host}`: use https, or set \
                         allow_insecure_http to accept unencrypted traffic"
                    )));
                }
                tracing::warn!(
                    host,
                    "allow_insecure_http is set: MCP traffic to this host is not encrypted"
                );
            }
        }
        other => {
            return Err(Error::config(format!(
                "URL scheme must be http or https, got `{}`",
                other.unwrap_or("")
            )));
        }
    }
    Ok(uri)
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the session half-updated (each update is a
    // single assignment), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where a response that arrives on another stream is delivered.
type Waiter = oneshot::Receiver<Result<Response, Error>>;

/// Removes a request from the waiting list when its reader finishes.
struct Unregister<'a> {
    waiting: &'a Mutex<HashMap<RequestId, oneshot::Sender<Result<Response, Error>>>>,
    id: &'a RequestId,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        lock(self.waiting).remove(self.id);
    }
}

/// What a POST produced.
enum Posted {
    /// The response to the request.
    Response(Response),
    /// 202 Accepted (for notifications and responses).
    Accepted,
}

impl Shared {
    fn inbound(&self, message: Message) {
        // A response for a request waiting on another stream goes to that request.
        let message = match message {
            Message::Response(r) => match lock(&self.waiting).remove(&r.id) {
                Some(waiter) => {
                    let _ = waiter.send(Ok(r));
                    return;
                }
                None => Message::Response(r),
            },
            Message::Error(e) => {
                match e.id.as_ref().and_then(|id| lock(&self.waiting).remove(id)) {
                    Some(waiter) => {
                        let _ = waiter.send(Err(Error::rpc(e.error)));
                        return;
                    }
                    None => Message::Error(e),
                }
            }
            other => other,
        };
        match self.inbound.get() {
            Some(deliver) => deliver(message),
            None => tracing::debug!("dropping a server message: no inbound handler set"),
        }
    }

    fn build(
        &self,
        method: Method,
        body: Bytes,
        hints: Option<&RequestHints>,
        mcp_method: Option<&str>,
        session: bool,
    ) -> Result<(HttpRequest, u64), Error> {
        let mut req = http::Request::new(body);
        *req.method_mut() = method.clone();
        *req.uri_mut() = self.endpoint.clone();
        let h = req.headers_mut();
        if method == Method::POST {
            h.insert(CONTENT_TYPE, JSON);
            h.insert(ACCEPT, ACCEPT_BOTH);
        } else {
            h.insert(ACCEPT, ACCEPT_SSE);
        }
        if hints.is_some() {
            // A request (not the GET stream or DELETE): its span gets the endpoint.
            crate::telemetry::record_endpoint(
                self.endpoint.host(),
                self.endpoint
                    .port_u16()
                    .or_else(|| match self.endpoint.scheme_str() {
                        Some("https") => Some(443),
                        Some("http") => Some(80),
                        _ => None,
                    }),
                "tcp",
            );
        }
        let generation = {
            let s = lock(&self.session);
            if session && let Some(id) = &s.id {
                h.insert(SESSION_ID, id.clone());
                if hints.is_some()
                    && let Ok(text) = id.to_str()
                {
                    crate::telemetry::record_session(text);
                }
            }
            if hints.and_then(|h| h.protocol_version.as_ref()).is_none()
                && let Some(v) = &s.version
            {
                h.insert(PROTOCOL_VERSION, v.clone());
            }
            s.generation
        };
        if let Some(hints) = hints {
            if let Some(v) = &hints.protocol_version {
                h.insert(PROTOCOL_VERSION, header_value(v, "protocol version")?);
            }
            for (name, value) in &hints.trace_context {
                h.insert(*name, header_value(value, "trace context")?);
            }
            if hints.stateless {
                if let Some(m) = mcp_method {
                    h.insert(MCP_METHOD, header_value(m, "method name")?);
                }
                if let Some(name) = &hints.name {
                    h.insert(
                        MCP_NAME,
                        header_value(&headers::encode_value(name), "name")?,
                    );
                }
                for (name, value) in &hints.param_headers {
                    if let Some(v) = headers::param_value(value) {
                        let header =
                            HeaderName::try_from(format!("mcp-param-{name}")).map_err(|e| {
                                Error::config(format!("bad x-mcp-header name {name:?}"))
                                    .with_source(e)
                            })?;
                        h.append(header, header_value(&v, "parameter header")?);
                    }
                }
            }
        }
        Ok((req, generation))
    }

    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, Error> {
        self.service
            .clone()
            .oneshot(req)
            .await
            .map_err(Error::from_service)
    }

    /// POSTs one message and interprets the answer. `expect` is the id of the response to wait
    /// for (requests) or `None` (notifications, responses).
    async fn post(
        &self,
        body: Bytes,
        expect: Option<&RequestId>,
        hints: Option<&RequestHints>,
        mcp_method: &str,
    ) -> Result<Posted, Error> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::closed("transport closed"));
        }
        // Register before sending: the answer may come on another stream, even before this
        // POST's own response head.
        let mut elsewhere = None;
        let _unregister = expect.map(|id| {
            let (tx, rx) = oneshot::channel();
            lock(&self.waiting).insert(id.clone(), tx);
            elsewhere = Some(rx);
            Unregister {
                waiting: &self.waiting,
                id,
            }
        });
        let mut replayed = false;
        loop {
            let (req, generation) =
                self.build(Method::POST, body.clone(), hints, Some(mcp_method), true)?;
            let had_session = req.headers().contains_key(SESSION_ID);
            let resp = match elsewhere.as_mut() {
                Some(rx) => tokio::select! {
                    resp = self.send(req) => resp?,
                    Ok(answer) = rx => return answer.map(Posted::Response),
                },
                None => self.send(req).await?,
            };
            let status = resp.status();
            if status == StatusCode::NOT_FOUND && had_session && !replayed {
                // The session is gone: start a new one, then replay this message once.
                drop(resp);
                tracing::info!("MCP session expired (404); re-initializing");
                self.reinitialize(generation).await?;
                replayed = true;
                continue;
            }
            return self
                .read_post_response(resp, expect, elsewhere.as_mut())
                .await;
        }
    }

    /// Interprets a POST's answer. `elsewhere` receives the response if it arrives on
    /// another stream while this one is read.
    async fn read_post_response(
        &self,
        resp: HttpResponse,
        expect: Option<&RequestId>,
        elsewhere: Option<&mut Waiter>,
    ) -> Result<Posted, Error> {
        let status = resp.status();
        if status == StatusCode::ACCEPTED {
            return match expect {
                None => Ok(Posted::Accepted),
                Some(id) => Err(Error::protocol(format!(
                    "server answered request {id} with 202 Accepted and no response"
                ))),
            };
        }
        if !status.is_success() {
            return Err(self.status_error(resp).await);
        }
        let Some(id) = expect else {
            // A notification or response answered with 200: tolerated (older servers do this).
            let _ = read_body(resp.into_body(), 64 * 1024, self.config.read_timeout).await;
            return Ok(Posted::Accepted);
        };
        if is_sse(&resp) {
            return self
                .read_sse_response(resp, id, elsewhere)
                .await
                .map(Posted::Response);
        }
        let bytes = read_body(
            resp.into_body(),
            self.config.max_response_bytes,
            self.config.read_timeout,
        )
        .await?;
        let mut found = None;
        for message in Message::from_slice_batch(&bytes)
            .map_err(|e| Error::protocol("invalid JSON response body").with_source(e))?
        {
            match message {
                Message::Response(r) if &r.id == id => found = Some(Ok(r)),
                Message::Error(e) if e.id.as_ref() == Some(id) => {
                    found = Some(Err(Error::rpc(e.error)))
                }
                other => self.inbound(other),
            }
        }
        match found {
            Some(Ok(r)) => Ok(Posted::Response(r)),
            Some(Err(e)) => Err(e),
            None => Err(Error::protocol(format!(
                "JSON response body did not answer request {id}"
            ))),
        }
    }

    /// Turns an error status into an error, using the JSON-RPC error in the body if any.
    async fn status_error(&self, resp: HttpResponse) -> Error {
        let status = resp.status();
        let body = read_body(resp.into_body(), 64 * 1024, self.config.read_timeout)
            .await
            .unwrap_or_default();
        if let Ok(Message::Error(e)) = Message::from_slice(&body) {
            return Error::rpc(e.error).with_context(format!("HTTP {status}"));
        }
        Error::new(Kind::Status(status))
    }

    /// Reads an SSE response stream until the response with `id` arrives, resuming with
    /// `GET` + `Last-Event-ID` when the stream ends early.
    async fn read_sse_response(
        &self,
        resp: HttpResponse,
        id: &RequestId,
        mut elsewhere: Option<&mut Waiter>,
    ) -> Result<Response, Error> {
        let mut body = resp.into_body();
        let mut decoder = Decoder::new(self.config.max_response_bytes);
        let mut resumptions = 0;
        loop {
            let outcome = match elsewhere.as_deref_mut() {
                Some(rx) => tokio::select! {
                    outcome = self.pump(&mut body, &mut decoder, Some(id)) => outcome,
                    // The response came on another stream (servers may answer on a GET stream).
                    Ok(response) = rx => return response,
                },
                None => self.pump(&mut body, &mut decoder, Some(id)).await,
            };
            match outcome {
                Pumped::Response(r) => {
                    finish(body, self.config.stream_end_grace, self.config.read_timeout).await;
                    return r;
                }
                Pumped::Progress => resumptions = 0,
                Pumped::Ended(cause) => {
                    let Some(last) = decoder.last_event_id().map(str::to_owned) else {
                        return Err(cause.unwrap_or_else(|| {
                            Error::closed(format!("SSE stream ended before the response to {id}"))
                        }));
                    };
                    if resumptions >= self.config.max_resumptions {
                        return Err(Error::closed(format!(
                            "SSE stream for {id} broke {resumptions} times; giving up"
                        )));
                    }
                    resumptions += 1;
                    let wait = decoder
                        .retry()
                        .unwrap_or(self.config.default_retry)
                        .min(self.config.max_retry);
                    tracing::debug!(?wait, attempt = resumptions, "resuming SSE stream");
                    tokio::time::sleep(wait).await;
                    match self.resume(&last).await {
                        Ok(new_body) => {
                            body = new_body;
                            let retry = decoder.retry();
                            decoder = Decoder::new(self.config.max_response_bytes);
                            decoder.seed(Some(last), retry);
                        }
                        Err(e) if e.is_status() => return Err(e),
                        Err(_) => {} // network trouble: count it and try again
                    }
                }
            }
        }
    }

    /// GET with `Last-Event-ID` to resume a stream.
    async fn resume(&self, last_event_id: &str) -> Result<HttpBody, Error> {
        let (mut req, _) = self.build(Method::GET, Bytes::new(), None, None, true)?;
        req.headers_mut()
            .insert(LAST_EVENT_ID, header_value(last_event_id, "Last-Event-ID")?);
        let resp = self.send(req).await?;
        if resp.status().is_success() && is_sse(&resp) {
            Ok(resp.into_body())
        } else {
            Err(Error::new(Kind::Status(resp.status())).with_context("resuming an SSE stream"))
        }
    }

    /// Reads events from `body` into messages until the awaited response arrives, an event
    /// arrives (when nothing is awaited), or the stream ends.
    async fn pump(
        &self,
        body: &mut HttpBody,
        decoder: &mut Decoder,
        expect: Option<&RequestId>,
    ) -> Pumped {
        let mut progressed = false;
        loop {
            loop {
                match decoder.next_event() {
                    Ok(Some(event)) => {
                        progressed = true;
                        if !event.is_message() || event.data.trim().is_empty() {
                            continue; // priming events and other event types
                        }
                        match Message::from_slice(event.data.as_bytes()) {
                            Ok(Message::Response(r)) if Some(&r.id) == expect => {
                                return Pumped::Response(Ok(r));
                            }
                            Ok(Message::Error(e)) if e.id.is_some() && e.id.as_ref() == expect => {
                                return Pumped::Response(Err(Error::rpc(e.error)));
                            }
                            Ok(other) => self.inbound(other),
                            Err(e) => {
                                tracing::warn!(error = %e, "ignoring an SSE event that is not JSON-RPC")
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        return Pumped::Response(Err(Error::new(Kind::TooLarge).with_source(e)));
                    }
                }
            }
            if expect.is_none() && progressed {
                return Pumped::Progress;
            }
            match tokio::time::timeout(self.config.read_timeout, body.frame()).await {
                Err(_) => {
                    return Pumped::Ended(Some(Error::timeout("SSE stream went silent")));
                }
                Ok(None) => return Pumped::Ended(None),
                Ok(Some(Err(e))) => return Pumped::Ended(Some(Error::from_service(e))),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        decoder.push(&data);
                    }
                }
            }
        }
    }

    /// Starts a new session after a 404, unless another request already did.
    async fn reinitialize(&self, seen_generation: u64) -> Result<(), Error> {
        let _guard = self.reinit.lock().await;
        let init = {
            let s = lock(&self.session);
            if s.generation != seen_generation {
                return Ok(()); // someone else re-initialized meanwhile
            }
            // The old id stays in place until the new one arrives: requests sent meanwhile
            // carry it, get 404, wait on the lock above and replay with the new session.
            s.initialize.clone()
        };
        let Some(init) = init else {
            return Err(Error::closed(
                "session expired before initialization finished",
            ));
        };
        let id = Message::from_slice(&init)
            .ok()
            .and_then(|m| match m {
                Message::Request(r) => Some(r.id),
                _ => None,
            })
            .ok_or_else(|| Error::protocol("stored initialize request is not a request"))?;
        let (mut req, _) = self.build(Method::POST, init, None, Some("initialize"), false)?;
        req.headers_mut().remove(PROTOCOL_VERSION);
        let resp = self.send(req).await?;
        self.take_session(&resp);
        match self.read_post_response(resp, Some(&id), None).await? {
            Posted::Response(r) => self.take_version(&r),
            Posted::Accepted => {}
        }
        let note = Message::Notification(Notification {
            jsonrpc: jsonrpc::JsonRpcVersion,
            method: "notifications/initialized".into(),
            params: None,
        });
        let (req, _) = self.build(
            Method::POST,
            note.to_vec().into(),
            None,
            Some("notifications/initialized"),
            true,
        )?;
        let resp = self.send(req).await?;
        self.read_post_response(resp, None, None).await?;
        lock(&self.session).generation += 1;
        self.session_changed.notify_waiters();
        Ok(())
    }

    /// Adopts the session id of an `initialize` response (none if the server sent none).
    fn take_session(&self, resp: &HttpResponse) {
        lock(&self.session).id = resp.headers().get(SESSION_ID).cloned();
    }

    fn take_version(&self, resp: &Response) {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Negotiated {
            protocol_version: Option<String>,
        }
        if let Ok(Negotiated {
            protocol_version: Some(v),
        }) = serde_json::from_str(resp.result.get())
            && let Ok(v) = HeaderValue::try_from(v)
        {
            lock(&self.session).version = Some(v);
        }
    }
}

enum Pumped {
    Response(Result<Response, Error>),
    /// Events arrived (standalone stream).
    Progress,
    /// The stream ended, with the cause if it broke.
    Ended(Option<Error>),
}

/// Reads what is left of a response stream after its response arrived, so the connection
/// goes back to the pool instead of being closed. Waits up to `grace`; a stream still open
/// then is finished by a task, bounded in time (anything after the response is discarded: the
/// spec says the server should end the stream there).
async fn finish(mut body: HttpBody, grace: Duration, read_timeout: Duration) {
    const MAX_FRAMES: usize = 16;
    for _ in 0..MAX_FRAMES {
        match poll_once(&mut body) {
            Some(Some(Ok(_))) => continue,
            Some(None | Some(Err(_))) => return,
            None => match tokio::time::timeout(grace, body.frame()).await {
                Ok(None | Some(Err(_))) => return,
                Ok(Some(Ok(_))) => continue,
                Err(_) => break,
            },
        }
    }
    let limit = read_timeout.min(Duration::from_secs(10));
    tokio::spawn(async move {
        let _ = tokio::time::timeout(limit, async {
            while let Some(Ok(_)) = body.frame().await {}
        })
        .await;
    });
}

/// Polls the next frame once, without waiting.
fn poll_once(body: &mut HttpBody) -> Option<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::Pin::new(body).poll_frame(&mut cx) {
        std::task::Poll::Ready(frame) => Some(frame),
        std::task::Poll::Pending => None,
    }
}

fn is_sse(resp: &HttpResponse) -> bool {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

fn header_value(value: &str, what: &str) -> Result<HeaderValue, Error> {
    HeaderValue::try_from(value)
        .map_err(|e| Error::config(format!("{what} is not a valid header value")).with_source(e))
}

/// Reads a whole body, refusing more than `cap` bytes and silences over `read_timeout`.
async fn read_body(mut body: HttpBody, cap: usize, read_timeout: Duration) -> Result<Bytes, Error> {
    let mut buf = BytesMut::new();
    loop {
        let frame = tokio::time::timeout(read_timeout, body.frame())
            .await
            .map_err(|_| Error::timeout("reading the response body"))?;
        match frame {
            None => return Ok(buf.freeze()),
            Some(Err(e)) => return Err(Error::from_service(e)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.is_empty() && body.is_end_stream() {
                        if data.len() > cap {
                            return Err(too_large(cap));
                        }
                        return Ok(data); // single-frame body: no copy
                    }
                    if buf.len() + data.len() > cap {
                        return Err(too_large(cap));
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}

fn too_large(cap: usize) -> Error {
    Error::new(Kind::TooLarge).with_context(format!("response body over the {cap} byte cap"))
}

impl Transport for HttpTransport {
    fn request<'a>(
        &'a self,
        request: Request,
        hints: &'a RequestHints,
    ) -> BoxFuture<'a, Result<Response, Error>> {
        Box::pin(async move {
            if self.shared.closed.load(Ordering::Relaxed) {
                return Err(Error::closed("transport closed"));
            }
            let is_initialize = request.method == "initialize";
            // Serializing a request cannot fail (string keys, valid raw JSON params).
            let body: Bytes = serde_json::to_vec(&request).unwrap_or_default().into();
            if is_initialize {
                let (mut req, _) = self.shared.build(
                    Method::POST,
                    body.clone(),
                    Some(hints),
                    Some("initialize"),
                    false,
                )?;
                if hints.protocol_version.is_none() {
                    req.headers_mut().remove(PROTOCOL_VERSION);
                }
                let resp = self.shared.send(req).await?;
                self.shared.take_session(&resp);
                let posted = self
                    .shared
                    .read_post_response(resp, Some(&request.id), None)
                    .await?;
                let Posted::Response(r) = posted else {
                    return Err(Error::protocol("initialize answered with 202"));
                };
                self.shared.take_version(&r);
                lock(&self.shared.session).initialize = Some(body);
                return Ok(r);
            }
            match self
                .shared
                .post(body, Some(&request.id), Some(hints), &request.method)
                .await?
            {
                Posted::Response(r) => Ok(r),
                Posted::Accepted => Err(Error::protocol("request answered with 202")),
            }
        })
    }

    fn notify<'a>(
        &'a self,
        notification: Notification,
        hints: &'a RequestHints,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let initialized = notification.method == "notifications/initialized";
            let method = notification.method.clone();
            let body: Bytes = Message::Notification(notification).to_vec().into();
            self.shared.post(body, None, Some(hints), &method).await?;
            if initialized && self.shared.config.open_get_stream && !hints.stateless {
                // Wait (bounded) for the server to answer the GET, so the stream is open before
                // the first request: whatever the server sends on it from then on is seen, and
                // the server cannot take it for a later reconnection.
                if let Some(opened) = self.start_get_stream()
                    && tokio::time::timeout(GET_STREAM_OPEN_WAIT, opened)
                        .await
                        .is_err()
                {
                    tracing::debug!("standalone GET stream not answered yet; going on");
                }
            }
            Ok(())
        })
    }

    fn respond(&self, message: Message) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let body: Bytes = message.to_vec().into();
            self.shared.post(body, None, None, "").await.map(|_| ())
        })
    }

    fn set_inbound(&self, inbound: Inbound) {
        let _ = self.shared.inbound.set(inbound);
    }

    fn close(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            if self.shared.closed.swap(true, Ordering::Relaxed) {
                return Ok(());
            }
            self.shared.shutdown.notify_waiters();
            if let Some(task) = lock(&self.get_task).take() {
                task.abort();
            }
            if lock(&self.shared.session).id.is_none() {
                return Ok(());
            }
            let (mut req, _) = self
                .shared
                .build(Method::DELETE, Bytes::new(), None, None, true)?;
            req.headers_mut().remove(ACCEPT);
            match self.shared.send(req).await {
                Ok(resp)
                    if resp.status().is_success()
                        || resp.status() == StatusCode::METHOD_NOT_ALLOWED =>
                {
                    Ok(())
                }
                Ok(resp) => {
                    tracing::debug!(status = %resp.status(), "DELETE of the MCP session failed");
                    Ok(())
                }
                Err(e) => {
                    tracing::debug!(error = %e, "DELETE of the MCP session failed");
                    Ok(())
                }
            }
        })
    }
}

impl HttpTransport {
    /// Starts the standalone GET stream once; the receiver completes when the server has
    /// answered the first GET (either way).
    fn start_get_stream(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        if self.shared.get_stream_started.swap(true, Ordering::Relaxed) {
            return None;
        }
        let shared = self.shared.clone();
        let (opened, answered) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            tokio::select! {
                () = get_stream(&shared, opened) => {}
                () = shared.shutdown.notified() => {}
            }
        });
        *lock(&self.get_task) = Some(task.abort_handle());
        Some(answered)
    }
}

/// The standalone GET stream: server-initiated requests and notifications. Reconnects with
/// `Last-Event-ID` a bounded number of times in a row; `405` (or any other refusal) means the
/// server offers none.
async fn get_stream(shared: &Shared, opened: tokio::sync::oneshot::Sender<()>) {
    let mut opened = Some(opened);
    let mut last_event_id: Option<String> = None;
    let mut retry: Option<Duration> = None;
    let mut failures = 0;
    while failures <= shared.config.max_resumptions {
        let generation = lock(&shared.session).generation;
        let body = match &last_event_id {
            Some(last) => shared.resume(last).await,
            None => match shared.build(Method::GET, Bytes::new(), None, None, true) {
                Ok((req, _)) => match shared.send(req).await {
                    Ok(resp) if resp.status().is_success() && is_sse(&resp) => Ok(resp.into_body()),
                    Ok(resp) => Err(Error::new(Kind::Status(resp.status()))),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
        };
        if let Some(opened) = opened.take() {
            let _ = opened.send(());
        }
        let mut body = match body {
            Ok(b) => b,
            Err(e)
                if e.status() == Some(StatusCode::NOT_FOUND)
                    && lock(&shared.session).id.is_some() =>
            {
                // The session expired: the next request re-initializes it; then start over.
                tracing::debug!("standalone GET stream: session gone; waiting for a new one");
                let changed = shared.session_changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if lock(&shared.session).generation == generation {
                    changed.await;
                }
                last_event_id = None;
                failures += 1;
                continue;
            }
            Err(e) if e.is_status() => {
                tracing::debug!(error = %e, "server offers no standalone GET stream");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "standalone GET stream failed");
                failures += 1;
                wait(shared, retry).await;
                continue;
            }
        };
        let mut decoder = Decoder::new(shared.config.max_response_bytes);
        decoder.seed(last_event_id.clone(), retry);
        loop {
            match shared.pump(&mut body, &mut decoder, None).await {
                Pumped::Progress => failures = 0,
                Pumped::Response(_) => break,
                Pumped::Ended(_) => break,
            }
        }
        last_event_id = decoder.last_event_id().map(str::to_owned);
        retry = decoder.retry();
        failures += 1;
        wait(shared, retry).await;
    }
    tracing::debug!("standalone GET stream: giving up after repeated failures");
}

async fn wait(shared: &Shared, retry: Option<Duration>) {
    tokio::time::sleep(
        retry
            .unwrap_or(shared.config.default_retry)
            .min(shared.config.max_retry),
    )
    .await;
}

impl Drop for HttpTransport {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.get_task).take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_http_refused_except_loopback() {
        assert!(check_url("http://127.0.0.1:8080/mcp", false).is_ok());
        assert!(check_url("http://[::1]:8080/mcp", false).is_ok());
        assert!(check_url("http://localhost/mcp", false).is_ok());
        let err = check_url("http://scheduler.example/mcp", false).unwrap_err();
        assert!(err.is_config());
        assert!(err.to_string().contains("allow_insecure_http"));
        assert!(check_url("http://scheduler.example/mcp", true).is_ok());
        assert!(check_url("https://scheduler.example/mcp", false).is_ok());
        assert!(check_url("ftp://x/", false).unwrap_err().is_config());
        assert!(check_url("not a url", false).unwrap_err().is_config());
        let err = check_url("https://user:hunter2@h .example/mcp?key=s3cr3t", false).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn redaction_drops_query_and_userinfo() {
        let uri: Uri = "https://user:pw@h.example/mcp?code=s3cr3t".parse().unwrap();
        assert_eq!(redacted(&uri), "https://h.example/mcp");
        let err = check_url("https://user:pw@h.example/mcp", false).unwrap_err();
        assert!(err.is_config() && !err.to_string().contains("pw"), "{err}");
    }
}
