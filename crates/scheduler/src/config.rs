//! The configuration model of the Scheduler client: which MCP servers to call, how to reach and
//! authenticate to them, and how hard to try.
//!
//! # The file
//!
//! JSON, in the design document's shape. Only `mcp.mcp_servers[].name` and
//! `mcp.mcp_servers[].transport` (with its `type`, and `url` for `http` or `command` for `stdio`)
//! are required; every other setting has a default. Unknown keys are errors, so a misspelt
//! setting never falls back to its default silently.
//!
//! ```json
//! {
//!   "mcp": { "mcp_servers": [ {
//!     "name": "Scheduler",
//!     "transport": { "type": "http", "url": "https://scheduler-eastus.example/mcp",
//!                    "failover_urls": ["https://scheduler-westus.example/mcp"],
//!                    "auth": { "client_id": "scheduler-client", "api_key": "…" } },
//!     "resilience": { "max_retries": 3, "base_delay_ms": 1000, "max_delay_ms": 10000 },
//!     "pool": { "max_connections": 100, "max_keepalive_connections": 20 },
//!     "timeout_ms": 10000 } ] },
//!   "azure": { "use_managed_identity": false, "key_vault_name": null,
//!              "application_insights_connection_string": null }
//! }
//! ```
//!
//! A local server over stdio instead:
//!
//! ```json
//! { "mcp": { "mcp_servers": [ {
//!     "name": "Local",
//!     "transport": { "type": "stdio", "command": "mcp-scheduler", "args": ["serve", "--stdio"],
//!                    "env": { "RUST_LOG": "info" } } } ] } }
//! ```
//!
//! # Every setting
//!
//! Paths are relative to `mcp.mcp_servers[i]` unless they start with `azure.`. "Design
//! document" marks the defaults the design document gives.
//!
//! | setting | default | source / meaning |
//! |---|---|---|
//! | `name` | required | unique, non-empty; how callers pick a server |
//! | `transport.type` | required | `"http"` (Streamable HTTP) or `"stdio"` |
//! | `transport.url` | required for `http` | absolute `http`/`https` URL, no `user:pass@` |
//! | `transport.failover_urls` | `[]` | other regions, tried in order (`http` only) |
//! | `transport.auth` | `null` (no auth) | OAuth client credentials (`http` only) |
//! | `transport.auth.client_id` | required in `auth` | non-empty |
//! | `transport.auth.api_key` | required in `auth` | non-empty; secret, never shown |
//! | `transport.auth.scopes` | `[]` | the server's default scopes |
//! | `transport.auth.token_endpoint` | `null` | discovered from the server (RFC 9728 / RFC 8414) |
//! | `transport.allow_insecure_http` | `false` | plain `http://` to a non-loopback host |
//! | `transport.protocol_version` | `null` | negotiate the newest both sides support |
//! | `transport.command` | required for `stdio` | program to start |
//! | `transport.args` | `[]` | its arguments (`stdio` only) |
//! | `transport.env` | `{}` | extra environment (`stdio` only); values treated as secret |
//! | `timeout_ms` | `10000` | design document: one attempt of one call |
//! | `resilience.max_retries` | `3` | design document |
//! | `resilience.base_delay_ms` | `1000` | design document: first backoff delay |
//! | `resilience.max_delay_ms` | `10000` | design document: backoff cap (≥ `base_delay_ms`) |
//! | `resilience.deadline_ms` | `60000` | one call, all retries included |
//! | `resilience.retry_budget` | `true` | limit retries to a share of traffic |
//! | `resilience.circuit_breaker` | `true` | a breaker per endpoint |
//! | `resilience.probe_interval_ms` | `10000` | health probes of failover endpoints; `null` turns them off |
//! | `resilience.probe_timeout_ms` | `2000` | design document: the `/ping` check |
//! | `resilience.shared_idempotency` | `false` | regions have their own idempotency stores |
//! | `resilience.hedge_delay_ms` | `null` | no hedging of idempotent reads |
//! | `pool.max_connections` | `100` | design document |
//! | `pool.max_keepalive_connections` | `20` | design document |
//! | `pool.idle_timeout_ms` | `90000` | idle pooled connections are closed after this |
//! | `pool.connect_timeout_ms` | `10000` | TCP + TLS connect |
//! | `azure.use_managed_identity` | `false` | design document |
//! | `azure.managed_identity_client_id` | `null` | a user-assigned identity |
//! | `azure.cloud` | `"AzurePublic"` | `AzureChina` or `AzureUSGovernment`: the authority host and the vault DNS suffix |
//! | `azure.token_scope` | `null` | the Entra scope of managed-identity tokens for the MCP servers, e.g. `api://scheduler-prod/.default`; required with `use_managed_identity` |
//! | `azure.key_vault_name` | `null` | design document |
//! | `azure.application_insights_connection_string` | `null` | design document; secret, never shown |
//!
//! All durations are milliseconds and must be greater than zero.
//!
//! # Environment overrides
//!
//! [`Config::load`] applies them after reading the file (see [`Config::apply_env`]); empty values
//! are ignored.
//!
//! | variable | overrides |
//! |---|---|
//! | `SCHEDULER_CLIENT_ID` | `transport.auth.client_id` of every `http` server |
//! | `SCHEDULER_API_KEY` | `transport.auth.api_key` of every `http` server |
//! | `APPLICATIONINSIGHTS_CONNECTION_STRING` | `azure.application_insights_connection_string` |
//!
//! An `http` server without an `auth` block gets one when both `SCHEDULER_*` variables are set.
//!
//! # Key Vault references
//!
//! Any string setting may be a Key Vault reference —
//! `@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/NAME/)`,
//! `@Microsoft.KeyVault(VaultName=kv;SecretName=NAME[;SecretVersion=V])`, or
//! `@Microsoft.KeyVault(SecretName=NAME)` for the vault named by `azure.key_vault_name`.
//! [`Config::load_resolving`] (what the `mcp-scheduler` CLI uses) reads them through the
//! Azure credential chain (`azure.use_managed_identity` and
//! `azure.managed_identity_client_id` choose managed identity) before parsing; all or nothing,
//! errors name the setting's path and the reference. [`Config::from_json_with_vaults`] takes
//! any [`Vaults`](azure_secrets::Vaults) (tests, other secret stores). The synchronous
//! [`Config::load`] and [`Config::from_json`] refuse references with a message saying so.
//!
//! # Errors
//!
//! Every error names the setting's full path, such as `mcp.mcp_servers[1].transport.url`, and
//! never quotes a secret value.
//!
//! # Example
//!
//! ```
//! use scheduler::config::Config;
//!
//! let config = Config::from_json(
//!     r#"{ "mcp": { "mcp_servers": [ {
//!         "name": "Scheduler",
//!         "transport": { "type": "http", "url": "https://scheduler.example/mcp",
//!                        "auth": { "client_id": "app", "api_key": "k" } } } ] } }"#,
//!     "inline",
//! )?;
//! let server = config.server("Scheduler")?;
//! assert_eq!(server.timeout_ms, 10_000);
//! assert_eq!(server.resilience.max_retries, 3);
//! assert_eq!(server.resilience.probe_interval_ms, Some(10_000));
//! assert!(!config.azure.use_managed_identity);
//! # Ok::<(), scheduler::Error>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use mcp_auth::Secret;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use crate::Error;

