//! Tower layers over the transport's HTTP service: [`RetryLayer`] and
//! [`CircuitBreakerLayer`].
//!
//! Both wrap any service shaped like `mcp_transport::http::HttpService`: requests are
//! `http::Request<Bytes>` (the whole body in memory, so an attempt can be replayed) and
//! errors convert into [`BoxError`]. Put them between the transport and the pooled client:
//!
//! ```text
//! HttpTransport → RetryLayer → CircuitBreakerLayer → (auth) → HttpClient
//! ```
//!
//! With the breaker inside the retry layer, every attempt passes the breaker; a refused
//! attempt ([`Error::is_circuit_open`](crate::Error::is_circuit_open)) was not sent, so the retry layer may retry it after
//! its backoff, or give up when the retries are used.
//!
//! # What is idempotent
//!
//! The retry layer decides per request what repeating it would do ([`idempotency_of`]), in
//! this order:
//!
//! 1. an [`Idempotency`] value in the request's extensions: the caller knows best;
//! 2. an `Idempotency-Key` header: [`Idempotency::Key`] (every attempt carries the same
//!    header, since the request is replayed as it is);
//! 3. `GET`, `HEAD`, `OPTIONS` and `DELETE` are idempotent by HTTP's definition (the
//!    transport's `GET` streams and the `DELETE` of a session);
//! 4. a `POST` whose body is one JSON-RPC request:
//!    - `tools/call` whose `params.arguments.idempotencyKey` is a non-empty string:
//!      [`Idempotency::Key`] with that value (the server deduplicates on it);
//!    - a read-only method: `ping`, `server/discover`, `tools/list`, `prompts/list`,
//!      `prompts/get`, `resources/list`, `resources/templates/list`, `resources/read`,
//!      `completion/complete`: [`Idempotency::Idempotent`] (repeating a read changes nothing);
//! 5. everything else is [`Idempotency::NonIdempotent`], retried only after a failure that
//!    cannot have been processed ([`Delivery::NotProcessed`](crate::classify::Delivery)):
//!    `initialize` (a repeat opens a second session on the server), any other `tools/call`
//!    (a tool may act), notifications and responses to server requests (a repeat is seen
//!    twice), JSON-RPC batches, other methods and bodies that are not JSON.
//!
//! # MCP sessions
//!
//! Both layers judge a response with [`HttpClassifier`] *without* the session rule: a `404`
//! is handed back to the transport as it is (not retried, and an answer from a working
//! server for the breaker). The transport knows the `404` means its session is gone and
//! re-initializes, then replays the request once, through these layers again.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Method;
use tower_layer::Layer;
use tower_service::Service;

use crate::breaker::{CallOutcome, CircuitBreakers};
use crate::classify::{Classify, HttpClassifier};
use crate::error::BoxError;
use crate::retry::{Idempotency, IdempotencyKey, RetryPolicy};

/// A boxed, `Send` future, as the layers' services return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The `Idempotency-Key` request header (IETF draft).
pub const IDEMPOTENCY_KEY: http::HeaderName = http::HeaderName::from_static("idempotency-key");

/// JSON-RPC methods that only read, so repeating them is harmless.
pub const READ_ONLY_METHODS: &[&str] = &[
    "ping",
    "server/discover",
    "tools/list",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "completion/complete",
];

/// What repeating `req` would do; see the [module docs](self) for the rules and why.
///
/// ```
/// use bytes::Bytes;
/// use mcp_resilience::layer::idempotency_of;
/// use mcp_resilience::Idempotency;
///
/// let post = |body: &'static str| {
///     http::Request::post("http://127.0.0.1/mcp").body(Bytes::from_static(body.as_bytes())).unwrap()
/// };
/// let list = post(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
/// assert_eq!(idempotency_of(&list), Idempotency::Idempotent);
/// let create = post(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"schedule","arguments":{}}}"#);
/// assert_eq!(idempotency_of(&create), Idempotency::NonIdempotent);
/// let keyed = post(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"schedule","arguments":{"idempotencyKey":"k-1"}}}"#);
/// assert_eq!(idempotency_of(&keyed).key().map(|k| k.as_str()), Some("k-1"));
/// ```
pub fn idempotency_of<B: AsRef<[u8]>>(req: &http::Request<B>) -> Idempotency {
    if let Some(declared) = req.extensions().get::<Idempotency>() {
        return declared.clone();
    }
    if let Some(key) = req
        .headers()
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        return Idempotency::Key(IdempotencyKey::new(key));
    }
    let method = req.method();
    if method == Method::GET
        || method == Method::HEAD
        || method == Method::OPTIONS
        || method == Method::DELETE
    {
        return Idempotency::Idempotent;
    }
    if method != Method::POST {
        return Idempotency::NonIdempotent;
    }
    rpc_idempotency(req.body().as_ref())
}

#[derive(serde::Deserialize)]
struct RpcHead<'a> {
    #[serde(borrow)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    id: Option<serde::de::IgnoredAny>,
    params: Option<RpcParams>,
}

#[derive(serde::Deserialize)]
struct RpcParams {
    arguments: Option<RpcArguments>,
}

#[derive(serde::Deserialize)]
struct RpcArguments {
    #[serde(rename = "idempotencyKey")]
    idempotency_key: Option<serde_json::Value>,
}

