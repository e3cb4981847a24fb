//! `scheduler::SchedulerService` and `McpSdkClient` as a library, against the real Scheduler
//! server started in this process (loopback, SQLite in memory, auth on with a registered
//! client): custom layers at both positions, paging, the health monitor, local argument
//! checks, and a failover configuration whose second region is down.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod common;

use bytes::Bytes;
use scheduler::SchedulerService;
use scheduler::client::{McpSdkClient, Position};
use scheduler::config::ServerConfig;
use scheduler::domain::{ListConversations, ScheduleConversation};
use scheduler_server::server::RunningServer;
use tower::util::BoxCloneSyncService;
use tower::{Layer as _, ServiceExt as _};

async fn server() -> (RunningServer, ServerConfig) {
    let (server, config, _api_key) = common::server_with_client("test").await;
    (server, config)
}

fn request(topic: &str, when: &str) -> ScheduleConversation {
    ScheduleConversation {
        topic: topic.to_owned(),
        participants: vec!["ana@contoso.example".to_owned()],
        scheduled_time: when.to_owned(),
        timezone: None,
        duration_minutes: None,
        metadata: None,
        idempotency_key: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_layers_see_requests_once_and_every_attempt_with_its_token() {
    let (server, config) = server().await;
    let requests = Arc::new(AtomicU64::new(0));
    let bearer_attempts = Arc::new(AtomicU64::new(0));
    let (r, b) = (requests.clone(), bearer_attempts.clone());
    let client = McpSdkClient::builder(&config)
        .wrap_http(Position::Request, move |inner| {
            BoxCloneSyncService::new(
                tower::util::MapRequestLayer::new(move |mut req: http::Request<Bytes>| {
                    r.fetch_add(1, Ordering::SeqCst);
                    req.headers_mut()
                        .insert("x-calling-team", http::HeaderValue::from_static("billing"));
                    req
                })
                .layer(inner),
            )
        })
        .wrap_http(Position::Attempt, move |inner| {
            BoxCloneSyncService::new(tower::service_fn(move |req: http::Request<Bytes>| {
                let (inner, b) = (inner.clone(), b.clone());
                // Below auth: the token is already there; above it the header from the outer
                // layer is too.
                assert_eq!(req.headers()["x-calling-team"], "billing");
                if req.headers().contains_key(http::header::AUTHORIZATION) {
                    b.fetch_add(1, Ordering::SeqCst);
                }
                async move { inner.oneshot(req).await }
            }))
        })
        .connect()
        .await
        .unwrap();
    let service = SchedulerService::new(client);
    service
        .schedule_conversation(request("layers", "2099-01-01T00:00:00Z"))
        .await
        .unwrap();
    assert!(requests.load(Ordering::SeqCst) >= 2, "discover + call");
    assert_eq!(
        bearer_attempts.load(Ordering::SeqCst),
        requests.load(Ordering::SeqCst),
        "no retries here: one attempt per request, each with its bearer token"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_walk_every_conversation_once_in_time_order() {
    let (server, config) = server().await;
    let service = SchedulerService::new(McpSdkClient::builder(&config).connect().await.unwrap());
    let mut ids = Vec::new();
    for day in 1..=5 {
        let r = service
            .schedule_conversation(request(
                &format!("day {day}"),
                &format!("2099-02-0{day}T10:00:00Z"),
            ))
            .await
            .unwrap();
        ids.push(r.conversation_id);
    }
    let mut pages = service.pages(ListConversations {
        limit: Some(2),
        ..ListConversations::default()
    });
    let mut seen = Vec::new();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        count += 1;
        seen.extend(
            page.unwrap()
                .conversations
                .into_iter()
                .map(|c| c.conversation_id),
        );
    }
    assert_eq!(count, 3);
    assert_eq!(seen, ids);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_fail_before_any_call_naming_the_argument() {
    let (server, config) = server().await;
    let service = SchedulerService::new(McpSdkClient::builder(&config).connect().await.unwrap());
    let err = service
        .schedule_conversation(request("x", "next tuesday"))
        .await
        .unwrap_err();
    assert!(err.is_invalid_argument(), "{err:?}");
    assert!(err.to_string().contains("scheduledTime"), "{err}");
    let err = service.conversation_status(" ").await.unwrap_err();
    assert!(err.is_invalid_argument());
    let err = service.conversation_status("no-such-id").await.unwrap_err();
    assert!(err.is_tool(), "{err:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_a_region_that_is_down_and_the_monitor_keeps_a_snapshot() {
    let (server, mut config) = server().await;
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    config.transport.failover_urls = vec![format!("http://{down}/mcp")];
    let service = SchedulerService::new(McpSdkClient::builder(&config).connect().await.unwrap());
    let report = service.health_check().await;
    assert!(!report.healthy);
    assert!(report.missing_tools.is_empty() && report.tools_error.is_none());
    assert_eq!(report.endpoints.len(), 2);
    assert!(report.endpoints[0].healthy);
    assert!(!report.endpoints[1].healthy);
    assert_eq!(report.endpoints[1].ping_url, format!("http://{down}/ping"));
    let failover = report.failover.unwrap();
    assert_eq!(failover.endpoints.len(), 2);
    assert_eq!(failover.active, Some(0));

    let monitor = service.monitor(Duration::from_millis(50));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let snapshot = loop {
        if let Some(r) = monitor.latest() {
            break r;
        }
        assert!(tokio::time::Instant::now() < deadline, "no snapshot");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!snapshot.healthy);
    drop(monitor);
    server.shutdown().await.unwrap();
}
