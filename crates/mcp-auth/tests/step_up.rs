//! Scope step-up end to end: the real Scheduler server requiring a scope on `/mcp` (403
//! `insufficient_scope`), our `McpClient` over `AuthLayer` → `CachedTokenSource` →
//! `OAuthClient`, all on loopback.

#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::sync::Arc;
use std::time::Duration;

use mcp_auth::{AuthLayer, CachedTokenSource, OAuthClient, Secret};
use mcp_transport::http::{HttpClient, HttpConfig};
use mcp_transport::{HttpTransport, HttpTransportConfig, McpClient};
use scheduler_server::config::ServerConfig;
use scheduler_server::server::{Parts, RunningServer, start_with};
use scheduler_server::store::Store;

const READ: &str = "scheduler";
const WRITE: &str = "scheduler.write";

/// A server that offers both scopes and requires `scheduler.write` on `/mcp`.
async fn server() -> (RunningServer, Arc<dyn Store>) {
    let mut config = ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        database: ":memory:".into(),
        ..ServerConfig::default()
    };
    config.auth.scopes = vec![READ.into(), WRITE.into()];
    config.auth.required_scopes = vec![WRITE.into()];
    let parts = Parts::from_config(&config).unwrap();
    let store = parts.store.clone();
    (start_with(config, parts).await.unwrap(), store)
}

async fn client_with(
    server: &RunningServer,
    id: String,
    key: Secret,
) -> (Result<McpClient, mcp_transport::Error>, AuthLayer) {
    // Configured with the read scope only: the server's 403 must make it step up.
    let source = OAuthClient::client_credentials(id, key)
        .server_url(server.mcp_url())
        .scopes([READ])
        .build()
        .unwrap();
    let layer = AuthLayer::new(CachedTokenSource::new(source));
    let stack = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(HttpClient::new(&HttpConfig::default()).unwrap());
    let transport =
        HttpTransport::with_service(&server.mcp_url(), HttpTransportConfig::default(), stack)
            .unwrap();
    let client = McpClient::builder()
        .default_timeout(Duration::from_secs(10))
        .connect(transport)
        .await;
    (client, layer)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_403_insufficient_scope_steps_up_to_the_union_and_the_call_succeeds() {
    let (server, store) = server().await;
    let (client, key) = scheduler_server::auth::register_client(&*store, "step-up", [READ, WRITE])
        .await
        .unwrap();
    let (mcp, layer) = client_with(&server, client.id, Secret::new(key.expose())).await;
    let mcp = mcp.unwrap();
    assert!(!mcp.list_tools().await.unwrap().is_empty());
    assert_eq!(
        layer.stepped_up_scopes(),
        [WRITE],
        "learned from the server's challenge"
    );
    // Later calls use the stepped-up token without another round trip through 403.
    assert!(!mcp.list_tools().await.unwrap().is_empty());
    mcp.close().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_not_granted_the_scope_gets_a_clear_error() {
    let (server, store) = server().await;
    let (client, key) = scheduler_server::auth::register_client(&*store, "read-only", [READ])
        .await
        .unwrap();
    let (mcp, _layer) = client_with(&server, client.id, Secret::new(key.expose())).await;
    let err = mcp.expect_err("the connection cannot be authorized");
    // The token endpoint refuses the stepped-up scope (`invalid_scope`); the chain says so.
    let mut cause: Option<&dyn std::error::Error> = Some(&err);
    let mut auth = None;
    while let Some(e) = cause {
        if let Some(a) = e.downcast_ref::<mcp_auth::Error>() {
            auth = Some(a);
            break;
        }
        cause = e.source();
    }
    let auth = auth.unwrap_or_else(|| panic!("no mcp_auth::Error in the chain of {err:?}"));
    assert!(auth.is_token_endpoint(), "{auth:?}");
    let mut chain = String::new();
    let mut next: Option<&dyn std::error::Error> = Some(auth);
    while let Some(e) = next {
        chain.push_str(&format!("{e}; "));
        next = e.source();
    }
    assert!(chain.contains("invalid_scope"), "{chain}");
    server.shutdown().await.unwrap();
}