fn rpc_idempotency(body: &[u8]) -> Idempotency {
    // Batches are arrays and fail to parse here: not idempotent.
    let Ok(head) = serde_json::from_slice::<RpcHead<'_>>(body) else {
        return Idempotency::NonIdempotent;
    };
    let (Some(method), Some(_)) = (head.method, head.id) else {
        // A notification or a response to a server request.
        return Idempotency::NonIdempotent;
    };
    if method == "tools/call" {
        let key = head
            .params
            .and_then(|p| p.arguments)
            .and_then(|a| a.idempotency_key);
        return match key {
            Some(serde_json::Value::String(k)) if !k.is_empty() => {
                Idempotency::Key(IdempotencyKey::new(k))
            }
            _ => Idempotency::NonIdempotent,
        };
    }
    if READ_ONLY_METHODS.contains(&&*method) {
        Idempotency::Idempotent
    } else {
        Idempotency::NonIdempotent
    }
}

/// A copy of `req` for another attempt: method, URI, version, headers, extensions, body
/// (a reference-count increment).
pub(crate) fn replay(req: &http::Request<Bytes>) -> http::Request<Bytes> {
    let mut copy = http::Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    *copy.extensions_mut() = req.extensions().clone();
    copy
}

/// Retries requests under a [`RetryPolicy`], judging responses with [`HttpClassifier`]
/// (honouring `Retry-After`) and each request's idempotency with [`idempotency_of`]. See the
/// [module docs](self).
///
/// The policy's budget is shared by every request through the layer (and with clones of the
/// policy); its per-attempt timeout bounds the wait for each response head. Put the breaker
/// in a [`CircuitBreakerLayer`] below this one rather than in the policy: the policy's breaker
/// is one endpoint's.
///
/// A call that ends on a response (a `503` after the last retry) returns that response; one
/// that ends on an error returns an [`Error`](crate::Error) (boxed) saying why, with the
/// last attempt's error as its source.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: RetryPolicy,
    classifier: HttpClassifier,
}

impl RetryLayer {
    /// A layer retrying under `policy`.
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            classifier: HttpClassifier::new(),
        }
    }

    /// The classifier (for its clock, in tests); its session rule is ignored (see the
    /// [module docs](self)).
    #[must_use]
    pub fn classifier(mut self, classifier: HttpClassifier) -> Self {
        self.classifier = classifier.session_request(false);
        self
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = RetryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            policy: self.policy.clone().classifier(self.classifier),
        }
    }
}

/// The service of [`RetryLayer`].
#[derive(Debug, Clone)]
pub struct RetryService<S> {
    inner: S,
    policy: RetryPolicy<HttpClassifier>,
}

impl<S, B> Service<http::Request<Bytes>> for RetryService<S>
where
    S: Service<http::Request<Bytes>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = BoxError;
    type Future = BoxFuture<Result<http::Response<B>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each attempt drives a clone of the inner service to readiness itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Bytes>) -> Self::Future {
        let inner = self.inner.clone();
        let policy = self.policy.clone();
        Box::pin(async move {
            let idempotency = idempotency_of(&req);
            policy
                .execute(idempotency, move |_attempt| {
                    oneshot(inner.clone(), replay(&req))
                })
                .await
                .map_err(BoxError::from)
        })
    }
}

/// Drives `svc` to readiness, then calls it: tower's `oneshot`, with the error boxed.
pub(crate) async fn oneshot<S, Req>(mut svc: S, req: Req) -> Result<S::Response, BoxError>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    std::future::poll_fn(|cx| svc.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    svc.call(req).await.map_err(Into::into)
}

/// Guards each endpoint with its circuit breaker, from a [`CircuitBreakers`] registry keyed
/// by the request's `scheme://authority` (so failover's endpoints each have their own). An
/// open breaker refuses the request at once with an [`Error`](crate::Error) (boxed) for which
/// [`is_circuit_open`](crate::Error::is_circuit_open) is true; nothing is sent.
///
/// Outcomes are judged by [`HttpClassifier`] (session rule off, see the [module docs](self)):
/// a transient failure counts against the endpoint; a success or a permanent answer (a `400`,
/// a `404`) counts for it. A request whose future is dropped counts for nothing.
#[derive(Debug, Clone, Default)]
pub struct CircuitBreakerLayer {
    breakers: CircuitBreakers,
}

impl CircuitBreakerLayer {
    /// A layer taking each endpoint's breaker from `breakers` (share the registry to read
    /// the breakers' state, or with failover).
    pub fn new(breakers: CircuitBreakers) -> Self {
        Self { breakers }
    }

    /// The registry.
    pub fn breakers(&self) -> &CircuitBreakers {
        &self.breakers
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breakers: self.breakers.clone(),
        }
    }
}

/// The service of [`CircuitBreakerLayer`].
#[derive(Debug, Clone)]
pub struct CircuitBreakerService<S> {
    inner: S,
    breakers: CircuitBreakers,
}

/// The breaker key of a request: `scheme://authority`, or `-` for a relative URI.
pub fn endpoint_key(uri: &http::Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{}", authority.as_str()),
        (None, Some(authority)) => authority.as_str().to_owned(),
        _ => "-".to_owned(),
    }
}

impl<S, B> Service<http::Request<Bytes>> for CircuitBreakerService<S>
where
    S: Service<http::Request<Bytes>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = BoxError;
    type Future = BoxFuture<Result<http::Response<B>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<Bytes>) -> Self::Future {
        let breaker = self.breakers.get(&endpoint_key(req.uri()));
        let permit = match breaker.try_acquire() {
            Ok(permit) => permit,
            Err(e) => return Box::pin(std::future::ready(Err(BoxError::from(e)))),
        };
        let call = self.inner.call(req);
        Box::pin(async move {
            let result = call.await.map_err(Into::into);
            let verdict = HttpClassifier::new().classify(result.as_ref());
            permit.record(if verdict.is_transient() {
                CallOutcome::Failure
            } else {
                CallOutcome::Success
            });
            result
        })
    }
}
