//! [`AzureHttpClient`]: the HTTP client the Azure SDK clients of this crate use.
//!
//! The SDK's own client is reqwest, whose TLS features bring aws-lc-rs next to the workspace's
//! ring provider (rustls then cannot pick one). This one is hyper-util's pooled client with
//! rustls on ring and Mozilla's roots, with a timeout per request (default 10 s, so no call
//! to Azure can hang) and optional origin redirects: `https://kv.vault.azure.net` →
//! `http://127.0.0.1:port` sends a vault's traffic to a loopback fake in tests (or to a
//! private endpoint), and is how tests reach a fake IMDS without any packet going to
//! 169.254.169.254.

use std::sync::Arc;
use std::time::Duration;

use azure_core::http::headers::Headers;
use azure_core::http::{AsyncRawResponse, Body, Request, StatusCode, Transport};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::{Error, Kind};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Largest response body read (Key Vault secrets are at most 25 KB; token answers smaller).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// An `azure_core` HTTP client over hyper-util and rustls (ring); see the [module docs](self).
#[derive(Clone)]
pub struct AzureHttpClient {
    client: Client<Connector, Full<Bytes>>,
    redirects: Arc<Vec<(String, String)>>,
    timeout: Duration,
}

impl std::fmt::Debug for AzureHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureHttpClient")
            .field("redirects", &self.redirects)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AzureHttpClient {
    /// A client with Mozilla's roots, a 10 s timeout per request and no redirects.
    pub fn new() -> Result<Self, Error> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
            .map_err(|e| {
                Error::new(Kind::Transport)
                    .with_context("TLS setup failed")
                    .with_source(e)
            })?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(https),
            redirects: Arc::new(Vec::new()),
            timeout: Duration::from_secs(10),
        })
    }

    /// Sends requests for `from` (an origin: `scheme://host[:port]`) to `to` instead, keeping
    /// the path and query. The `Host` header follows the new target.
    #[must_use]
    pub fn redirect(mut self, from: &str, to: &str) -> Self {
        Arc::make_mut(&mut self.redirects).push((
            from.trim_end_matches('/').to_owned(),
            to.trim_end_matches('/').to_owned(),
        ));
        self
    }

    /// The most time one request may take, answer body included (default 10 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// This client as the SDK's `ClientOptions::transport`.
    pub fn transport(&self) -> Transport {
        Transport::new(Arc::new(self.clone()))
    }

    fn target(&self, url: &str) -> String {
        for (from, to) in self.redirects.iter() {
            if let Some(rest) = url.strip_prefix(from.as_str())
                && (rest.is_empty() || rest.starts_with(['/', '?']))
            {
                return format!("{to}{rest}");
            }
        }
        url.to_owned()
    }

    async fn send(&self, request: &Request) -> Result<AsyncRawResponse, String> {
        let url = self.target(request.url().as_str());
        let mut builder = http::Request::builder()
            .method(request.method().as_str())
            .uri(&url);
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let body = match request.body() {
            Body::Bytes(bytes) => bytes.clone(),
            Body::SeekableStream(_) => {
                return Err("streamed request bodies are not supported".to_owned());
            }
        };
        let hyper_request = builder
            .body(Full::new(body))
            .map_err(|e| format!("bad request: {e}"))?;
        let response = self
            .client
            .request(hyper_request)
            .await
            .map_err(|e| error_chain(&e))?;
        let status = StatusCode::from(response.status().as_u16());
        let mut headers = Headers::new();
        for (name, value) in response.headers() {
            if let Ok(v) = value.to_str() {
                headers.insert(name.as_str().to_owned(), v.to_owned());
            }
        }
        let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok(AsyncRawResponse::from_bytes(status, headers, body))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[async_trait::async_trait]
impl azure_core::http::HttpClient for AzureHttpClient {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        // The URL (never a header: they carry tokens) names what failed.
        let shown = {
            let u = request.url();
            format!(
                "{} {}{}",
                request.method(),
                u.origin().ascii_serialization(),
                u.path()
            )
        };
        match tokio::time::timeout(self.timeout, self.send(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(why)) => Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Io,
                format!("{shown}: {why}"),
            )),
            Err(_) => Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Io,
                format!("{shown}: no answer within {} ms", self.timeout.as_millis()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_match_whole_origins_only() {
        let c = AzureHttpClient::new()
            .unwrap()
            .redirect("https://kv.vault.azure.net", "http://127.0.0.1:9");
        assert_eq!(
            c.target("https://kv.vault.azure.net/secrets/a?api-version=1"),
            "http://127.0.0.1:9/secrets/a?api-version=1"
        );
        assert_eq!(c.target("https://kv.vault.azure.net"), "http://127.0.0.1:9");
        assert_eq!(
            c.target("https://kv.vault.azure.net.evil.example/x"),
            "https://kv.vault.azure.net.evil.example/x"
        );
    }
}
