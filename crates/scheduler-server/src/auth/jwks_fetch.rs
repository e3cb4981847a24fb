//! Fetching an external issuer's JWK Set document over HTTPS: a hyper-util legacy client on
//! hyper-rustls (the `ring` provider), one `GET` per fetch with a total time limit, no
//! redirects, no connection pooling (fetches are rare), and a size cap on the answer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, USER_AGENT};
use http::{HeaderValue, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::state::is_loopback;
use crate::error::{Error, Kind};

/// Largest JWK Set document read (1 MiB); a larger answer is a failed fetch.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Why a fetch failed: a short description with the URL, never a response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchError(pub(crate) String);

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A boxed, sendable future.
pub(crate) type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<String, FetchError>> + Send + 'a>>;

/// Where a JWK Set document comes from (the HTTPS fetcher; tests script their own).
pub(crate) trait JwksSource: Send + Sync {
    /// Fetches the document's text.
    fn fetch(&self) -> FetchFuture<'_>;
}

/// Fetches a JWK Set document from a URL.
pub(crate) struct HttpJwksSource {
    uri: Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

impl HttpJwksSource {
    /// A fetcher for `url` (`https://`, or `http://` on a loopback host only). `ca_pem`
    /// replaces the public web PKI roots with the given CA certificates (PEM). `timeout`
    /// bounds a whole fetch: connecting, TLS, the answer and its body.
    pub(crate) fn new(url: &str, ca_pem: Option<&str>, timeout: Duration) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::new(Kind::Config).with_context(format!("auth.external.jwks_uri: {why}"))
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a valid absolute URL"))?;
        let host = uri.host().ok_or_else(|| bad("the URL has no host"))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if is_loopback(host) => {}
            Some("http") => return Err(bad("must use https (plain http only on loopback)")),
            _ => return Err(bad("must be an https URL")),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = HttpsConnectorBuilder::new();
        let builder = match ca_pem {
            None => builder
                .with_provider_and_webpki_roots(provider)
                .map_err(|e| {
                    Error::new(Kind::Config)
                        .with_context("auth.external: TLS setup failed")
                        .with_source(e)
                })?,
            Some(pem) => builder.with_tls_config(tls_with_roots(provider, pem)?),
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Ok(Self {
            uri,
            client,
            timeout,
        })
    }

    async fn get(&self) -> Result<String, FetchError> {
        let fail = |why: String| FetchError(format!("GET {}: {why}", self.uri));
        let request = http::Request::get(self.uri.clone())
            .header(
                ACCEPT,
                HeaderValue::from_static("application/jwk-set+json, application/json"),
            )
            .header(
                USER_AGENT,
                HeaderValue::from_static(concat!("scheduler-server/", env!("CARGO_PKG_VERSION"))),
            )
            .body(Empty::new())
            .map_err(|e| fail(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(fail(format!("answered {status}")));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    fail(format!(
                        "the document is larger than {MAX_JWKS_BYTES} bytes"
                    ))
                } else {
                    fail(format!("reading the body: {e}"))
                }
            })?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| fail("the document is not UTF-8".into()))
    }
}

impl JwksSource for HttpJwksSource {
    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(async move {
            tokio::time::timeout(self.timeout, self.get())
                .await
                .unwrap_or_else(|_| {
                    Err(FetchError(format!(
                        "GET {}: no complete answer within {:?}",
                        self.uri, self.timeout
                    )))
                })
        })
    }
}

/// A TLS client configuration trusting only the CA certificates in `pem`.
fn tls_with_roots(
    provider: Arc<rustls::crypto::CryptoProvider>,
    pem: &str,
) -> Result<rustls::ClientConfig, Error> {
    let bad = |why: String| {
        Error::new(Kind::Config).with_context(format!("auth.external.jwks_ca_file: {why}"))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| bad(format!("not PEM certificates: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("no CERTIFICATE in the PEM text".into()));
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// `e` and its sources, `: `-separated (hyper's own message is often just "client error").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_https_except_on_loopback() {
        let t = Duration::from_secs(1);
        assert!(HttpJwksSource::new("https://login.example/keys", None, t).is_ok());
        assert!(HttpJwksSource::new("http://127.0.0.1:9/keys", None, t).is_ok());
        assert!(HttpJwksSource::new("http://localhost:9/keys", None, t).is_ok());
        assert!(HttpJwksSource::new("http://[::1]:9/keys", None, t).is_ok());
        for bad in ["http://login.example/keys", "ftp://x/keys", "/keys", "nope"] {
            let err = HttpJwksSource::new(bad, None, t).err().expect(bad);
            assert!(err.to_string().contains("auth.external.jwks_uri"), "{err}");
        }
        let err = HttpJwksSource::new("https://x/keys", Some("not pem"), t)
            .err()
            .expect("no certificate");
        assert!(err.to_string().contains("jwks_ca_file"), "{err}");
    }
}
