//! The `transport` section of a configuration file, in the design document's shape:
//! `{"type": "http", "url": ...}` or `{"type": "stdio", "command": ...}`. Members this crate
//! does not use (e.g. `auth`, `failover_urls`, read by higher layers) are ignored here.
//!
//! ```
//! use mcp_transport::config::TransportConfig;
//!
//! let http: TransportConfig = serde_json::from_str(r#"{
//!     "type": "http",
//!     "url": "https://scheduler-eastus.example/mcp",
//!     "protocol_version": "2025-11-25",
//!     "auth": {"client_id": "ignored here"}
//! }"#)?;
//! assert!(matches!(http, TransportConfig::Http(_)));
//!
//! let stdio: TransportConfig = serde_json::from_str(
//!     r#"{"type": "stdio", "command": "python3", "args": ["server.py"]}"#,
//! )?;
//! assert!(matches!(stdio, TransportConfig::Stdio(_)));
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::Deserialize;

use crate::client::ProtocolChoice;
use crate::error::Error;
use crate::http::{HttpClient, HttpConfig, HttpTransport, HttpTransportConfig};
use crate::stdio::{StdioConfig, StdioTransport};
use crate::transport::Transport;

/// How to reach one MCP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum TransportConfig {
    /// Streamable HTTP.
    Http(HttpEndpoint),
    /// A child process speaking newline-delimited JSON on stdin/stdout.
    Stdio(StdioConfig),
}

/// The HTTP variant of [`TransportConfig`].
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct HttpEndpoint {
    /// The MCP endpoint, e.g. `https://scheduler.example/mcp`.
    pub url: String,
    /// Allow plain `http://` to a non-loopback host (a warning is logged). Default false.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Speak exactly this protocol version instead of detecting it (`"2026-07-28"`,
    /// `"2025-11-25"`, ...). Default: automatic detection.
    #[serde(default)]
    pub protocol_version: Option<String>,
}

impl TransportConfig {
    /// The protocol choice this configuration asks for.
    pub fn protocol(&self) -> ProtocolChoice {
        match self {
            TransportConfig::Http(HttpEndpoint {
                protocol_version: Some(v),
                ..
            }) => ProtocolChoice::Version(v.clone()),
            _ => ProtocolChoice::Auto,
        }
    }

    /// Builds the transport with default pool settings (HTTP) or starts the child (stdio).
    /// To put layers around the HTTP client, build an [`HttpTransport`] with
    /// [`HttpTransport::with_service`] instead.
    pub fn into_transport(self, http: &HttpConfig) -> Result<Box<dyn Transport>, Error> {
        match self {
            TransportConfig::Http(endpoint) => {
                let config = HttpTransportConfig {
                    allow_insecure_http: endpoint.allow_insecure_http,
                    ..HttpTransportConfig::default()
                };
                let client = HttpClient::new(http)?;
                Ok(Box::new(HttpTransport::with_service(
                    &endpoint.url,
                    config,
                    client,
                )?))
            }
            TransportConfig::Stdio(stdio) => Ok(Box::new(StdioTransport::spawn(&stdio)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_type_names_the_choices() {
        let err = serde_json::from_str::<TransportConfig>(r#"{"type":"websocket","url":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("websocket") && err.contains("http") && err.contains("stdio"),
            "{err}"
        );
    }

    #[test]
    fn missing_url_is_named() {
        let err = serde_json::from_str::<TransportConfig>(r#"{"type":"http"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("url"), "{err}");
    }

    #[tokio::test]
    async fn insecure_remote_url_is_refused_when_building() {
        let config: TransportConfig =
            serde_json::from_str(r#"{"type":"http","url":"http://scheduler.example/mcp"}"#)
                .unwrap();
        assert_eq!(config.protocol(), ProtocolChoice::Auto);
        let err = config.into_transport(&HttpConfig::default()).err().unwrap();
        assert!(err.is_config());
    }
}
