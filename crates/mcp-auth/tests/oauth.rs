//! The OAuth client against the real Scheduler authorization server (token endpoint, 401
//! challenge, RFC 9728 and RFC 8414 metadata, client rotation) and against scripted loopback
//! fakes for what a real server will not do (malformed, oversized and slow answers, poisoned
//! metadata, `private_key_jwt` verification), plus a secrets canary over logs and formatting.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, StatusCode};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use mcp_auth::oauth::{AuthMethod, OAuthClient, PrivateKey, TokenResponse};
use mcp_auth::{AuthLayer, Challenge, Error, Secret, TokenRequest, TokenSource};
use mcp_transport::http::{HttpClient, HttpConfig};
use mcp_transport::{HttpTransport, HttpTransportConfig, McpClient};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey,
};
use scheduler_server::config::ServerConfig;
use scheduler_server::server::{Parts, RunningServer, start_with};
use scheduler_server::store::Store;
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt as _};

// ---- the real Scheduler server ----------------------------------------------------------

struct Real {
    server: RunningServer,
    store: Arc<dyn Store>,
}

async fn real() -> Real {
    let config = ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        database: ":memory:".into(),
        ..ServerConfig::default()
    };
    let parts = Parts::from_config(&config).unwrap();
    let store = parts.store.clone();
    let server = start_with(config, parts).await.unwrap();
    Real { server, store }
}

impl Real {
    async fn register(&self) -> (String, Secret) {
        let (client, key) =
            scheduler_server::auth::register_client(&*self.store, "oauth test", ["scheduler"])
                .await
                .unwrap();
        (client.id, Secret::new(key.expose()))
    }

    fn token_endpoint(&self) -> String {
        format!("{}/oauth/token", self.server.url())
    }

    /// Gets a token from `client` and checks that `/mcp` accepts it.
    async fn assert_accepted(&self, client: &OAuthClient) {
        let token = client.token(&TokenRequest::new()).await.unwrap();
        assert_eq!(self.call_mcp(Some(token.secret())).await.0, StatusCode::OK);
    }

