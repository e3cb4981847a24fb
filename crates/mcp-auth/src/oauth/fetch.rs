//! The HTTP exchanges of the OAuth client: one request, a deadline over the whole exchange
//! (response head and body), and a cap on the body so a hostile endpoint cannot exhaust memory.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use mcp_transport::BoxError;
use mcp_transport::http::{HttpRequest, HttpService};
use tower::ServiceExt;
use url::Url;

use crate::Error;
use crate::error::Kind;

/// An answer read in full (within the size cap).
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    /// True if the `Content-Type` names JSON (`application/json`, `application/*+json`).
    pub(crate) fn is_json(&self) -> bool {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || v.ends_with("+json"))
    }
}

/// Why an exchange produced no [`Reply`].
pub(crate) enum FetchError {
    /// The service failed (connection, TLS, a layer's error).
    Transport(BoxError),
    /// The deadline passed.
    Timeout(Duration),
    /// The body was larger than the cap.
    TooLarge(usize),
    /// The request could not be built (a URL the `http` crate refuses).
    BadRequest(http::Error),
}

impl FetchError {
    /// The crate error: `Unreachable` for transport failures and timeouts, `kind` for a body
    /// over the cap. `what` names the exchange and its URL.
    pub(crate) fn into_error(self, kind: Kind, what: &str) -> Error {
        match self {
            FetchError::Transport(e) => Error::new(Kind::Unreachable)
                .with_context(format!("{what}: the request failed"))
                .with_source(e as BoxError),
            FetchError::Timeout(after) => Error::new(Kind::Unreachable).with_context(format!(
                "{what}: no complete answer within {} ms",
                after.as_millis()
            )),
            FetchError::TooLarge(cap) => {
                Error::new(kind).with_context(format!("{what}: the answer exceeds {cap} bytes"))
            }
            FetchError::BadRequest(e) => Error::new(Kind::Config)
                .with_context(format!("{what}: the URL cannot be requested"))
                .with_source(e),
        }
    }
}

/// Sends requests through the configured [`HttpService`] with a deadline and a size cap.
#[derive(Clone)]
pub(crate) struct Fetcher {
    service: HttpService,
    timeout: Duration,
    max_body: usize,
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const FORM: HeaderValue = HeaderValue::from_static("application/x-www-form-urlencoded");

impl Fetcher {
    pub(crate) fn new(service: HttpService, timeout: Duration, max_body: usize) -> Self {
        Self {
            service,
            timeout,
            max_body,
        }
    }

    /// `GET url` with `Accept: application/json`.
    pub(crate) async fn get(&self, url: &Url) -> Result<Reply, FetchError> {
        let request = http::Request::builder()
            .method(Method::GET)
            .uri(url.as_str())
            .header(ACCEPT, JSON)
            .body(Bytes::new())
            .map_err(FetchError::BadRequest)?;
        self.send(request).await
    }

    /// `POST url` with a form body and extra headers (the client authentication).
    pub(crate) async fn post_form(
        &self,
        url: &Url,
        body: String,
        headers: HeaderMap,
    ) -> Result<Reply, FetchError> {
        let mut request = http::Request::builder()
            .method(Method::POST)
            .uri(url.as_str())
            .header(ACCEPT, JSON)
            .header(CONTENT_TYPE, FORM)
            .body(Bytes::from(body))
            .map_err(FetchError::BadRequest)?;
        request.headers_mut().extend(headers);
        self.send(request).await
    }

    /// `POST url` with a JSON body (RFC 7591 client registration).
    pub(crate) async fn post_json(&self, url: &Url, body: String) -> Result<Reply, FetchError> {
        let request = http::Request::builder()
            .method(Method::POST)
            .uri(url.as_str())
            .header(ACCEPT, JSON)
            .header(CONTENT_TYPE, JSON)
            .body(Bytes::from(body))
            .map_err(FetchError::BadRequest)?;
        self.send(request).await
    }

    /// `GET url` as a browser would ask for a page (`Accept: text/html`), with no credentials
    /// of any kind: the headless authorization step. Redirects are not followed (the service
    /// never follows them); the answer comes back as it is.
    pub(crate) async fn get_page(&self, url: &Url) -> Result<Reply, FetchError> {
        let request = http::Request::builder()
            .method(Method::GET)
            .uri(url.as_str())
            .header(ACCEPT, HeaderValue::from_static("text/html"))
            .body(Bytes::new())
            .map_err(FetchError::BadRequest)?;
        self.send(request).await
    }

