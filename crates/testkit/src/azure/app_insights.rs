//! A fake Application Insights ingestion endpoint (the "Breeze" track API) on loopback, for the
//! tests of `azure-telemetry` (OpenTelemetry → Application Insights through
//! `opentelemetry-application-insights`).
//!
//! It takes `POST /v2/track` and `POST /v2.1/track` (also with a trailing slash). The body is
//! a JSON array of envelopes or newline-delimited JSON envelopes, optionally with
//! `Content-Encoding: gzip` (decompressed here, with its CRC checked). An envelope looks like
//! `{"name": "Microsoft.ApplicationInsights.Request", "time": "...", "iKey": "<guid>",
//! "tags": {...}, "data": {"baseType": "RequestData", "baseData": {...}}}`.
//!
//! | request | answer |
//! |---|---|
//! | another path | `404` |
//! | a track path with another method than `POST` | `405` with `Allow: POST` |
//! | while [`delay_next`](FakeAppInsights::delay_next) lasts | the answer below, after the delay (nothing is recorded until then) |
//! | while [`fail_next`](FakeAppInsights::fail_next) lasts | that status (`Retry-After: 1` for `429` and `503`), `{"itemsReceived":0,"itemsAccepted":0,"errors":[]}` |
//! | a `Content-Encoding` other than `gzip` / `identity`, or a broken gzip stream | `400`, one error at index 0 |
//! | not JSON (or no envelope at all) | `400` `{"itemsReceived":0,"itemsAccepted":0,"errors":[{"index":0,"statusCode":400,"message":"Invalid JSON"}]}` |
//! | every item accepted | `200` `{"itemsReceived":n,"itemsAccepted":n,"errors":[]}` |
//! | some items rejected | `206`, `errors` lists each rejected item: `{"index":i,"statusCode":400,"message":"..."}` |
//!
//! An item is rejected when it is not a JSON object; when `name`, `time` or `data.baseType` is
//! missing or empty; when its `iKey` is not one registered with
//! [`accept_key`](FakeAppInsights::accept_key) (with none registered: when it is not
//! GUID-shaped); or when its `data.baseType` was listed with
//! [`reject_item_types`](FakeAppInsights::reject_item_types). Accepted envelopes are kept in
//! arrival order ([`envelopes`](FakeAppInsights::envelopes)).
//!
//! The exporter insists on `https://`; tests wrap its HTTP client so that requests reach
//! [`ingestion_endpoint`](FakeAppInsights::ingestion_endpoint). The fake answers whatever the
//! `Host` header says.
//!
//! ```
//! use testkit::azure::FakeAppInsights;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let ai = FakeAppInsights::start().await?;
//! let key = "00000000-0000-4000-8000-000000000001";
//! ai.accept_key(key);
//! assert!(ai.connection_string(key).starts_with(&format!(
//!     "InstrumentationKey={key};IngestionEndpoint=http://127.0.0.1:"
//! )));
//! ai.fail_next(1, 503);
//! assert!(ai.envelopes().is_empty());
//! # Ok(()) }
//! ```
//!
//! Dropping the fake stops its server and every connection it has open.

use std::collections::HashSet;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Reply, json_reply};
use crate::lock;

/// One request the fake received, as [`FakeAppInsights::requests`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrackRequest {
    /// The request path, e.g. `/v2.1/track`.
    pub path: String,
    /// Whether the body came with `Content-Encoding: gzip`.
    pub gzip: bool,
    /// How many items (envelopes) the body held; `0` when it could not be decoded.
    pub items: usize,
    /// The status the fake answered with.
    pub status: u16,
}

struct Script {
    remaining: usize,
    status: u16,
}

struct DelayScript {
    remaining: usize,
    delay: Duration,
}

struct State {
    /// Empty: any GUID-shaped key is accepted. Lowercase.
    keys: HashSet<String>,
    rejected_types: HashSet<String>,
    fail: Script,
    delay: DelayScript,
    envelopes: Vec<Value>,
    requests: Vec<TrackRequest>,
}

struct Shared {
    state: Mutex<State>,
    /// How many envelopes have been accepted so far.
    accepted: watch::Sender<usize>,
}

/// A fake Application Insights ingestion endpoint on `127.0.0.1`. See the
/// [module docs](self).
pub struct FakeAppInsights {
    addr: SocketAddr,
    task: tokio::task::AbortHandle,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FakeAppInsights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.shared.state);
        f.debug_struct("FakeAppInsights")
            .field("addr", &self.addr)
            .field("envelopes", &state.envelopes.len())
            .field("requests", &state.requests.len())
            .finish_non_exhaustive()
    }
}

impl Drop for FakeAppInsights {
    fn drop(&mut self) {
        // Dropping the accept loop's `JoinSet` aborts every connection task.
        self.task.abort();
    }
}