    /// POSTs an MCP `initialize` to `/mcp`: the status and the `WWW-Authenticate` header.
    async fn call_mcp(&self, token: Option<&Secret>) -> (StatusCode, Option<String>) {
        let mut request = http::Request::post(self.server.mcp_url())
            .header(CONTENT_TYPE, "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(Bytes::from(
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "oauth-test", "version": "0"}}})
                .to_string(),
            ))
            .unwrap();
        if let Some(token) = token {
            request.headers_mut().insert(
                AUTHORIZATION,
                format!("Bearer {}", token.expose_secret()).parse().unwrap(),
            );
        }
        let client = HttpClient::new(&HttpConfig::default()).unwrap();
        let response = client.oneshot(request).await.unwrap();
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status(), challenge)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn real_server_client_secret_basic_token_is_accepted_on_mcp() {
    let real = real().await;
    let (id, key) = real.register().await;
    let client = OAuthClient::client_credentials(id, key)
        .token_endpoint(real.token_endpoint())
        .server_url(real.server.mcp_url())
        .auth_method(AuthMethod::ClientSecretBasic)
        .build()
        .unwrap();
    let token = client.token(&TokenRequest::new()).await.unwrap();
    assert_eq!(token.scopes(), ["scheduler"]);
    let expires_in = token
        .expires_at()
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(expires_in > Duration::from_secs(3500), "{expires_in:?}");
    assert_eq!(real.call_mcp(Some(token.secret())).await.0, StatusCode::OK);
    assert_eq!(real.call_mcp(None).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn real_server_client_secret_post_token_is_accepted_on_mcp() {
    let real = real().await;
    let (id, key) = real.register().await;
    let client = OAuthClient::client_credentials(id, key)
        .token_endpoint(real.token_endpoint())
        .auth_method(AuthMethod::ClientSecretPost)
        .scopes(["scheduler"])
        .build()
        .unwrap();
    real.assert_accepted(&client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn real_server_discovery_from_the_401_challenge() {
    let real = real().await;
    let (id, key) = real.register().await;
    let (status, header) = real.call_mcp(None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = Challenge::parse(&header.unwrap()).unwrap();
    assert!(challenge.resource_metadata().is_some());
    let client = OAuthClient::client_credentials(id, key)
        .server_url(real.server.mcp_url())
        .build()
        .unwrap();
    let token = client
        .token(&TokenRequest::new().challenge(challenge))
        .await
        .unwrap();
    assert_eq!(real.call_mcp(Some(token.secret())).await.0, StatusCode::OK);
    let asm = client.authorization_server_metadata().await.unwrap();
    assert_eq!(asm.issuer(), real.server.url());
    let prm = client.protected_resource_metadata().await.unwrap();
    assert_eq!(prm.resource(), real.server.mcp_url());
    // Without a challenge now: the discovered documents are reused.
    let again = client.token(&TokenRequest::new()).await.unwrap();
    assert!(!again.same_token(&token));
}

#[tokio::test(flavor = "multi_thread")]
async fn real_server_through_the_auth_layer_and_mcp_client() {
    let real = real().await;
    let (id, key) = real.register().await;
    let source = OAuthClient::client_credentials(id, key)
        .server_url(real.server.mcp_url())
        .build()
        .unwrap();
    let stack = ServiceBuilder::new()
        .layer(AuthLayer::new(source))
        .service(HttpClient::new(&HttpConfig::default()).unwrap());
    let transport = HttpTransport::with_service(
        &real.server.mcp_url(),
        HttpTransportConfig::default(),
        stack,
    )
    .unwrap();
    let client = McpClient::builder()
        .default_timeout(Duration::from_secs(10))
        .connect(transport)
        .await
        .unwrap();
    assert!(!client.list_tools().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn real_server_rotation_disables_the_old_client_and_the_new_key_works() {
    let real = real().await;
    let (old_id, old_key) = real.register().await;
    let old = OAuthClient::client_credentials(old_id.clone(), old_key)
        .token_endpoint(real.token_endpoint())
        .build()
        .unwrap();
    old.token(&TokenRequest::new()).await.unwrap();

    let (new_id, new_key) = real.register().await;
    real.store.set_client_disabled(&old_id, true).await.unwrap();
    let err = old.token(&TokenRequest::new()).await.unwrap_err();
    assert!(err.is_token_endpoint(), "{err:?}");
    assert!(err.to_string().contains("unauthorized_client"), "{err}");

    let new = OAuthClient::client_credentials(new_id, new_key)
        .token_endpoint(real.token_endpoint())
        .build()
        .unwrap();
    real.assert_accepted(&new).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn real_server_wrong_key_is_a_token_endpoint_error_without_the_key() {
    let real = real().await;
    let (id, right) = real.register().await;
    let wrong = format!("{}x", right.expose_secret());
    for method in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost] {
        let client = OAuthClient::client_credentials(id.clone(), wrong.as_str())
            .token_endpoint(real.token_endpoint())
            .auth_method(method)
            .build()
            .unwrap();
        let err = client.token(&TokenRequest::new()).await.unwrap_err();
        assert!(err.is_token_endpoint(), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("invalid_client"), "{shown}");
        assert!(!shown.contains(&wrong) && !shown.contains(right.expose_secret()));
    }
}

// ---- scripted fakes -----------------------------------------------------------------------

/// One request the fake saw.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    fn param(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

/// What the fake answers.
enum Answer {
    Json(u16, Value),
    Raw(u16, &'static str, Vec<u8>),
    /// Never answers.
    Hang,
    /// 200 with a body that never ends (no Content-Length).
    Endless,
}

fn not_found() -> Answer {
    Answer::Json(404, json!({"error": "not_found"}))
}

struct Fake {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn paths(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.path).collect()
    }

    fn mcp(&self) -> String {
        format!("{}/mcp", self.base)
    }
}

static CHUNK: [u8; 65536] = [b' '; 65536];

struct EndlessBody;

impl http_body::Body for EndlessBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK)))))
    }
}