/// What a redacted secret is shown as.
const REDACTED: &str = "[redacted]";

/// The prefix of an Azure App Service / Functions Key Vault reference.
const KEY_VAULT_REFERENCE: &str = "@Microsoft.KeyVault(";

/// Environment variable overriding `transport.auth.client_id`.
const ENV_CLIENT_ID: &str = "SCHEDULER_CLIENT_ID";
/// Environment variable overriding `transport.auth.api_key`.
const ENV_API_KEY: &str = "SCHEDULER_API_KEY";
/// Environment variable overriding `azure.application_insights_connection_string`.
const ENV_APP_INSIGHTS: &str = "APPLICATIONINSIGHTS_CONNECTION_STRING";

/// The whole client configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The MCP servers to call.
    pub mcp: McpConfig,
    /// Azure integration (managed identity, Key Vault, Application Insights).
    #[serde(default)]
    pub azure: AzureConfig,
}

/// The `mcp` section: the servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// The servers; at least one, with unique names.
    pub mcp_servers: Vec<ServerConfig>,
}

/// One MCP server (`mcp.mcp_servers[i]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Unique, non-empty name callers pick the server by.
    pub name: String,
    /// How to reach the server.
    pub transport: TransportConfig,
    /// Retries, deadline, circuit breaker, failover probes, hedging.
    #[serde(default)]
    pub resilience: ResilienceConfig,
    /// The HTTP connection pool.
    #[serde(default)]
    pub pool: PoolConfig,
    /// Timeout of one attempt of one call, in milliseconds. Default 10000 (design document).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl ServerConfig {
    /// A server with default resilience, pool and timeout settings.
    pub fn new(name: impl Into<String>, transport: TransportConfig) -> Self {
        Self {
            name: name.into(),
            transport,
            resilience: ResilienceConfig::default(),
            pool: PoolConfig::default(),
            timeout_ms: default_timeout_ms(),
        }
    }
}

fn default_timeout_ms() -> u64 {
    10_000
}

/// The transport kind (`transport.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// MCP Streamable HTTP.
    Http,
    /// A child process speaking MCP on stdin/stdout.
    Stdio,
}

impl TransportKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Stdio => "stdio",
        }
    }
}

