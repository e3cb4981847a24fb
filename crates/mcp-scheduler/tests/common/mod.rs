//! Set-up shared by the library tests: the real Scheduler server in this process.

use mcp_auth::Secret;
use scheduler::config::{AuthConfig, ServerConfig, TransportConfig};
use scheduler_server::server::{Parts, RunningServer, start_with};

/// The Scheduler server on loopback (SQLite in memory, auth on) with one registered client
/// named `client_name`; returns the server, a client configuration for it (server name
/// `Scheduler`) and the client's API key.
pub(crate) async fn server_with_client(client_name: &str) -> (RunningServer, ServerConfig, String) {
    let config = scheduler_server::config::ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        database: ":memory:".to_owned(),
        ..Default::default()
    };
    let parts = Parts::from_config(&config).unwrap();
    let (client, key) =
        scheduler_server::auth::register_client(&*parts.store, client_name, &config.auth.scopes)
            .await
            .unwrap();
    let server = start_with(config, parts).await.unwrap();
    let mut transport = TransportConfig::http(server.mcp_url());
    let api_key = key.expose().to_owned();
    transport.auth = Some(AuthConfig::new(client.id, Secret::new(api_key.clone())));
    (server, ServerConfig::new("Scheduler", transport), api_key)
}