/// A loopback HTTP/1 server answering every request with `route(request, base URL)`.
async fn fake<F>(route: F) -> Fake
where
    F: Fn(&Seen, &str) -> Answer + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let route = Arc::new(route);
    let (base2, seen2) = (base.clone(), seen.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (route, base, seen) = (route.clone(), base2.clone(), seen2.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (route, base, seen) = (route.clone(), base.clone(), seen.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let request = Seen {
                                method: parts.method,
                                path: parts.uri.path().to_owned(),
                                headers: parts.headers,
                                body,
                            };
                            seen.lock().unwrap().push(request.clone());
                            let (status, ctype, body): (u16, &str, BoxBody<Bytes, Infallible>) =
                                match route(&request, &base) {
                                    Answer::Json(s, v) => (
                                        s,
                                        "application/json",
                                        Full::new(Bytes::from(v.to_string())).boxed(),
                                    ),
                                    Answer::Raw(s, c, b) => {
                                        (s, c, Full::new(Bytes::from(b)).boxed())
                                    }
                                    Answer::Hang => {
                                        std::future::pending::<()>().await;
                                        unreachable!()
                                    }
                                    Answer::Endless => {
                                        (200, "application/json", EndlessBody.boxed())
                                    }
                                };
                            Ok::<_, Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .header(CONTENT_TYPE, ctype)
                                    .body(body)
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Fake { base, seen, task }
}

fn token_json(token: &str) -> Value {
    json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600})
}

/// A fake token endpoint at `/token` answering `answer` (a JSON body or anything else).
async fn token_endpoint<F>(answer: F) -> Fake
where
    F: Fn() -> Answer + Send + Sync + 'static,
{
    fake(move |seen, _| {
        if seen.path == "/token" {
            answer()
        } else {
            not_found()
        }
    })
    .await
}

