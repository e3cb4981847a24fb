//! The user-agent step of the authorization-code grant: the [`AuthorizationHandler`] trait and
//! its two implementations, [`HeadlessHandler`] (one `GET`, the redirect read from `Location`)
//! and [`LoopbackHandler`] (a browser, and a one-shot listener on a loopback redirect port).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::LOCATION;
use mcp_transport::BoxError;
use mcp_transport::http::{HttpClient, HttpConfig, HttpRequest, HttpResponse, HttpService};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tower::util::BoxCloneSyncService;
use url::Url;

use crate::error::Kind;
use crate::{BoxFuture, Error};

use super::fetch::{Fetcher, check_endpoint, shown};
use super::{DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT};

/// What the user agent is sent to do: one authorization request of the authorization-code
/// grant, built and validated by the [`OAuthClient`](super::OAuthClient).
///
/// `Debug` shows the endpoint, the redirect URI and the issuer, not the query (its `state`
/// is what ties the answer to this request).
#[derive(Clone)]
#[non_exhaustive]
pub struct AuthorizationRequest {
    /// The authorization URL: the endpoint with `response_type=code`, `client_id`,
    /// `redirect_uri`, `state`, `code_challenge` (S256), `scope` and `resource`.
    pub url: Url,
    /// The authorization server's `authorization_endpoint` (from its validated metadata).
    pub authorization_endpoint: Url,
    /// Where the authorization server sends the user agent back.
    pub redirect_uri: Url,
    /// The authorization server's issuer identifier.
    pub issuer: String,
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field(
                "authorization_endpoint",
                &shown(&self.authorization_endpoint),
            )
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Takes the user agent through one authorization request and hands back where the
/// authorization server redirected it: the redirect URI with `code`, `state` and (RFC 9207)
/// `iss`, or with `error`.
///
/// The [`OAuthClient`](super::OAuthClient) checks everything in the answer (the address, the
/// `state`, the `iss`, the `code`); a handler only carries it. Two come with this crate:
/// [`LoopbackHandler`] for people (a browser and a loopback redirect port) and
/// [`HeadlessHandler`] for authorization servers that approve without a person (tests, the
/// conformance suite, pre-consented deployments).
///
/// ```
/// use mcp_auth::oauth::{AuthorizationHandler, AuthorizationRequest};
/// use mcp_auth::{BoxFuture, Error};
/// use url::Url;
///
/// /// Hands the URL to another part of the application and waits for its callback.
/// struct FromUi {
///     redirect: Url,
/// }
///
/// impl AuthorizationHandler for FromUi {
///     fn redirect_uri(&self) -> Url {
///         self.redirect.clone()
///     }
///
///     fn authorize<'a>(&'a self, request: &'a AuthorizationRequest) -> BoxFuture<'a, Result<Url, Error>> {
///         Box::pin(async move {
///             // ... show request.url, wait for the redirect ...
///             Err(Error::other("not wired up in this example"))
///         })
///     }
/// }
/// ```
pub trait AuthorizationHandler: Send + Sync + 'static {
    /// The redirect URI to register and to send in every authorization request. It must be
    /// the same on every call (authorization servers compare it exactly).
    fn redirect_uri(&self) -> Url;

    /// Sends the user agent to `request.url` and returns the URL it was redirected to.
    fn authorize<'a>(
        &'a self,
        request: &'a AuthorizationRequest,
    ) -> BoxFuture<'a, Result<Url, Error>>;
}

impl<T: AuthorizationHandler + ?Sized> AuthorizationHandler for Arc<T> {
    fn redirect_uri(&self) -> Url {
        (**self).redirect_uri()
    }

    fn authorize<'a>(
        &'a self,
        request: &'a AuthorizationRequest,
    ) -> BoxFuture<'a, Result<Url, Error>> {
        (**self).authorize(request)
    }
}

/// The error of a handler whose authorization request got no grant.
fn denied(context: String) -> Error {
    Error::new(Kind::AuthorizationDenied).with_context(context)
}

/// The redirect URI of both handlers when none is configured.
const DEFAULT_REDIRECT: &str = "http://127.0.0.1/callback";

