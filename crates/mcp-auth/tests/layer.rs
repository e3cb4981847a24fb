//! The auth layer against a scripted tower service (a test double: it answers with the status
//! codes and challenges a real resource server would, in an order chosen by each test) and a
//! scripted token source. End-to-end runs against the real Scheduler server live in
//! `tests/oauth.rs`.

#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use mcp_auth::{AccessToken, AuthLayer, BoxFuture, Error, TokenRequest, TokenSource};
use tower::{Service, ServiceExt};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Hands out `token-1`, `token-2`, ... and records every request it was given.
#[derive(Default)]
struct Scripted {
    seen: Mutex<Vec<TokenRequest>>,
    needs_challenge_first: bool,
}

impl TokenSource for Scripted {
    fn token<'a>(&'a self, request: &'a TokenRequest) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(async move {
            let mut seen = self.seen.lock().unwrap();
            seen.push(request.clone());
            if self.needs_challenge_first && request.challenge.is_none() {
                // A discovering source before any 401: the same error kind the OAuth client uses.
                return Err(Error::challenge_required());
            }
            let n = seen.len();
            Ok(AccessToken::new(format!("token-{n}"), None).with_scopes(request.scopes.clone()))
        })
    }
}

/// One request as the server saw it: `Authorization`, body, `x-custom`.
type Seen = (Option<String>, Bytes, Option<String>);

/// Answers from a script; records the `Authorization` header and body of each request.
#[derive(Clone)]
struct Server {
    script: Arc<Mutex<VecDeque<Response<String>>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn new(responses: Vec<Response<String>>) -> Self {
        Self {
            script: Arc::new(Mutex::new(responses.into())),
            seen: Arc::default(),
        }
    }

    fn auth_headers(&self) -> Vec<Option<String>> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(a, _, _)| a.clone())
            .collect()
    }
}

impl Service<Request<Bytes>> for Server {
    type Response = Response<String>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<String>, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let auth = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let custom = req
            .headers()
            .get("x-custom")
            .map(|v| v.to_str().unwrap().to_owned());
        self.seen
            .lock()
            .unwrap()
            .push((auth, req.body().clone(), custom));
        let next = self.script.lock().unwrap().pop_front();
        Box::pin(async move { Ok(next.unwrap_or_else(|| status(200, None))) })
    }
}

fn status(code: u16, www_authenticate: Option<&str>) -> Response<String> {
    let mut builder = Response::builder().status(code);
    if let Some(value) = www_authenticate {
        builder = builder.header(http::header::WWW_AUTHENTICATE, value);
    }
    builder.body(String::new()).unwrap()
}

fn request() -> Request<Bytes> {
    Request::post("http://127.0.0.1:1/mcp")
        .header("x-custom", "kept")
        .body(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        ))
        .unwrap()
}

async fn call(layer: &AuthLayer, server: &Server) -> Result<Response<String>, BoxError> {
    let mut svc = tower::Layer::layer(layer, server.clone());
    svc.ready().await?.call(request()).await
}

