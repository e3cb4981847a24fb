//! What a scripted server answers: [`ScriptedResponse`] (JSON, `202`, any status and body, or
//! an SSE stream built from [`SseStep`]s), the [`Gate`] that holds a response until the test
//! releases it, and helpers that build JSON-RPC messages.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use http_body::{Frame, SizeHint};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

/// A JSON-RPC success response: `{"jsonrpc":"2.0","id":id,"result":result}`.
pub fn rpc_result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A JSON-RPC error response: `{"jsonrpc":"2.0","id":id,"error":{"code":code,"message":message}}`.
pub fn rpc_error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// A JSON-RPC request from the server to the client (sent on an SSE stream).
pub fn rpc_request(id: &Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A JSON-RPC notification, e.g. `notifications/progress`.
pub fn rpc_notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// A latch the test opens to release held responses and SSE streams.
///
/// Cheap to clone; clones share the latch. Once opened it stays open.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let gate = testkit::mcp_http::Gate::new();
/// let waiter = gate.clone();
/// let task = tokio::spawn(async move { waiter.wait().await });
/// gate.open();
/// task.await.expect("released");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Gate {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Opens the gate: every current and future [`wait`](Gate::wait) returns.
    pub fn open(&self) {
        self.tx.send_replace(true);
    }

    /// True once [`open`](Gate::open) was called.
    pub fn is_open(&self) -> bool {
        *self.tx.borrow()
    }

    /// Waits until the gate is open. Never returns if nobody opens it: bound it with a timeout
    /// or let the server's drop cancel it.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|open| *open).await;
    }
}

/// One Server-Sent Event.
///
/// ```
/// use testkit::mcp_http::SseEvent;
/// let e = SseEvent::priming("e1").retry(std::time::Duration::from_millis(500));
/// assert_eq!(e.encode(), "id: e1\nretry: 500\ndata: \n\n");
/// ```
#[derive(Clone, Debug, Default)]
pub struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    retry: Option<Duration>,
    data: String,
}

impl SseEvent {
    /// A `message` event whose data is `value` as compact JSON.
    pub fn message(value: &Value) -> Self {
        Self::data(value.to_string())
    }

    /// An event with this data (split into one `data:` line per line).
    pub fn data(data: impl Into<String>) -> Self {
        Self {
            data: data.into(),
            ..Self::default()
        }
    }

    /// A priming event: an id and empty data, as servers send first so that the client can
    /// resume the stream.
    pub fn priming(id: impl Into<String>) -> Self {
        Self::default().id(id)
    }

    /// Sets the `id:` field.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the `event:` field (the event type; absent means `message`).
    pub fn event(mut self, event: impl Into<String>) -> Self {
        self.event = Some(event.into());
        self
    }

    /// Sets the `retry:` field (the client's reconnection delay), in whole milliseconds.
    pub fn retry(mut self, retry: Duration) -> Self {
        self.retry = Some(retry);
        self
    }

    /// The event in `text/event-stream` wire format, ending with the blank line.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Some(event) = &self.event {
            out.push_str(&format!("event: {event}\n"));
        }
        if let Some(id) = &self.id {
            out.push_str(&format!("id: {id}\n"));
        }
        if let Some(retry) = self.retry {
            out.push_str(&format!("retry: {}\n", retry.as_millis()));
        }
        if self.data.is_empty() {
            out.push_str("data: \n");
        }
        for line in self.data.lines() {
            out.push_str(&format!("data: {line}\n"));
        }
        out.push('\n');
        out
    }
}

