//! The exporters' HTTP client: hyper-util with rustls (ring), on a runtime of its own.
//!
//! Exports run on the SDK's background threads (and the metrics reader's), outside any
//! application runtime, and must never compete with or deadlock against it: the client
//! owns a one-thread Tokio runtime and every request is spawned there, so `send_bytes`
//! can be awaited from any executor. Each request has a deadline (default 10 s) and the
//! response body is capped (1 MiB); the exporter's own retries sit above this.
//!
//! Loopback endpoints may be plain `http` (tests, local collectors). The Application
//! Insights exporter always writes `https`; for an ingestion endpoint the connection
//! string gave as `http://127.0.0.1:…` the request is sent as `http` — only for loopback
//! hosts, so a production endpoint is never downgraded.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::HttpError;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The HTTP client the exporters send through.
#[derive(Clone)]
pub(crate) struct ExportClient {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<Connector, Full<Bytes>>,
    handle: tokio::runtime::Handle,
    timeout: Duration,
    /// Loopback `host:port`s that are reached over plain http.
    plain_http: Vec<String>,
    /// Stops the runtime thread when the last clone is dropped.
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = stop.send(());
        }
    }
}

impl fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportClient")
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl ExportClient {
    /// Starts the client's runtime thread. `plain_http` lists loopback origins
    /// (`http://127.0.0.1:8080`) to reach without TLS.
    pub(crate) fn new(timeout: Duration, plain_http: &[Uri]) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("azure-telemetry-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let _ = stop_rx.await;
                });
                runtime.shutdown_background();
            })?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
            .map_err(std::io::Error::other)?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(2)
            .build(https);
        let plain_http = plain_http
            .iter()
            .filter(|u| u.scheme_str() == Some("http") && is_loopback(u.host().unwrap_or("")))
            .filter_map(|u| u.authority().map(|a| a.as_str().to_ascii_lowercase()))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                handle,
                timeout,
                plain_http,
                stop: Mutex::new(Some(stop_tx)),
            }),
        })
    }

    /// The runtime requests run on (exports are bounded with its timers).
    pub(crate) fn handle(&self) -> tokio::runtime::Handle {
        self.inner.handle.clone()
    }

    fn rewrite(&self, uri: &Uri) -> Uri {
        let Some(authority) = uri.authority() else {
            return uri.clone();
        };
        if uri.scheme_str() != Some("https")
            || !self
                .inner
                .plain_http
                .iter()
                .any(|a| a.eq_ignore_ascii_case(authority.as_str()))
        {
            return uri.clone();
        }
        let mut parts = uri.clone().into_parts();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (mut parts, body) = request.into_parts();
        parts.uri = self.rewrite(&parts.uri);
        let request = Request::from_parts(parts, Full::new(body));
        let inner = Arc::clone(&self.inner);
        let task = self.inner.handle.spawn(async move {
            let exchange = async {
                let response = inner.client.request(request).await?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_RESPONSE_BYTES)
                    .collect()
                    .await?
                    .to_bytes();
                Ok::<_, HttpError>(Response::from_parts(parts, body))
            };
            match tokio::time::timeout(inner.timeout, exchange).await {
                Ok(result) => result,
                Err(_) => {
                    Err(format!("telemetry upload timed out after {:?}", inner.timeout).into())
                }
            }
        });
        match task.await {
            Ok(result) => result,
            Err(e) => Err(format!("telemetry upload task ended: {e}").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_loopback_origins_are_downgraded() {
        let client = ExportClient::new(
            Duration::from_secs(1),
            &[
                "http://127.0.0.1:8080".parse().unwrap(),
                "http://example.com:80".parse().unwrap(),
            ],
        )
        .unwrap();
        let rewritten = client.rewrite(&"https://127.0.0.1:8080/v2/track".parse().unwrap());
        assert_eq!(rewritten.to_string(), "http://127.0.0.1:8080/v2/track");
        for untouched in [
            "https://127.0.0.1:9090/v2/track",
            "https://example.com:80/v2/track",
            "https://dc.services.visualstudio.com/v2/track",
        ] {
            assert_eq!(
                client.rewrite(&untouched.parse().unwrap()).to_string(),
                untouched
            );
        }
    }
}