    async fn send(&self, request: HttpRequest) -> Result<Reply, FetchError> {
        let exchange = async {
            let response = self
                .service
                .clone()
                .oneshot(request)
                .await
                .map_err(|e: BoxError| FetchError::Transport(e))?;
            let (parts, body) = response.into_parts();
            let declared = parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > self.max_body as u64) {
                return Err(FetchError::TooLarge(self.max_body));
            }
            let mut body = body;
            let mut buf = BytesMut::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e: BoxError| FetchError::Transport(e))?;
                if let Ok(data) = frame.into_data() {
                    if buf.len().saturating_add(data.len()) > self.max_body {
                        return Err(FetchError::TooLarge(self.max_body));
                    }
                    buf.extend_from_slice(&data);
                }
            }
            let body = buf.freeze();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout(self.timeout))?
    }
}

/// Scheme, host, port and path of a URL: no credentials, query or fragment (they may carry
/// secrets), for messages and logs.
pub(crate) fn shown(url: &Url) -> String {
    let mut out = format!("{}://", url.scheme());
    if let Some(host) = url.host_str() {
        out.push_str(host);
    }
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path());
    out
}

/// Parses and checks an endpoint URL: `http` or `https`, a host, no credentials, and plain
/// `http` only to loopback hosts unless `allow_insecure_http`. `what` names the setting or
/// document field the URL came from.
pub(crate) fn endpoint_url(
    value: &str,
    what: &str,
    allow_insecure_http: bool,
    kind: Kind,
) -> Result<Url, Error> {
    let url = Url::parse(value.trim()).map_err(|e| {
        // Show only what precedes any query: it may hold secrets.
        let before = value.split(['?', '#']).next().unwrap_or_default();
        let before = before.rsplit_once('@').map_or(before, |(_, host)| host);
        Error::new(kind)
            .with_context(format!("{what} `{before}` is not a valid URL"))
            .with_source(e)
    })?;
    check_endpoint(&url, what, allow_insecure_http, kind)?;
    Ok(url)
}

/// The checks of [`endpoint_url`] on a parsed URL.
pub(crate) fn check_endpoint(
    url: &Url,
    what: &str,
    allow_insecure_http: bool,
    kind: Kind,
) -> Result<(), Error> {
    let fail =
        |why: &str| Err(Error::new(kind).with_context(format!("{what} `{}` {why}", shown(url))));
    if url.host_str().is_none_or(str::is_empty) {
        return fail("has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return fail("carries credentials (user:password@)");
    }
    if url.fragment().is_some() {
        return fail("has a fragment");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http || is_loopback(url) => Ok(()),
        "http" => fail(
            "uses plain http to a non-loopback host: use https, or allow_insecure_http(true) to \
             send credentials unencrypted",
        ),
        _ => fail("is not an http or https URL"),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_checks() {
        let ok = |s: &str| endpoint_url(s, "token endpoint", false, Kind::Config).is_ok();
        assert!(ok("https://as.example/token"));
        assert!(ok("http://127.0.0.1:8080/token"));
        assert!(ok("http://localhost/token"));
        assert!(ok("http://[::1]:1/token"));
        assert!(!ok("http://as.example/token"));
        assert!(!ok("ftp://as.example/token"));
        assert!(!ok("https://as.example/token#frag"));
        assert!(!ok("not a url"));
        let err = endpoint_url(
            "https://u:hunter2@as.example/t?k=s3cr3t",
            "x",
            false,
            Kind::Config,
        )
        .err()
        .map(|e| format!("{e} {e:?}"))
        .unwrap_or_default();
        assert!(!err.contains("hunter2") && !err.contains("s3cr3t"), "{err}");
        assert!(endpoint_url("http://as.example/t", "x", true, Kind::Config).is_ok());
    }

    #[test]
    fn shown_drops_query_and_credentials() {
        let url = Url::parse("https://u:p@h.example:8443/a/b?code=s3cr3t#f").expect("url");
        assert_eq!(shown(&url), "https://h.example:8443/a/b");
    }
}