/// How to reach a server (`mcp.mcp_servers[i].transport`).
///
/// `Debug` shows the names of `env` variables but not their values.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportConfig {
    /// `http` or `stdio`.
    #[serde(rename = "type")]
    pub kind: TransportKind,
    /// The MCP endpoint; required for `http`, not allowed for `stdio`.
    #[serde(default)]
    pub url: Option<String>,
    /// Other regions' MCP endpoints, tried in order; `http` only.
    #[serde(default)]
    pub failover_urls: Vec<String>,
    /// OAuth client credentials; `http` only. None: no `Authorization` header.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Allow plain `http://` to non-loopback hosts. Default false.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// The MCP protocol version to use. Default None: negotiate.
    #[serde(default)]
    pub protocol_version: Option<String>,
    /// The program to start; required for `stdio`, not allowed for `http`.
    #[serde(default)]
    pub command: Option<String>,
    /// Its arguments; `stdio` only.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables for it; `stdio` only. Values are treated as secrets.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl TransportConfig {
    /// An `http` transport to `url`, every other setting at its default.
    pub fn http(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            ..Self::empty(TransportKind::Http)
        }
    }

    /// A `stdio` transport starting `command`, every other setting at its default.
    pub fn stdio(command: impl Into<String>) -> Self {
        Self {
            command: Some(command.into()),
            ..Self::empty(TransportKind::Stdio)
        }
    }

    fn empty(kind: TransportKind) -> Self {
        Self {
            kind,
            url: None,
            failover_urls: Vec::new(),
            auth: None,
            allow_insecure_http: false,
            protocol_version: None,
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted;
        impl fmt::Debug for Redacted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(REDACTED)
            }
        }
        let env: BTreeMap<&str, Redacted> =
            self.env.keys().map(|k| (k.as_str(), Redacted)).collect();
        f.debug_struct("TransportConfig")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("failover_urls", &self.failover_urls)
            .field("auth", &self.auth)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("protocol_version", &self.protocol_version)
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &env)
            .finish()
    }
}

/// OAuth client credentials (`transport.auth`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The client id; non-empty.
    pub client_id: String,
    /// The API key (client secret); non-empty.
    pub api_key: Secret,
    /// Scopes to request. Default empty: the server's default scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The token endpoint. Default None: discovered from the server (RFC 9728 / RFC 8414).
    #[serde(default)]
    pub token_endpoint: Option<String>,
}

impl AuthConfig {
    /// Credentials with the server's default scopes and a discovered token endpoint.
    pub fn new(client_id: impl Into<String>, api_key: Secret) -> Self {
        Self {
            client_id: client_id.into(),
            api_key,
            scopes: Vec::new(),
            token_endpoint: None,
        }
    }
}

/// Retries, deadline, circuit breaker, failover probes and hedging (`resilience`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResilienceConfig {
    /// Retries after the first attempt. Default 3 (design document).
    pub max_retries: u32,
    /// First backoff delay. Default 1000 ms (design document).
    pub base_delay_ms: u64,
    /// Backoff cap, at least `base_delay_ms`. Default 10000 ms (design document).
    pub max_delay_ms: u64,
    /// Overall time for one call, all retries included. Default 60000 ms.
    pub deadline_ms: u64,
    /// Limit retries to a share of the traffic. Default true.
    pub retry_budget: bool,
    /// A circuit breaker per endpoint. Default true.
    pub circuit_breaker: bool,
    /// Interval of the failover endpoints' health probes. Default Some(10000); JSON `null`
    /// (None) turns probes off.
    #[serde(deserialize_with = "nullable")]
    pub probe_interval_ms: Option<u64>,
    /// Timeout of one health probe. Default 2000 ms (design document's `/ping` check).
    pub probe_timeout_ms: u64,
    /// Whether the regions share one idempotency store. Default false.
    pub shared_idempotency: bool,
    /// Hedge idempotent reads after this delay. Default None: no hedging.
    pub hedge_delay_ms: Option<u64>,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay_ms: 1_000,
            max_delay_ms: 10_000,
            deadline_ms: 60_000,
            retry_budget: true,
            circuit_breaker: true,
            probe_interval_ms: Some(10_000),
            probe_timeout_ms: 2_000,
            shared_idempotency: false,
            hedge_delay_ms: None,
        }
    }
}

/// A present `null` is None (an absent key keeps the container's default).
fn nullable<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(deserializer)
}

/// The HTTP connection pool (`pool`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Most connections open at once. Default 100 (design document).
    pub max_connections: usize,
    /// Most idle connections kept per host. Default 20 (design document).
    pub max_keepalive_connections: usize,
    /// Idle connections are closed after this. Default 90000 ms.
    pub idle_timeout_ms: u64,
    /// Timeout of TCP + TLS connect. Default 10000 ms.
    pub connect_timeout_ms: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_connections: 100,
            max_keepalive_connections: 20,
            idle_timeout_ms: 90_000,
            connect_timeout_ms: 10_000,
        }
    }
}

