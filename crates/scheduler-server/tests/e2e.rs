//! End to end: the real server on loopback (SQLite file, auth on, dispatcher running), a client
//! registered in its store, a token from its `/oauth/token`, and this workspace's `McpClient`
//! calling every tool over Streamable HTTP, in both protocol generations (2025-11-25 sessions
//! and 2026-07-28 stateless).

#![allow(clippy::unwrap_used, reason = "test code")]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jiff::{SignedDuration, Timestamp};
use mcp_transport::http::{HttpClient, HttpConfig, HttpRequest};
use mcp_transport::{CallOptions, HttpTransport, HttpTransportConfig, McpClient, ProtocolChoice};
use scheduler_server::config::ServerConfig;
use scheduler_server::server::{Parts, RunningServer, start_with};
use scheduler_server::store::{SqliteStore, Store};
use serde_json::{Value, json};
use tower::ServiceBuilder;

struct Fixture {
    server: RunningServer,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        database: dir.path().join("s.db").display().to_string(),
        ..ServerConfig::default()
    };
    config.dispatcher.idle_poll_ms = 50;
    let mut parts = Parts::from_config(&config).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config.database).unwrap());
    parts.store = store.clone();
    let server = start_with(config, parts).await.unwrap();
    Fixture {
        server,
        store,
        _dir: dir,
    }
}

