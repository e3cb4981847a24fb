//! Telemetry end to end: the full client stack (`SchedulerService` → `McpSdkClient` with
//! auth, retry, failover, breaker) calling the real Scheduler server in this process, both
//! exporting through `azure-telemetry` to the fake Application Insights ingestion endpoint
//! (testkit) on loopback.
//!
//! The fake runs on a runtime of its own so the exporters can flush to it while the
//! application's runtime is stopped; the application runs on a current-thread runtime with
//! the telemetry dispatch as its thread's default, so client and server tasks are seen.

#![allow(clippy::unwrap_used, reason = "test code")]

mod common;

use azure_telemetry::{ConnectionString, LogFormat, Telemetry, TelemetryConfig};
use scheduler::SchedulerService;
use scheduler::client::McpSdkClient;
use scheduler::domain::ScheduleConversation;
use serde_json::Value;
use testkit::azure::{DetachedFakeAppInsights, FakeAppInsights};

const IKEY: &str = "0b5c3a52-6a5e-4f4e-9d53-1c2d3e4f5a6b";

/// The fake runs on a runtime of its own, so flushing (which blocks) can reach it.
fn fake() -> DetachedFakeAppInsights {
    let fake = FakeAppInsights::start_detached().unwrap();
    fake.accept_key(IKEY);
    fake
}

fn telemetry(fake: &FakeAppInsights, service: &str) -> TelemetryConfig {
    let cs = ConnectionString::parse(&fake.connection_string(IKEY)).unwrap();
    TelemetryConfig::new(service)
        .with_service_version("1.2.3")
        .with_cloud_region("westeurope")
        .with_application_insights(cs)
        .with_log_format(LogFormat::Off)
        // rmcp's own request logs are not what these tests look at.
        .with_export_filter("info,rmcp=off")
}

fn app_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Starts the server with auth on and a registered client; schedules one conversation
/// through the full client stack; returns the client's api key.
async fn schedule_once() -> String {
    let (server, config, api_key) = common::server_with_client("telemetry").await;
    let service = SchedulerService::new(McpSdkClient::builder(&config).connect().await.unwrap());
    let scheduled = service
        .schedule_conversation(ScheduleConversation {
            topic: "Quarterly review".to_owned(),
            participants: vec!["ana@contoso.example".to_owned()],
            scheduled_time: "2031-05-01T10:00:00Z".to_owned(),
            timezone: None,
            duration_minutes: None,
            metadata: None,
            idempotency_key: None,
        })
        .await
        .unwrap();
    assert!(!scheduled.conversation_id.is_empty());
    drop(service);
    server.shutdown().await.unwrap();
    api_key
}

fn base_type(e: &Value) -> &str {
    e["data"]["baseType"].as_str().unwrap_or("")
}

fn tag<'a>(e: &'a Value, name: &str) -> &'a str {
    e["tags"][name].as_str().unwrap_or("")
}

fn name(e: &Value) -> &str {
    e["data"]["baseData"]["name"].as_str().unwrap_or("")
}

fn props(e: &Value) -> &Value {
    &e["data"]["baseData"]["properties"]
}