/// Azure integration (`azure`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureConfig {
    /// Authenticate with the managed identity. Default false (design document).
    pub use_managed_identity: bool,
    /// The client id of a user-assigned managed identity. Default None.
    pub managed_identity_client_id: Option<String>,
    /// The Azure cloud: `AzurePublic` (default), `AzureChina` or `AzureUSGovernment` — the
    /// Entra authority host of the credentials and the Key Vault DNS suffix of references
    /// that give a vault name.
    pub cloud: Option<String>,
    /// The Entra scope managed-identity tokens for the MCP servers are requested for (the
    /// Scheduler's application ID URI with `/.default`, e.g. `api://scheduler-prod/.default`).
    /// Required when `use_managed_identity` is true. Default None.
    pub token_scope: Option<String>,
    /// The Key Vault holding secrets. Default None.
    pub key_vault_name: Option<String>,
    /// Application Insights connection string. Default None. Secret.
    pub application_insights_connection_string: Option<Secret>,
}

impl Config {
    /// Parses and validates a configuration; `origin` (a file name, "inline"…) starts every
    /// error message.
    ///
    /// # Errors
    ///
    /// A configuration error naming the origin, the setting's path and what is wrong: invalid
    /// JSON (with line and column), an unknown key, a wrong type, or a failed
    /// [`validate`](Self::validate).
    pub fn from_json(text: &str, origin: &str) -> Result<Self, Error> {
        let config = Self::parse(text, origin)?;
        config
            .check()
            .map_err(|e| Error::config(format!("{origin}: {e}")))?;
        Ok(config)
    }

