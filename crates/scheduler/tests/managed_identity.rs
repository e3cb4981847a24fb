//! `azure.use_managed_identity`: the MCP calls carry the managed identity's token for
//! `azure.token_scope`, obtained through `azure-secrets`' credential chain from testkit's fake
//! IMDS (reached by redirecting the SDK transport: nothing goes to 169.254.169.254), against
//! a scripted MCP server that records the `Authorization` headers.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::sync::Arc;

use azure_secrets::{AzureHttpClient, ChainOptions, CredentialChain};
use scheduler::client::McpSdkClient;
use scheduler::config::{AzureConfig, ServerConfig, TransportConfig};
use testkit::azure::FakeManagedIdentity;
use testkit::mcp_http::ScriptedMcpServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_calls_carry_the_managed_identity_token_for_the_configured_scope() {
    let imds = FakeManagedIdentity::imds().await.unwrap();
    let server = ScriptedMcpServer::mcp().start().await.unwrap();
    let chain = CredentialChain::new(
        ChainOptions::default()
            .managed_identity_only(true)
            .user_assigned_client_id(Some("mi-client-1".into()))
            .env(|_| None)
            .http(
                AzureHttpClient::new()
                    .unwrap()
                    .redirect("http://169.254.169.254", &format!("http://{}", imds.addr())),
            ),
    )
    .unwrap();
    let azure = AzureConfig {
        use_managed_identity: true,
        token_scope: Some("api://scheduler-test/.default".into()),
        ..AzureConfig::default()
    };
    let config = ServerConfig::new("Scheduler", TransportConfig::http(server.url()));
    let client = McpSdkClient::builder(&config)
        .azure(&azure)
        .azure_credential(Arc::new(chain))
        .connect()
        .await
        .unwrap();
    client.mcp().list_tools().await.unwrap();

    let issued = imds.issued();
    assert_eq!(issued.len(), 1, "one token, cached: {issued:?}");
    assert_eq!(issued[0].resource, "api://scheduler-test");
    assert_eq!(issued[0].client_id.as_deref(), Some("mi-client-1"));
    let bearer = format!("Bearer {}", issued[0].access_token);
    let requests = server.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.header("authorization"), Some(bearer.as_str()), "{r:?}");
    }
}

#[test]
fn managed_identity_without_a_scope_is_a_configuration_error() {
    let text = r#"{"mcp": {"mcp_servers": [{"name": "S", "transport": {"type": "http",
        "url": "https://scheduler.example/mcp"}}]}, "azure": {"use_managed_identity": true}}"#;
    let err = scheduler::Config::from_json(text, "c.json").unwrap_err();
    assert!(err.is_config());
    assert!(err.to_string().contains("azure.token_scope"), "{err}");
}
