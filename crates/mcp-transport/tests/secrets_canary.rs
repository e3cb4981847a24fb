//! Secrets canary: a bearer token added by an outer layer and credentials in the endpoint URL
//! never show up in errors (Display or Debug), in Debug output of the client and transport, or
//! in anything the crate logs at TRACE level — across a 401, a 500, an unparsable SSE event,
//! a timeout and a connection failure. Uses the scripted server from `testkit`.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderValue;
use mcp_transport::http::{HttpClient, HttpConfig, HttpRequest};
use mcp_transport::{CallOptions, HttpTransport, HttpTransportConfig, McpClient, ProtocolChoice};
use serde_json::json;
use testkit::mcp_http::{ScriptedMcpServer, ScriptedResponse, SseStep};
use tower::ServiceBuilder;

const CANARY: &str = "canary-5eb1c7d2-do-not-log";

/// Everything the subscriber writes, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn authed(url: &str) -> HttpTransport {
    let pool = HttpClient::new(&HttpConfig::default()).unwrap();
    let stack = ServiceBuilder::new()
        .map_request(|mut req: HttpRequest| {
            let value = HeaderValue::from_str(&format!("Bearer {CANARY}")).unwrap();
            req.headers_mut().insert(http::header::AUTHORIZATION, value);
            req
        })
        .service(pool);
    let mut config = HttpTransportConfig::default();
    config.open_get_stream = false;
    HttpTransport::with_service(url, config, stack).unwrap()
}

#[tokio::test]
async fn tokens_and_url_credentials_never_reach_errors_debug_or_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = ScriptedMcpServer::mcp()
        .on("tools/call", |req, defaults| async move {
            let json = req.json().unwrap_or_default();
            match json["params"]["name"].as_str() {
                Some("unauthorized") => ScriptedResponse::status(401),
                Some("broken") => ScriptedResponse::status(500),
                Some("garbage") => ScriptedResponse::sse([SseStep::Raw(
                    bytes::Bytes::from_static(b"data: {not json\n\n"),
                )]),
                Some("slow") => ScriptedResponse::sse([SseStep::Hang]),
                _ => defaults.respond(&req),
            }
        })
        .start()
        .await
        .unwrap();

    let mut seen = String::new();
    let url = format!("{}?key={CANARY}", server.url());
    let transport = authed(&url);
    seen.push_str(&format!("{transport:?}\n"));
    let client = McpClient::builder()
        .protocol(ProtocolChoice::Version("2025-11-25".into()))
        .connect(transport)
        .await
        .unwrap();
    seen.push_str(&format!("{client:?}\n"));
    for tool in ["unauthorized", "broken", "garbage"] {
        let err = client
            .call_tool(tool, json!({}), CallOptions::new())
            .await
            .unwrap_err();
        seen.push_str(&format!("{err}\n{err:?}\n"));
    }
    let err = client
        .call_tool(
            "slow",
            json!({}),
            CallOptions::new().timeout(Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    seen.push_str(&format!("{err}\n{err:?}\n"));

    // URLs with credentials are refused; a connection failure; a URL that does not parse.
    let err = HttpTransport::new(&format!("http://user:{CANARY}@127.0.0.1:9/mcp")).unwrap_err();
    assert!(err.is_config());
    seen.push_str(&format!("{err}\n{err:?}\n"));
    let dead = authed(&format!("http://127.0.0.1:9/mcp?key={CANARY}"));
    seen.push_str(&format!("{dead:?}\n"));
    let err = McpClient::builder()
        .protocol(ProtocolChoice::Version("2025-11-25".into()))
        .connect(dead)
        .await
        .unwrap_err();
    seen.push_str(&format!("{err}\n{err:?}\n"));
    let err =
        HttpTransport::new(&format!("http://user:{CANARY}@bad host/mcp?key={CANARY}")).unwrap_err();
    seen.push_str(&format!("{err}\n{err:?}\n"));

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        !logs.is_empty(),
        "the subscriber captured nothing; the canary proves nothing"
    );
    assert!(
        !seen.contains(CANARY),
        "secret in errors or Debug output:\n{seen}"
    );
    assert!(!logs.contains(CANARY), "secret in logs:\n{logs}");
    // The server did receive the token: the layer really was in the stack.
    let auth = server.requests()[0].headers.get("authorization").cloned();
    assert_eq!(auth.unwrap().to_str().unwrap(), format!("Bearer {CANARY}"));
}