/// An [`AuthorizationHandler`] without a person: it sends one `GET` to the authorization URL
/// itself, does not follow the redirect, and returns the `Location` it was given.
///
/// Only for authorization servers that approve without a login or consent page: test
/// servers, the MCP conformance suite, deployments where consent was given beforehand. A
/// server that answers with a page instead of a redirect fails the flow with
/// [`Error::is_authorization_denied`].
///
/// The request carries no credentials of any kind (no `Authorization`, no cookies), and it
/// only ever goes to the authorization server's own `authorization_endpoint`: an
/// authorization URL anywhere else is refused.
///
/// ```
/// use mcp_auth::oauth::{HeadlessHandler, OAuthClient};
///
/// let client = OAuthClient::authorization_code(HeadlessHandler::new())
///     .server_url("https://mcp.example.com/mcp")
///     .build()?;
/// # let _ = client;
/// # Ok::<(), mcp_auth::Error>(())
/// ```
#[derive(Clone)]
pub struct HeadlessHandler {
    redirect_uri: Url,
    http: Option<HttpService>,
    timeout: Duration,
}

impl HeadlessHandler {
    /// A handler with the redirect URI `http://127.0.0.1/callback` (nothing listens there:
    /// the redirect is read, not followed), a new HTTP client per authorization and the
    /// default 30 s deadline.
    pub fn new() -> Self {
        Self {
            redirect_uri: Url::parse(DEFAULT_REDIRECT).expect("the default redirect URI parses"),
            http: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The redirect URI to register and send.
    ///
    /// # Errors
    ///
    /// [`Error::is_config`] if `uri` is not an absolute URL without a fragment.
    pub fn redirect_uri(mut self, uri: &str) -> Result<Self, Error> {
        self.redirect_uri = parse_redirect_uri(uri)?;
        Ok(self)
    }

    /// The HTTP stack for the `GET` (default: a new pooled [`HttpClient`] for each
    /// authorization). It must not follow redirects; [`HttpClient`] does not.
    #[must_use]
    pub fn http<S>(mut self, service: S) -> Self
    where
        S: tower_service::Service<HttpRequest, Response = HttpResponse, Error = BoxError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.http = Some(BoxCloneSyncService::new(service));
        self
    }

    /// Deadline of the `GET`, answer included. Default 30 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn get(&self, request: &AuthorizationRequest) -> Result<Url, Error> {
        let url = &request.url;
        let endpoint = &request.authorization_endpoint;
        let same_endpoint = url.scheme() == endpoint.scheme()
            && url.host() == endpoint.host()
            && url.port_or_known_default() == endpoint.port_or_known_default()
            && url.path() == endpoint.path();
        if !same_endpoint {
            return Err(Error::new(Kind::Config).with_context(format!(
                "the headless handler only requests the authorization endpoint `{}`, not `{}`",
                shown(endpoint),
                shown(url)
            )));
        }
        // http(s) only, no user:password@, no fragment; plain http was already allowed or
        // refused by the client's settings when the endpoint was validated.
        check_endpoint(url, "authorization URL", true, Kind::Config)?;
        let service = match &self.http {
            Some(service) => service.clone(),
            None => {
                BoxCloneSyncService::new(HttpClient::new(&HttpConfig::default()).map_err(|e| {
                    Error::new(Kind::Config)
                        .with_context("the HTTP client cannot be built")
                        .with_source(e)
                })?)
            }
        };
        let fetcher = Fetcher::new(service, self.timeout, DEFAULT_MAX_RESPONSE_BYTES);
        let what = format!("authorization request to {}", shown(endpoint));
        tracing::debug!(authorization_endpoint = %shown(endpoint), "sending the authorization request (headless)");
        let reply = fetcher
            .get_page(url)
            .await
            .map_err(|e| e.into_error(Kind::AuthorizationDenied, &what))?;
        if !reply.status.is_redirection() {
            return Err(denied(format!(
                "{what}: HTTP {} instead of a redirect (the server wants a person: use an \
                 interactive handler such as LoopbackHandler)",
                reply.status
            )));
        }
        let location = reply
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::new(Kind::InvalidAuthorizationResponse).with_context(format!(
                    "{what}: HTTP {} without a readable Location",
                    reply.status
                ))
            })?;
        url.join(location).map_err(|e| {
            Error::new(Kind::InvalidAuthorizationResponse)
                .with_context(format!("{what}: the Location is not a URL"))
                .with_source(e)
        })
    }
}

impl Default for HeadlessHandler {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HeadlessHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadlessHandler")
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AuthorizationHandler for HeadlessHandler {
    fn redirect_uri(&self) -> Url {
        self.redirect_uri.clone()
    }

    fn authorize<'a>(
        &'a self,
        request: &'a AuthorizationRequest,
    ) -> BoxFuture<'a, Result<Url, Error>> {
        Box::pin(self.get(request))
    }
}

