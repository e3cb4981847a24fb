//! The default classifiers: HTTP statuses and `Retry-After`, MCP session expiry, tool
//! results, I/O and boxed errors, this crate's own errors, and real `mcp_transport::Error`s
//! produced by an `HttpTransport` over a scripted tower service (plus one refused loopback
//! connection for the connect case).

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use mcp_resilience::classify::{
    Classify, ClassifyError, DefaultClassifier, Delivery, FailureKind, HttpClassifier,
    ToolCallClassifier, Verdict, classify_dyn, classify_status,
};
use mcp_resilience::{BoxError, Idempotency, RetryPolicy};
use mcp_transport::http::{HttpBody, HttpClient, HttpConfig, HttpRequest, HttpResponse};
use mcp_transport::jsonrpc::Message;
use mcp_transport::{CallToolResult, HttpTransport, HttpTransportConfig, RequestHints, Transport};

fn transient(kind: FailureKind, delivery: Delivery) -> Verdict {
    Verdict::transient(kind, delivery)
}

const SENT: Delivery = Delivery::MaybeProcessed;

#[test]
fn http_statuses() {
    for (status, verdict) in [
        (200, Verdict::Success),
        (204, Verdict::Success),
        (304, Verdict::Success),
        (400, Verdict::Permanent),
        (401, Verdict::Permanent),
        (403, Verdict::Permanent),
        (404, Verdict::Permanent),
        (409, Verdict::Permanent),
        (422, Verdict::Permanent),
        (501, Verdict::Permanent),
        (505, Verdict::Permanent),
        (408, transient(FailureKind::Timeout, SENT)),
        (
            429,
            transient(FailureKind::Throttled, Delivery::NotProcessed),
        ),
        (500, transient(FailureKind::ServerError, SENT)),
        (502, transient(FailureKind::ServerError, SENT)),
        (503, transient(FailureKind::ServerError, SENT)),
        (504, transient(FailureKind::Timeout, SENT)),
    ] {
        let status = StatusCode::from_u16(status).unwrap();
        assert_eq!(classify_status(status, false), verdict, "{status}");
    }
}

#[test]
fn a_404_on_a_session_request_is_an_expired_session_not_processed() {
    assert_eq!(
        classify_status(StatusCode::NOT_FOUND, true),
        transient(FailureKind::SessionExpired, Delivery::NotProcessed)
    );
    let resp = Response::builder().status(404).body(()).unwrap();
    let c = HttpClassifier::new().session_request(true);
    let verdict = Classify::<_, BoxError>::classify(&c, Ok(&resp));
    assert_eq!(
        verdict.as_transient().unwrap().kind,
        FailureKind::SessionExpired
    );
    let c = HttpClassifier::new();
    assert_eq!(
        Classify::<_, BoxError>::classify(&c, Ok(&resp)),
        Verdict::Permanent
    );
}

fn fixed_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_608_000) // 2026-11-25T12:00:00Z
}

#[test]
fn http_classifier_reads_retry_after_on_transient_responses_only() {
    let c = HttpClassifier::new().clock(fixed_now);
    let resp = Response::builder()
        .status(503)
        .header("retry-after", "Wed, 25 Nov 2026 12:00:05 GMT")
        .body(())
        .unwrap();
    let verdict = Classify::<_, BoxError>::classify(&c, Ok(&resp));
    // The origin refusing for a while: not processed.
    assert_eq!(
        verdict,
        transient(FailureKind::ServerError, Delivery::NotProcessed)
            .with_retry_after(Some(Duration::from_secs(5)))
    );
    // Without `Retry-After` a 503 may be a gateway's answer after an upstream reset.
    let resp = Response::builder().status(503).body(()).unwrap();
    assert_eq!(
        Classify::<_, BoxError>::classify(&c, Ok(&resp)),
        transient(FailureKind::ServerError, SENT)
    );
    let resp = Response::builder()
        .status(429)
        .header("retry-after", "garbage")
        .body(())
        .unwrap();
    let verdict = Classify::<_, BoxError>::classify(&c, Ok(&resp));
    assert_eq!(verdict.as_transient().unwrap().retry_after, None);
    let resp = Response::builder()
        .status(400)
        .header("retry-after", "5")
        .body(())
        .unwrap();
    assert_eq!(
        Classify::<_, BoxError>::classify(&c, Ok(&resp)),
        Verdict::Permanent
    );
    // Errors go to the error classifier.
    let err: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    assert_eq!(
        Classify::<Response<()>, _>::classify(&c, Err(&err)),
        transient(FailureKind::Connect, Delivery::NotProcessed)
    );
}