/// A [`FakeAppInsights`] on a runtime and thread of its own, from
/// [`FakeAppInsights::start_detached`]. Dereferences to the fake; dropping it stops both.
pub struct DetachedFakeAppInsights {
    fake: Option<FakeAppInsights>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for DetachedFakeAppInsights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DetachedFakeAppInsights")
            .field(&self.fake)
            .finish()
    }
}

impl std::ops::Deref for DetachedFakeAppInsights {
    type Target = FakeAppInsights;

    fn deref(&self) -> &FakeAppInsights {
        self.fake.as_ref().expect("present until dropped")
    }
}

impl Drop for DetachedFakeAppInsights {
    fn drop(&mut self) {
        drop(self.fake.take());
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl FakeAppInsights {
    /// Starts the fake on a runtime and thread of its own, for tests that block their thread
    /// while telemetry is flushed to it (a flush waits for the fake's answer, which a fake
    /// on the blocked thread's runtime could never give). Call it outside any runtime.
    pub fn start_detached() -> io::Result<DetachedFakeAppInsights> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-app-insights".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let started = Self::start().await;
                    let ok = started.is_ok();
                    let _ = started_tx.send(started);
                    if ok {
                        let _ = stop_rx.await;
                    }
                });
            })?;
        let fake = started_rx
            .recv()
            .map_err(|_| io::Error::other("the fake's thread ended before it started"))??;
        Ok(DetachedFakeAppInsights {
            fake: Some(fake),
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Starts the fake on `127.0.0.1:0`, accepting any GUID-shaped instrumentation key. Must
    /// be called inside a Tokio runtime; the server runs on it until dropped.
    pub async fn start() -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                keys: HashSet::new(),
                rejected_types: HashSet::new(),
                fail: Script {
                    remaining: 0,
                    status: 503,
                },
                delay: DelayScript {
                    remaining: 0,
                    delay: Duration::ZERO,
                },
                envelopes: Vec::new(),
                requests: Vec::new(),
            }),
            accepted: watch::Sender::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone())).abort_handle();
        Ok(Self { addr, task, shared })
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:{port}`, the ingestion endpoint (no trailing slash; the exporter
    /// appends `/v2.1/track` or `/v2/track`).
    pub fn ingestion_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A connection string pointing both ingestion and live metrics at the fake:
    /// `InstrumentationKey=<key>;IngestionEndpoint=http://127.0.0.1:port/;LiveEndpoint=http://127.0.0.1:port/`.
    pub fn connection_string(&self, instrumentation_key: &str) -> String {
        let endpoint = self.ingestion_endpoint();
        format!(
            "InstrumentationKey={instrumentation_key};IngestionEndpoint={endpoint}/;LiveEndpoint={endpoint}/"
        )
    }

    /// Adds `key` to the instrumentation keys the fake accepts (compared case-insensitively).
    /// The first call ends the default of accepting any GUID-shaped key: from then on items
    /// with another `iKey` are rejected (`206`).
    pub fn accept_key(&self, key: &str) {
        lock(&self.shared.state)
            .keys
            .insert(key.to_ascii_lowercase());
    }

    /// The next `n` track requests get `status` (e.g. `503` or `429`, which carry
    /// `Retry-After: 1`) with `{"itemsReceived":0,"itemsAccepted":0,"errors":[]}`; nothing in
    /// them is recorded as accepted. Replaces an earlier setting.
    pub fn fail_next(&self, n: usize, status: u16) {
        lock(&self.shared.state).fail = Script {
            remaining: n,
            status,
        };
    }

    /// The answers to the next `n` track requests wait `delay` (a slow ingestion endpoint, for
    /// back-pressure tests); their items are recorded only when the answer goes out. Replaces
    /// an earlier setting.
    pub fn delay_next(&self, n: usize, delay: Duration) {
        lock(&self.shared.state).delay = DelayScript {
            remaining: n,
            delay,
        };
    }

    /// Items whose `data.baseType` is one of `base_types` (e.g. `"MessageData"`) are rejected
    /// with a per-item `400` in a `206` answer. Replaces an earlier list; an empty list
    /// rejects nothing.
    pub fn reject_item_types(&self, base_types: &[&str]) {
        lock(&self.shared.state).rejected_types =
            base_types.iter().map(|t| (*t).to_string()).collect();
    }

    /// Every accepted envelope, decoded, in arrival order.
    pub fn envelopes(&self) -> Vec<Value> {
        lock(&self.shared.state).envelopes.clone()
    }

    /// The accepted envelopes whose `data.baseType` is `base_type` (e.g. `"RequestData"`), in
    /// arrival order.
    pub fn envelopes_of(&self, base_type: &str) -> Vec<Value> {
        lock(&self.shared.state)
            .envelopes
            .iter()
            .filter(|e| base_type_of(e) == Some(base_type))
            .cloned()
            .collect()
    }

    /// Every request answered so far (any path), in the order the answers went out.
    pub fn requests(&self) -> Vec<TrackRequest> {
        lock(&self.shared.state).requests.clone()
    }

    /// Waits until at least `n` envelopes have been accepted or `timeout` has passed, then
    /// returns every accepted envelope (possibly fewer than `n` on timeout).
    pub async fn wait_for_envelopes(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let mut rx = self.shared.accepted.subscribe();
        // The sender lives as long as `self`, so `wait_for` only ends by the condition.
        let _ = tokio::time::timeout(timeout, rx.wait_for(|count| *count >= n)).await;
        self.envelopes()
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, shared.clone()));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "app insights fake: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
    });
    if let Err(e) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(error = %e, "app insights fake: connection ended with an error");
    }
}