    /// Reads the file at `path`, applies the environment overrides of the process
    /// ([`apply_env`](Self::apply_env)) and validates the result.
    ///
    /// The overrides are applied before validation, so a file may leave secrets to the
    /// environment.
    ///
    /// # Errors
    ///
    /// A configuration error if the file cannot be read or the configuration is invalid.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("{origin}: cannot read the file: {e}")).with_source(e)
        })?;
        let mut config = Self::parse(&text, &origin)?;
        config
            .override_from(|k| std::env::var(k).ok())
            .and_then(|()| config.check())
            .map_err(|e| Error::config(format!("{origin}: {e}")))?;
        Ok(config)
    }

    /// Like [`load`](Self::load), but first resolves every Key Vault reference in the file
    /// through the Azure credential chain (see the [module docs](self#key-vault-references)).
    /// A file without references needs no Azure at all.
    ///
    /// # Errors
    ///
    /// A configuration error naming the file and, for a reference that could not be read, the
    /// setting's path and the reference (never a value); nothing half-resolved is returned.
    pub async fn load_resolving(path: &Path) -> Result<Self, Error> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("{origin}: cannot read the file: {e}")).with_source(e)
        })?;
        let tree = Self::tree(&text, &origin)?;
        let references = azure_secrets::resolve::references(&tree)
            .map_err(|e| Error::config(format!("{origin}: {e}")))?;
        if references.is_empty() {
            return Self::load(path);
        }
        let azure = &tree["azure"];
        let cloud = match azure["cloud"].as_str() {
            None => AzureCloud::Public,
            Some(name) => AzureCloud::parse(name).ok_or_else(|| {
                Error::config(format!(
                    "{origin}: azure.cloud: `{name}` is not AzurePublic, AzureChina or \
                     AzureUSGovernment"
                ))
            })?,
        };
        let options = azure_secrets::ChainOptions::default()
            .managed_identity_only(azure["use_managed_identity"].as_bool().unwrap_or(false))
            .user_assigned_client_id(
                azure["managed_identity_client_id"]
                    .as_str()
                    .map(str::to_owned),
            )
            .cloud(cloud.configuration());
        let chain = azure_secrets::CredentialChain::new(options)
            .map_err(|e| Error::config(format!("{origin}: Key Vault references: {e}")))?;
        let vaults = azure_secrets::KeyVaults::new(
            std::sync::Arc::new(chain),
            azure_secrets::KeyVaultOptions::default(),
        );
        Self::resolved(tree, &origin, &vaults, |k| std::env::var(k).ok()).await
    }

    /// Parses `text` after resolving its Key Vault references through `vaults` (the default
    /// vault is `azure.key_vault_name`), then applies the environment from `env` and
    /// validates, as [`load`](Self::load) does.
    ///
    /// # Errors
    ///
    /// As [`load_resolving`](Self::load_resolving).
    pub async fn from_json_with_vaults(
        text: &str,
        origin: &str,
        vaults: &dyn azure_secrets::Vaults,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let tree = Self::tree(text, origin)?;
        Self::resolved(tree, origin, vaults, env).await
    }

    fn tree(text: &str, origin: &str) -> Result<Value, Error> {
        serde_json::from_str(text).map_err(|e| {
            Error::config(format!(
                "{origin}: not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }

    async fn resolved(
        mut tree: Value,
        origin: &str,
        vaults: &dyn azure_secrets::Vaults,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let default_vault = tree["azure"]["key_vault_name"].as_str().map(str::to_owned);
        let cloud = tree["azure"]["cloud"]
            .as_str()
            .and_then(AzureCloud::parse)
            .unwrap_or(AzureCloud::Public);
        let options = azure_secrets::ResolveOptions {
            default_vault,
            vault_suffix: cloud.vault_suffix().to_owned(),
        };
        let done = azure_secrets::resolve(&mut tree, vaults, &options)
            .await
            .map_err(|e| Error::config(format!("{origin}: {e}")))?;
        tracing::info!(
            name: "scheduler.config.resolved",
            target: "scheduler::config",
            settings = done.paths.len(),
            secrets = done.fetched,
            "Key Vault references resolved"
        );
        let text = tree.to_string();
        let mut config = Self::parse(&text, origin)?;
        config
            .override_from(env)
            .and_then(|()| config.check())
            .map_err(|e| Error::config(format!("{origin}: {e}")))?;
        Ok(config)
    }

    fn parse(text: &str, origin: &str) -> Result<Self, Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let config: Self = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let message = scrub(&e.inner().to_string());
            let path = with_unknown_field(path, &message);
            Error::config(if path.is_empty() || path == "." {
                format!("{origin}: {message}")
            } else {
                format!("{origin}: {path}: {message}")
            })
        })?;
        // Trailing characters are reported by `end`, with their position.
        de.end()
            .map_err(|e| Error::config(format!("{origin}: {e}")))?;
        Ok(config)
    }

    /// Applies environment overrides, then [`validate`](Self::validate)s.
    ///
    /// `env` looks a variable up (`|k| std::env::var(k).ok()` for the process environment);
    /// empty values count as unset.
    ///
    /// - `SCHEDULER_CLIENT_ID` and `SCHEDULER_API_KEY` replace `transport.auth.client_id` and
    ///   `transport.auth.api_key` of every `http` server. An `http` server without `auth` gets
    ///   one only when both are set; when only one is set, that is an error.
    /// - `APPLICATIONINSIGHTS_CONNECTION_STRING` sets
    ///   `azure.application_insights_connection_string`.
    ///
    /// # Errors
    ///
    /// A configuration error naming the server and the missing variable, or a failed
    /// validation.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        self.override_from(env)
            .and_then(|()| self.check())
            .map_err(Error::config)
    }

    fn override_from(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        let client_id = get(ENV_CLIENT_ID);
        let api_key = get(ENV_API_KEY).map(Secret::new);
        for (i, server) in self.mcp.mcp_servers.iter_mut().enumerate() {
            if server.transport.kind != TransportKind::Http {
                continue;
            }
            match (&mut server.transport.auth, &client_id, &api_key) {
                (_, None, None) => {}
                (Some(auth), id, key) => {
                    if let Some(id) = id {
                        auth.client_id.clone_from(id);
                    }
                    if let Some(key) = key {
                        auth.api_key = key.clone();
                    }
                }
                (auth @ None, Some(id), Some(key)) => {
                    *auth = Some(AuthConfig::new(id.clone(), key.clone()));
                }
                (None, id, _) => {
                    let (set, missing) = if id.is_some() {
                        (ENV_CLIENT_ID, ENV_API_KEY)
                    } else {
                        (ENV_API_KEY, ENV_CLIENT_ID)
                    };
                    return Err(format!(
                        "mcp.mcp_servers[{i}].transport.auth: {set} is set but {missing} is not; \
                         a server without an auth block needs both"
                    ));
                }
            }
        }
        if let Some(cs) = get(ENV_APP_INSIGHTS) {
            self.azure.application_insights_connection_string = Some(Secret::new(cs));
        }
        Ok(())
    }

    /// Checks the rules every setting must follow (see the module documentation).
    ///
    /// # Errors
    ///
    /// A configuration error naming the first offending setting's full path, such as
    /// `mcp.mcp_servers[1].transport.url`.
    pub fn validate(&self) -> Result<(), Error> {
        self.check().map_err(Error::config)
    }

    fn check(&self) -> Result<(), String> {
        let servers = &self.mcp.mcp_servers;
        if servers.is_empty() {
            return Err("mcp.mcp_servers: no servers configured".to_owned());
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, server) in servers.iter().enumerate() {
            let at = format!("mcp.mcp_servers[{i}]");
            server.validate(&at)?;
            if let Some(first) = seen.insert(server.name.as_str(), i) {
                return Err(format!(
                    "{at}.name: duplicate server name `{}` (also mcp.mcp_servers[{first}].name)",
                    server.name
                ));
            }
        }
        self.azure.validate()
    }

    /// The server named `name`.
    ///
    /// # Errors
    ///
    /// A configuration error listing the configured names if there is none.
    pub fn server(&self, name: &str) -> Result<&ServerConfig, Error> {
        self.mcp
            .mcp_servers
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self
                    .mcp
                    .mcp_servers
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                Error::config(format!(
                    "no MCP server named `{name}` in the configuration (configured: {})",
                    names.join(", ")
                ))
            })
    }

    /// The whole configuration with every default filled in, in the file's JSON shape, with
    /// secrets (`api_key`, `application_insights_connection_string`, stdio `env` values)
    /// replaced by `"[redacted]"`. Absent optional values are `null`.
    pub fn redacted(&self) -> Value {
        json!({
            "mcp": {
                "mcp_servers": self.mcp.mcp_servers.iter().map(ServerConfig::redacted).collect::<Vec<_>>(),
            },
            "azure": {
                "use_managed_identity": self.azure.use_managed_identity,
                "managed_identity_client_id": self.azure.managed_identity_client_id,
                "token_scope": self.azure.token_scope,
                "cloud": self.azure.cloud.as_deref().unwrap_or("AzurePublic"),
                "key_vault_name": self.azure.key_vault_name,
                "application_insights_connection_string":
                    self.azure.application_insights_connection_string.as_ref().map(|_| REDACTED),
            },
        })
    }
}

