//! The suite's `auth/*` scenarios: which token source each one gets, built from the scenario's
//! context (`MCP_CONFORMANCE_CONTEXT`), behind the mcp-auth layer over the pooled HTTP client.
//!
//! - `auth/client-credentials-*` (extension SEP-1046): the client-credentials grant.
//! - Every other client scenario of the core spec: the authorization-code grant, with the
//!   headless handler (the suite's authorization endpoint approves at once and redirects).
//!   `auth/pre-registration` uses the client id, secret and (when given) issuer of the context;
//!   `auth/basic-cimd` a Client ID Metadata Document URL; the others register dynamically;
//!   the 2025-03-26 ones also get that revision's discovery fallback.
//! - Extensions this client does not implement (DPoP, workload identity, enterprise-managed
//!   authorization) fail at once, naming the scenario.

use std::sync::Arc;

use mcp_auth::oauth::{HeadlessHandler, OAuthClient, PrivateKey};
use mcp_auth::{AuthLayer, CachedTokenSource, Secret, TokenSource};
use mcp_transport::HttpTransport;
use mcp_transport::http::{HttpClient, HttpConfig, HttpTransportConfig};
use serde_json::Value;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The client ID metadata document URL the suite's `auth/basic-cimd` expects.
const CIMD_URL: &str = "https://conformance-test.local/client-metadata.json";

/// Extension scenarios without a token source here (see `xtask/src/conformance.rs`).
const UNSUPPORTED: &[&str] = &[
    "auth/dpop",
    "auth/dpop-nonce",
    "auth/wif-jwt-bearer",
    "auth/enterprise-managed-authorization",
    "auth/cross-app-access-complete-flow",
];

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
        other if UNSUPPORTED.contains(&other) => {
            return Err(
                format!("authorization extension scenario {other:?} is not supported").into(),
            );
        }
        other => {
            let handler = HeadlessHandler::new().http(pool.clone());
            let mut builder = OAuthClient::authorization_code(handler)
                .server_url(url)
                .client_name("mcp-conformance-client")
                .http(pool.clone());
            builder = match other {
                "auth/pre-registration" => {
                    let builder = builder
                        .client_id(field("client_id")?)
                        .client_secret(Secret::new(field("client_secret")?));
                    // The alpha suite names the issuer the credentials belong to; 0.1.16 not.
                    match field("issuer") {
                        Ok(issuer) => builder.issuer(issuer),
                        Err(_) => builder,
                    }
                }
                "auth/basic-cimd" => builder.client_metadata_url(CIMD_URL),
                _ if other.starts_with("auth/2025-03-26-") => builder.legacy_discovery(true),
                _ => builder,
            };
            Arc::new(builder.build()?)
        }
    };
    let layer = AuthLayer::new(CachedTokenSource::new(source));
    let service = tower::ServiceBuilder::new().layer(layer).service(pool);
    Ok(HttpTransport::with_service(
        url,
        HttpTransportConfig::default(),
        service,
    )?)
}