/// The path without one trailing slash, if it is a track path.
fn is_track_path(path: &str) -> bool {
    matches!(
        path.strip_suffix('/').unwrap_or(path),
        "/v2/track" | "/v2.1/track"
    )
}

async fn handle(shared: &Shared, req: http::Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let encoding = parts.headers.get(header::CONTENT_ENCODING).map(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .trim()
            .to_ascii_lowercase()
    });
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::debug!(error = %e, "app insights fake: could not read a request body");
            return breeze_reply(
                StatusCode::BAD_REQUEST,
                0,
                0,
                &[error_item(0, 400, "Could not read the request body")],
            );
        }
    };
    if is_track_path(&path) {
        let delay = {
            let mut state = lock(&shared.state);
            let script = &mut state.delay;
            (script.remaining > 0).then(|| {
                script.remaining -= 1;
                script.delay
            })
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
    }
    answer(shared, &parts.method, &path, encoding.as_deref(), &body)
}

fn answer(
    shared: &Shared,
    method: &Method,
    path: &str,
    encoding: Option<&str>,
    body: &[u8],
) -> Reply {
    let gzip = encoding == Some("gzip");
    let mut state = lock(&shared.state);
    let record = |state: &mut State, items: usize, status: StatusCode| {
        state.requests.push(TrackRequest {
            path: path.to_string(),
            gzip,
            items,
            status: status.as_u16(),
        });
    };

    if !is_track_path(path) {
        record(&mut state, 0, StatusCode::NOT_FOUND);
        return json_reply(
            StatusCode::NOT_FOUND,
            &json!({"error": {"code": "NotFound", "message": format!("No route for {path}")}}),
        );
    }
    if method != Method::POST {
        record(&mut state, 0, StatusCode::METHOD_NOT_ALLOWED);
        let mut reply = json_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": {"code": "MethodNotAllowed", "message": "Only POST is supported"}}),
        );
        reply
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return reply;
    }

    let decoded: Result<Vec<u8>, String> = match encoding {
        None | Some("" | "identity") => Ok(body.to_vec()),
        Some("gzip") => gunzip(body).map_err(|e| format!("Invalid gzip body: {e}")),
        Some(other) => Err(format!("Unsupported Content-Encoding: {other}")),
    };
    let items = decoded.as_ref().ok().and_then(|bytes| parse_items(bytes));
    let received = items.as_ref().map_or(0, Vec::len);

    if state.fail.remaining > 0 {
        state.fail.remaining -= 1;
        let status =
            StatusCode::from_u16(state.fail.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        record(&mut state, received, status);
        let mut reply = breeze_reply(status, 0, 0, &[]);
        if matches!(status.as_u16(), 429 | 503) {
            reply
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        return reply;
    }

    let items = match (decoded, items) {
        (Err(message), _) => {
            record(&mut state, 0, StatusCode::BAD_REQUEST);
            return breeze_reply(
                StatusCode::BAD_REQUEST,
                0,
                0,
                &[error_item(0, 400, &message)],
            );
        }
        (Ok(_), None) => {
            record(&mut state, 0, StatusCode::BAD_REQUEST);
            return breeze_reply(
                StatusCode::BAD_REQUEST,
                0,
                0,
                &[error_item(0, 400, "Invalid JSON")],
            );
        }
        (Ok(_), Some(items)) => items,
    };

    let mut errors = Vec::new();
    let mut accepted = 0;
    for (index, item) in items.into_iter().enumerate() {
        match check_item(&state, &item) {
            Ok(()) => {
                state.envelopes.push(item);
                accepted += 1;
            }
            Err(message) => errors.push(error_item(index, 400, &message)),
        }
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::PARTIAL_CONTENT
    };
    record(&mut state, received, status);
    let total = state.envelopes.len();
    drop(state);
    shared.accepted.send_replace(total);
    breeze_reply(status, received, accepted, &errors)
}

/// The body of a track request as a list of items: a JSON array, or a stream of JSON values
/// (newline-delimited JSON). `None` when it is not JSON or holds no value at all.
fn parse_items(bytes: &[u8]) -> Option<Vec<Value>> {
    let mut values = Vec::new();
    for value in serde_json::Deserializer::from_slice(bytes).into_iter::<Value>() {
        values.push(value.ok()?);
    }
    match values.as_slice() {
        [] => None,
        [Value::Array(_)] => match values.pop() {
            Some(Value::Array(items)) => Some(items),
            _ => None,
        },
        _ => Some(values),
    }
}

fn base_type_of(envelope: &Value) -> Option<&str> {
    envelope.pointer("/data/baseType").and_then(Value::as_str)
}

fn required(envelope: &Value, pointer: &str, field: &str, ty: &str) -> Result<(), String> {
    match envelope.pointer(pointer).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(()),
        _ => Err(format!(
            "Field '{field}' on type '{ty}' is required but missing or empty. Expected: string, Actual: undefined"
        )),
    }
}