impl ServerConfig {
    fn validate(&self, at: &str) -> Result<(), String> {
        if self.name.is_empty() {
            return Err(format!("{at}.name: must not be empty"));
        }
        check_reference(&format!("{at}.name"), &self.name)?;
        self.transport.validate(&format!("{at}.transport"))?;
        positive(&format!("{at}.timeout_ms"), self.timeout_ms)?;
        self.resilience.validate(&format!("{at}.resilience"))?;
        self.pool.validate(&format!("{at}.pool"))
    }

    fn redacted(&self) -> Value {
        let t = &self.transport;
        let r = &self.resilience;
        let p = &self.pool;
        json!({
            "name": self.name,
            "transport": {
                "type": t.kind,
                "url": t.url,
                "failover_urls": t.failover_urls,
                "auth": t.auth.as_ref().map(|a| json!({
                    "client_id": a.client_id,
                    "api_key": REDACTED,
                    "scopes": a.scopes,
                    "token_endpoint": a.token_endpoint,
                })),
                "allow_insecure_http": t.allow_insecure_http,
                "protocol_version": t.protocol_version,
                "command": t.command,
                "args": t.args,
                "env": t.env.keys().map(|k| (k.clone(), Value::from(REDACTED))).collect::<serde_json::Map<_, _>>(),
            },
            "resilience": {
                "max_retries": r.max_retries,
                "base_delay_ms": r.base_delay_ms,
                "max_delay_ms": r.max_delay_ms,
                "deadline_ms": r.deadline_ms,
                "retry_budget": r.retry_budget,
                "circuit_breaker": r.circuit_breaker,
                "probe_interval_ms": r.probe_interval_ms,
                "probe_timeout_ms": r.probe_timeout_ms,
                "shared_idempotency": r.shared_idempotency,
                "hedge_delay_ms": r.hedge_delay_ms,
            },
            "pool": {
                "max_connections": p.max_connections,
                "max_keepalive_connections": p.max_keepalive_connections,
                "idle_timeout_ms": p.idle_timeout_ms,
                "connect_timeout_ms": p.connect_timeout_ms,
            },
            "timeout_ms": self.timeout_ms,
        })
    }
}