/// A token from `client` for a challenge whose `resource_metadata` is `path` on the fake.
async fn challenged(
    client: &OAuthClient,
    fake: &Fake,
    path: &str,
) -> Result<mcp_auth::AccessToken, Error> {
    let header = format!(r#"Bearer resource_metadata="{}{path}""#, fake.base);
    let challenge = Challenge::parse(&header).unwrap();
    client
        .token(&TokenRequest::new().challenge(challenge))
        .await
}

/// A client-credentials client that discovers everything from the fake's `/mcp`.
fn discovering(fake: &Fake) -> OAuthClient {
    OAuthClient::client_credentials("client-1", "secret-1")
        .server_url(fake.mcp())
        .build()
        .unwrap()
}

fn direct(fake: &Fake) -> OAuthClient {
    OAuthClient::client_credentials("client-1", "secret-1")
        .token_endpoint(format!("{}/token", fake.base))
        .build()
        .unwrap()
}

async fn token_error(answer: Answer) -> Error {
    let answer = Arc::new(Mutex::new(Some(answer)));
    let fake =
        token_endpoint(move || answer.lock().unwrap().take().unwrap_or_else(not_found)).await;
    direct(&fake).token(&TokenRequest::new()).await.unwrap_err()
}

#[tokio::test]
async fn scripted_direct_endpoint_does_no_discovery_and_form_encodes_basic_credentials() {
    let fake = token_endpoint(|| Answer::Json(200, token_json("tok-1"))).await;
    let client = OAuthClient::client_credentials("id:with space", "p@ss word+%")
        .token_endpoint(format!("{}/token", fake.base))
        .server_url(fake.mcp())
        .scopes(["a", "b"])
        .build()
        .unwrap();
    let token = client
        .token(&TokenRequest::new().scopes(["c"]))
        .await
        .unwrap();
    assert_eq!(token.secret().expose_secret(), "tok-1");
    assert_eq!(
        token.scopes(),
        ["a", "b", "c"],
        "requested scopes when none granted"
    );
    let seen = fake.seen();
    assert_eq!(
        fake.paths(),
        ["/token"],
        "no discovery with a configured endpoint"
    );
    let request = &seen[0];
    assert_eq!(request.method, Method::POST);
    let basic = request.headers[AUTHORIZATION].to_str().unwrap();
    let decoded = STANDARD
        .decode(basic.strip_prefix("Basic ").unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "id%3Awith+space:p%40ss+word%2B%25"
    );
    assert_eq!(
        request.param("grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(request.param("scope").as_deref(), Some("a b c"));
    assert_eq!(request.param("resource"), Some(fake.mcp()));
    assert_eq!(request.param("client_secret"), None);
}

#[tokio::test]
async fn scripted_malformed_token_responses_are_invalid_and_name_the_field() {
    for (body, field) in [
        (json!({"token_type": "Bearer"}), "access_token"),
        (
            json!({"access_token": "", "token_type": "Bearer"}),
            "access_token",
        ),
        (json!({"access_token": "t"}), "token_type"),
        (
            json!({"access_token": "t", "token_type": "DPoP"}),
            "token_type",
        ),
        (
            json!({"access_token": "t", "token_type": "Bearer", "expires_in": -1}),
            "expires_in",
        ),
        (
            json!({"access_token": "t", "token_type": "Bearer", "expires_in": "soon"}),
            "expires_in",
        ),
        (
            json!({"access_token": "t", "token_type": "Bearer", "expires_in": 1e12}),
            "expires_in",
        ),
        (json!(["access_token"]), "array"),
    ] {
        let err = token_error(Answer::Json(200, body.clone())).await;
        assert!(err.is_invalid_token_response(), "{body}: {err:?}");
        assert!(err.to_string().contains(field), "{body}: {err}");
    }
    let err = token_error(Answer::Raw(
        200,
        "text/html",
        b"<html>hello</html>".to_vec(),
    ))
    .await;
    assert!(err.is_invalid_token_response(), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("not valid JSON") && msg.contains("Content-Type"),
        "{msg}"
    );
    assert!(!msg.contains("hello"), "{msg}");
}

#[tokio::test]
async fn scripted_error_responses_are_token_endpoint_errors_with_the_code() {
    let err = token_error(Answer::Json(
        400,
        json!({"error": "invalid_scope", "error_description": "no such scope"}),
    ))
    .await;
    assert!(err.is_token_endpoint(), "{err:?}");
    assert!(err.to_string().contains("invalid_scope") && err.to_string().contains("no such scope"));

    // A description that repeats the secret is not shown.
    let err = token_error(Answer::Json(
        401,
        json!({"error": "invalid_client", "error_description": "secret-1 is wrong"}),
    ))
    .await;
    assert!(err.is_token_endpoint());
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("invalid_client") && !shown.contains("secret-1"),
        "{shown}"
    );

    // An error body under 200 is still a refusal.
    let err = token_error(Answer::Json(200, json!({"error": "access_denied"}))).await;
    assert!(
        err.is_token_endpoint() && err.to_string().contains("access_denied"),
        "{err}"
    );

    // No OAuth body: the status.
    let err = token_error(Answer::Raw(503, "text/plain", b"upstream down".to_vec())).await;
    assert!(err.is_token_endpoint(), "{err:?}");
    assert!(err.to_string().contains("503"), "{err}");
}

#[tokio::test]
async fn scripted_oversized_token_responses_are_refused() {
    // Declared too large.
    let err = token_error(Answer::Raw(200, "application/json", vec![b' '; 2 << 20])).await;
    assert!(err.is_invalid_token_response(), "{err:?}");
    assert!(err.to_string().contains("exceeds"), "{err}");
    // Never ending, without a length: reading stops at the cap.
    let fake = token_endpoint(|| Answer::Endless).await;
    let client = OAuthClient::client_credentials("client-1", "secret-1")
        .token_endpoint(format!("{}/token", fake.base))
        .max_response_bytes(64 * 1024)
        .build()
        .unwrap();
    let err = client.token(&TokenRequest::new()).await.unwrap_err();
    assert!(
        err.is_invalid_token_response() && err.to_string().contains("65536"),
        "{err}"
    );
}

#[tokio::test]
async fn scripted_slow_token_endpoint_times_out() {
    let fake = token_endpoint(|| Answer::Hang).await;
    let client = OAuthClient::client_credentials("client-1", "secret-1")
        .token_endpoint(format!("{}/token", fake.base))
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = client.token(&TokenRequest::new()).await.unwrap_err();
    assert!(err.is_unreachable(), "{err:?}");
    assert!(err.to_string().contains("within 200 ms"), "{err}");
}

/// A resource server and authorization server in one fake: PRM at the path-inserted URI,
/// AS metadata at the root, a token endpoint. `tweak` edits the documents.
async fn discoverable(
    prm: impl Fn(&str) -> Value + Send + Sync + 'static,
    asm: impl Fn(&str) -> Value + Send + Sync + 'static,
) -> Fake {
    fake(move |seen, base| match seen.path.as_str() {
        "/.well-known/oauth-protected-resource/mcp" => Answer::Json(200, prm(base)),
        "/.well-known/oauth-authorization-server" => Answer::Json(200, asm(base)),
        "/token" => Answer::Json(200, json!({"access_token": "tok", "token_type": "Bearer", "expires_in": 60, "scope": "granted"})),
        _ => not_found(),
    })
    .await
}

fn standard_prm(base: &str) -> Value {
    json!({"resource": format!("{base}/mcp"), "authorization_servers": [base], "scopes_supported": ["s1", "s2"]})
}

fn standard_asm(base: &str) -> Value {
    json!({"issuer": base, "token_endpoint": format!("{base}/token"),
           "token_endpoint_auth_methods_supported": ["client_secret_post"]})
}

#[tokio::test]
async fn scripted_discovery_reads_metadata_picks_method_and_scopes() {
    let fake = discoverable(standard_prm, standard_asm).await;
    let client = discovering(&fake);
    let token = client.token(&TokenRequest::new()).await.unwrap();
    assert_eq!(token.scopes(), ["granted"]);
    assert_eq!(
        fake.paths(),
        [
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-authorization-server",
            "/token"
        ]
    );
    let request = fake.seen().pop().unwrap();
    assert_eq!(
        request.param("scope").as_deref(),
        Some("s1 s2"),
        "PRM scopes_supported"
    );
    assert_eq!(request.param("resource"), Some(fake.mcp()));
    assert_eq!(
        request.param("client_secret").as_deref(),
        Some("secret-1"),
        "post, the only method listed"
    );
    assert!(request.headers.get(AUTHORIZATION).is_none());

    // A challenge's scope wins over scopes_supported; the metadata is not fetched again.
    let challenge = Challenge::parse(r#"Bearer error="insufficient_scope", scope="s3""#).unwrap();
    client
        .token(&TokenRequest::new().challenge(challenge).scopes(["s4"]))
        .await
        .unwrap();
    assert_eq!(fake.paths().len(), 4);
    assert_eq!(
        fake.seen().pop().unwrap().param("scope").as_deref(),
        Some("s3 s4")
    );
}

#[tokio::test]
async fn scripted_well_known_fallbacks_in_the_mcp_order() {
    // PRM only at the root; an issuer with a path whose metadata is only at the OIDC
    // path-appended URI.
    let fake = fake(|seen, base| match seen.path.as_str() {
        "/.well-known/oauth-protected-resource" => Answer::Json(
            200,
            json!({"resource": format!("{base}/mcp"), "authorization_servers": [format!("{base}/tenant1")]}),
        ),
        "/tenant1/.well-known/openid-configuration" => Answer::Json(
            200,
            json!({"issuer": format!("{base}/tenant1"), "token_endpoint": format!("{base}/token")}),
        ),
        "/token" => Answer::Json(200, token_json("tok")),
        _ => not_found(),
    })
    .await;
    let client = discovering(&fake);
    client.token(&TokenRequest::new()).await.unwrap();
    assert_eq!(
        fake.paths(),
        [
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-authorization-server/tenant1",
            "/.well-known/openid-configuration/tenant1",
            "/tenant1/.well-known/openid-configuration",
            "/token",
        ]
    );
    let request = fake.seen().pop().unwrap();
    assert_eq!(request.param("scope"), None, "no scope anywhere: omitted");
    assert!(
        request.headers[AUTHORIZATION]
            .to_str()
            .unwrap()
            .starts_with("Basic "),
        "RFC 8414 default method"
    );
}

#[tokio::test]
async fn scripted_issuer_mismatch_is_refused() {
    let fake = discoverable(standard_prm, |base| {
        json!({"issuer": "https://attacker.example.com", "token_endpoint": format!("{base}/token")})
    })
    .await;
    let client = discovering(&fake);
    let err = client.token(&TokenRequest::new()).await.unwrap_err();
    assert!(err.is_discovery(), "{err:?}");
    assert!(err.to_string().contains("attacker.example.com"), "{err}");
    assert!(
        !fake.paths().contains(&"/token".to_owned()),
        "metadata endpoints not used"
    );
}

#[tokio::test]
async fn scripted_prm_resource_mismatch_is_refused() {
    let fake = discoverable(
        |base| json!({"resource": "https://evil.example.com/mcp", "authorization_servers": [base]}),
        standard_asm,
    )
    .await;
    let client = discovering(&fake);
    let err = client.token(&TokenRequest::new()).await.unwrap_err();
    assert!(err.is_discovery(), "{err:?}");
    assert!(err.to_string().contains("evil.example.com"), "{err}");
    assert_eq!(fake.paths(), ["/.well-known/oauth-protected-resource/mcp"]);
}

#[tokio::test]
async fn scripted_no_metadata_without_a_challenge_is_challenge_required() {
    // PRM only at a custom URL that the challenge names.
    let fake = fake(|seen, base| match seen.path.as_str() {
        "/custom/prm" => Answer::Json(200, standard_prm(base)),
        "/.well-known/oauth-authorization-server" => Answer::Json(200, standard_asm(base)),
        "/token" => Answer::Json(200, token_json("tok")),
        _ => not_found(),
    })
    .await;
    let client = discovering(&fake);
    let err = client.token(&TokenRequest::new()).await.unwrap_err();
    assert!(err.is_challenge_required(), "{err:?}");
    // A challenge without resource_metadata does not help: a discovery error.
    let bare = Challenge::parse(r#"Bearer realm="x""#).unwrap();
    let err = client
        .token(&TokenRequest::new().challenge(bare))
        .await
        .unwrap_err();
    assert!(err.is_discovery(), "{err:?}");
    challenged(&client, &fake, "/custom/prm").await.unwrap();
    // A challenge naming a missing document is a discovery error, not a fallback.
    let err = challenged(&client, &fake, "/missing").await.unwrap_err();
    assert!(
        err.is_discovery() && err.to_string().contains("/missing"),
        "{err}"
    );
}

#[tokio::test]
async fn scripted_credentials_stay_bound_to_the_first_authorization_server() {
    let fake = fake(|seen, base| match seen.path.as_str() {
        "/.well-known/oauth-protected-resource/mcp" => Answer::Json(200, standard_prm(base)),
        "/moved/prm" => Answer::Json(
            200,
            json!({"resource": format!("{base}/mcp"), "authorization_servers": [format!("{base}/other")]}),
        ),
        "/.well-known/oauth-authorization-server" => Answer::Json(200, standard_asm(base)),
        "/token" => Answer::Json(200, token_json("tok")),
        _ => not_found(),
    })
    .await;
    let client = discovering(&fake);
    client.token(&TokenRequest::new()).await.unwrap();
    client.token(&TokenRequest::new()).await.unwrap();
    let prm_fetches = |f: &Fake| {
        f.paths()
            .iter()
            .filter(|p| p.contains("protected-resource"))
            .count()
    };
    assert_eq!(prm_fetches(&fake), 1, "metadata fetched once");
    let err = challenged(&client, &fake, "/moved/prm").await.unwrap_err();
    assert!(
        err.is_discovery() && err.to_string().contains("bound"),
        "{err}"
    );
    assert!(
        fake.paths().contains(&"/moved/prm".to_owned()),
        "refetched for the new URL"
    );
}

/// A 2048-bit RSA PKCS#8 key generated with `openssl genpkey` for this test only; it
/// protects nothing.
const TEST_RSA_KEY: &str = include_str!("oauth_test_rsa.pem");

/// Verifies a client assertion the way an authorization server does.
fn verify_assertion(seen: &Seen, public: &[u8], alg: &str, audience: &str) -> Result<(), String> {
    if seen.param("client_assertion_type").as_deref()
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return Err("client_assertion_type".into());
    }
    let jwt = seen.param("client_assertion").ok_or("no assertion")?;
    let (input, sig) = jwt.rsplit_once('.').ok_or("shape")?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|e| e.to_string())?;
    let verified = match alg {
        "ES256" => {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public).verify(input.as_bytes(), &sig)
        }
        _ => UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
            .verify(input.as_bytes(), &sig),
    };
    verified.map_err(|_| "signature")?;
    let (header, claims) = input.split_once('.').ok_or("shape")?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (iat, exp) = (
        claims["iat"].as_u64().ok_or("iat")?,
        claims["exp"].as_u64().ok_or("exp")?,
    );
    let checks = [
        (header["alg"] == alg, "alg"),
        (claims["iss"] == "client-jwt", "iss"),
        (claims["sub"] == "client-jwt", "sub"),
        (claims["aud"] == audience, "aud"),
        (claims["jti"].as_str().is_some_and(|j| j.len() >= 16), "jti"),
        (iat <= now + 5 && exp > now && exp - iat <= 300, "iat/exp"),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, what)) => Err((*what).to_owned()),
        None => Ok(()),
    }
}