/// One step of a scripted SSE stream. The stream ends gracefully (a clean end of the body,
/// with or without a response in it) after the last step.
#[derive(Clone, Debug)]
pub enum SseStep {
    /// Send an event.
    Event(SseEvent),
    /// Send a comment line (`: text`), e.g. a keep-alive.
    Comment(String),
    /// Send raw bytes as they are (for malformed or oversized streams).
    Raw(Bytes),
    /// Pause before the next step.
    Delay(Duration),
    /// Hold the stream open until the gate opens.
    WaitFor(Gate),
    /// Keep the stream open, sending nothing, until the client goes away or the server is
    /// dropped.
    Hang,
    /// Break the stream: fail the body so the connection is torn down without a clean end.
    /// Events the server has not flushed yet are lost with it; put a [`SseStep::Delay`] before
    /// this step to be sure the earlier ones reached the client.
    Abort,
}

impl From<SseEvent> for SseStep {
    fn from(event: SseEvent) -> Self {
        SseStep::Event(event)
    }
}

#[derive(Debug)]
enum Hold {
    Gate(Gate),
    Delay(Duration),
}

#[derive(Debug)]
enum Payload {
    Full(Bytes),
    Sse(Vec<SseStep>),
}

/// What the scripted server answers to one request.
///
/// ```
/// use testkit::mcp_http::{ScriptedResponse, SseEvent, SseStep, rpc_result};
/// use serde_json::json;
///
/// let id = json!(1);
/// let plain = ScriptedResponse::result(&id, json!({"tools": []}));
/// let stream = ScriptedResponse::sse([
///     SseStep::Event(SseEvent::priming("e0")),
///     SseStep::Event(SseEvent::message(&rpc_result(&id, json!({})))),
/// ]);
/// let broken = ScriptedResponse::status(503).with_body("try later");
/// # let _ = (plain, stream, broken);
/// ```
#[derive(Debug)]
pub struct ScriptedResponse {
    status: StatusCode,
    headers: HeaderMap,
    payload: Payload,
    holds: Vec<Hold>,
    /// Set when the script itself is invalid (a bad header): the server answers 500 with it.
    invalid: Option<String>,
}

impl ScriptedResponse {
    /// A response with this status and an empty body. An invalid status code becomes a `500`
    /// whose body says so.
    pub fn status(status: u16) -> Self {
        match StatusCode::from_u16(status) {
            Ok(status) => Self::new(status, Payload::Full(Bytes::new())),
            Err(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Payload::Full(Bytes::new()),
            )
            .invalid(format!(
                "scripted status {status} is not a valid HTTP status"
            )),
        }
    }

    /// `202 Accepted` with no body: the answer to notifications and responses.
    pub fn accepted() -> Self {
        Self::status(202)
    }

    /// `200` with `Content-Type: application/json` and `value` as the body.
    pub fn json(value: &Value) -> Self {
        Self::new(StatusCode::OK, Payload::Full(value.to_string().into()))
            .with_header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
    }

    /// `200` JSON with a JSON-RPC success response to request `id`.
    pub fn result(id: &Value, result: Value) -> Self {
        Self::json(&rpc_result(id, result))
    }

    /// `200` JSON with a JSON-RPC error response to request `id`.
    pub fn rpc_error(id: &Value, code: i64, message: &str) -> Self {
        Self::json(&rpc_error(id, code, message))
    }

