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
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::ExternalIssuerConfig;
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
    /// false serves them statelessly with JSON answers. 2026-07-28 is always stateless, with
    /// JSON answers (SSE only when a tool sends a notification before its result).
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
    /// An external issuer (Microsoft Entra ID) whose RS256 tokens are accepted too. Default
    /// none.
    pub external: Option<ExternalSettings>,
}

/// `auth.external`: an external token issuer, its keys given inline or fetched.
///
/// ```
/// use scheduler_server::config::ServerConfig;
///
/// let config = ServerConfig::from_json(r#"{"auth": {"external": {
///     "issuer": "https://sts.windows.net/00000000-0000-0000-0000-000000000001/",
///     "audience": "api://scheduler",
///     "jwks_uri": "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/discovery/v2.0/keys"
/// }}}"#).unwrap();
/// let external = config.auth.external.unwrap().to_issuer_config().unwrap();
/// assert_eq!(external.jwks_refresh.as_secs(), 3600);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExternalSettings {
    /// The exact `iss` of its tokens. Required.
    pub issuer: String,
    /// The `aud` its tokens must carry for this service. Required.
    pub audience: String,
    /// The JWK Set document, inline (a JSON object, or a string holding one). Default none.
    /// With `jwks_uri` too, it serves until the first successful fetch.
    pub jwks: Option<serde_json::Value>,
    /// Where to fetch the JWK Set: `https://…` (plain `http://` only on loopback hosts).
    /// Fetched at start (start does not wait or fail if it is unreachable: retried with
    /// backoff; the issuer's tokens get `401` until keys arrive), refreshed every
    /// `jwks_refresh_secs`, and again when a token names an unknown key. Default none.
    pub jwks_uri: Option<String>,
    /// Refresh interval in seconds (jittered down by up to 10 %). Default 3,600; at least 10.
    pub jwks_refresh_secs: u64,
    /// Least seconds between two refetches caused by an unknown key id. Default 300.
    pub jwks_min_refetch_secs: u64,
    /// Limit on one fetch, in seconds. Default 10 (1 to 120).
    pub jwks_timeout_secs: u64,
    /// A PEM file of CA certificates the JWKS server's certificate must chain to, **instead
    /// of** the public web PKI roots. Default none (public roots).
    pub jwks_ca_file: Option<PathBuf>,
}

impl Default for ExternalSettings {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audience: String::new(),
            jwks: None,
            jwks_uri: None,
            jwks_refresh_secs: ExternalIssuerConfig::DEFAULT_JWKS_REFRESH.as_secs(),
            jwks_min_refetch_secs: ExternalIssuerConfig::DEFAULT_JWKS_MIN_REFETCH.as_secs(),
            jwks_timeout_secs: ExternalIssuerConfig::DEFAULT_JWKS_TIMEOUT.as_secs(),
            jwks_ca_file: None,
        }
    }
}

impl ExternalSettings {
    /// The issuer configuration these settings describe (reads `jwks_ca_file`).
    pub fn to_issuer_config(&self) -> Result<ExternalIssuerConfig, Error> {
        let mut config = ExternalIssuerConfig {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            jwks: match &self.jwks {
                None => None,
                Some(serde_json::Value::String(text)) => Some(text.clone()),
                Some(document) => Some(document.to_string()),
            },
            jwks_uri: self.jwks_uri.clone(),
            jwks_refresh: Duration::from_secs(self.jwks_refresh_secs),
            jwks_min_refetch: Duration::from_secs(self.jwks_min_refetch_secs),
            jwks_timeout: Duration::from_secs(self.jwks_timeout_secs),
            jwks_ca_pem: None,
        };
        if let Some(path) = &self.jwks_ca_file {
            let pem = std::fs::read_to_string(path).map_err(|e| {
                config_error(format!(
                    "auth.external.jwks_ca_file: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            config.jwks_ca_pem = Some(pem);
        }
        Ok(config)
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            required: true,
            token_ttl_secs: 3_600,
            scopes: vec!["scheduler".to_owned()],
            required_scopes: Vec::new(),
            allow_insecure_http: false,
            external: None,
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
    fn external_issuer_settings() {
        let c = ServerConfig::from_json(
            r#"{"auth": {"external": {"issuer": "https://i.example/", "audience": "api://s",
                "jwks": {"keys": []}, "jwks_uri": "https://i.example/keys",
                "jwks_refresh_secs": 600, "jwks_min_refetch_secs": 60, "jwks_timeout_secs": 5}}}"#,
        )
        .unwrap();
        let external = c.auth.external.unwrap().to_issuer_config().unwrap();
        assert_eq!(external.jwks.as_deref(), Some(r#"{"keys":[]}"#));
        assert_eq!(external.jwks_uri.as_deref(), Some("https://i.example/keys"));
        assert_eq!(
            (
                external.jwks_refresh,
                external.jwks_min_refetch,
                external.jwks_timeout
            ),
            (
                Duration::from_secs(600),
                Duration::from_secs(60),
                Duration::from_secs(5)
            )
        );
        let err =
            ServerConfig::from_json(r#"{"auth": {"external": {"jwks_url": "x"}}}"#).unwrap_err();
        assert!(err.to_string().contains("auth.external"), "{err}");
        let c = ServerConfig::from_json(
            r#"{"auth": {"external": {"issuer": "i", "audience": "a", "jwks_ca_file": "/nonexistent/ca.pem"}}}"#,
        )
        .unwrap();
        let err = c.auth.external.unwrap().to_issuer_config().unwrap_err();
        assert!(err.to_string().contains("jwks_ca_file"), "{err}");
    }

    #[test]
    fn errors_name_the_setting() {
        let err = ServerConfig::from_json(r#"{"auth": {"token_ttl_secs": "long"}}"#).unwrap_err();
        assert!(err.to_string().contains("auth.token_ttl_secs"), "{err}");
        let err = ServerConfig::from_json(r#"{"runner": {"type": "carrier-pigeon"}}"#).unwrap_err();
        assert!(err.to_string().contains("runner"), "{err}");
    }
}
