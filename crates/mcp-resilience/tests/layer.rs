//! `RetryLayer` and `CircuitBreakerLayer` over a scripted HTTP service on paused time: which
//! requests are retried (idempotent, keyed, or not processed), `Retry-After`, the session
//! `404` handed back to the transport, breakers per authority failing fast.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

mod scripted;

use std::error::Error as _;
use std::io::ErrorKind::{ConnectionRefused, ConnectionReset};
use std::time::Duration;

use bytes::Bytes;
use mcp_resilience::breaker::{BreakerConfig, BreakerState, CircuitBreakers, Window};
use mcp_resilience::layer::{CircuitBreakerLayer, RetryLayer, idempotency_of};
use mcp_resilience::{
    Backoff, BoxError, Error, Idempotency, IdempotencyKey, RetryPolicy, Strategy,
};
use scripted::{CREATE, Fail, KEYED_CREATE, Scripted, Status, Step, TOOLS_LIST, post};
use tower::{Layer, ServiceExt};

const URL: &str = "http://127.0.0.1:9/mcp";
const S: fn(u64) -> Duration = Duration::from_secs;

/// Exact waits: 1 s, 2 s, 4 s; no budget surprises.
fn retry() -> RetryLayer {
    RetryLayer::new(RetryPolicy::new().backoff(Backoff::new().strategy(Strategy::Exponential)))
}

async fn send<S>(svc: S, req: http::Request<Bytes>) -> Result<http::Response<String>, BoxError>
where
    S: tower::Service<http::Request<Bytes>, Response = http::Response<String>, Error = BoxError>,
{
    svc.oneshot(req).await
}

fn resilience_error(err: &BoxError) -> &Error {
    err.downcast_ref::<Error>().unwrap()
}

#[test]
fn idempotency_of_requests() {
    let get = http::Request::get(URL).body(Bytes::new()).unwrap();
    assert_eq!(idempotency_of(&get), Idempotency::Idempotent);
    let delete = http::Request::delete(URL).body(Bytes::new()).unwrap();
    assert_eq!(idempotency_of(&delete), Idempotency::Idempotent);
    for read in [
        "ping",
        "server/discover",
        "tools/list",
        "resources/read",
        "prompts/get",
    ] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{read}"}}"#);
        assert_eq!(
            idempotency_of(&post(URL, &body)),
            Idempotency::Idempotent,
            "{read}"
        );
    }
    for not in [
        CREATE,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"idempotencyKey":""}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"idempotencyKey":7}}}"#,
        "not json",
    ] {
        assert_eq!(
            idempotency_of(&post(URL, not)),
            Idempotency::NonIdempotent,
            "{not}"
        );
    }
    assert_eq!(
        idempotency_of(&post(URL, KEYED_CREATE)),
        Idempotency::Key(IdempotencyKey::new("key-7"))
    );
    let mut headed = post(URL, CREATE);
    headed
        .headers_mut()
        .insert("idempotency-key", "h-1".parse().unwrap());
    assert_eq!(
        idempotency_of(&headed),
        Idempotency::Key(IdempotencyKey::new("h-1"))
    );
    let mut declared = post(URL, CREATE);
    declared.extensions_mut().insert(Idempotency::Idempotent);
    assert_eq!(idempotency_of(&declared), Idempotency::Idempotent);
}

#[tokio::test(start_paused = true)]
async fn scripted_retry_repeats_idempotent_read_after_503s_with_backoff() {
    let inner = Scripted::steps(vec![Status(503), Status(503), Status(200)]);
    let resp = send(retry().layer(inner.clone()), post(URL, TOOLS_LIST))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(inner.offsets(), [S(0), S(1), S(3)]);
    assert!(inner.seen().iter().all(|s| s.body == TOOLS_LIST.as_bytes()));
}

#[tokio::test(start_paused = true)]
async fn scripted_retry_honours_retry_after() {
    let inner = Scripted::steps(vec![Step::StatusWith(429, "retry-after", "5"), Status(200)]);
    let resp = send(retry().layer(inner.clone()), post(URL, TOOLS_LIST))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(inner.offsets(), [S(0), S(5)]);
}

