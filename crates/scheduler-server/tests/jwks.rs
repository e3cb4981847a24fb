//! The external issuer's JWK Set fetched over real TLS on loopback: a fake JWKS server with
//! an rcgen self-signed certificate (trusted through `jwks_ca_pem` / `jwks_ca_file`), whose
//! key set, status and availability the tests change, and which counts the fetches.
//!
//! - a key rotated in at the issuer is accepted after the unknown-`kid` refetch, and a key
//!   rotated out is refused;
//! - the refetch is rate limited: many tokens with made-up key ids cost one fetch per window
//!   (the window is crossed with paused time; no network runs while time is paused);
//! - the server starts while the issuer is unreachable, refuses the issuer's tokens with a
//!   clear 401, and accepts them once a background retry brings the keys; shutdown stops
//!   the refresh task;
//! - an unusable document, an error status, an oversized answer, a dropped connection and an
//!   untrusted certificate all keep the old keys, and are logged.
//!
//! The precise schedule (backoff, hourly refresh, jitter, single-flight) is tested with paused
//! time against a scripted source in `auth::external`'s unit tests.

#![allow(clippy::unwrap_used, reason = "test code")]

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::routing::post;
use axum::{Extension, Router};
use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jiff::Timestamp;
use ring::signature::RsaKeyPair;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use scheduler_server::auth::{self, AuthConfig, AuthState, Claims, ExternalIssuerConfig};
use scheduler_server::config::ServerConfig;
use scheduler_server::server::{Parts, start_with};
use scheduler_server::store::{SqliteStore, Store};
use serde_json::{Value, json};
use support::{logs, rs256, rsa_jwk, rsa_key, second_rsa_key};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

const ISSUER: &str = "https://sts.windows.net/00000000-0000-0000-0000-000000000001/";
const AUDIENCE: &str = "api://scheduler";

/// The longest any wait for an event polls.
const WAIT_LIMIT: Duration = Duration::from_secs(30);

// ---- the fake JWKS server ---------------------------------------------------------------

/// What the fake answers.
#[derive(Clone)]
enum Answer {
    /// `200` with this body.
    Document(String),
    /// This status, empty body.
    Status(u16),
    /// A `200` body over the size cap.
    Huge,
    /// Accept the TCP connection and close it at once (the issuer is unreachable).
    Drop,
}

struct Fake {
    url: String,
    ca_pem: String,
    answer: Arc<Mutex<Answer>>,
    connections: Arc<Mutex<usize>>,
}

impl Fake {
    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Fetches so far (the fetcher keeps no idle connections: one connection per fetch).
    fn fetches(&self) -> usize {
        *self.connections.lock().unwrap()
    }
}

fn jwks_of(keys: &[(&RsaKeyPair, &str)]) -> String {
    let keys: Vec<Value> = keys.iter().map(|(key, kid)| rsa_jwk(key, kid)).collect();
    json!({ "keys": keys }).to_string()
}