#[tokio::test]
async fn adds_a_bearer_header_marked_sensitive() {
    let source = Arc::new(Scripted::default());
    let layer = AuthLayer::from_arc(source.clone());
    let seen = Arc::new(Mutex::new(None));
    let seen2 = seen.clone();
    let mut svc = tower::Layer::layer(
        &layer,
        tower::service_fn(move |req: Request<Bytes>| {
            let value = req.headers().get(http::header::AUTHORIZATION).cloned();
            *seen2.lock().unwrap() = value;
            async { Ok::<_, BoxError>(status(200, None)) }
        }),
    );
    let response = svc.ready().await.unwrap().call(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let value = seen.lock().unwrap().clone().unwrap();
    assert_eq!(value.to_str().unwrap(), "Bearer token-1");
    assert!(value.is_sensitive(), "hyper and tracing must not print it");
}

#[tokio::test]
async fn a_401_gets_a_new_token_and_replays_once_with_the_same_request() {
    let source = Arc::new(Scripted::default());
    let layer = AuthLayer::from_arc(source.clone());
    let server = Server::new(vec![status(401, Some(r#"Bearer error="invalid_token""#))]);
    let response = call(&layer, &server).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        server.auth_headers(),
        [
            Some("Bearer token-1".to_owned()),
            Some("Bearer token-2".to_owned())
        ]
    );
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen[0].1, seen[1].1, "the body is replayed byte for byte");
    assert_eq!(seen[1].2.as_deref(), Some("kept"), "headers are replayed");
    let requests = source.seen.lock().unwrap();
    assert_eq!(requests.len(), 2);
    let rejected = requests[1].rejected.as_ref().unwrap();
    assert_eq!(rejected.secret().expose_secret(), "token-1");
    assert_eq!(
        requests[1].challenge.as_ref().unwrap().error(),
        Some("invalid_token")
    );
}

#[tokio::test]
async fn a_second_401_is_returned_without_a_third_attempt() {
    let source = Arc::new(Scripted::default());
    let layer = AuthLayer::from_arc(source.clone());
    let server = Server::new(vec![
        status(401, Some("Bearer")),
        status(401, Some("Bearer")),
    ]);
    let response = call(&layer, &server).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.auth_headers().len(), 2);
    assert_eq!(source.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_source_that_needs_the_challenge_first_sends_once_without_a_token() {
    let source = Arc::new(Scripted {
        needs_challenge_first: true,
        ..Scripted::default()
    });
    let layer = AuthLayer::from_arc(source.clone());
    let server = Server::new(vec![status(
        401,
        Some(
            r#"Bearer resource_metadata="http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp", scope="mcp:basic""#,
        ),
    )]);
    let response = call(&layer, &server).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        server.auth_headers(),
        [None, Some("Bearer token-2".to_owned())]
    );
    let requests = source.seen.lock().unwrap();
    let challenge = requests[1].challenge.as_ref().unwrap();
    assert_eq!(
        challenge.resource_metadata(),
        Some("http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp")
    );
    assert_eq!(
        requests[1].scopes,
        ["mcp:basic"],
        "the challenge's scope is asked for"
    );
    assert!(requests[1].rejected.is_none());
}

#[tokio::test]
async fn insufficient_scope_steps_up_with_the_union_of_scopes_and_keeps_it() {
    let source = Arc::new(Scripted::default());
    let layer = AuthLayer::from_arc(source.clone());
    let server = Server::new(vec![
        status(401, Some(r#"Bearer scope="mcp:basic""#)),
        status(200, None),
        status(
            403,
            Some(r#"Bearer error="insufficient_scope", scope="mcp:write""#),
        ),
    ]);
    // First call: 401 → token with mcp:basic. Second call: 403 → step-up to basic + write.
    assert_eq!(
        call(&layer, &server).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&layer, &server).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(layer.stepped_up_scopes(), ["mcp:basic", "mcp:write"]);
    // A third call asks for the union from the start.
    assert_eq!(
        call(&layer, &server).await.unwrap().status(),
        StatusCode::OK
    );
    let requests = source.seen.lock().unwrap();
    assert_eq!(
        requests[3].scopes,
        ["mcp:basic", "mcp:write"],
        "step-up asks for the union"
    );
    assert_eq!(requests[4].scopes, ["mcp:basic", "mcp:write"]);
}

#[tokio::test]
async fn insufficient_scope_twice_is_a_clear_error() {
    let source = Arc::new(Scripted::default());
    let layer = AuthLayer::from_arc(source.clone());
    let forbidden = || {
        status(
            403,
            Some(r#"Bearer error="insufficient_scope", scope="admin""#),
        )
    };
    let server = Server::new(vec![forbidden(), forbidden(), forbidden()]);
    let err = call(&layer, &server).await.unwrap_err();
    let err = err.downcast_ref::<Error>().expect("an mcp_auth::Error");
    assert!(err.is_insufficient_scope());
    assert!(err.to_string().contains("admin"), "{err}");
    assert_eq!(server.auth_headers().len(), 2, "one step-up, no loop");
}

#[tokio::test]
async fn other_403s_are_returned_as_they_are() {
    let source = Arc::new(Scripted::default());
    let layer = AuthLayer::from_arc(source.clone());
    let server = Server::new(vec![status(403, Some(r#"Bearer error="invalid_token""#))]);
    assert_eq!(
        call(&layer, &server).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(server.auth_headers().len(), 1);
}