#[tokio::test(start_paused = true)]
async fn scripted_retry_does_not_repeat_create_that_may_have_been_processed() {
    // A 500 response: handed back as it is after one attempt.
    let inner = Scripted::steps(vec![Status(500), Status(200)]);
    let resp = send(retry().layer(inner.clone()), post(URL, CREATE))
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(inner.count(), 1);
    // A connection reset mid-request: an error saying why it was not retried.
    let inner = Scripted::steps(vec![Fail(ConnectionReset), Status(200)]);
    let err = send(retry().layer(inner.clone()), post(URL, CREATE))
        .await
        .unwrap_err();
    let err = resilience_error(&err);
    assert!(err.is_not_retryable(), "{err:?}");
    assert_eq!(err.attempts(), Some(1));
    let io = err
        .source()
        .unwrap()
        .downcast_ref::<std::io::Error>()
        .unwrap();
    assert_eq!(io.kind(), ConnectionReset);
    assert_eq!(inner.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn scripted_retry_repeats_create_that_was_not_processed() {
    let inner = Scripted::steps(vec![Fail(ConnectionRefused), Status(200)]);
    let resp = send(retry().layer(inner.clone()), post(URL, CREATE))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(inner.offsets(), [S(0), S(1)]);
}

#[tokio::test(start_paused = true)]
async fn scripted_retry_repeats_keyed_create_with_the_same_key() {
    let inner = Scripted::steps(vec![Status(503), Fail(ConnectionReset), Status(201)]);
    let resp = send(retry().layer(inner.clone()), post(URL, KEYED_CREATE))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(inner.count(), 3);
    assert!(
        inner
            .seen()
            .iter()
            .all(|s| s.body == KEYED_CREATE.as_bytes())
    );

    let inner = Scripted::steps(vec![Status(502), Status(200)]);
    let mut req = post(URL, CREATE);
    req.headers_mut()
        .insert("idempotency-key", "h-1".parse().unwrap());
    send(retry().layer(inner.clone()), req).await.unwrap();
    let keys: Vec<_> = inner
        .seen()
        .iter()
        .map(|s| s.headers["idempotency-key"].clone())
        .collect();
    assert_eq!(keys, ["h-1", "h-1"]);
}

#[tokio::test(start_paused = true)]
async fn scripted_retry_hands_session_404_back_to_the_transport() {
    let inner = Scripted::steps(vec![Status(404), Status(200)]);
    let mut req = post(URL, TOOLS_LIST);
    req.headers_mut()
        .insert("mcp-session-id", "s-1".parse().unwrap());
    let resp = send(retry().layer(inner.clone()), req).await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(inner.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn scripted_retry_exhausts_and_reports_the_last_error() {
    let inner = Scripted::steps(vec![Fail(ConnectionRefused)]);
    let err = send(retry().layer(inner.clone()), post(URL, TOOLS_LIST))
        .await
        .unwrap_err();
    let err = resilience_error(&err);
    assert!(err.is_retries_exhausted(), "{err:?}");
    assert_eq!(err.attempts(), Some(4));
    assert_eq!(inner.offsets(), [S(0), S(1), S(3), S(7)]);
}

fn breakers() -> CircuitBreakers {
    CircuitBreakers::new(
        BreakerConfig::new()
            .window(Window::Calls(4))
            .min_throughput(4)
            .open_duration(S(30), S(60))
            .open_jitter(0.0),
    )
}

#[tokio::test(start_paused = true)]
async fn scripted_breaker_opens_per_authority_and_fails_fast() {
    let inner = Scripted::new(|seen, _| {
        if seen.authority() == "east.example" {
            Status(503)
        } else {
            Status(200)
        }
    });
    let layer = CircuitBreakerLayer::new(breakers());
    let svc = layer.layer(inner.clone());
    for _ in 0..4 {
        let resp = send(svc.clone(), post("https://east.example/mcp", CREATE))
            .await
            .unwrap();
        assert_eq!(resp.status(), 503);
    }
    let east = layer.breakers().get("https://east.example");
    assert_eq!(east.state(), BreakerState::Open);
    let err = send(svc.clone(), post("https://east.example/mcp", CREATE))
        .await
        .unwrap_err();
    assert!(resilience_error(&err).is_circuit_open(), "{err:?}");
    assert_eq!(inner.count(), 4, "an open breaker sends nothing");
    // Another authority has its own breaker.
    let resp = send(svc.clone(), post("https://west.example/mcp", CREATE))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // After the open time, a probe goes through and closes it when it works.
    tokio::time::advance(S(31)).await;
    let resp = send(svc.clone(), post("https://east.example/mcp", TOOLS_LIST))
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(inner.count(), 6);
}

#[tokio::test(start_paused = true)]
async fn scripted_breaker_counts_permanent_answers_as_healthy() {
    let inner = Scripted::steps(vec![Status(400)]);
    let layer = CircuitBreakerLayer::new(breakers());
    let svc = layer.layer(inner.clone());
    for _ in 0..8 {
        send(svc.clone(), post(URL, CREATE)).await.unwrap();
    }
    assert_eq!(
        layer.breakers().get("http://127.0.0.1:9").state(),
        BreakerState::Closed
    );
}

#[tokio::test(start_paused = true)]
async fn scripted_retry_over_breaker_retries_refusals_then_gives_up() {
    let inner = Scripted::steps(vec![Status(503)]);
    let breakers = breakers();
    let svc = tower::ServiceBuilder::new()
        .layer(retry())
        .layer(CircuitBreakerLayer::new(breakers.clone()))
        .service(inner.clone());
    // Four 503s open the breaker; the retry layer hands back the last 503.
    let resp = send(svc.clone(), post(URL, TOOLS_LIST)).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(inner.count(), 4);
    // Now every attempt is refused unsent; the retries end on the refusal.
    let err = send(svc, post(URL, TOOLS_LIST)).await.unwrap_err();
    let err = resilience_error(&err);
    assert!(err.is_retries_exhausted(), "{err:?}");
    let refusal = err.source().unwrap().downcast_ref::<Error>().unwrap();
    assert!(refusal.is_circuit_open());
    assert_eq!(inner.count(), 4);
}