    /// `200` with `Content-Type: text/event-stream`, streaming `steps` in order and then
    /// ending the body.
    pub fn sse(steps: impl IntoIterator<Item = SseStep>) -> Self {
        Self::new(StatusCode::OK, Payload::Sse(steps.into_iter().collect()))
            .with_header(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"))
            .with_header(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            )
    }

    fn new(status: StatusCode, payload: Payload) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            payload,
            holds: Vec::new(),
            invalid: None,
        }
    }

    fn invalid(mut self, why: String) -> Self {
        self.invalid.get_or_insert(why);
        self
    }

    /// Replaces the status (e.g. a JSON-RPC error body with `500`). An invalid status code
    /// turns the response into a `500` that says so.
    pub fn with_status(mut self, status: u16) -> Self {
        match StatusCode::from_u16(status) {
            Ok(s) => {
                self.status = s;
                self
            }
            Err(_) => self.invalid(format!(
                "scripted status {status} is not a valid HTTP status"
            )),
        }
    }

    /// Sets a header, replacing earlier values. A name or value that is not valid HTTP turns
    /// the response into a `500` whose body names the problem (a test sees it; nothing panics).
    pub fn with_header<N, V>(mut self, name: N, value: V) -> Self
    where
        N: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(name), Ok(value)) => {
                self.headers.insert(name, value);
                self
            }
            _ => self.invalid("scripted header name or value is not valid HTTP".into()),
        }
    }

    /// Sets `MCP-Session-Id`.
    pub fn with_session_id(self, id: &str) -> Self {
        self.with_header("mcp-session-id", id)
    }

    /// Replaces the body with these bytes (an SSE script is dropped; the content type stays
    /// unless you replace it).
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.payload = Payload::Full(body.into());
        self
    }

    /// Holds the whole response (head included) until `gate` opens. For cancellation and
    /// timeout tests: the client sees no answer at all until then.
    pub fn after(mut self, gate: &Gate) -> Self {
        self.holds.push(Hold::Gate(gate.clone()));
        self
    }

    /// Delays the whole response (head included) by `delay`.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.holds.push(Hold::Delay(delay));
        self
    }

    /// The status this response will have.
    pub fn status_code(&self) -> StatusCode {
        if self.invalid.is_some() {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            self.status
        }
    }

    /// Waits for the holds, then builds the hyper response (spawning the SSE writer).
    pub(crate) async fn into_response(self) -> http::Response<ScriptBody> {
        for hold in &self.holds {
            match hold {
                Hold::Gate(gate) => gate.wait().await,
                Hold::Delay(delay) => tokio::time::sleep(*delay).await,
            }
        }
        if let Some(why) = self.invalid {
            let mut resp = http::Response::new(ScriptBody::full(Bytes::from(why)));
            *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return resp;
        }
        let body = match self.payload {
            Payload::Full(bytes) => ScriptBody::full(bytes),
            Payload::Sse(steps) => {
                let (tx, rx) = mpsc::channel(16);
                tokio::spawn(write_sse(steps, tx));
                ScriptBody::Stream(rx)
            }
        };
        let mut resp = http::Response::new(body);
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers;
        resp
    }
}

/// Feeds the SSE script into the response body. Every wait also ends when the client (or the
/// server's drop) closes the body, so no writer outlives its connection.
async fn write_sse(steps: Vec<SseStep>, tx: mpsc::Sender<io::Result<Bytes>>) {
    for step in steps {
        let chunk = match step {
            SseStep::Event(event) => Bytes::from(event.encode()),
            SseStep::Comment(text) => Bytes::from(format!(": {text}\n\n")),
            SseStep::Raw(bytes) => bytes,
            SseStep::Delay(delay) => {
                tokio::select! {
                    () = tokio::time::sleep(delay) => continue,
                    () = tx.closed() => return,
                }
            }
            SseStep::WaitFor(gate) => {
                tokio::select! {
                    () = gate.wait() => continue,
                    () = tx.closed() => return,
                }
            }
            SseStep::Hang => {
                tx.closed().await;
                return;
            }
            SseStep::Abort => {
                let _ = tx
                    .send(Err(io::Error::other("scripted abort of the SSE stream")))
                    .await;
                return;
            }
        };
        if tx.send(Ok(chunk)).await.is_err() {
            return;
        }
    }
}

/// The response body of the scripted server: a whole body, or a stream fed by the SSE writer.
#[derive(Debug)]
pub(crate) enum ScriptBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<io::Result<Bytes>>),
}

impl ScriptBody {
    pub(crate) fn full(bytes: Bytes) -> Self {
        ScriptBody::Full(Some(bytes).filter(|b| !b.is_empty()))
    }
}

impl http_body::Body for ScriptBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ScriptBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ScriptBody::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ScriptBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ScriptBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ScriptBody::Stream(_) => SizeHint::default(),
        }
    }
}