async fn assertion_round_trip(key: PrivateKey, public: Vec<u8>, alg: &'static str) {
    let result: Arc<Mutex<Vec<Result<(), String>>>> = Arc::default();
    let results = result.clone();
    let fake = fake(move |seen, base| match seen.path.as_str() {
        "/.well-known/oauth-protected-resource/mcp" => Answer::Json(200, standard_prm(base)),
        "/.well-known/oauth-authorization-server" => Answer::Json(
            200,
            json!({"issuer": base, "token_endpoint": format!("{base}/token"),
                   "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                   "token_endpoint_auth_signing_alg_values_supported": [alg]}),
        ),
        "/token" => {
            let verdict = verify_assertion(seen, &public, alg, base);
            let ok = verdict.is_ok();
            results.lock().unwrap().push(verdict);
            if ok {
                Answer::Json(200, token_json("jwt-tok"))
            } else {
                Answer::Json(401, json!({"error": "invalid_client"}))
            }
        }
        _ => not_found(),
    })
    .await;
    let client = OAuthClient::private_key_jwt("client-jwt", key)
        .server_url(fake.mcp())
        .build()
        .unwrap();
    let token = client.token(&TokenRequest::new()).await;
    assert_eq!(result.lock().unwrap().as_slice(), [Ok(())]);
    assert_eq!(token.unwrap().secret().expose_secret(), "jwt-tok");
    assert!(
        fake.seen()
            .pop()
            .unwrap()
            .headers
            .get(AUTHORIZATION)
            .is_none()
    );
}

#[tokio::test]
async fn scripted_private_key_jwt_es256_assertion_is_verified_by_the_fake() {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let public = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(pkcs8.as_ref())
    );
    assertion_round_trip(PrivateKey::from_pem(&pem).unwrap(), public, "ES256").await;
}

#[tokio::test]
async fn scripted_private_key_jwt_rs256_assertion_is_verified_by_the_fake() {
    let key = PrivateKey::from_pem(TEST_RSA_KEY).unwrap();
    assert_eq!(key.algorithm(), "RS256");
    let der: String = TEST_RSA_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let pair = RsaKeyPair::from_pkcs8(&STANDARD.decode(der).unwrap()).unwrap();
    assertion_round_trip(key, pair.public_key().as_ref().to_vec(), "RS256").await;
}

#[tokio::test]
async fn scripted_private_key_jwt_refused_when_the_server_does_not_list_it() {
    let fake = discoverable(standard_prm, standard_asm).await;
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let client = OAuthClient::private_key_jwt(
        "client-jwt",
        PrivateKey::from_pkcs8_der(pkcs8.as_ref()).unwrap(),
    )
    .server_url(fake.mcp())
    .build()
    .unwrap();
    let err = client.token(&TokenRequest::new()).await.unwrap_err();
    assert!(
        err.is_config() && err.to_string().contains("private_key_jwt"),
        "{err}"
    );
    assert!(!fake.paths().contains(&"/token".to_owned()));
}

#[test]
fn configuration_errors_name_the_setting() {
    let cases: Vec<(Result<OAuthClient, Error>, &str)> = vec![
        (
            OAuthClient::client_credentials("", "s")
                .token_endpoint("https://as/t")
                .build(),
            "client id",
        ),
        (
            OAuthClient::client_credentials("c", "")
                .token_endpoint("https://as/t")
                .build(),
            "secret",
        ),
        (
            OAuthClient::client_credentials("c", "s").build(),
            "token_endpoint",
        ),
        (
            OAuthClient::client_credentials("c", "s")
                .token_endpoint("http://as.example/t")
                .build(),
            "plain http",
        ),
        (
            OAuthClient::client_credentials("c", "s")
                .server_url("not a url")
                .build(),
            "server_url",
        ),
        (
            OAuthClient::client_credentials("c", "s")
                .token_endpoint("https://as/t")
                .scopes(["a b"])
                .build(),
            "scope",
        ),
        (
            OAuthClient::client_credentials("c", "s")
                .token_endpoint("https://as/t")
                .auth_method(AuthMethod::PrivateKeyJwt)
                .build(),
            "private key",
        ),
    ];
    for (result, needle) in cases {
        let err = result.unwrap_err();
        assert!(
            err.is_config() && err.to_string().contains(needle),
            "{needle}: {err}"
        );
    }
}

// ---- secrets canary ---------------------------------------------------------------------

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything this test binary logs at TRACE, from every test: one process-wide subscriber,
/// so no event is lost to tracing's per-callsite interest cache (which a thread-scoped
/// subscriber in parallel tests can race with).
fn logs() -> &'static Buffer {
    static LOGS: OnceLock<Buffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Buffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

#[tokio::test]
async fn secrets_never_reach_logs_debug_display_or_errors() {
    const SECRET: &str = "canary-secret-7f3a9c";
    const TOKEN: &str = "canary-token-b81d2e";
    let logs = logs();

    // Token endpoint: good token for the right secret; echoes the secret otherwise; a token
    // inside an invalid response at /bad.
    let fake = fake(|seen, base| match seen.path.as_str() {
        "/.well-known/oauth-protected-resource/mcp" => Answer::Json(200, standard_prm(base)),
        "/.well-known/oauth-authorization-server" => Answer::Json(200, standard_asm(base)),
        "/token" if seen.param("client_secret").as_deref() == Some(SECRET) => {
            Answer::Json(200, token_json(TOKEN))
        }
        "/token" => Answer::Json(
            401,
            json!({"error": "invalid_client", "error_description": format!("{} is wrong", seen.param("client_secret").unwrap_or_default())}),
        ),
        "/bad" => Answer::Json(200, json!({"access_token": TOKEN, "token_type": "mac"})),
        _ => not_found(),
    })
    .await;
    let builder = OAuthClient::client_credentials("client-1", SECRET).server_url(fake.mcp());
    let mut shown = format!("{builder:?}");
    let client = builder.build().unwrap();
    let token = client.token(&TokenRequest::new()).await.unwrap();
    assert_eq!(token.secret().expose_secret(), TOKEN);
    let request = TokenRequest::new().rejected(token.clone());
    shown += &format!("{client:?} {token:?} {request:?}");
    shown += &format!(
        "{:?}",
        TokenResponse::from_json(token_json(TOKEN).to_string().as_bytes()).unwrap()
    );

    // The server repeats the secret in its refusal (our secret-post form carries it).
    let wrong = OAuthClient::client_credentials("client-1", format!("{SECRET}-old"))
        .server_url(fake.mcp())
        .auth_method(AuthMethod::ClientSecretPost)
        .build()
        .unwrap();
    let err = wrong.token(&TokenRequest::new()).await.unwrap_err();
    assert!(err.is_token_endpoint());
    shown += &format!("{err} {err:?}");
    let bad = OAuthClient::client_credentials("client-1", SECRET)
        .token_endpoint(format!("{}/bad", fake.base))
        .build()
        .unwrap();
    let err = bad.token(&TokenRequest::new()).await.unwrap_err();
    assert!(err.is_invalid_token_response());
    shown += &format!("{err} {err:?}");
    let err = TokenResponse::from_json(
        format!(r#"{{"access_token": "{TOKEN}", "token_type": 5}}"#).as_bytes(),
    )
    .unwrap_err();
    shown += &format!("{err} {err:?}");

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("requesting an access token"),
        "the capture works: {logs}"
    );
    for canary in [SECRET, TOKEN] {
        assert!(!logs.contains(canary), "{canary} in logs:\n{logs}");
        assert!(!shown.contains(canary), "{canary} in formatting:\n{shown}");
    }
}
