//! Server configuration: a JSON file and environment overrides, every setting with a
//! documented default. Unknown settings are errors that name the setting.
//!
//! ```
//! use scheduler_server::config::ServerConfig;
//!
//! let config = ServerConfig::from_json(r#"{"bind": "127.0.0.1:9000", "database": ":memory:"}"#)
//!     .unwrap();
//! assert_eq!(config.bind.port(), 9000);
//! assert_eq!(config.public_url(), "http://127.0.0.1:9000");
//! let err = ServerConfig::from_json(r#"{"dispatcher": {"lease": 5}}"#).unwrap_err();
//! assert!(err.to_string().contains("dispatcher"));
//! ```

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::dispatcher::DispatcherConfig;
use crate::error::{Error, Kind};

/// Everything the server reads at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address. Default `127.0.0.1:8080`. Env `SCHEDULER_BIND`.
    pub bind: SocketAddr,
    /// The URL clients reach the server at (token issuer, resource, metadata). Default
    /// `http://<bind>`. Env `SCHEDULER_PUBLIC_URL`.
    pub public_url: Option<String>,
    /// SQLite database file, or `:memory:`. Default `scheduler.db`. Env `SCHEDULER_DATABASE`.
    pub database: String,
    /// Authentication settings.
    pub auth: AuthSettings,
    /// Extra `Host` values accepted on `/mcp` (DNS-rebinding protection always accepts the
    /// public URL's host, `localhost` and the loopback addresses).
    pub allowed_hosts: Vec<String>,
    /// Largest MCP request body in bytes. Default 1 MiB.
    pub max_request_bytes: usize,
    /// Keep sessions for clients of protocol versions before 2026-07-28 (answers as SSE);
    /// false serves them statelessly with JSON answers. 2026-07-28 is always stateless.
    /// Default true.
    pub sessions: bool,
    /// Dispatcher settings.
    pub dispatcher: DispatcherConfig,
    /// What runs a due conversation.
    pub runner: RunnerConfig,
}

/// Authentication settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Require a bearer token on `/mcp`. Default true.
    pub required: bool,
    /// Access token lifetime in seconds. Default 3,600.
    pub token_ttl_secs: u64,
    /// Scopes clients can be granted. Default `["scheduler"]`.
    pub scopes: Vec<String>,
    /// Scopes a token must carry, every one of them, to use `/mcp` (e.g. `["scheduler"]`).
    /// Default `[]`: none, any valid token is enough. A valid token without them is answered
    /// `403` with `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"`; they are
    /// added to `scopes` and published in the protected-resource metadata. A token's scopes
    /// are its `scope` and `scp` claims and, for the external issuer, its `roles`.
    pub required_scopes: Vec<String>,
    /// Accept an `http://` public URL on a non-loopback host (tokens would travel
    /// unencrypted; only behind a TLS-terminating proxy on a private network). Default false.
    pub allow_insecure_http: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            required: true,
            token_ttl_secs: 3_600,
            scopes: vec!["scheduler".to_owned()],
            required_scopes: Vec::new(),
            allow_insecure_http: false,
        }
    }
}

/// What runs a due conversation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum RunnerConfig {
    /// Log the start and complete (the embedded default).
    #[default]
    Builtin,
    /// POST the conversation to `url`; 2xx completes it.
    Webhook {
        /// Where to POST (http).
        url: String,
        /// Per-attempt timeout in ms. Default 10,000.
        #[serde(default = "default_webhook_timeout")]
        timeout_ms: u64,
    },
}

fn default_webhook_timeout() -> u64 {
    10_000
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            database: "scheduler.db".to_owned(),
            auth: AuthSettings::default(),
            allowed_hosts: Vec::new(),
            max_request_bytes: 1024 * 1024,
            sessions: true,
            dispatcher: DispatcherConfig::default(),
            runner: RunnerConfig::default(),
        }
    }
}

fn config_error(message: String) -> Error {
    Error::new(Kind::Config).with_context(message)
}

impl ServerConfig {
    /// Parses a JSON document; errors name the setting (`dispatcher.lease_ms`).
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            config_error(format!("setting `{path}`: {}", e.into_inner()))
        })
    }

    /// Reads `path` (if given) and applies the environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Self, Error> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| config_error(format!("cannot read {}: {e}", p.display())))?;
                Self::from_json(&text).map_err(|e| config_error(format!("{}: {e}", p.display())))?
            }
            None => Self::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        Ok(config)
    }

    /// Applies `SCHEDULER_BIND`, `SCHEDULER_PUBLIC_URL`, `SCHEDULER_DATABASE`,
    /// `SCHEDULER_WEBHOOK_URL` from `env`.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        if let Some(bind) = env("SCHEDULER_BIND") {
            self.bind = bind
                .parse()
                .map_err(|_| config_error(format!("SCHEDULER_BIND={bind:?} is not host:port")))?;
        }
        if let Some(url) = env("SCHEDULER_PUBLIC_URL") {
            self.public_url = Some(url);
        }
        if let Some(db) = env("SCHEDULER_DATABASE") {
            self.database = db;
        }
        if let Some(url) = env("SCHEDULER_WEBHOOK_URL") {
            self.runner = RunnerConfig::Webhook {
                url,
                timeout_ms: default_webhook_timeout(),
            };
        }
        Ok(())
    }

    /// The base URL clients use: `public_url`, else `http://<bind>`.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.bind))
            .trim_end_matches('/')
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_env() {
        let mut c = ServerConfig::default();
        assert!(c.auth.required);
        assert_eq!(c.public_url(), "http://127.0.0.1:8080");
        c.apply_env(|k| match k {
            "SCHEDULER_BIND" => Some("0.0.0.0:9443".into()),
            "SCHEDULER_WEBHOOK_URL" => Some("http://hooks.internal/run".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.bind.port(), 9443);
        assert!(matches!(c.runner, RunnerConfig::Webhook { .. }));
        let err = c
            .apply_env(|k| (k == "SCHEDULER_BIND").then(|| "nope".into()))
            .unwrap_err();
        assert!(err.to_string().contains("SCHEDULER_BIND"));
    }

    #[test]
    fn required_scopes_default_to_none() {
        assert!(ServerConfig::default().auth.required_scopes.is_empty());
        let c = ServerConfig::from_json(r#"{"auth": {"required_scopes": ["scheduler"]}}"#).unwrap();
        assert_eq!(c.auth.required_scopes, vec!["scheduler".to_owned()]);
        assert_eq!(c.auth.scopes, vec!["scheduler".to_owned()]);
    }

    #[test]
    fn errors_name_the_setting() {
        let err = ServerConfig::from_json(r#"{"auth": {"token_ttl_secs": "long"}}"#).unwrap_err();
        assert!(err.to_string().contains("auth.token_ttl_secs"), "{err}");
        let err = ServerConfig::from_json(r#"{"runner": {"type": "carrier-pigeon"}}"#).unwrap_err();
        assert!(err.to_string().contains("runner"), "{err}");
    }
}
