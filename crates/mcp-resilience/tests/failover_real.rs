//! Failover between two real MCP servers on loopback (testkit's scripted session server):
//! `McpClient` over `HttpTransport` over `FailoverLayer` over the pooled `HttpClient`. The
//! primary is shut down mid-run; calls continue on the secondary, where the transport, told
//! `404` for the primary's session, re-initializes.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

use std::time::Duration;

use mcp_resilience::failover::{Failover, FailoverConfig, FailoverLayer};
use mcp_transport::http::{HttpClient, HttpConfig};
use mcp_transport::{CallOptions, HttpTransport, HttpTransportConfig, McpClient, ProtocolChoice};
use serde_json::json;
use testkit::mcp_http::{ScriptedMcpServer, ScriptedResponse};
use tower::Layer;

/// A region: answers `GET …/ping` with 200 and refuses sessions it did not issue with 404.
async fn region(prefix: &'static str) -> ScriptedMcpServer {
    ScriptedMcpServer::mcp()
        .session_prefix(prefix)
        .on_get(|req, defaults| async move {
            if req.uri.path().ends_with("/ping") {
                ScriptedResponse::status(200)
            } else {
                defaults.respond(&req)
            }
        })
        .on("tools/call", move |req, defaults| async move {
            match req.session_id() {
                Some(id) if !id.starts_with(prefix) => ScriptedResponse::status(404),
                _ => defaults.respond(&req),
            }
        })
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn calls_continue_on_the_secondary_when_the_primary_shuts_down() {
    tokio::time::timeout(Duration::from_secs(30), run())
        .await
        .unwrap();
}

async fn run() {
    let east = region("east").await;
    let west = region("west").await;
    let (east_url, west_url) = (east.url(), west.url());
    // The echo servers keep no state, as if both regions shared one idempotency store: a
    // keyed call whose request may have reached the dying primary may move on. (Pinning, for
    // regions with their own stores, is covered by `failover_e2e.rs`.)
    let config = FailoverConfig::new()
        .probe_interval(Some(Duration::from_millis(100)))
        .consecutive_failures(1)
        .ejection_time(Duration::from_secs(60), Duration::from_secs(60))
        .shared_idempotency(true);
    let failover = Failover::new([&east_url, &west_url], config).unwrap();
    let pool = HttpClient::new(&HttpConfig::default()).unwrap();
    let stack = FailoverLayer::new(failover.clone()).layer(pool);
    let mut transport_config = HttpTransportConfig::default();
    transport_config.open_get_stream = false;
    let transport = HttpTransport::with_service(&east_url, transport_config, stack).unwrap();
    let client = McpClient::builder()
        .protocol(ProtocolChoice::Version("2025-11-25".into()))
        .connect(transport)
        .await
        .unwrap();

    let call = |n: u32| {
        let client = &client;
        async move {
            let args = json!({"n": n, "idempotencyKey": format!("key-{n}")});
            let result = client
                .call_tool("echo", args, CallOptions::new())
                .await
                .unwrap();
            assert!(!result.is_error);
        }
    };
    for n in 0..3 {
        call(n).await;
    }
    assert_eq!(east.rpc_requests("tools/call").len(), 3);
    assert!(west.rpc_requests("tools/call").is_empty());
    // Probes reach both.
    let pinged = |all: &[testkit::mcp_http::RecordedRequest]| {
        all.iter().any(|r| r.uri.path() == "/mcp/ping")
    };
    east.wait_for(pinged).await;
    west.wait_for(pinged).await;

    drop(east);
    for n in 3..6 {
        call(n).await;
    }
    let calls = west.rpc_requests("tools/call");
    // The first call on west carried east's session and was refused; the transport then
    // opened a session on west and replayed it.
    assert_eq!(calls[0].session_id(), Some("east-1"));
    assert_eq!(west.rpc_requests("initialize").len(), 1);
    assert!(calls[1..].iter().all(|r| r.session_id() == Some("west-1")));
    assert_eq!(calls.len(), 4);

    let health = failover.health();
    assert_eq!(health.active, Some(1));
    assert_eq!(health.switches, 1);
    assert!(!health.endpoints[0].healthy);
    assert!(health.endpoints[1].healthy);
    client.close().await.unwrap();
}
