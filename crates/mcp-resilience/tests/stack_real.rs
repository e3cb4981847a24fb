//! The resilience layers under a real `HttpTransport` and `McpClient`, against testkit's
//! scripted MCP server on loopback: what the caller sees when the retry layer gives up, and
//! that an outer retry policy does not retry it again.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

use std::error::Error as _;
use std::time::Duration;

use bytes::Bytes;
use mcp_resilience::classify::{Classify, DefaultClassifier, Verdict};
use mcp_resilience::{Backoff, BoxError, RetryLayer, RetryPolicy};
use mcp_transport::http::{HttpClient, HttpConfig};
use mcp_transport::{CallOptions, HttpTransport, HttpTransportConfig, McpClient, ProtocolChoice};
use serde_json::json;
use testkit::mcp_http::ScriptedMcpServer;
use tower::{Layer, ServiceExt};

#[tokio::test]
async fn an_inner_retry_verdict_holds_for_an_outer_policy() {
    tokio::time::timeout(Duration::from_secs(30), run())
        .await
        .unwrap();
}

async fn run() {
    let server = ScriptedMcpServer::mcp().start().await.unwrap();
    let pool = HttpClient::new(&HttpConfig::default()).unwrap();
    // Every `tools/call` breaks mid-request: it may have been processed.
    let flaky = tower::service_fn(move |req: http::Request<Bytes>| {
        let pool = pool.clone();
        async move {
            if req.body().windows(10).any(|w| w == b"tools/call") {
                return Err(BoxError::from(std::io::Error::from(
                    std::io::ErrorKind::ConnectionReset,
                )));
            }
            pool.oneshot(req).await
        }
    });
    let retry =
        RetryLayer::new(RetryPolicy::new().backoff(Backoff::new().base(Duration::from_millis(1))));
    let mut config = HttpTransportConfig::default();
    config.open_get_stream = false;
    let transport = HttpTransport::with_service(&server.url(), config, retry.layer(flaky)).unwrap();
    let client = McpClient::builder()
        .protocol(ProtocolChoice::Version("2025-11-25".into()))
        .connect(transport)
        .await
        .unwrap();

    // A create without a key is not retried; the transport reports the layer's error as I/O
    // with ours as its source.
    let err = client
        .call_tool("schedule", json!({"title": "x"}), CallOptions::new())
        .await
        .unwrap_err();
    assert!(err.is_io(), "{err:?}");
    let ours = err
        .source()
        .unwrap()
        .downcast_ref::<mcp_resilience::Error>()
        .unwrap();
    assert!(ours.is_not_retryable(), "{ours:?}");
    assert_eq!(ours.attempts(), Some(1));
    // An outer policy sees the inner verdict (final), not a fresh transient I/O failure.
    let verdict = Classify::<(), _>::classify(&DefaultClassifier, Err(&err));
    assert_eq!(verdict, Verdict::Permanent);

    // A keyed create is retried by the layer until it gives up: still final for the outer one.
    let err = client
        .call_tool(
            "schedule",
            json!({"idempotencyKey": "k-1"}),
            CallOptions::new(),
        )
        .await
        .unwrap_err();
    let ours = err
        .source()
        .unwrap()
        .downcast_ref::<mcp_resilience::Error>()
        .unwrap();
    assert!(ours.is_retries_exhausted(), "{ours:?}");
    assert_eq!(ours.attempts(), Some(4));
    assert_eq!(
        Classify::<(), _>::classify(&DefaultClassifier, Err(&err)),
        Verdict::Permanent
    );
    // Reads still work.
    client.list_tools().await.unwrap();
    client.close().await.unwrap();
}
