//! Graceful shutdown under load loses no answers: every conversation the store holds after
//! `RunningServer::shutdown` was acknowledged to its caller. (Before the drain, shutdown ended
//! the MCP sessions at once, which cancelled calls whose insert had already committed; a client
//! then retried them elsewhere and created them twice.) Real server, real client, loopback.

#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use mcp_transport::{CallOptions, HttpTransport, McpClient, ProtocolChoice};
use scheduler_server::config::ServerConfig;
use scheduler_server::server::{Parts, start_with};
use serde_json::json;

async fn no_answer_is_lost(version: &str, sessions: bool) {
    let mut config = ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        database: ":memory:".into(),
        sessions,
        ..ServerConfig::default()
    };
    config.auth.required = false;
    let parts = Parts::from_config(&config).unwrap();
    let store = parts.store.clone();
    let server = start_with(config, parts).await.unwrap();
    let client = Arc::new(
        McpClient::builder()
            .protocol(ProtocolChoice::Version(version.into()))
            .default_timeout(Duration::from_secs(10))
            .connect(HttpTransport::new(&server.mcp_url()).unwrap())
            .await
            .unwrap(),
    );
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let when = (Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30)).to_string();
    let mut tasks = Vec::new();
    for task in 0..32 {
        let (client, acked, when) = (client.clone(), acked.clone(), when.clone());
        tasks.push(tokio::spawn(async move {
            // Bounded: at most 500 calls per task; the server stops long before.
            for n in 0..500 {
                let key = format!("k-{task}-{n}");
                let args = json!({"topic": "t", "participants": ["a@example.com"],
                    "scheduledTime": when, "idempotencyKey": key});
                match client
                    .call_tool("scheduleConversation", args, CallOptions::new())
                    .await
                {
                    Ok(r) if !r.is_error => {
                        acked.lock().unwrap().insert(key);
                    }
                    _ => return,
                }
            }
        }));
    }
    // Shut down while the callers are busy.
    tokio::time::timeout(Duration::from_secs(20), async {
        while acked.lock().unwrap().len() < 200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the load got going");
    server.shutdown().await.unwrap();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .unwrap()
            .unwrap();
    }
    let stored: HashSet<String> = store
        .export(Timestamp::now())
        .await
        .unwrap()
        .conversations
        .into_iter()
        .filter_map(|c| c.idempotency_key)
        .collect();
    let acked = acked.lock().unwrap();
    let lost: Vec<_> = stored.difference(&acked).collect();
    assert!(
        lost.is_empty(),
        "{} conversations were created but their callers got no answer ({version}): {lost:?}",
        lost.len()
    );
    assert_eq!(stored.len(), acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_shutdown_answers_every_call_it_processed() {
    no_answer_is_lost("2026-07-28", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_shutdown_answers_every_call_it_processed() {
    no_answer_is_lost("2025-11-25", true).await;
}
