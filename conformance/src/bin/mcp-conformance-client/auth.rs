//! The suite's `auth/*` scenarios: which token source each one gets, built from the scenario's
//! context (`MCP_CONFORMANCE_CONTEXT`), behind the mcp-auth layer over the pooled HTTP client.

use std::sync::Arc;

use mcp_auth::oauth::{OAuthClient, PrivateKey};
use mcp_auth::{AuthLayer, CachedTokenSource, Secret, TokenSource};
use mcp_transport::HttpTransport;
use mcp_transport::http::{HttpClient, HttpConfig, HttpTransportConfig};
use serde_json::Value;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// A transport to `url` that authenticates as `scenario` requires.
pub(crate) fn transport(
    scenario: &str,
    url: &str,
    context: &Value,
) -> Result<HttpTransport, Failure> {
    let pool = HttpClient::new(&HttpConfig::default())?;
    let field = |name: &str| -> Result<String, Failure> {
        context
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("scenario context has no string `{name}`").into())
    };
    let source: Arc<dyn TokenSource> = match scenario {
        "auth/client-credentials-basic" => Arc::new(
            OAuthClient::client_credentials(
                field("client_id")?,
                Secret::new(field("client_secret")?),
            )
            .server_url(url)
            .http(pool.clone())
            .build()?,
        ),
        "auth/client-credentials-jwt" => {
            let key = PrivateKey::from_pem(&field("private_key_pem")?)?;
            Arc::new(
                OAuthClient::private_key_jwt(field("client_id")?, key)
                    .server_url(url)
                    .http(pool.clone())
                    .build()?,
            )
        }
        other => return Err(format!("authorization scenario {other:?} is not supported").into()),
    };
    let layer = AuthLayer::new(CachedTokenSource::new(source));
    let service = tower::ServiceBuilder::new().layer(layer).service(pool);
    Ok(HttpTransport::with_service(
        url,
        HttpTransportConfig::default(),
        service,
    )?)
}