fn tool_result(is_error: bool) -> CallToolResult {
    CallToolResult {
        content: Vec::new(),
        structured_content: None,
        is_error,
        meta: None,
        result_type: None,
    }
}

#[test]
fn tool_results_with_is_error_are_permanent() {
    let c = ToolCallClassifier;
    assert_eq!(
        Classify::<_, mcp_transport::Error>::classify(&c, Ok(&tool_result(true))),
        Verdict::Permanent
    );
    assert_eq!(
        Classify::<_, mcp_transport::Error>::classify(&c, Ok(&tool_result(false))),
        Verdict::Success
    );
    // The default classifier takes any value as a success.
    assert_eq!(
        Classify::<_, std::io::Error>::classify(&DefaultClassifier, Ok(&tool_result(true))),
        Verdict::Success
    );
}

#[test]
fn io_errors_by_kind() {
    use std::io::{Error, ErrorKind as K};
    let connect = transient(FailureKind::Connect, Delivery::NotProcessed);
    for (kind, verdict) in [
        (K::ConnectionRefused, connect),
        (K::HostUnreachable, connect),
        (K::NetworkUnreachable, connect),
        (K::TimedOut, transient(FailureKind::Timeout, SENT)),
        (K::ConnectionReset, transient(FailureKind::Io, SENT)),
        (K::BrokenPipe, transient(FailureKind::Io, SENT)),
        (K::UnexpectedEof, transient(FailureKind::Io, SENT)),
        (K::PermissionDenied, Verdict::Permanent),
        (K::InvalidData, Verdict::Permanent),
        (K::NotFound, Verdict::Permanent),
    ] {
        assert_eq!(Error::from(kind).verdict(), verdict, "{kind:?}");
    }
}

/// An error type no classifier knows, optionally wrapping one.
#[derive(Debug)]
struct Wrapper(Option<BoxError>);

impl fmt::Display for Wrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wrapper")
    }
}

impl StdError for Wrapper {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.as_deref().map(|e| e as _)
    }
}

#[test]
fn boxed_errors_are_judged_along_their_source_chain() {
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    let wrapped: BoxError = Box::new(Wrapper(Some(Box::new(Wrapper(Some(Box::new(refused)))))));
    assert_eq!(
        wrapped.verdict(),
        transient(FailureKind::Connect, Delivery::NotProcessed)
    );
    // Unknown all the way down: transient, but possibly processed.
    let unknown: BoxError = Box::new(Wrapper(None));
    assert_eq!(unknown.verdict(), transient(FailureKind::Other, SENT));
    assert_eq!(
        classify_dyn(&Wrapper(None)),
        transient(FailureKind::Other, SENT)
    );
}

#[tokio::test(start_paused = true)]
async fn tokio_timeouts_are_timeouts() {
    let elapsed = tokio::time::timeout(Duration::from_millis(1), std::future::pending::<()>())
        .await
        .unwrap_err();
    assert_eq!(elapsed.verdict(), transient(FailureKind::Timeout, SENT));
}

#[tokio::test(start_paused = true)]
async fn this_crates_errors_seen_by_an_outer_policy() {
    // An inner policy that gave up is permanent to an outer one: retries never multiply.
    let inner = RetryPolicy::new().backoff(mcp_resilience::Backoff::new().max_retries(0));
    let exhausted = inner
        .execute(Idempotency::Idempotent, |_| async {
            Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
        })
        .await
        .unwrap_err();
    assert!(exhausted.is_retries_exhausted());
    assert_eq!(exhausted.verdict(), Verdict::Permanent);
    // A breaker refusal was not sent.
    let breaker = mcp_resilience::CircuitBreaker::new(
        "e",
        mcp_resilience::BreakerConfig::new().min_throughput(1),
    );
    breaker
        .try_acquire()
        .unwrap()
        .record(mcp_resilience::breaker::CallOutcome::Failure);
    let open = breaker.try_acquire().unwrap_err();
    assert_eq!(
        open.verdict(),
        transient(FailureKind::CircuitOpen, Delivery::NotProcessed)
    );
    let boxed: BoxError = Box::new(open);
    assert_eq!(
        boxed.verdict().as_transient().unwrap().kind,
        FailureKind::CircuitOpen
    );
}