fn parse_redirect_uri(uri: &str) -> Result<Url, Error> {
    let url = Url::parse(uri.trim()).map_err(|e| {
        Error::new(Kind::Config)
            .with_context("the redirect URI is not a valid URL")
            .with_source(e)
    })?;
    if url.fragment().is_some() || url.cannot_be_a_base() {
        return Err(Error::new(Kind::Config).with_context(format!(
            "the redirect URI `{}` must be an absolute URL without a fragment",
            shown(&url)
        )));
    }
    Ok(url)
}

/// What [`LoopbackHandler`] does with the authorization URL: show it to the person.
type OnUrl = Arc<dyn Fn(&Url) + Send + Sync>;

/// Longest request head the loopback listener reads from a browser.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// How long one browser connection may take to send its request head.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Default wait for the person to finish in the browser.
const DEFAULT_LOOPBACK_TIMEOUT: Duration = Duration::from_secs(300);

/// An interactive [`AuthorizationHandler`]: shows the authorization URL to a person (by
/// default on standard error, for them to open in a browser) and waits for the browser to
/// come back to a loopback redirect URI `http://127.0.0.1:<port>/callback`, at most
/// [`timeout`](Self::timeout) (default 5 minutes).
///
/// The port is bound when the handler is made (ephemeral with port 0, or the configured
/// one) and kept for the handler's life, so the redirect URI registered with the
/// authorization server stays valid for later authorizations. Requests to other paths get
/// `404`; the first `GET` of the callback path ends the wait, and the browser is told it may
/// close the window.
///
/// ```no_run
/// use mcp_auth::oauth::{LoopbackHandler, OAuthClient};
///
/// let handler = LoopbackHandler::bind(0)?
///     .on_url(|url| println!("Open this page to sign in: {url}"));
/// let client = OAuthClient::authorization_code(handler)
///     .server_url("https://mcp.example.com/mcp")
///     .build()?;
/// # let _ = client;
/// # Ok::<(), mcp_auth::Error>(())
/// ```
pub struct LoopbackHandler {
    listener: std::net::TcpListener,
    redirect_uri: Url,
    timeout: Duration,
    on_url: OnUrl,
}

impl LoopbackHandler {
    /// Listens on `127.0.0.1:port` (0: a free port chosen by the system).
    ///
    /// # Errors
    ///
    /// [`Error::is_config`] if the port cannot be bound.
    pub fn bind(port: u16) -> Result<Self, Error> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
            Error::new(Kind::Config)
                .with_context(format!(
                    "cannot listen on 127.0.0.1:{port} for the redirect"
                ))
                .with_source(e)
        })?;
        let bound = listener
            .local_addr()
            .and_then(|addr| listener.set_nonblocking(true).map(|()| addr))
            .map_err(|e| {
                Error::new(Kind::Config)
                    .with_context("the redirect listener cannot be set up")
                    .with_source(e)
            })?;
        let redirect_uri = Url::parse(&format!("http://{bound}/callback")).map_err(|e| {
            Error::new(Kind::Config)
                .with_context("the redirect URI cannot be formed")
                .with_source(e)
        })?;
        Ok(Self {
            listener,
            redirect_uri,
            timeout: DEFAULT_LOOPBACK_TIMEOUT,
            on_url: Arc::new(|url: &Url| {
                eprintln!("Open this URL in a browser to authorize the MCP client:\n  {url}");
            }),
        })
    }

    /// How long to wait for the browser to come back. Default 5 minutes.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to do with the authorization URL (default: print it on standard error). Open a
    /// browser here, or hand the URL to the application's UI.
    #[must_use]
    pub fn on_url(mut self, show: impl Fn(&Url) + Send + Sync + 'static) -> Self {
        self.on_url = Arc::new(show);
        self
    }

    async fn wait(&self, request: &AuthorizationRequest) -> Result<Url, Error> {
        let setup = |e: std::io::Error| {
            Error::new(Kind::Config)
                .with_context("the redirect listener cannot be used")
                .with_source(e)
        };
        let listener = tokio::net::TcpListener::from_std(self.listener.try_clone().map_err(setup)?)
            .map_err(setup)?;
        tracing::debug!(
            authorization_endpoint = %shown(&request.authorization_endpoint),
            redirect_uri = %self.redirect_uri,
            timeout_secs = self.timeout.as_secs(),
            "waiting for the browser to come back from the authorization server"
        );
        (self.on_url)(&request.url);
        let path = self.redirect_uri.path();
        let wait = async {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    // Out of descriptors or the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let head = tokio::time::timeout(CONNECTION_TIMEOUT, read_head(&mut stream)).await;
                let Ok(Some(target)) = head else {
                    continue;
                };
                let callback = self.redirect_uri.join(&target).ok();
                match callback {
                    Some(url) if url.path() == path => {
                        let _ = respond(&mut stream, "200 OK", DONE_PAGE).await;
                        return url;
                    }
                    _ => {
                        let _ = respond(&mut stream, "404 Not Found", "Not found").await;
                    }
                }
            }
        };
        tokio::time::timeout(self.timeout, wait).await.map_err(|_| {
            denied(format!(
                "no authorization response arrived at {} within {} s",
                self.redirect_uri,
                self.timeout.as_secs()
            ))
        })
    }
}

