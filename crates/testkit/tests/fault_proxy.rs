//! The fault proxy between a hyper client and a tiny hyper upstream: each fault as the client
//! sees it, what reached the upstream, and the counters.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use testkit::fault_proxy::{Fault, FaultProxy, ProxyStats};
use tokio::net::TcpListener;

/// Bound on every exchange, so a broken proxy fails the test instead of hanging it.
const LIMIT: Duration = Duration::from_secs(10);

/// A loopback HTTP server that records each request (`METHOD path body`) and answers
/// `200 upstream: <that>`.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let recorded = recorded.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let line = format!(
                                "{} {} {}",
                                parts.method,
                                parts.uri.path(),
                                String::from_utf8_lossy(&body)
                            );
                            recorded.lock().unwrap().push(line.clone());
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                                "upstream: {line}"
                            )))))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, seen, task }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// One request through `client`, bounded by [`LIMIT`].
async fn send(
    client: &HttpClient,
    proxy: &FaultProxy,
    method: Method,
    path: &str,
    body: &str,
) -> Result<Answer, hyper_util::client::legacy::Error> {
    let req = Request::builder()
        .method(method)
        .uri(format!("{}{path}", proxy.url()))
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let exchange = async {
        let response = client.request(req).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        })
    };
    tokio::time::timeout(LIMIT, exchange)
        .await
        .expect("the exchange ended within the limit")
}

async fn get(client: &HttpClient, proxy: &FaultProxy, path: &str) -> Answer {
    send(client, proxy, Method::GET, path, "").await.unwrap()
}

/// True when the error's chain holds an I/O error of kind `ConnectionReset`.
fn is_reset(err: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionReset)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The counters as (connections, requests, forwarded, faults).
fn counts(proxy: &FaultProxy) -> (u64, u64, u64, u64) {
    let s: ProxyStats = proxy.stats();
    (s.connections, s.requests, s.forwarded, s.faults)
}

#[tokio::test]
async fn pass_through_forwards_on_one_keep_alive_connection() {
    let upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    let client = client();
    for i in 0..3 {
        let answer = send(&client, &proxy, Method::POST, "/mcp", &format!("call {i}"))
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, format!("upstream: POST /mcp call {i}"));
    }
    assert_eq!(upstream.seen().len(), 3);
    assert_eq!(counts(&proxy), (1, 3, 3, 0));
    assert_eq!(proxy.connections(), 1);
    assert_eq!(proxy.requests_forwarded(), 3);
    assert_eq!(proxy.faults_injected(), 0);
}

#[tokio::test]
async fn reset_before_upstream_resets_the_client_and_the_upstream_sees_nothing() {
    let upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    let client = client();
    proxy.set_fault(Fault::ResetBeforeUpstream);
    let err = send(&client, &proxy, Method::POST, "/mcp", "create")
        .await
        .err()
        .expect("the client sees no response");
    assert!(is_reset(&err), "expected a connection reset, got {err:?}");
    assert!(upstream.seen().is_empty());
    assert_eq!(counts(&proxy), (1, 1, 0, 1));
    // The fault stays in force until changed.
    assert_eq!(proxy.fault(), Fault::ResetBeforeUpstream);

    proxy.set_fault(Fault::PassThrough);
    assert_eq!(get(&client, &proxy, "/after").await.status, StatusCode::OK);
    assert_eq!(upstream.seen(), ["GET /after "]);
    assert_eq!(counts(&proxy), (2, 2, 1, 1));
}

#[tokio::test]
async fn reset_after_upstream_is_the_maybe_processed_case() {
    let upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    let client = client();
    proxy.set_fault(Fault::ResetAfterUpstream);
    let err = send(&client, &proxy, Method::POST, "/mcp", "schedule once")
        .await
        .err()
        .expect("the client sees no response");
    assert!(is_reset(&err), "expected a connection reset, got {err:?}");
    // The upstream did the work; the client cannot tell.
    assert_eq!(upstream.seen(), ["POST /mcp schedule once"]);
    assert_eq!(counts(&proxy), (1, 1, 1, 1));
}