async fn token(f: &Fixture) -> String {
    let (client, key) = scheduler_server::auth::register_client(&*f.store, "e2e", ["scheduler"])
        .await
        .unwrap();
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        client.id,
        key.expose()
    );
    let http: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::post(format!("{}/oauth/token", f.server.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = http.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let json: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    json["access_token"].as_str().unwrap().to_owned()
}

async fn client(
    f: &Fixture,
    token: Option<&str>,
    version: &str,
) -> Result<McpClient, mcp_transport::Error> {
    let bearer = token.map(|t| HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
    let stack = ServiceBuilder::new()
        .map_request(move |mut req: HttpRequest| {
            if let Some(b) = &bearer {
                req.headers_mut()
                    .insert(http::header::AUTHORIZATION, b.clone());
            }
            req
        })
        .service(HttpClient::new(&HttpConfig::default()).unwrap());
    let transport =
        HttpTransport::with_service(&f.server.mcp_url(), HttpTransportConfig::default(), stack)
            .unwrap();
    McpClient::builder()
        .protocol(ProtocolChoice::Version(version.into()))
        .default_timeout(Duration::from_secs(10))
        .connect(transport)
        .await
}

fn structured(r: &mcp_transport::CallToolResult) -> Value {
    r.structured_content.clone().unwrap_or(Value::Null)
}

async fn call(c: &McpClient, tool: &str, args: Value) -> mcp_transport::CallToolResult {
    c.call_tool(tool, args, CallOptions::new()).await.unwrap()
}

fn in_minutes(m: i64) -> String {
    Timestamp::now()
        .checked_add(SignedDuration::from_mins(m))
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tool_through_our_client_in_both_protocol_generations() {
    let f = start().await;
    let token = token(&f).await;
    for version in ["2025-11-25", "2026-07-28"] {
        let c = client(&f, Some(&token), version).await.unwrap();
        let tools: Vec<String> = c
            .list_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(
            tools,
            [
                "scheduleConversation",
                "getConversationStatus",
                "listConversations",
                "cancelConversation",
                "rescheduleConversation"
            ]
        );
        let key = format!("key-{version}");
        let args = json!({
            "topic": "Design review",
            "participants": ["ana@contoso.example", "bo@contoso.example"],
            "scheduledTime": in_minutes(60),
            "timezone": "Europe/Paris",
            "idempotencyKey": key,
        });
        let first = call(&c, "scheduleConversation", args.clone()).await;
        assert!(!first.is_error, "{first:?}");
        let s1 = structured(&first);
        assert_eq!(s1["created"], true);
        assert_eq!(s1["status"], "scheduled");
        // A retry with the same key and payload: the same conversation, not a second one.
        let again = structured(&call(&c, "scheduleConversation", args.clone()).await);
        assert_eq!(again["conversationId"], s1["conversationId"]);
        assert_eq!(again["created"], false);
        // Same key, different payload: a tool error naming the key.
        let mut changed = args.clone();
        changed["topic"] = json!("Something else");
        let conflict = call(&c, "scheduleConversation", changed).await;
        assert!(conflict.is_error);
        assert_eq!(structured(&conflict)["field"], "idempotencyKey");

        let id = s1["conversationId"].as_str().unwrap().to_owned();
        let status =
            structured(&call(&c, "getConversationStatus", json!({"conversationId": id})).await);
        assert_eq!(status["topic"], "Design review");
        assert_eq!(status["participants"].as_array().unwrap().len(), 2);

        let moved = structured(
            &call(
                &c,
                "rescheduleConversation",
                json!({"conversationId": id, "scheduledTime": in_minutes(120)}),
            )
            .await,
        );
        assert_eq!(moved["status"], "scheduled");
        let listed = structured(
            &call(
                &c,
                "listConversations",
                json!({"status": "scheduled", "limit": 500}),
            )
            .await,
        );
        assert!(
            listed["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["conversationId"] == id)
        );
        let cancelled =
            structured(&call(&c, "cancelConversation", json!({"conversationId": id})).await);
        assert_eq!(cancelled["status"], "cancelled");
        let again = call(&c, "cancelConversation", json!({"conversationId": id})).await;
        assert!(again.is_error, "cancelling twice is an invalid transition");
        assert!(again.text().contains("cancelled"), "{}", again.text());
        c.close().await.unwrap();
    }
    f.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_arguments_are_tool_errors_naming_the_field() {
    let f = start().await;
    let token = token(&f).await;
    let c = client(&f, Some(&token), "2025-11-25").await.unwrap();
    let cases = [
        (
            json!({"participants": ["a"], "scheduledTime": in_minutes(5)}),
            "topic",
        ),
        (
            json!({"topic": "t", "participants": "a", "scheduledTime": in_minutes(5)}),
            "participants",
        ),
        (
            json!({"topic": "t", "participants": ["a"], "scheduledTime": "2026-13-01T00:00:00Z"}),
            "scheduledTime",
        ),
        (
            json!({"topic": "t", "participants": ["a"], "scheduledTime": in_minutes(5), "timezone": "Nowhere/Land"}),
            "timezone",
        ),
        (
            json!({"topic": "t", "participants": ["a"], "scheduledTime": in_minutes(5), "durationMinutes": -3}),
            "durationMinutes",
        ),
    ];
    for (args, field) in cases {
        let r = call(&c, "scheduleConversation", args).await;
        assert!(r.is_error);
        assert_eq!(structured(&r)["field"], field, "{}", r.text());
    }
    let err = c
        .call_tool("noSuchTool", json!({}), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(
        err.rpc_error().map(|e| e.code),
        Some(-32602),
        "unknown tool: {err:?}"
    );
    let r = call(
        &c,
        "getConversationStatus",
        json!({"conversationId": "nope"}),
    )
    .await;
    assert!(r.is_error && structured(&r)["error"] == "not_found");
    let r = call(&c, "listConversations", json!({"cursor": "garbage"})).await;
    assert!(r.is_error && structured(&r)["field"] == "cursor");
    f.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_requires_a_valid_token_and_ops_endpoints_answer() {
    let f = start().await;
    let err = client(&f, None, "2025-11-25").await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(http::StatusCode::UNAUTHORIZED),
        "{err:?}"
    );
    let err = client(&f, Some("not.a.token"), "2025-11-25")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::UNAUTHORIZED));
    let http: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    for (path, status) in [
        ("/ping", 200),
        ("/healthz", 200),
        ("/readyz", 200),
        ("/.well-known/oauth-protected-resource/mcp", 200),
        ("/jwks.json", 200),
    ] {
        let resp = http
            .get(format!("{}{path}", f.server.url()).parse().unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
    }
    let unauth = http.get(f.server.mcp_url().parse().unwrap()).await.unwrap();
    let challenge = unauth.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("resource_metadata="), "{challenge}");
    f.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn due_conversations_are_dispatched_and_complete() {
    let f = start().await;
    let token = token(&f).await;
    let c = client(&f, Some(&token), "2026-07-28").await.unwrap();
    let r = structured(
        &call(&c, "scheduleConversation", json!({"topic": "now", "participants": ["a"], "scheduledTime": Timestamp::now().to_string()})).await,
    );
    let id = r["conversationId"].as_str().unwrap().to_owned();
    let mut status = Value::Null;
    for _ in 0..200 {
        status =
            structured(&call(&c, "getConversationStatus", json!({"conversationId": id})).await);
        if status["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["attempts"], 1);
    f.server.shutdown().await.unwrap();
}