impl fmt::Debug for LoopbackHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopbackHandler")
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AuthorizationHandler for LoopbackHandler {
    fn redirect_uri(&self) -> Url {
        self.redirect_uri.clone()
    }

    fn authorize<'a>(
        &'a self,
        request: &'a AuthorizationRequest,
    ) -> BoxFuture<'a, Result<Url, Error>> {
        Box::pin(self.wait(request))
    }
}

const DONE_PAGE: &str = "<!doctype html><meta charset=\"utf-8\"><title>Authorization</title>\
    <p>The authorization response reached the application. You can close this window.</p>";

/// Reads a request head; the request target of a `GET`, if that is what it was.
async fn read_head(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() + n > MAX_REQUEST_HEAD {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    (method == "GET" && target.starts_with('/')).then(|| target.to_owned())
}

async fn respond(
    stream: &mut tokio::net::TcpStream,
    status: &str,
    body: &str,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_checked() {
        assert!(parse_redirect_uri("http://127.0.0.1:8080/cb").is_ok());
        assert!(parse_redirect_uri("https://app.example/cb#x").is_err());
        assert!(parse_redirect_uri("not a url").is_err());
        assert_eq!(
            HeadlessHandler::new().redirect_uri.as_str(),
            DEFAULT_REDIRECT
        );
    }

    #[tokio::test]
    async fn loopback_returns_the_callback_and_ignores_other_paths() {
        let handler = LoopbackHandler::bind(0)
            .expect("bind")
            .timeout(Duration::from_secs(5))
            .on_url(|_| {});
        let redirect = handler.redirect_uri();
        assert_eq!(redirect.host_str(), Some("127.0.0.1"));
        assert_eq!(redirect.path(), "/callback");
        let addr = format!(
            "{}:{}",
            redirect.host_str().unwrap_or_default(),
            redirect.port().unwrap_or_default()
        );
        let browser = tokio::spawn(async move {
            let mut answers = Vec::new();
            for target in ["/favicon.ico", "/callback?code=c&state=s"] {
                let mut s = tokio::net::TcpStream::connect(&addr)
                    .await
                    .expect("connect");
                let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
                s.write_all(req.as_bytes()).await.expect("write");
                let mut answer = String::new();
                s.read_to_string(&mut answer).await.expect("read");
                answers.push(answer);
            }
            answers
        });
        let request = AuthorizationRequest {
            url: Url::parse("https://as.example/authorize?x=1").expect("url"),
            authorization_endpoint: Url::parse("https://as.example/authorize").expect("url"),
            redirect_uri: redirect.clone(),
            issuer: "https://as.example".into(),
        };
        let callback = handler.authorize(&request).await.expect("callback");
        assert_eq!(callback.path(), "/callback");
        assert_eq!(callback.query(), Some("code=c&state=s"));
        let answers = browser.await.expect("browser");
        assert!(answers[0].starts_with("HTTP/1.1 404"), "{}", answers[0]);
        assert!(answers[1].starts_with("HTTP/1.1 200"), "{}", answers[1]);
        // The port stays bound for the next authorization.
        assert!(
            std::net::TcpListener::bind(redirect.socket_addrs(|| None).expect("addr")[0]).is_err()
        );
    }

    #[tokio::test]
    async fn loopback_gives_up_after_its_timeout() {
        let handler = LoopbackHandler::bind(0)
            .expect("bind")
            .timeout(Duration::from_millis(50))
            .on_url(|_| {});
        let request = AuthorizationRequest {
            url: Url::parse("https://as.example/authorize").expect("url"),
            authorization_endpoint: Url::parse("https://as.example/authorize").expect("url"),
            redirect_uri: handler.redirect_uri(),
            issuer: "https://as.example".into(),
        };
        let err = handler.authorize(&request).await.expect_err("timeout");
        assert!(err.is_authorization_denied(), "{err}");
    }
}
