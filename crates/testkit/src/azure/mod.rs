//! Faithful fakes of the Azure services `azure-secrets` talks to, serving real HTTP/1.1 on
//! loopback (`127.0.0.1:0`):
//!
//! - [`FakeKeyVault`]: the Key Vault secrets data plane (`GET /secrets/{name}[/{version}]`),
//!   with the bearer challenge, versions, disabled secrets, throttling and the real error
//!   bodies.
//! - [`FakeManagedIdentity`]: the App Service (`IDENTITY_ENDPOINT` + `X-IDENTITY-HEADER`) and
//!   IMDS (`Metadata: true`) managed identity token endpoints.
//! - [`FakeEntra`]: the Microsoft Entra v2 token endpoint for client secrets and federated
//!   (workload identity) assertions.
//!
//! The official SDK clients insist on `https://` URLs with fixed hosts; tests give them an HTTP
//! transport that rewrites those URLs to the fake's `http://127.0.0.1:port`. So every fake
//! answers whatever the `Host` header says, and nothing here ever sends traffic anywhere (in
//! particular never to `169.254.169.254`).
//!
//! ```
//! use testkit::azure::{FakeEntra, FakeKeyVault, FakeManagedIdentity};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let vault = FakeKeyVault::start().await?;
//! let version = vault.set_secret("db-password", "hunter2");
//! assert_eq!(version.len(), 32);
//! assert!(vault.base_url().starts_with("http://127.0.0.1:"));
//!
//! let imds = FakeManagedIdentity::imds().await?;
//! assert!(imds.endpoint().ends_with("/metadata/identity/oauth2/token"));
//!
//! let entra = FakeEntra::start().await?;
//! entra.register_secret("tenant-a", "client-a", "s3cret");
//! assert!(entra.authority().starts_with("http://127.0.0.1:"));
//! # Ok(()) }
//! ```
//!
//! Dropping a fake stops its server and every connection it has open.

pub mod app_insights;
pub mod entra;
pub mod key_vault;
pub mod managed_identity;

pub use app_insights::{DetachedFakeAppInsights, FakeAppInsights};
pub use entra::FakeEntra;
pub use key_vault::FakeKeyVault;
pub use managed_identity::FakeManagedIdentity;

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A token one of the token fakes ([`FakeManagedIdentity`], [`FakeEntra`]) handed out, so a
/// test can make [`FakeKeyVault`] accept exactly it
/// ([`require_token`](FakeKeyVault::require_token)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuedToken {
    /// The token itself (random hex; fake, so safe to log).
    pub access_token: String,
    /// The `resource` it was asked for (managed identity), or the `scope` (Entra, e.g.
    /// `https://vault.azure.net/.default`).
    pub resource: String,
    /// The `client_id` the request named (for managed identity: only if it named one).
    pub client_id: Option<String>,
    /// The tenant in the request path (Entra only).
    pub tenant: Option<String>,
    /// When it expires, in unix seconds.
    pub expires_on: u64,
}

/// One request as the shared server hands it to a fake.
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Req {
    /// The value of header `name`, if present and visible ASCII.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The decoded query parameters, in order.
    pub(crate) fn query(&self) -> Vec<(String, String)> {
        self.uri.query().map(parse_form).unwrap_or_default()
    }

    /// The first query parameter called `name`.
    pub(crate) fn query_param(&self, name: &str) -> Option<String> {
        self.query()
            .into_iter()
            .find_map(|(k, v)| (k == name).then_some(v))
    }
}

pub(crate) type Reply = http::Response<Full<Bytes>>;
type Handler = Arc<dyn Fn(Req) -> Reply + Send + Sync>;

/// A running loopback server; dropping it stops the accept loop and every connection.
pub(crate) struct Server {
    addr: SocketAddr,
    task: tokio::task::AbortHandle,
}

impl Server {
    /// Binds `127.0.0.1:0` and answers every request with `handler`.
    pub(crate) async fn start(
        handler: impl Fn(Req) -> Reply + Send + Sync + 'static,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let handler: Handler = Arc::new(handler);
        let task = tokio::spawn(accept_loop(listener, handler)).abort_handle();
        Ok(Self { addr, task })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Dropping the accept loop's `JoinSet` aborts every connection task.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, handler: Handler) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, handler.clone()));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "azure fake: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(stream: TcpStream, handler: Handler) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| handle(req, handler.clone()));
    if let Err(e) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(error = %e, "azure fake: connection ended with an error");
    }
}

async fn handle(req: http::Request<Incoming>, handler: Handler) -> Result<Reply, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::debug!(error = %e, "azure fake: could not read a request body");
            return Ok(text_reply(
                StatusCode::BAD_REQUEST,
                "could not read the request body",
            ));
        }
    };
    Ok(handler(Req {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body,
    }))
}

/// A JSON answer with `Content-Type: application/json; charset=utf-8`.
pub(crate) fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let mut resp = http::Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

fn text_reply(status: StatusCode, body: &'static str) -> Reply {
    let mut resp = http::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Seconds since the unix epoch, now.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2 * words * 8` random lowercase hex digits (not cryptographic; fakes only need uniqueness).
pub(crate) fn random_hex(words: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = RandomState::new();
    let mut out = String::with_capacity(words * 16);
    for _ in 0..words {
        let mut h = state.build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Parses `application/x-www-form-urlencoded` (query strings and form bodies): `+` is a space,
/// `%XX` is a byte; invalid escapes are kept as they are.
pub(crate) fn parse_form(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
pub(crate) mod test_http {
    //! Raw HTTP/1.1 over a fresh loopback connection, for the fakes' tests.

    use std::net::SocketAddr;

    use serde_json::Value;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A parsed response.
    #[derive(Debug)]
    pub(crate) struct Resp {
        pub(crate) status: u16,
        pub(crate) headers: Vec<(String, String)>,
        pub(crate) body: String,
    }

    impl Resp {
        pub(crate) fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        pub(crate) fn json(&self) -> Value {
            serde_json::from_str(&self.body).expect("JSON body")
        }
    }

    /// Sends `method target` with `headers` (and `Host: host`) and `body`; reads to EOF.
    pub(crate) async fn send(
        addr: SocketAddr,
        method: &str,
        target: &str,
        host: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Resp {
        let fut = async {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
            for (k, v) in headers {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            req.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ));
            stream.write_all(req.as_bytes()).await.expect("write");
            let mut raw = String::new();
            stream.read_to_string(&mut raw).await.expect("read");
            raw
        };
        let raw = tokio::time::timeout(std::time::Duration::from_secs(20), fut)
            .await
            .expect("answer in time");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a full response");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Resp {
            status,
            headers,
            body: body.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_handles_escapes_and_plus() {
        assert_eq!(
            parse_form("a=b%2Fc+d&scope=https%3A%2F%2Fvault.azure.net%2F.default&e&bad=%zz%4"),
            vec![
                ("a".to_string(), "b/c d".to_string()),
                (
                    "scope".to_string(),
                    "https://vault.azure.net/.default".to_string()
                ),
                ("e".to_string(), String::new()),
                ("bad".to_string(), "%zz%4".to_string()),
            ]
        );
    }

    #[test]
    fn random_hex_is_hex_and_unique() {
        let a = random_hex(2);
        let b = random_hex(2);
        assert_eq!(a.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }
}