fn check_item(state: &State, item: &Value) -> Result<(), String> {
    if !item.is_object() {
        return Err("Invalid envelope: expected a JSON object".to_string());
    }
    required(item, "/name", "name", "Envelope")?;
    required(item, "/time", "time", "Envelope")?;
    required(item, "/data/baseType", "baseType", "Data")?;
    let ikey = item.get("iKey").and_then(Value::as_str).unwrap_or("");
    let key_ok = if state.keys.is_empty() {
        is_guid(ikey)
    } else {
        state.keys.contains(&ikey.to_ascii_lowercase())
    };
    if !key_ok {
        return Err("Invalid instrumentation key".to_string());
    }
    let base_type = base_type_of(item).unwrap_or("");
    if state.rejected_types.contains(base_type) {
        return Err(format!(
            "Telemetry of type '{base_type}' is rejected (reject_item_types)"
        ));
    }
    Ok(())
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` with hex digits.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn error_item(index: usize, status: u16, message: &str) -> Value {
    json!({"index": index, "statusCode": status, "message": message})
}

fn breeze_reply(status: StatusCode, received: usize, accepted: usize, errors: &[Value]) -> Reply {
    json_reply(
        status,
        &json!({"itemsReceived": received, "itemsAccepted": accepted, "errors": errors}),
    )
}

// --- gzip (RFC 1952) and DEFLATE (RFC 1951) decoding -------------------------------------
//
// The workspace has no gzip crate, so the fake carries a small inflater (after zlib's
// `puff.c`): stored, fixed and dynamic Huffman blocks, several members, CRC-32 and size
// checks, and an output cap.

/// The most a body may inflate to.
const MAX_INFLATED: usize = 64 << 20;

/// Decompresses a gzip stream (one or more members).
fn gunzip(data: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let header = data.get(pos..pos + 10).ok_or("truncated header")?;
        if header[0] != 0x1f || header[1] != 0x8b {
            return Err("not a gzip stream");
        }
        if header[2] != 8 {
            return Err("unknown compression method");
        }
        let flags = header[3];
        let mut p = pos + 10;
        if flags & 0x04 != 0 {
            let xlen = data.get(p..p + 2).ok_or("truncated header")?;
            p += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
        }
        for flag in [0x08, 0x10] {
            if flags & flag != 0 {
                let rest = data.get(p..).ok_or("truncated header")?;
                let nul = rest
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or("truncated header")?;
                p += nul + 1;
            }
        }
        if flags & 0x02 != 0 {
            p += 2;
        }
        let start = out.len();
        let consumed = inflate(data.get(p..).ok_or("truncated header")?, &mut out)?;
        p += consumed;
        let trailer = data.get(p..p + 8).ok_or("truncated trailer")?;
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if crc != crc32(&out[start..]) {
            return Err("CRC mismatch");
        }
        // ISIZE is the length modulo 2^32.
        if size != (out.len() - start) as u32 {
            return Err("length mismatch");
        }
        pos = p + 8;
        if data[pos..].iter().all(|&b| b == 0) {
            return Ok(out);
        }
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Reads bits least significant first, as DEFLATE packs them.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u32,
    count: u32,
}

impl Bits<'_> {
    /// The next `n` (at most 16) bits.
    fn take(&mut self, n: u32) -> Result<u32, &'static str> {
        while self.count < n {
            let byte = *self.data.get(self.pos).ok_or("truncated deflate data")?;
            self.pos += 1;
            self.buf |= u32::from(byte) << self.count;
            self.count += 8;
        }
        let value = self.buf & ((1u32 << n) - 1);
        self.buf >>= n;
        self.count -= n;
        Ok(value)
    }

    /// Drops the bits left in the current byte.
    fn align(&mut self) {
        let drop = self.count % 8;
        self.buf >>= drop;
        self.count -= drop;
    }
}

/// A canonical Huffman code: how many codes of each length, and the symbols in code order.
struct Huffman {
    counts: [u16; 16],
    symbols: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Result<Self, &'static str> {
        let mut counts = [0u16; 16];
        for &len in lengths {
            counts[usize::from(len)] += 1;
        }
        counts[0] = 0;
        let mut left: i32 = 1;
        for &count in &counts[1..] {
            left = (left << 1) - i32::from(count);
            if left < 0 {
                return Err("over-subscribed Huffman code");
            }
        }
        let mut offsets = [0u16; 16];
        for len in 1..15 {
            offsets[len + 1] = offsets[len] + counts[len];
        }
        let mut symbols = vec![0u16; lengths.len()];
        for (symbol, &len) in lengths.iter().enumerate() {
            if len != 0 {
                let slot = &mut offsets[usize::from(len)];
                symbols[usize::from(*slot)] = symbol as u16;
                *slot += 1;
            }
        }
        Ok(Self { counts, symbols })
    }

    fn decode(&self, bits: &mut Bits<'_>) -> Result<u16, &'static str> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for &count in &self.counts[1..] {
            code |= bits.take(1)? as i32;
            let count = i32::from(count);
            if code - count < first {
                return self
                    .symbols
                    .get((index + code - first) as usize)
                    .copied()
                    .ok_or("bad Huffman code");
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err("bad Huffman code")
    }
}

const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
const CODE_LENGTH_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Inflates one raw DEFLATE stream from `data` onto `out`; returns how many bytes of `data` it
/// used.
fn inflate(data: &[u8], out: &mut Vec<u8>) -> Result<usize, &'static str> {
    let start = out.len();
    let mut bits = Bits {
        data,
        pos: 0,
        buf: 0,
        count: 0,
    };
    loop {
        let last = bits.take(1)? == 1;
        match bits.take(2)? {
            0 => {
                bits.align();
                let len = bits.take(16)?;
                let nlen = bits.take(16)?;
                if len != !nlen & 0xffff {
                    return Err("bad stored block length");
                }
                for _ in 0..len {
                    out.push(bits.take(8)? as u8);
                }
            }
            1 => {
                let mut lengths = [0u8; 288];
                lengths[..144].fill(8);
                lengths[144..256].fill(9);
                lengths[256..280].fill(7);
                lengths[280..].fill(8);
                let lit = Huffman::new(&lengths)?;
                let dist = Huffman::new(&[5; 30])?;
                codes(&mut bits, out, start, &lit, &dist)?;
            }
            2 => {
                let (lit, dist) = dynamic_tables(&mut bits)?;
                codes(&mut bits, out, start, &lit, &dist)?;
            }
            _ => return Err("invalid block type"),
        }
        if out.len() - start > MAX_INFLATED {
            return Err("inflated body too large");
        }
        if last {
            bits.align();
            return Ok(bits.pos - (bits.count / 8) as usize);
        }
    }
}

fn dynamic_tables(bits: &mut Bits<'_>) -> Result<(Huffman, Huffman), &'static str> {
    let nlen = bits.take(5)? as usize + 257;
    let ndist = bits.take(5)? as usize + 1;
    let ncode = bits.take(4)? as usize + 4;
    if nlen > 286 || ndist > 30 {
        return Err("bad dynamic table counts");
    }
    let mut code_lengths = [0u8; 19];
    for &slot in &CODE_LENGTH_ORDER[..ncode] {
        code_lengths[slot] = bits.take(3)? as u8;
    }
    let code = Huffman::new(&code_lengths)?;
    let mut lengths = Vec::with_capacity(nlen + ndist);
    while lengths.len() < nlen + ndist {
        let symbol = code.decode(bits)?;
        let (value, repeat) = match symbol {
            0..=15 => (symbol as u8, 1),
            16 => (
                *lengths.last().ok_or("repeat with no previous length")?,
                3 + bits.take(2)?,
            ),
            17 => (0, 3 + bits.take(3)?),
            18 => (0, 11 + bits.take(7)?),
            _ => return Err("bad code length symbol"),
        };
        if lengths.len() + repeat as usize > nlen + ndist {
            return Err("too many code lengths");
        }
        lengths.extend(std::iter::repeat_n(value, repeat as usize));
    }
    if lengths[256] == 0 {
        return Err("no end-of-block code");
    }
    Ok((
        Huffman::new(&lengths[..nlen])?,
        Huffman::new(&lengths[nlen..])?,
    ))
}

fn codes(
    bits: &mut Bits<'_>,
    out: &mut Vec<u8>,
    start: usize,
    lit: &Huffman,
    dist: &Huffman,
) -> Result<(), &'static str> {
    loop {
        let symbol = lit.decode(bits)?;
        match symbol {
            0..=255 => out.push(symbol as u8),
            256 => return Ok(()),
            _ => {
                let i = usize::from(symbol - 257);
                if i >= LENGTH_BASE.len() {
                    return Err("bad length symbol");
                }
                let len =
                    usize::from(LENGTH_BASE[i]) + bits.take(u32::from(LENGTH_EXTRA[i]))? as usize;
                let d = usize::from(dist.decode(bits)?);
                if d >= DIST_BASE.len() {
                    return Err("bad distance symbol");
                }
                let distance =
                    usize::from(DIST_BASE[d]) + bits.take(u32::from(DIST_EXTRA[d]))? as usize;
                if distance > out.len() - start {
                    return Err("distance too far back");
                }
                if out.len() - start + len > MAX_INFLATED {
                    return Err("inflated body too large");
                }
                let from = out.len() - distance;
                for k in 0..len {
                    out.push(out[from + k]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const KEY: &str = "00000000-0000-4000-8000-000000000001";

    /// `/tmp/plain.json`-style batch: three envelopes (Request, RemoteDependency, Message),
    /// compressed by Python's `gzip.compress(.., 9, mtime=0)` (one dynamic Huffman block).
    const BATCH_GZ: &str = "1f8b0800000000000203dd534d4fdc3010fd2bc8e76cd6719684e456b1a845808a2027aa1e26f6ecaea56c1cfc81b445fbdf993841ab1e4adb2ba3c8d1f83d8fdfcc937fbcb21ef6c86a76a7a535ce6c7cfa65183a2dc16bd35ff74e6f77dea50ff81cd0799630af235d70512cb26c21ce9b8cd77cfc521ee38948fa060f44e2732ce2b21a978bf7748e6c2c095bc7ea57063a959d092ab5a61bef7072872a746889439819d04655a95684aeda4d2536f97959b6f94a4101b9c44a548a23c7559917ec9830051ec6ca2d386c0ec35874ee643d224904d633e9852eaa05895751fa861725006fa1e2a22d893b0feafefb6373b6dccb81b6549814c503ef53c8042116dd607a8797464de3e2b4e98294e8a8576f03262cd88ea09df743bd5c764642b733cec7d2c7e331f9676bf6c6e31a07ec15f6f2f0293cfabda5bf99d596a08ab6cc8a4af03ccfb393595fafc82b87d2a2774bd5fec9329e4f9685ce7f64989fe47d6b9afb3812bb454ff90bd0b9147e058b694f3bff61de1d55872d7e02cfe64e3eb06a3ff77a12a0cea4e909769323346fa44cfbc32dfde96d6434c99f6f981b5172a3040000";
    const SHORT: &str = "{\"a\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"b\":1}\n";
    /// `SHORT`, level 9: one fixed Huffman block with a back-reference.
    const SHORT_FIXED_GZ: &str =
        "1f8b0800000000000203ab564a54b2524ac4039474949294ac0c6bb9002db3de8d2b000000";
    /// `SHORT`, level 0: one stored block.
    const SHORT_STORED_GZ: &str = "1f8b0800000000000403012b00d4ff7b2261223a2261616161616161616161616161616161616161616161616161616161222c2262223a317d0a2db3de8d2b000000";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn envelope(base_type: &str, ikey: &str) -> Value {
        let short = base_type.trim_end_matches("Data");
        json!({
            "name": format!("Microsoft.ApplicationInsights.{short}"),
            "time": "2026-11-25T10:00:00.000000Z",
            "iKey": ikey,
            "tags": {"ai.cloud.role": "scheduler"},
            "data": {"baseType": base_type, "baseData": {"ver": 2}},
        })
    }

    struct Resp {
        status: u16,
        headers: Vec<(String, String)>,
        body: Value,
    }

    impl Resp {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// `method path` with `body` (bytes) and `headers` over a fresh connection.
    async fn send(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let fut = async {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let mut head = format!(
                "{method} {path} HTTP/1.1\r\nHost: dc.services.visualstudio.com\r\n\
                 Content-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await.expect("write");
            stream.write_all(body).await.expect("write");
            let mut raw = String::new();
            stream.read_to_string(&mut raw).await.expect("read");
            raw
        };
        let raw = tokio::time::timeout(Duration::from_secs(20), fut)
            .await
            .expect("answer in time");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a full response");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Resp {
            status,
            headers,
            body: serde_json::from_str(body).unwrap_or(Value::Null),
        }
    }

    async fn track(ai: &FakeAppInsights, body: &[u8]) -> Resp {
        send(
            ai.addr(),
            "POST",
            "/v2.1/track",
            &[("Content-Type", "application/json")],
            body,
        )
        .await
    }

    #[test]
    fn gunzip_handles_dynamic_fixed_and_stored_blocks() {
        let batch = gunzip(&unhex(BATCH_GZ)).expect("dynamic block");
        let items: Vec<Value> = serde_json::from_slice(&batch).expect("JSON");
        assert_eq!(batch.len(), 1187);
        assert_eq!(items.len(), 3);
        assert_eq!(items[1]["data"]["baseType"], "RemoteDependencyData");
        assert_eq!(
            gunzip(&unhex(SHORT_FIXED_GZ)).expect("fixed"),
            SHORT.as_bytes()
        );
        assert_eq!(
            gunzip(&unhex(SHORT_STORED_GZ)).expect("stored"),
            SHORT.as_bytes()
        );
        // Two members concatenate.
        let two = [unhex(SHORT_FIXED_GZ), unhex(SHORT_STORED_GZ)].concat();
        assert_eq!(
            gunzip(&two).expect("two members"),
            SHORT.repeat(2).as_bytes()
        );
        // A flipped bit is caught (by the decoder or the CRC), and so is truncation.
        let mut bad = unhex(BATCH_GZ);
        bad[100] ^= 0x10;
        assert!(gunzip(&bad).is_err());
        let whole = unhex(BATCH_GZ);
        assert!(gunzip(&whole[..whole.len() - 4]).is_err());
        assert!(gunzip(b"{\"not\":\"gzip\"}").is_err());
    }

    #[test]
    fn guid_shape() {
        assert!(is_guid(KEY));
        assert!(is_guid("ABCDEF01-2345-6789-abcd-ef0123456789"));
        assert!(!is_guid("not-a-key"));
        assert!(!is_guid("00000000-0000-4000-8000-00000000000g"));
        assert!(!is_guid(""));
    }

    #[tokio::test]
    async fn endpoints_and_connection_string() {
        let ai = FakeAppInsights::start().await.expect("start");
        let base = format!("http://{}", ai.addr());
        assert_eq!(ai.ingestion_endpoint(), base);
        assert_eq!(
            ai.connection_string(KEY),
            format!("InstrumentationKey={KEY};IngestionEndpoint={base}/;LiveEndpoint={base}/")
        );
    }

    #[tokio::test]
    async fn accepts_plain_array_on_both_paths() {
        let ai = FakeAppInsights::start().await.expect("start");
        let batch = json!([envelope("RequestData", KEY), envelope("MessageData", KEY)]);
        for path in ["/v2/track", "/v2.1/track", "/v2/track/", "/v2.1/track/"] {
            let resp = send(ai.addr(), "POST", path, &[], batch.to_string().as_bytes()).await;
            assert_eq!(resp.status, 200, "{path}");
            assert_eq!(
                resp.body,
                json!({"itemsReceived": 2, "itemsAccepted": 2, "errors": []})
            );
            assert!(
                resp.header("content-type")
                    .unwrap_or("")
                    .starts_with("application/json")
            );
        }
        assert_eq!(ai.envelopes().len(), 8);
        assert_eq!(ai.envelopes_of("RequestData").len(), 4);
        assert_eq!(
            ai.envelopes_of("MessageData")[0],
            envelope("MessageData", KEY)
        );
        let requests = ai.requests();
        assert_eq!(requests.len(), 4);
        assert_eq!(
            requests[0],
            TrackRequest {
                path: "/v2/track".into(),
                gzip: false,
                items: 2,
                status: 200
            }
        );
    }

    #[tokio::test]
    async fn accepts_ndjson_and_gzip() {
        let ai = FakeAppInsights::start().await.expect("start");
        let ndjson = format!(
            "{}\n{}\n",
            envelope("MetricData", KEY),
            envelope("ExceptionData", KEY)
        );
        let resp = track(&ai, ndjson.as_bytes()).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body["itemsAccepted"], 2);

        let resp = send(
            ai.addr(),
            "POST",
            "/v2.1/track",
            &[
                ("Content-Encoding", "gzip"),
                ("Content-Type", "application/x-json-stream"),
            ],
            &unhex(BATCH_GZ),
        )
        .await;
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.body,
            json!({"itemsReceived": 3, "itemsAccepted": 3, "errors": []})
        );
        let all = ai.envelopes();
        assert_eq!(all.len(), 5);
        assert_eq!(all[0]["data"]["baseType"], "MetricData");
        assert_eq!(all[2]["name"], "Microsoft.ApplicationInsights.Request");
        assert_eq!(ai.envelopes_of("RemoteDependencyData").len(), 1);
        let requests = ai.requests();
        assert!(!requests[0].gzip);
        assert!(requests[1].gzip);
        assert_eq!(requests[1].items, 3);

        // A body that says gzip but is not.
        let resp = send(
            ai.addr(),
            "POST",
            "/v2/track",
            &[("Content-Encoding", "gzip")],
            ndjson.as_bytes(),
        )
        .await;
        assert_eq!(resp.status, 400);
        assert_eq!(resp.body["errors"][0]["statusCode"], 400);
        assert!(
            resp.body["errors"][0]["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("Invalid gzip body")
        );
        assert_eq!(ai.envelopes().len(), 5);
    }

    #[tokio::test]
    async fn partial_and_malformed() {
        let ai = FakeAppInsights::start().await.expect("start");
        let mut no_time = envelope("RequestData", KEY);
        no_time.as_object_mut().expect("object").remove("time");
        let mut no_base_type = envelope("RequestData", KEY);
        no_base_type["data"]
            .as_object_mut()
            .expect("object")
            .remove("baseType");
        let batch = json!([
            envelope("RequestData", KEY),
            envelope("RequestData", "not-a-guid"),
            no_time,
            envelope("MessageData", KEY),
            no_base_type,
            42,
        ]);
        let resp = track(&ai, batch.to_string().as_bytes()).await;
        assert_eq!(resp.status, 206);
        assert_eq!(resp.body["itemsReceived"], 6);
        assert_eq!(resp.body["itemsAccepted"], 2);
        let errors = resp.body["errors"].as_array().expect("errors");
        let indexes: Vec<u64> = errors.iter().filter_map(|e| e["index"].as_u64()).collect();
        assert_eq!(indexes, [1, 2, 4, 5]);
        assert!(errors.iter().all(|e| e["statusCode"] == 400));
        assert_eq!(errors[0]["message"], "Invalid instrumentation key");
        assert!(
            errors[1]["message"]
                .as_str()
                .unwrap_or("")
                .contains("'time'")
        );
        assert_eq!(ai.envelopes().len(), 2);

        let resp = track(&ai, b"this is not json").await;
        assert_eq!(resp.status, 400);
        assert_eq!(
            resp.body,
            json!({"itemsReceived": 0, "itemsAccepted": 0,
                   "errors": [{"index": 0, "statusCode": 400, "message": "Invalid JSON"}]})
        );
        assert_eq!(track(&ai, b"").await.status, 400);
        assert_eq!(track(&ai, b"[{\"name\": ").await.status, 400);
        assert_eq!(ai.requests().last().map(|r| r.items), Some(0));

        // Only registered keys from now on.
        let other = "11111111-2222-4333-8444-555555555555";
        ai.accept_key(&KEY.to_uppercase());
        let resp = track(
            &ai,
            json!([envelope("EventData", KEY), envelope("EventData", other)])
                .to_string()
                .as_bytes(),
        )
        .await;
        assert_eq!(resp.status, 206);
        assert_eq!(resp.body["errors"][0]["index"], 1);

        // Rejected telemetry types.
        ai.reject_item_types(&["MessageData"]);
        let resp = track(
            &ai,
            json!([envelope("MessageData", KEY), envelope("RequestData", KEY)])
                .to_string()
                .as_bytes(),
        )
        .await;
        assert_eq!(resp.status, 206);
        assert_eq!(resp.body["itemsAccepted"], 1);
        assert_eq!(resp.body["errors"][0]["index"], 0);
        assert_eq!(ai.envelopes_of("MessageData").len(), 1);

        // Other paths and methods.
        assert_eq!(
            send(ai.addr(), "POST", "/v2/other", &[], b"[]")
                .await
                .status,
            404
        );
        let resp = send(ai.addr(), "GET", "/v2.1/track", &[], b"").await;
        assert_eq!(resp.status, 405);
        assert_eq!(resp.header("allow"), Some("POST"));
    }

    #[tokio::test]
    async fn scripted_failures_carry_retry_after() {
        let ai = FakeAppInsights::start().await.expect("start");
        let batch = json!([envelope("RequestData", KEY)]).to_string();
        for status in [503, 429] {
            ai.fail_next(2, status);
            for _ in 0..2 {
                let resp = track(&ai, batch.as_bytes()).await;
                assert_eq!(resp.status, status);
                assert_eq!(resp.header("retry-after"), Some("1"));
                assert_eq!(
                    resp.body,
                    json!({"itemsReceived": 0, "itemsAccepted": 0, "errors": []})
                );
            }
            assert_eq!(track(&ai, batch.as_bytes()).await.status, 200);
        }
        ai.fail_next(1, 500);
        let resp = track(&ai, batch.as_bytes()).await;
        assert_eq!(resp.status, 500);
        assert_eq!(resp.header("retry-after"), None);
        assert_eq!(ai.envelopes().len(), 2);
        let statuses: Vec<u16> = ai.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [503, 503, 200, 429, 429, 200, 500]);
        assert!(ai.requests().iter().all(|r| r.items == 1));
    }

    #[tokio::test]
    async fn delay_holds_the_answer_and_wait_for_envelopes() {
        let ai = Arc::new(FakeAppInsights::start().await.expect("start"));
        ai.delay_next(1, Duration::from_millis(400));
        let batch = json!([envelope("RequestData", KEY), envelope("MetricData", KEY)]).to_string();

        let started = tokio::time::Instant::now();
        let slow = tokio::spawn({
            let ai = ai.clone();
            let batch = batch.clone();
            async move { track(&ai, batch.as_bytes()).await.status }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            ai.envelopes().is_empty(),
            "nothing recorded before the answer"
        );
        // Only the first `n` requests wait.
        let fast = tokio::time::Instant::now();
        assert_eq!(track(&ai, batch.as_bytes()).await.status, 200);
        assert!(fast.elapsed() < Duration::from_millis(300));

        let got = ai.wait_for_envelopes(4, Duration::from_secs(10)).await;
        assert_eq!(got.len(), 4);
        assert_eq!(slow.await.expect("task"), 200);
        assert!(started.elapsed() >= Duration::from_millis(400));

        // On timeout, whatever there is.
        let waited = tokio::time::Instant::now();
        let got = ai.wait_for_envelopes(10, Duration::from_millis(150)).await;
        assert_eq!(got.len(), 4);
        assert!(waited.elapsed() >= Duration::from_millis(150));
    }
}