async fn fake(answer: Answer) -> Fake {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let ca_pem = certified.cert.pem();
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], private)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = Arc::new(Mutex::new(answer));
    let connections = Arc::new(Mutex::new(0));
    let (shared_answer, counter) = (answer.clone(), connections.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            *counter.lock().unwrap() += 1;
            let answer = shared_answer.lock().unwrap().clone();
            if matches!(answer, Answer::Drop) {
                drop(tcp);
                continue;
            }
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_req: Request<_>| {
                    let answer = answer.clone();
                    async move { Ok::<_, Infallible>(respond(&answer)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Fake {
        url: format!("https://localhost:{port}/discovery/v2.0/keys"),
        ca_pem,
        answer,
        connections,
    }
}

fn respond(answer: &Answer) -> Response<Full<Bytes>> {
    let (status, body) = match answer {
        Answer::Document(text) => (200, Bytes::from(text.clone())),
        Answer::Status(status) => (*status, Bytes::new()),
        Answer::Huge => (200, Bytes::from(vec![b' '; auth::MAX_JWKS_BYTES + 1])),
        Answer::Drop => (500, Bytes::new()),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

// ---- the protected side -----------------------------------------------------------------

fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn issuer_config(fake: &Fake) -> ExternalIssuerConfig {
    let mut config = ExternalIssuerConfig::from_jwks_uri(ISSUER, AUDIENCE, &fake.url);
    config.jwks_ca_pem = Some(fake.ca_pem.clone());
    config
}

/// An auth state trusting `external`, and `/mcp` behind the bearer middleware.
async fn protected(external: ExternalIssuerConfig) -> (AuthState, Router) {
    logs();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let config = AuthConfig::new("http://127.0.0.1:8080", "http://127.0.0.1:8080/mcp")
        .with_external(external);
    let clock = auth::ManualClock::new(t0()).clock();
    let state = AuthState::new(store, config, clock).await.unwrap();
    let app = auth::protect(
        Router::new().route(
            "/mcp",
            post(|Extension(claims): Extension<Claims>| async move { claims.subject }),
        ),
        state.clone(),
    );
    (state, app)
}

fn token(key: &RsaKeyPair, kid: &str) -> String {
    token_at(key, kid, t0())
}

fn token_at(key: &RsaKeyPair, kid: &str, now: Timestamp) -> String {
    let now = now.as_second();
    rs256(
        key,
        kid,
        &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "managed-identity", "roles": ["x"],
                "iat": now, "nbf": now, "exp": now + 3600}),
    )
}

/// `POST /mcp` with `token`: the status and the `WWW-Authenticate` header.
async fn call(app: &Router, token: &str) -> (StatusCode, String) {
    let request = Request::post("/mcp")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let status = response.status();
    let _ = to_bytes(response.into_body(), 1 << 16).await;
    (status, challenge)
}

/// Polls `probe` (every 20 ms, real time) until it holds, for at most [`WAIT_LIMIT`].
async fn wait_for<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while !probe().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- tests ------------------------------------------------------------------------------

#[tokio::test]
async fn a_rotated_in_key_is_accepted_after_an_unknown_kid_refetch() {
    let (old, new) = (rsa_key(), second_rsa_key());
    let fake = fake(Answer::Document(jwks_of(&[(&old, "old")]))).await;
    let (state, app) = protected(issuer_config(&fake)).await;
    let external = state.external_issuer().unwrap();
    assert_eq!(external.jwks_uri(), Some(fake.url.as_str()));
    assert_eq!(external.refresh_jwks().await.unwrap(), 1);
    assert_eq!(fake.fetches(), 1);
    assert_eq!(call(&app, &token(&old, "old")).await.0, StatusCode::OK);

    // The issuer rotates: the new key in, the old one out.
    fake.set(Answer::Document(jwks_of(&[(&new, "new")])));
    assert_eq!(call(&app, &token(&new, "new")).await.0, StatusCode::OK);
    assert_eq!(fake.fetches(), 2, "one refetch for the unknown kid");
    assert_eq!(external.kids(), ["new"]);
    assert_eq!(call(&app, &token(&new, "new")).await.0, StatusCode::OK);
    assert_eq!(fake.fetches(), 2, "a known kid fetches nothing");

    // The retired key's tokens are refused (and cannot refetch again so soon).
    let (status, challenge) = call(&app, &token(&old, "old")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("signing key is unknown"), "{challenge}");
    // The old key under the new kid does not verify.
    let (status, challenge) = call(&app, &token(&old, "new")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("signature is invalid"), "{challenge}");
    assert_eq!(fake.fetches(), 2);
}

#[tokio::test]
async fn unknown_kid_refetches_are_rate_limited() {
    let key = rsa_key();
    let fake = fake(Answer::Document(jwks_of(&[(&key, "k1")]))).await;
    let (state, app) = protected(issuer_config(&fake)).await;
    state
        .external_issuer()
        .unwrap()
        .refresh_jwks()
        .await
        .unwrap();
    assert_eq!(fake.fetches(), 1);

    // Twenty tokens with made-up key ids, at once: one refetch.
    let mut calls = Vec::new();
    for i in 0..20 {
        let (app, token) = (app.clone(), token(&key, &format!("made-up-{i}")));
        calls.push(tokio::spawn(async move { call(&app, &token).await.0 }));
    }
    for c in calls {
        assert_eq!(c.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(fake.fetches(), 2);
    for i in 20..30 {
        call(&app, &token(&key, &format!("made-up-{i}"))).await;
    }
    assert_eq!(fake.fetches(), 2, "within five minutes, no second refetch");
    assert_eq!(call(&app, &token(&key, "k1")).await.0, StatusCode::OK);

    // Five minutes later (paused time; nothing is in flight), one more.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(301)).await;
    tokio::time::resume();
    call(&app, &token(&key, "made-up-again")).await;
    assert_eq!(fake.fetches(), 3);
    call(&app, &token(&key, "and-again")).await;
    assert_eq!(fake.fetches(), 3);
}

#[tokio::test]
async fn the_server_starts_while_the_issuer_is_unreachable_and_recovers() {
    logs();
    let key = rsa_key();
    let fake = fake(Answer::Drop).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("jwks-ca.pem");
    std::fs::write(&ca_file, &fake.ca_pem).unwrap();
    let config = json!({
        "bind": "127.0.0.1:0",
        "database": ":memory:",
        "auth": {"external": {
            "issuer": ISSUER, "audience": AUDIENCE,
            "jwks_uri": fake.url, "jwks_ca_file": ca_file,
        }},
    });
    let config = ServerConfig::from_json(&config.to_string()).unwrap();
    let parts = Parts::from_config(&config).unwrap();
    let server = start_with(config, parts).await.unwrap();
    wait_for("the fetch at start", || async { fake.fetches() >= 1 }).await;

    let http: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mcp = server.mcp_url();
    let initialize = |token: String| {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "jwks-test", "version": "1"}}});
        Request::post(&mcp)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    };

    // No keys yet: a clear 401.
    let response = http
        .request(initialize(token_at(&key, "k1", Timestamp::now())))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(
        challenge.contains("signing keys of the token issuer are not available yet"),
        "{challenge}"
    );

    // The issuer comes back; a background retry brings the keys.
    fake.set(Answer::Document(jwks_of(&[(&key, "k1")])));
    wait_for("the issuer's token to be accepted", || async {
        let response = http
            .request(initialize(token_at(&key, "k1", Timestamp::now())))
            .await
            .unwrap();
        let status = response.status();
        let _ = response.into_body().collect().await;
        assert!(
            [StatusCode::OK, StatusCode::UNAUTHORIZED].contains(&status),
            "{status}"
        );
        status == StatusCode::OK
    })
    .await;

    // Shutdown stops the refresh task too (shutdown waits for it).
    tokio::time::timeout(Duration::from_secs(20), server.shutdown())
        .await
        .expect("shutdown in time")
        .unwrap();
    let logs = logs().0.lock().unwrap().clone();
    assert!(logs.contains("JWKS fetch failed"), "the failure is logged");
    assert!(logs.contains("JWKS fetched"), "the recovery is logged");
}

#[tokio::test]
async fn unusable_answers_keep_the_old_keys_and_are_logged() {
    let key = rsa_key();
    let fake = fake(Answer::Document(jwks_of(&[(&key, "k1")]))).await;
    let (state, app) = protected(issuer_config(&fake)).await;
    let external = state.external_issuer().unwrap();
    external.refresh_jwks().await.unwrap();

    let cases = [
        (
            Answer::Document("not json".into()),
            "is not a JWK Set document",
        ),
        (
            Answer::Document(r#"{"keys": []}"#.into()),
            "no RSA signing key",
        ),
        (Answer::Status(503), "503"),
        (Answer::Huge, "larger than 1048576 bytes"),
        (Answer::Drop, "GET https://localhost"),
    ];
    for (answer, expected) in cases {
        fake.set(answer);
        let err = external.refresh_jwks().await.unwrap_err();
        let message = format!("{err}");
        assert!(message.contains(expected), "{message}");
        assert!(message.contains(&fake.url), "{message}");
        assert_eq!(external.kids(), ["k1"], "{message}");
        assert_eq!(call(&app, &token(&key, "k1")).await.0, StatusCode::OK);
    }
    let logs = logs().0.lock().unwrap().clone();
    assert!(
        logs.contains("fetched JWKS is unusable; keeping the current keys"),
        "an unusable document is logged"
    );
    assert!(
        logs.contains("JWKS fetch failed; keeping the current keys"),
        "a failed fetch is logged"
    );

    // Without the test CA, the self-signed certificate is not trusted.
    fake.set(Answer::Document(jwks_of(&[(&key, "k1")])));
    let mut untrusted = issuer_config(&fake);
    untrusted.jwks_ca_pem = None;
    let (state, _) = protected(untrusted).await;
    let err = state
        .external_issuer()
        .unwrap()
        .refresh_jwks()
        .await
        .unwrap_err();
    assert!(err.is_fetch(), "{err}");
}
