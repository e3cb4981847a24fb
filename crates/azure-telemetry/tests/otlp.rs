//! OTLP/HTTP export against a minimal collector on loopback written here (it records each
//! request and decodes the protobuf bodies with the official OTLP message types): spans,
//! logs and metrics arrive on their paths with the configured headers, joined by trace id,
//! redacted.

#![cfg(feature = "otlp")]
#![allow(clippy::unwrap_used, reason = "test code")]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use azure_telemetry::{Export, LogFormat, Telemetry, TelemetryConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;

#[derive(Debug, Clone)]
struct Received {
    path: String,
    content_type: String,
    api_key: String,
    body: Bytes,
}

fn collector(runtime: &tokio::runtime::Runtime) -> (String, Arc<Mutex<Vec<Received>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let store = Arc::clone(&received);
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let store = Arc::clone(&store);
                    async move {
                        let header = |name: &str| {
                            req.headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        let (path, content_type, api_key) = (
                            req.uri().path().to_owned(),
                            header("content-type"),
                            header("x-api-key"),
                        );
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        store.lock().unwrap().push(Received {
                            path,
                            content_type,
                            api_key,
                            body,
                        });
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, received)
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

#[test]
fn spans_logs_and_metrics_reach_an_otlp_collector() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (url, received) = collector(&runtime);
    let config = TelemetryConfig::new("otlp-test")
        .with_export(Export::Otlp {
            endpoint: url,
            headers: vec![("x-api-key".to_owned(), "collector-key".to_owned())],
        })
        .with_log_format(LogFormat::Off);
    let (dispatch, guard) = Telemetry::build(config).unwrap().into_parts();
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!(
            "mcp.client.request",
            otel.name = "tools/call scheduleConversation",
            otel.kind = "client",
            mcp.method.name = "tools/call",
            gen_ai.tool.name = "scheduleConversation",
            client_secret = "otlp-canary-secret",
        );
        let _entered = span.enter();
        tracing::info!(name: "mcp_auth.token.refreshed", "access token refreshed");
    });
    guard.shutdown().unwrap();

    let received = received.lock().unwrap().clone();
    let of = |path: &str| -> Vec<Received> {
        received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    };
    for r in &received {
        assert_eq!(r.content_type, "application/x-protobuf", "{}", r.path);
        assert_eq!(r.api_key, "collector-key", "{}", r.path);
    }

    let traces = of("/v1/traces");
    assert_eq!(traces.len(), 1);
    let request = ExportTraceServiceRequest::decode(traces[0].body.clone()).unwrap();
    let spans: Vec<_> = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    assert_eq!(spans.len(), 1);
    let span = spans[0];
    assert_eq!(span.name, "tools/call scheduleConversation");
    assert_eq!(span.kind, 3, "SPAN_KIND_CLIENT");
    let secret = span
        .attributes
        .iter()
        .find(|a| a.key == "client_secret")
        .unwrap();
    assert_eq!(text(&secret.value), "[redacted]");

    let logs = of("/v1/logs");
    assert_eq!(logs.len(), 1);
    let request = ExportLogsServiceRequest::decode(logs[0].body.clone()).unwrap();
    let records: Vec<_> = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(text(&records[0].body), "access token refreshed");
    assert_eq!(
        records[0].trace_id, span.trace_id,
        "the log joins its span's trace"
    );
    assert_eq!(records[0].event_name, "mcp_auth.token.refreshed");

    let metrics = of("/v1/metrics");
    assert!(!metrics.is_empty());
    let names: Vec<String> = metrics
        .iter()
        .map(|m| ExportMetricsServiceRequest::decode(m.body.clone()).unwrap())
        .flat_map(|r| r.resource_metrics)
        .flat_map(|r| r.scope_metrics)
        .flat_map(|s| s.metrics)
        .map(|m| m.name)
        .collect();
    for wanted in [
        "mcp.client.operation.duration",
        "mcp.client.token.refreshes",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
}