impl TransportConfig {
    fn validate(&self, at: &str) -> Result<(), String> {
        let kind = self.kind.as_str();
        let not_allowed = |field: &str| format!("{at}.{field}: not allowed for a {kind} transport");
        if let Some(version) = &self.protocol_version {
            check_reference(&format!("{at}.protocol_version"), version)?;
            if version.is_empty() {
                return Err(format!(
                    "{at}.protocol_version: must not be empty (leave it out to negotiate)"
                ));
            }
        }
        match self.kind {
            TransportKind::Http => {
                if self.command.is_some() {
                    return Err(not_allowed("command"));
                }
                if !self.args.is_empty() {
                    return Err(not_allowed("args"));
                }
                if !self.env.is_empty() {
                    return Err(not_allowed("env"));
                }
                let Some(url) = &self.url else {
                    return Err(format!("{at}.url: required for an http transport"));
                };
                check_url(&format!("{at}.url"), url, self.allow_insecure_http)?;
                for (j, url) in self.failover_urls.iter().enumerate() {
                    check_url(
                        &format!("{at}.failover_urls[{j}]"),
                        url,
                        self.allow_insecure_http,
                    )?;
                }
                if let Some(auth) = &self.auth {
                    auth.validate(&format!("{at}.auth"), self.allow_insecure_http)?;
                }
            }
            TransportKind::Stdio => {
                if self.url.is_some() {
                    return Err(not_allowed("url"));
                }
                if !self.failover_urls.is_empty() {
                    return Err(not_allowed("failover_urls"));
                }
                if self.auth.is_some() {
                    return Err(not_allowed("auth"));
                }
                let Some(command) = &self.command else {
                    return Err(format!("{at}.command: required for a stdio transport"));
                };
                check_reference(&format!("{at}.command"), command)?;
                if command.is_empty() {
                    return Err(format!("{at}.command: must not be empty"));
                }
                for (j, arg) in self.args.iter().enumerate() {
                    check_reference(&format!("{at}.args[{j}]"), arg)?;
                }
                for (name, value) in &self.env {
                    let path = format!("{at}.env.{name}");
                    if name.is_empty() || name.contains('=') || name.contains('\0') {
                        return Err(format!("{path}: not a valid environment variable name"));
                    }
                    check_reference(&path, value)?;
                }
            }
        }
        Ok(())
    }
}

impl AuthConfig {
    fn validate(&self, at: &str, allow_insecure_http: bool) -> Result<(), String> {
        check_reference(&format!("{at}.client_id"), &self.client_id)?;
        if self.client_id.is_empty() {
            return Err(format!("{at}.client_id: must not be empty"));
        }
        check_reference(&format!("{at}.api_key"), self.api_key.expose_secret())?;
        if self.api_key.is_empty() {
            return Err(format!("{at}.api_key: must not be empty"));
        }
        for (j, scope) in self.scopes.iter().enumerate() {
            check_reference(&format!("{at}.scopes[{j}]"), scope)?;
            if scope.is_empty() || scope.contains(char::is_whitespace) {
                return Err(format!(
                    "{at}.scopes[{j}]: a scope must be non-empty and contain no spaces"
                ));
            }
        }
        if let Some(endpoint) = &self.token_endpoint {
            check_url(
                &format!("{at}.token_endpoint"),
                endpoint,
                allow_insecure_http,
            )?;
        }
        Ok(())
    }
}

impl ResilienceConfig {
    fn validate(&self, at: &str) -> Result<(), String> {
        positive(&format!("{at}.base_delay_ms"), self.base_delay_ms)?;
        if self.max_delay_ms < self.base_delay_ms {
            return Err(format!(
                "{at}.max_delay_ms: must be at least base_delay_ms ({} < {})",
                self.max_delay_ms, self.base_delay_ms
            ));
        }
        positive(&format!("{at}.deadline_ms"), self.deadline_ms)?;
        positive(&format!("{at}.probe_timeout_ms"), self.probe_timeout_ms)?;
        if self.probe_interval_ms == Some(0) {
            return Err(format!(
                "{at}.probe_interval_ms: must be greater than 0 (null turns probes off)"
            ));
        }
        if self.hedge_delay_ms == Some(0) {
            return Err(format!(
                "{at}.hedge_delay_ms: must be greater than 0 (null turns hedging off)"
            ));
        }
        Ok(())
    }
}

impl PoolConfig {
    fn validate(&self, at: &str) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err(format!("{at}.max_connections: must be greater than 0"));
        }
        positive(&format!("{at}.connect_timeout_ms"), self.connect_timeout_ms)
    }
}

/// The clouds `azure.cloud` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AzureCloud {
    Public,
    China,
    UsGovernment,
}

impl AzureCloud {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "azurepublic" | "public" => Some(Self::Public),
            "azurechina" | "china" => Some(Self::China),
            "azureusgovernment" | "azuregovernment" | "usgovernment" => Some(Self::UsGovernment),
            _ => None,
        }
    }

    pub(crate) fn configuration(self) -> azure_core::cloud::CloudConfiguration {
        match self {
            Self::Public => azure_core::cloud::CloudConfiguration::AzurePublic,
            Self::China => azure_core::cloud::CloudConfiguration::AzureChina,
            Self::UsGovernment => azure_core::cloud::CloudConfiguration::AzureGovernment,
        }
    }

    pub(crate) fn vault_suffix(self) -> &'static str {
        match self {
            Self::Public => "vault.azure.net",
            Self::China => "vault.azure.cn",
            Self::UsGovernment => "vault.usgovcloudapi.net",
        }
    }
}

impl AzureConfig {
    /// The chain options these settings ask for (managed identity only or the whole chain,
    /// the user-assigned identity, the cloud).
    pub(crate) fn chain_options(&self, managed_identity_only: bool) -> azure_secrets::ChainOptions {
        azure_secrets::ChainOptions::default()
            .managed_identity_only(managed_identity_only)
            .user_assigned_client_id(self.managed_identity_client_id.clone())
            .cloud(self.cloud().configuration())
    }