#[test]
fn a_scheduled_call_exports_its_dependency_request_messages_and_metrics_as_one_operation() {
    let fake = fake();
    let (dispatch, guard) = Telemetry::build(telemetry(&fake, "scheduler-e2e"))
        .unwrap()
        .into_parts();
    let api_key = {
        let _default = tracing::dispatcher::set_default(&dispatch);
        app_runtime().block_on(schedule_once())
    };
    guard.flush().unwrap();
    let stats = guard.stats();
    guard.shutdown().unwrap();
    let envelopes = fake.envelopes();
    assert_eq!(stats.spans_dropped + stats.spans_failed, 0, "{stats:?}");

    // The client's span of the tool call: a RemoteDependency.
    let dependencies = envelopes
        .iter()
        .filter(|e| {
            base_type(e) == "RemoteDependencyData" && name(e) == "tools/call scheduleConversation"
        })
        .collect::<Vec<_>>();
    assert_eq!(dependencies.len(), 1, "one client span for the call");
    let dependency = dependencies[0];
    let operation = tag(dependency, "ai.operation.id");
    assert_eq!(operation.len(), 32, "a W3C trace id: {operation}");
    let dependency_id = dependency["data"]["baseData"]["id"].as_str().unwrap();
    assert_eq!(props(dependency)["mcp.method.name"], "tools/call");
    assert_eq!(
        props(dependency)["gen_ai.tool.name"],
        "scheduleConversation"
    );
    assert_eq!(props(dependency)["gen_ai.operation.name"], "execute_tool");
    assert_ne!(dependency["data"]["baseData"]["success"], false);
    assert_eq!(tag(dependency, "ai.cloud.role"), "scheduler-e2e");
    assert_eq!(tag(dependency, "ai.application.ver"), "1.2.3");
    assert_eq!(dependency["iKey"], IKEY);

    // The server's span of the same call: a Request, child of the client's span.
    let requests = envelopes
        .iter()
        .filter(|e| base_type(e) == "RequestData" && name(e) == "tools/call scheduleConversation")
        .collect::<Vec<_>>();
    assert_eq!(requests.len(), 1, "one server span for the call");
    let request = requests[0];
    assert_eq!(
        tag(request, "ai.operation.id"),
        operation,
        "one trace, client to server"
    );
    assert_eq!(tag(request, "ai.operation.parentId"), dependency_id);
    let request_id = request["data"]["baseData"]["id"].as_str().unwrap();

    // Everything in the operation, exactly.
    let mut in_operation: Vec<(String, String)> = envelopes
        .iter()
        .filter(|e| tag(e, "ai.operation.id") == operation)
        .map(|e| {
            let what = match base_type(e) {
                "MessageData" => e["data"]["baseData"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                _ => name(e).to_owned(),
            };
            (base_type(e).to_owned(), what)
        })
        .collect();
    in_operation.sort();
    assert_eq!(
        in_operation,
        vec![
            (
                "MessageData".to_owned(),
                "conversation scheduled".to_owned()
            ),
            (
                "RemoteDependencyData".to_owned(),
                "tools/call scheduleConversation".to_owned()
            ),
            (
                "RequestData".to_owned(),
                "tools/call scheduleConversation".to_owned()
            ),
        ]
    );
    let message = envelopes
        .iter()
        .find(|e| base_type(e) == "MessageData" && tag(e, "ai.operation.id") == operation)
        .unwrap();
    assert_eq!(
        tag(message, "ai.operation.parentId"),
        request_id,
        "logged inside the server span"
    );

    // The token refresh is a Message of its own (named event) and a metric.
    let refreshed = envelopes
        .iter()
        .filter(|e| {
            base_type(e) == "MessageData" && props(e)["event.name"] == "mcp_auth.token.refreshed"
        })
        .count();
    assert_eq!(refreshed, 1);

    // Metrics: durations per tool, one token refresh, nothing dropped.
    let metric = |name: &str| -> Vec<&Value> {
        envelopes
            .iter()
            .filter(|e| base_type(e) == "MetricData")
            .flat_map(|e| {
                e["data"]["baseData"]["metrics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |m| (e, m))
            })
            .filter(|(_, m)| m["name"] == name)
            .map(|(e, _)| e)
            .collect()
    };
    let durations = metric("mcp.client.operation.duration");
    assert!(
        durations
            .iter()
            .any(|e| props(e)["gen_ai.tool.name"] == "scheduleConversation"),
        "client duration by tool"
    );
    assert!(!metric("mcp.server.operation.duration").is_empty());
    assert_eq!(metric("mcp.client.token.refreshes").len(), 1);

    // Canary: the api key never left the process.
    let all = serde_json::to_string(&envelopes).unwrap();
    assert!(!all.contains(&api_key), "the api key was exported");
    assert!(!all.contains("Bearer "), "a credential was exported");
}
