//! Every MCP request is a `mcp.client.request` span with OpenTelemetry's MCP semantic
//! conventions (against testkit's scripted MCP server on loopback): method, tool, request id,
//! protocol version, session, server address and port, network transport, and `error.type`
//! (`tool_error` for `isError` results, the JSON-RPC code for errors); argument values are
//! never recorded.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mcp_transport::{CallOptions, HttpTransport, HttpTransportConfig, McpClient, ProtocolChoice};
use serde_json::json;
use testkit::mcp_http::{ScriptedMcpServer, ScriptedResponse};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

type Fields = BTreeMap<String, String>;

/// Records the fields of every `mcp.client.request` span.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<(Id, Fields)>>>);

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        if attrs.metadata().name() == "mcp.client.request" {
            let mut fields = Fields::new();
            attrs.record(&mut Visitor(&mut fields));
            self.0.lock().unwrap().push((id.clone(), fields));
        }
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some((_, fields)) = spans.iter_mut().find(|(i, _)| i == id) {
            values.record(&mut Visitor(fields));
        }
    }
}

impl Spans {
    fn of(&self, method: &str) -> Vec<Fields> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, f)| f.get("mcp.method.name").map(String::as_str) == Some(method))
            .map(|(_, f)| f.clone())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_spans_with_the_mcp_semantic_conventions() {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = ScriptedMcpServer::mcp()
        .on("tools/call", |req, defaults| async move {
            let args = req.params().and_then(|p| p.get("arguments")).cloned();
            match args
                .as_ref()
                .and_then(|a| a.get("fail"))
                .and_then(|f| f.as_str())
            {
                Some("tool") => ScriptedResponse::result(
                    req.rpc_id().unwrap(),
                    json!({"content": [{"type": "text", "text": "no"}], "isError": true}),
                ),
                Some("rpc") => ScriptedResponse::json(&json!({
                    "jsonrpc": "2.0", "id": req.rpc_id().unwrap(),
                    "error": {"code": -32602, "message": "bad params"}
                })),
                _ => defaults.respond(&req),
            }
        })
        .start()
        .await
        .unwrap();
    let mut config = HttpTransportConfig::default();
    config.open_get_stream = false;
    let pool =
        mcp_transport::http::HttpClient::new(&mcp_transport::http::HttpConfig::default()).unwrap();
    let transport = HttpTransport::with_service(&server.url(), config, pool).unwrap();
    let client = McpClient::builder()
        .protocol(ProtocolChoice::Version("2025-11-25".into()))
        .connect(transport)
        .await
        .unwrap();
    client
        .call_tool(
            "echo",
            json!({"secret": "argument-canary-7d1e"}),
            CallOptions::new(),
        )
        .await
        .unwrap();
    let failed = client
        .call_tool("echo", json!({"fail": "tool"}), CallOptions::new())
        .await
        .unwrap();
    assert!(failed.is_error);
    client
        .call_tool("echo", json!({"fail": "rpc"}), CallOptions::new())
        .await
        .unwrap_err();
    client.list_tools().await.unwrap();

    let calls = spans.of("tools/call");
    assert_eq!(calls.len(), 3, "{calls:#?}");
    let ok = &calls[0];
    assert_eq!(ok["otel.name"], "tools/call echo");
    assert_eq!(ok["otel.kind"], "client");
    assert_eq!(ok["gen_ai.tool.name"], "echo");
    assert_eq!(ok["gen_ai.operation.name"], "execute_tool");
    assert_eq!(ok["mcp.protocol.version"], "2025-11-25");
    assert_eq!(ok["server.address"], "127.0.0.1");
    assert_eq!(ok["server.port"], server.addr().port().to_string());
    assert_eq!(ok["network.transport"], "tcp");
    assert!(
        ok.contains_key("mcp.session.id") && ok.contains_key("jsonrpc.request.id"),
        "{ok:?}"
    );
    assert!(!ok.contains_key("error.type"), "{ok:?}");
    assert_eq!(calls[1]["error.type"], "tool_error");
    assert_eq!(calls[1]["otel.status_code"], "ERROR");
    assert_eq!(calls[2]["error.type"], "-32602");
    let list = spans.of("tools/list");
    assert_eq!(list[0]["otel.name"], "tools/list");
    assert!(!list[0].contains_key("gen_ai.tool.name"));
    // Arguments never reach a span.
    let all = format!("{:?}", spans.0.lock().unwrap());
    assert!(!all.contains("argument-canary-7d1e"));
}