    pub(crate) fn cloud(&self) -> AzureCloud {
        self.cloud
            .as_deref()
            .and_then(AzureCloud::parse)
            .unwrap_or(AzureCloud::Public)
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(id) = &self.managed_identity_client_id {
            check_reference("azure.managed_identity_client_id", id)?;
            if id.is_empty() {
                return Err(
                    "azure.managed_identity_client_id: must not be empty (leave it out for the \
                     system-assigned identity)"
                        .to_owned(),
                );
            }
        }
        if let Some(cloud) = &self.cloud
            && AzureCloud::parse(cloud).is_none()
        {
            return Err(format!(
                "azure.cloud: `{cloud}` is not AzurePublic, AzureChina or AzureUSGovernment"
            ));
        }
        match &self.token_scope {
            Some(scope) if scope.trim().is_empty() || scope.contains(char::is_whitespace) => {
                return Err("azure.token_scope: must be one scope without spaces".to_owned());
            }
            Some(scope) => check_reference("azure.token_scope", scope)?,
            None if self.use_managed_identity => {
                return Err(
                    "azure.token_scope: required with use_managed_identity (the Scheduler's \
                     Entra scope, e.g. api://scheduler-prod/.default)"
                        .to_owned(),
                );
            }
            None => {}
        }
        if let Some(name) = &self.key_vault_name {
            check_reference("azure.key_vault_name", name)?;
            if name.is_empty() {
                return Err("azure.key_vault_name: must not be empty".to_owned());
            }
        }
        if let Some(cs) = &self.application_insights_connection_string {
            let path = "azure.application_insights_connection_string";
            check_reference(path, cs.expose_secret())?;
            if cs.is_empty() {
                return Err(format!("{path}: must not be empty"));
            }
        }
        Ok(())
    }
}

fn positive(path: &str, value: u64) -> Result<(), String> {
    if value == 0 {
        return Err(format!("{path}: must be greater than 0"));
    }
    Ok(())
}

/// Rejects Key Vault references; the message names the path only, never the value.
fn check_reference(path: &str, value: &str) -> Result<(), String> {
    if value.trim_start().starts_with(KEY_VAULT_REFERENCE) {
        return Err(format!(
            "{path}: is a Key Vault reference; load the configuration with \
             Config::load_resolving (as the mcp-scheduler CLI does) to read it from the vault"
        ));
    }
    Ok(())
}

/// Checks an endpoint URL: absolute, http or https, a host, no user info, and plain http only
/// to loopback unless `allow_insecure_http`. The URL is quoted only when it cannot carry
/// credentials.
fn check_url(path: &str, url: &str, allow_insecure_http: bool) -> Result<(), String> {
    check_reference(path, url)?;
    let shown = if url.contains(['@', '?', '#']) || url.chars().any(char::is_control) {
        String::new()
    } else {
        format!(" `{url}`")
    };
    let invalid = |why: &str| format!("{path}: {why}{shown}");
    if url.contains('@') {
        // Checked on the raw text so that no parse quirk lets credentials through.
        return Err(format!(
            "{path}: must not contain user info (`user:password@`); credentials belong in \
             transport.auth"
        ));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|_| invalid("not a valid absolute http or https URL:"))?;
    let scheme = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => "https",
        Some(s) if s.eq_ignore_ascii_case("http") => "http",
        Some(_) => return Err(invalid("the scheme must be http or https:")),
        None => return Err(invalid("must be an absolute http or https URL:")),
    };
    let host = uri.host().unwrap_or_default();
    if host.is_empty() {
        return Err(invalid("has no host:"));
    }
    if scheme == "http" && !allow_insecure_http && !is_loopback(host) {
        return Err(format!(
            "{path}: plain http to non-loopback host `{host}` is refused; use https, or set \
             transport.allow_insecure_http to accept unencrypted traffic"
        ));
    }
    Ok(())
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// serde quotes a mistyped string value (`invalid type: string "…", expected …`); the value
/// may be a secret put in the wrong place, so it is dropped.
fn scrub(message: &str) -> String {
    const MARK: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(MARK) {
        out.push_str(&rest[..start]);
        out.push_str("a string");
        let after = &rest[start + MARK.len()..];
        // The value is Debug-formatted: `\"` and `\\` are escaped.
        let mut end = after.len();
        let mut escaped = false;
        for (k, c) in after.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = k + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Appends the name of an unknown field to the path of the struct it appeared in.
fn with_unknown_field(path: String, message: &str) -> String {
    let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    else {
        return path;
    };
    if path == "." || path.is_empty() {
        field.to_owned()
    } else if path.rsplit('.').next() == Some(field) {
        path
    } else {
        format!("{path}.{field}")
    }
}