#[tokio::test]
async fn latency_delays_the_answer_by_at_least_the_delay() {
    let upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    let client = client();
    let delay = Duration::from_millis(150);
    proxy.set_fault(Fault::Latency(delay));
    let started = std::time::Instant::now();
    let answer = get(&client, &proxy, "/slow").await;
    assert!(started.elapsed() >= delay);
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "upstream: GET /slow ");
    assert_eq!(counts(&proxy), (1, 1, 1, 1));
}

#[tokio::test]
async fn status_bursts_answer_n_requests_with_retry_after_then_pass_through() {
    for (fault, status) in [
        (Fault::throttle(2, 3), StatusCode::TOO_MANY_REQUESTS),
        (Fault::unavailable(2, 3), StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(upstream.addr).await.unwrap();
        let client = client();
        proxy.set_fault(fault);
        for left in [1, 0] {
            let answer = get(&client, &proxy, "/mcp").await;
            assert_eq!(answer.status, status);
            assert_eq!(answer.headers["retry-after"], "3");
            if left > 0 {
                assert_eq!(proxy.fault(), Fault::status_burst(status, left, Some(3)));
            }
        }
        assert_eq!(proxy.fault(), Fault::PassThrough);
        assert!(upstream.seen().is_empty());
        let answer = get(&client, &proxy, "/mcp").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(upstream.seen().len(), 1);
        // The burst kept the connection alive.
        assert_eq!(counts(&proxy), (1, 3, 1, 2));
    }
}

#[tokio::test]
async fn a_burst_without_retry_after_and_a_burst_of_zero() {
    let upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    let client = client();
    proxy.set_fault(Fault::status_burst(StatusCode::BAD_GATEWAY, 1, None));
    let answer = get(&client, &proxy, "/").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert!(!answer.headers.contains_key("retry-after"));
    proxy.set_fault(Fault::throttle(0, 1));
    assert_eq!(get(&client, &proxy, "/").await.status, StatusCode::OK);
    assert_eq!(counts(&proxy), (1, 2, 1, 1));
}

#[tokio::test]
async fn blackhole_never_answers_and_later_connections_pass() {
    let upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    let client = client();
    proxy.set_fault(Fault::Blackhole);
    let req = Request::get(format!("{}/void", proxy.url()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let hung = tokio::time::timeout(Duration::from_millis(300), client.request(req)).await;
    assert!(hung.is_err(), "a blackholed request must not be answered");
    assert!(upstream.seen().is_empty());
    assert_eq!(counts(&proxy), (1, 1, 0, 1));

    // The held connection stays stuck; a new one passes.
    proxy.set_fault(Fault::PassThrough);
    assert_eq!(get(&client, &proxy, "/").await.status, StatusCode::OK);
    assert_eq!(counts(&proxy), (2, 2, 1, 1));
}

#[tokio::test]
async fn the_handle_changes_the_fault_from_elsewhere() {
    let upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    let handle = proxy.handle();
    tokio::spawn(async move { handle.set_fault(Fault::unavailable(1, 9)) })
        .await
        .unwrap();
    let answer = get(&client(), &proxy, "/").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers["retry-after"], "9");
    assert_eq!(proxy.handle().stats(), proxy.stats());
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_bad_gateway() {
    let closed = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let proxy = FaultProxy::start(addr).await.unwrap();
    let answer = get(&client(), &proxy, "/").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(counts(&proxy), (1, 1, 0, 0));
}

#[tokio::test]
async fn only_loopback_upstreams() {
    let err = FaultProxy::start(SocketAddr::from(([192, 0, 2, 1], 80)))
        .await
        .unwrap_err();
    assert!(err.is_launch());
}