// --- Real transport errors, from an HttpTransport over a scripted service. ---

fn body(bytes: &'static [u8]) -> HttpBody {
    Full::new(Bytes::from_static(bytes))
        .map_err(|never| match never {})
        .boxed()
}

fn json(status: u16, bytes: &'static [u8]) -> HttpResponse {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body(bytes))
        .unwrap()
}

/// The transport error for one `tools/list` request answered by `answer`.
async fn transport_error<F>(answer: F) -> mcp_transport::Error
where
    F: Fn() -> Result<HttpResponse, BoxError> + Clone + Send + Sync + 'static,
{
    let service = tower::service_fn(move |_req: HttpRequest| {
        let answer = answer.clone();
        async move { answer() }
    });
    let mut config = HttpTransportConfig::default();
    config.read_timeout = Duration::from_secs(1);
    let transport = HttpTransport::with_service("http://127.0.0.1:9/mcp", config, service).unwrap();
    let Message::Request(request) =
        Message::from_slice(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap()
    else {
        panic!("not a request")
    };
    transport
        .request(request, &RequestHints::default())
        .await
        .unwrap_err()
}

#[tokio::test(start_paused = true)]
async fn transport_status_errors() {
    let e = transport_error(|| Ok(json(503, b""))).await;
    assert_eq!(e.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(e.verdict(), transient(FailureKind::ServerError, SENT));
    let e = transport_error(|| Ok(json(429, b""))).await;
    assert_eq!(
        e.verdict(),
        transient(FailureKind::Throttled, Delivery::NotProcessed)
    );
    let e = transport_error(|| Ok(json(400, b""))).await;
    assert_eq!(e.verdict(), Verdict::Permanent);
    // A 404 with no session: the transport did not treat it as expiry; neither do we.
    let e = transport_error(|| Ok(json(404, b""))).await;
    assert_eq!(e.verdict(), Verdict::Permanent);
}

#[tokio::test(start_paused = true)]
async fn transport_json_rpc_errors() {
    let e = transport_error(|| {
        Ok(json(
            200,
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"invalid params"}}"#,
        ))
    })
    .await;
    assert_eq!(e.rpc_error().map(|r| r.code), Some(-32602));
    assert_eq!(e.verdict(), Verdict::Permanent);
    let e = transport_error(|| {
        Ok(json(
            200,
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"internal"}}"#,
        ))
    })
    .await;
    assert_eq!(e.verdict(), transient(FailureKind::ServerError, SENT));
}

#[tokio::test(start_paused = true)]
async fn transport_protocol_io_and_timeout_errors() {
    let e = transport_error(|| Ok(json(200, b"not json"))).await;
    assert!(e.is_protocol());
    assert_eq!(e.verdict(), Verdict::Permanent);

    let e = transport_error(|| {
        Err(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)) as BoxError)
    })
    .await;
    assert!(e.is_io());
    assert_eq!(e.verdict(), transient(FailureKind::Io, SENT));

    // A body that never finishes: the transport's read timeout fires (on paused time).
    let e = transport_error(|| {
        let never = StreamBody::new(futures_util::stream::pending());
        Ok(Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(never.boxed())
            .unwrap())
    })
    .await;
    assert!(e.is_timeout(), "{e:?}");
    assert_eq!(e.verdict(), transient(FailureKind::Timeout, SENT));
}

#[tokio::test]
async fn transport_connect_error_was_not_sent() {
    // A loopback port nobody listens on: refused at once, nothing leaves the machine.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = HttpClient::new(&HttpConfig::default()).unwrap();
    let transport = HttpTransport::with_service(
        &format!("http://127.0.0.1:{port}/mcp"),
        HttpTransportConfig::default(),
        client,
    )
    .unwrap();
    let Message::Request(request) =
        Message::from_slice(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap()
    else {
        panic!("not a request")
    };
    let e = transport
        .request(request, &RequestHints::default())
        .await
        .unwrap_err();
    assert!(e.is_connect(), "{e:?}");
    assert_eq!(
        e.verdict(),
        transient(FailureKind::Connect, Delivery::NotProcessed)
    );
}
