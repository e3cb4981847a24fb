//! Behaviour of the authorization server and the token check, driven in process through the
//! axum router (`tower::ServiceExt::oneshot`, no network): token issuance with both client
//! authentication methods and every RFC 6749 §5.2 error, the failed-attempt limit (with a
//! manual clock, so nothing sleeps), token verification and each way a token is refused,
//! key persistence across a restart and rotation, the metadata documents, the bearer
//! middleware's challenges, external RS256 tokens, and a secrets canary over `Debug`,
//! `Display`, error bodies and logs captured at TRACE.

#![allow(clippy::unwrap_used, reason = "test code")]

mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::ConnectInfo;
use axum::routing::post;
use axum::{Extension, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, Request, StatusCode};
use jiff::Timestamp;
use scheduler_server::auth::{
    self, ApiKey, AuthConfig, AuthState, Claims, ExternalIssuerConfig, ManualClock,
    RateLimitConfig, TokenError,
};
use scheduler_server::store::{Client, SqliteStore, Store};
use serde_json::{Value, json};
use support::{logs, rs256, rsa_jwks, rsa_key};
use tower::ServiceExt as _;

const ISSUER: &str = "http://127.0.0.1:8080";
const RESOURCE: &str = "http://127.0.0.1:8080/mcp";
const METADATA_URL: &str = "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp";

// ---- helpers ----------------------------------------------------------------------------

fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn config() -> AuthConfig {
    AuthConfig::new(ISSUER, RESOURCE)
}

struct Env {
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    state: AuthState,
    app: Router,
}

async fn env() -> Env {
    env_with(config()).await
}

async fn env_with(config: AuthConfig) -> Env {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    env_on(store, config).await
}

async fn env_on(store: Arc<dyn Store>, config: AuthConfig) -> Env {
    logs();
    let clock = ManualClock::new(t0());
    let state = AuthState::new(store.clone(), config, clock.clock())
        .await
        .unwrap();
    let protected = auth::protect(
        Router::new().route(
            "/mcp",
            post(|Extension(claims): Extension<Claims>| async move {
                format!("{} {}", claims.client_id, claims.scopes.join(","))
            }),
        ),
        state.clone(),
    );
    let app = auth::routes(state.clone()).merge(protected);
    Env {
        store,
        clock,
        state,
        app,
    }
}

async fn register(env: &Env, scopes: &[&str]) -> (Client, ApiKey) {
    auth::register_client(&*env.store, "test client", scopes.iter().copied())
        .await
        .unwrap()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Reply {
    fn header(&self, name: http::header::HeaderName) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

fn form_request() -> http::request::Builder {
    Request::builder()
        .method(Method::POST)
        .uri("/oauth/token")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
}

/// client_secret_basic; `extra` is appended to `grant_type=client_credentials`.
fn basic_request(id: &str, key: &str, extra: &str) -> Request<Body> {
    let body = format!("grant_type=client_credentials{extra}");
    form_request()
        .header(
            AUTHORIZATION,
            format!("Basic {}", STANDARD.encode(format!("{id}:{key}"))),
        )
        .body(Body::from(body))
        .unwrap()
}

/// client_secret_post.
fn post_request(id: &str, key: &str, extra: &str) -> Request<Body> {
    let body = format!("grant_type=client_credentials&client_id={id}&client_secret={key}{extra}");
    form_request().body(Body::from(body)).unwrap()
}

fn from_peer(mut request: Request<Body>, ip: [u8; 4]) -> Request<Body> {
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
    request
}

async fn get_token(env: &Env, id: &str, key: &str) -> String {
    let reply = send(&env.app, basic_request(id, key, "")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json["access_token"].as_str().unwrap().to_owned()
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn parts(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let header = decode_part(it.next().unwrap());
    let payload = decode_part(it.next().unwrap());
    (header, payload, it.next().unwrap().to_owned())
}

/// A token with the given header and payload and the signature of `original` (so it fails
/// at or before the signature check).
fn forge(original: &str, header: &Value, payload: &Value) -> String {
    let (_, _, sig) = parts(original);
    format!("{}.{}.{sig}", encode_part(header), encode_part(payload))
}

fn bearer(token: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/mcp")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

// ---- issuance ---------------------------------------------------------------------------

#[tokio::test]
async fn issues_a_token_with_client_secret_basic() {
    let env = env().await;
    let (client, key) = register(&env, &["conversations:read", "conversations:write"]).await;
    let reply = send(&env.app, basic_request(&client.id, key.expose(), "")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.header(CACHE_CONTROL), "no-store");
    assert!(reply.header(CONTENT_TYPE).starts_with("application/json"));
    assert_eq!(reply.json["token_type"], "Bearer");
    assert_eq!(reply.json["expires_in"], 3600);
    assert_eq!(
        reply.json["scope"],
        "conversations:read conversations:write"
    );

    let token = reply.json["access_token"].as_str().unwrap();
    let (header, payload, _) = parts(token);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], env.state.jwks()["keys"][0]["kid"]);
    assert_eq!(payload["iss"], ISSUER);
    assert_eq!(payload["aud"], RESOURCE);
    assert_eq!(payload["sub"], client.id.as_str());
    assert_eq!(payload["client_id"], client.id.as_str());
    assert_eq!(payload["iat"], t0().as_second());
    assert_eq!(payload["nbf"], t0().as_second());
    assert_eq!(payload["exp"], t0().as_second() + 3600);
    assert!(payload["jti"].as_str().is_some_and(|j| !j.is_empty()));

    let claims = env.state.verifier().verify(token).unwrap();
    assert_eq!(claims.subject, client.id);
    assert_eq!(claims.client_id, client.id);
    assert_eq!(claims.issuer, ISSUER);
    assert_eq!(claims.audience, vec![RESOURCE.to_owned()]);
    assert!(claims.has_scope("conversations:write"));
    assert!(!claims.external);
    assert_eq!(claims.expires_at.as_second(), t0().as_second() + 3600);
}

#[tokio::test]
async fn issues_a_token_with_client_secret_post_and_a_narrower_scope() {
    let env = env().await;
    let (client, key) = register(&env, &["a", "b", "c"]).await;
    let reply = send(
        &env.app,
        post_request(&client.id, key.expose(), "&scope=c+a"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["scope"], "c a");
    let claims = env
        .state
        .verifier()
        .verify(reply.json["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.scopes, vec!["c".to_owned(), "a".to_owned()]);
}

#[tokio::test]
async fn token_ttl_is_configurable() {
    let env = env_with(config().with_token_ttl(Duration::from_secs(300))).await;
    let (client, key) = register(&env, &["a"]).await;
    let reply = send(&env.app, basic_request(&client.id, key.expose(), "")).await;
    assert_eq!(reply.json["expires_in"], 300);
}

#[tokio::test]
async fn scopes_supported_limit_what_is_granted() {
    let env = env_with(config().with_scopes(["a"])).await;
    let (client, key) = register(&env, &["a", "legacy"]).await;
    let reply = send(&env.app, basic_request(&client.id, key.expose(), "")).await;
    assert_eq!(reply.json["scope"], "a");
    let reply = send(
        &env.app,
        basic_request(&client.id, key.expose(), "&scope=legacy"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error(), "invalid_scope");
}

// ---- token endpoint errors --------------------------------------------------------------

#[tokio::test]
async fn a_wrong_key_is_invalid_client_with_a_basic_challenge() {
    let env = env().await;
    let (client, _key) = register(&env, &["a"]).await;
    let reply = send(&env.app, basic_request(&client.id, "not-the-key", "")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error(), "invalid_client");
    assert!(reply.header(WWW_AUTHENTICATE).starts_with("Basic realm="));
    assert_eq!(reply.header(CACHE_CONTROL), "no-store");

    // client_secret_post: 401 too, without a Basic challenge.
    let reply = send(&env.app, post_request(&client.id, "not-the-key", "")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error(), "invalid_client");
    assert!(reply.headers.get(WWW_AUTHENTICATE).is_none());
}

#[tokio::test]
async fn an_unknown_client_is_invalid_client() {
    let env = env().await;
    let (_client, key) = register(&env, &["a"]).await;
    for request in [
        basic_request("sch_aaaaaaaaaaaaaaaaaaaaaaaa", key.expose(), ""),
        post_request("sch_aaaaaaaaaaaaaaaaaaaaaaaa", key.expose(), ""),
    ] {
        let reply = send(&env.app, request).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.error(), "invalid_client");
    }
}

#[tokio::test]
async fn missing_or_malformed_client_authentication_is_refused() {
    let env = env().await;
    let (client, key) = register(&env, &["a"]).await;

    let body = "grant_type=client_credentials";
    let reply = send(&env.app, form_request().body(Body::from(body)).unwrap()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error(), "invalid_client");
    assert!(reply.header(WWW_AUTHENTICATE).starts_with("Basic"));

    let request = form_request()
        .header(AUTHORIZATION, "Basic !!not-base64!!")
        .body(Body::from(body))
        .unwrap();
    let reply = send(&env.app, request).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error(), "invalid_client");

    // Both methods at once.
    let both = format!(
        "grant_type=client_credentials&client_secret={}",
        key.expose()
    );
    let request = form_request()
        .header(
            AUTHORIZATION,
            format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", client.id, key.expose()))
            ),
        )
        .body(Body::from(both.clone()))
        .unwrap();
    let reply = send(&env.app, request).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error(), "invalid_request");
}

#[tokio::test]
async fn a_disabled_client_is_refused() {
    let env = env().await;
    let (client, key) = register(&env, &["a"]).await;
    env.store
        .set_client_disabled(&client.id, true)
        .await
        .unwrap();
    let reply = send(&env.app, basic_request(&client.id, key.expose(), "")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error(), "unauthorized_client");
    assert!(reply.json.get("access_token").is_none());

    env.store
        .set_client_disabled(&client.id, false)
        .await
        .unwrap();
    let reply = send(&env.app, basic_request(&client.id, key.expose(), "")).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn a_scope_outside_the_clients_is_invalid_scope() {
    let env = env().await;
    let (client, key) = register(&env, &["a", "b"]).await;
    for extra in ["&scope=a+admin", "&scope=", "&scope=a++b", "&scope=%22q%22"] {
        let reply = send(&env.app, basic_request(&client.id, key.expose(), extra)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{extra}");
        assert_eq!(reply.error(), "invalid_scope", "{extra}");
    }
}

#[tokio::test]
async fn an_unsupported_grant_and_malformed_requests_are_refused() {
    let env = env().await;
    let (client, key) = register(&env, &["a"]).await;
    let id = &client.id;
    let key = key.expose();

    let body = format!("grant_type=password&client_id={id}&client_secret={key}");
    let reply = send(
        &env.app,
        form_request().body(Body::from(body.clone())).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error(), "unsupported_grant_type");

    let cases = [
        format!("client_id={id}&client_secret={key}"),
        format!(
            "grant_type=client_credentials&grant_type=client_credentials&client_id={id}&client_secret={key}"
        ),
        format!("grant_type=client_credentials&client_id={id}&client_secret=%zz"),
    ];
    for body in cases {
        let reply = send(
            &env.app,
            form_request().body(Body::from(body.clone())).unwrap(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error(), "invalid_request", "{body}");
    }

    let json_body = json!({"grant_type": "client_credentials"}).to_string();
    let request = Request::builder()
        .method(Method::POST)
        .uri("/oauth/token")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(json_body))
        .unwrap();
    let reply = send(&env.app, request).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error(), "invalid_request");

    let request = Request::builder()
        .uri("/oauth/token")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&env.app, request).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );

    let reply = send(
        &env.app,
        basic_request(id, key, "&resource=https%3A%2F%2Felsewhere.example%2Fmcp"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error(), "invalid_target");
    let reply = send(
        &env.app,
        basic_request(id, key, "&resource=http%3A%2F%2F127.0.0.1%3A8080%2Fmcp"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

// ---- rate limiting ----------------------------------------------------------------------

#[tokio::test]
async fn failed_attempts_per_client_are_limited_then_recover() {
    let env = env().await;
    let (client, key) = register(&env, &["a"]).await;
    for i in 0..10 {
        env.clock.advance(Duration::from_secs(1));
        let reply = send(
            &env.app,
            basic_request(&client.id, &format!("guess-{i}"), ""),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    // Over the limit: refused even with the right key.
    let reply = send(&env.app, basic_request(&client.id, key.expose(), "")).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );
    let retry_after: u64 = reply.header(RETRY_AFTER).parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(reply.header(CACHE_CONTROL), "no-store");

    // Another client is not affected (no peer address in these requests).
    let (other, other_key) = register(&env, &["a"]).await;
    let reply = send(&env.app, basic_request(&other.id, other_key.expose(), "")).await;
    assert_eq!(reply.status, StatusCode::OK);

    // After the window, the right key works again.
    env.clock.advance(Duration::from_secs(retry_after));
    let reply = send(&env.app, basic_request(&client.id, key.expose(), "")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn failed_attempts_per_peer_address_are_limited() {
    let env = env_with(config().with_rate_limit({
        let mut limit = RateLimitConfig::default();
        limit.max_failures = 3;
        limit
    }))
    .await;
    let (client, key) = register(&env, &["a"]).await;
    for i in 0..3 {
        let id = format!("sch_unknown{i}");
        let reply = send(
            &env.app,
            from_peer(basic_request(&id, "x", ""), [192, 0, 2, 1]),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let reply = send(
        &env.app,
        from_peer(basic_request(&client.id, key.expose(), ""), [192, 0, 2, 1]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    let reply = send(
        &env.app,
        from_peer(basic_request(&client.id, key.expose(), ""), [192, 0, 2, 2]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    env.clock.advance(Duration::from_secs(60));
    let reply = send(
        &env.app,
        from_peer(basic_request(&client.id, key.expose(), ""), [192, 0, 2, 1]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

// ---- verification -----------------------------------------------------------------------

#[tokio::test]
async fn tampered_tokens_fail_the_signature_check() {
    let env = env().await;
    let (client, key) = register(&env, &["a"]).await;
    let token = get_token(&env, &client.id, key.expose()).await;
    let (header, mut payload, sig) = parts(&token);

    payload["scope"] = json!("a admin");
    let tampered = forge(&token, &header, &payload);
    assert_eq!(
        env.state.verifier().verify(&tampered),
        Err(TokenError::BadSignature)
    );

    let mut sig_bytes = URL_SAFE_NO_PAD.decode(&sig).unwrap();
    sig_bytes[10] ^= 1;
    let (h, p) = token.rsplit_once('.').unwrap().0.split_once('.').unwrap();
    let bad_sig = format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(&sig_bytes));
    assert_eq!(
        env.state.verifier().verify(&bad_sig),
        Err(TokenError::BadSignature)
    );
    let truncated = format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(&sig_bytes[..32]));
    assert_eq!(
        env.state.verifier().verify(&truncated),
        Err(TokenError::BadSignature)
    );
}

#[tokio::test]
async fn wrong_issuer_and_wrong_audience_are_refused() {
    // Three states over one store share the signing key, so their tokens verify
    // cryptographically everywhere and only `iss` / `aud` differ.
    let env = env().await;
    let other_issuer = env_on(
        env.store.clone(),
        AuthConfig::new("https://other.example", RESOURCE),
    )
    .await;
    let other_resource = env_on(
        env.store.clone(),
        AuthConfig::new(ISSUER, "http://127.0.0.1:8080/other"),
    )
    .await;
    let scopes = vec!["a".to_owned()];
    let t = other_issuer.state.issue_token("sch_x", &scopes).unwrap();
    assert_eq!(
        env.state.verifier().verify(t.access_token.expose()),
        Err(TokenError::WrongIssuer)
    );
    let t = other_resource.state.issue_token("sch_x", &scopes).unwrap();
    assert_eq!(
        env.state.verifier().verify(t.access_token.expose()),
        Err(TokenError::WrongAudience)
    );
    let t = env.state.issue_token("sch_x", &scopes).unwrap();
    assert!(env.state.verifier().verify(t.access_token.expose()).is_ok());
}

#[tokio::test]
async fn expiry_and_not_before_are_checked_with_a_minute_of_leeway() {
    let env = env().await;
    let scopes = vec!["a".to_owned()];
    let token = env.state.issue_token("sch_x", &scopes).unwrap();
    let token = token.access_token.expose().to_owned();
    let verify = |t: &str| env.state.verifier().verify(t).map(|_| ());

    env.clock.set(t0() + Duration::from_secs(3600 + 59));
    assert_eq!(verify(&token), Ok(()));
    env.clock.set(t0() + Duration::from_secs(3600 + 60));
    assert_eq!(verify(&token), Err(TokenError::Expired));

    // Issued ten minutes "in the future" (a clock ahead of ours).
    env.clock.set(t0() + Duration::from_secs(600));
    let future = env.state.issue_token("sch_x", &scopes).unwrap();
    let future = future.access_token.expose().to_owned();
    env.clock.set(t0());
    assert_eq!(verify(&future), Err(TokenError::NotYetValid));
    env.clock.set(t0() + Duration::from_secs(540));
    assert_eq!(verify(&future), Ok(()));
}

#[tokio::test]
async fn the_algorithm_is_pinned() {
    let env = env().await;
    let (client, key) = register(&env, &["a"]).await;
    let token = get_token(&env, &client.id, key.expose()).await;
    let (header, payload, _) = parts(&token);
    let kid = header["kid"].clone();
    let verify = |t: &str| env.state.verifier().verify(t);

    // alg none, with and without a signature part.
    let none = json!({"alg": "none", "typ": "at+jwt", "kid": kid});
    let unsigned = format!("{}.{}.", encode_part(&none), encode_part(&payload));
    assert_eq!(verify(&unsigned), Err(TokenError::UnsupportedAlgorithm));
    let none_upper = json!({"alg": "None", "typ": "at+jwt", "kid": kid});
    assert_eq!(
        verify(&forge(&token, &none_upper, &payload)),
        Err(TokenError::UnsupportedAlgorithm)
    );

    // HS256 keyed with the public JWK (the classic confusion attack).
    let hs = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    let input = format!("{}.{}", encode_part(&hs), encode_part(&payload));
    let secret = serde_json::to_vec(&env.state.jwks()["keys"][0]).unwrap();
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
        input.as_bytes(),
    );
    let hs_token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    assert_eq!(verify(&hs_token), Err(TokenError::UnsupportedAlgorithm));

    for alg in ["RS256", "ES384", "PS256", "EdDSA", "es256"] {
        let h = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
        assert_eq!(
            verify(&forge(&token, &h, &payload)),
            Err(TokenError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
    let no_alg = json!({"typ": "at+jwt", "kid": kid});
    assert_eq!(
        verify(&forge(&token, &no_alg, &payload)),
        Err(TokenError::Malformed)
    );
    let crit = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid, "crit": ["exp"]});
    assert_eq!(
        verify(&forge(&token, &crit, &payload)),
        Err(TokenError::Malformed)
    );
    let id_token = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
    assert_eq!(
        verify(&forge(&token, &id_token, &payload)),
        Err(TokenError::WrongType)
    );
}

#[tokio::test]
async fn an_unknown_kid_is_refused() {
    let env = env().await;
    let (client, key) = register(&env, &["a"]).await;
    let token = get_token(&env, &client.id, key.expose()).await;
    let (_, payload, _) = parts(&token);
    let unknown = json!({"alg": "ES256", "typ": "at+jwt", "kid": "no-such-key"});
    assert_eq!(
        env.state
            .verifier()
            .verify(&forge(&token, &unknown, &payload)),
        Err(TokenError::UnknownKey)
    );
    let missing = json!({"alg": "ES256", "typ": "at+jwt"});
    assert_eq!(
        env.state
            .verifier()
            .verify(&forge(&token, &missing, &payload)),
        Err(TokenError::UnknownKey)
    );
}

#[tokio::test]
async fn oversized_and_malformed_tokens_are_refused() {
    let env = env().await;
    let verify = |t: &str| env.state.verifier().verify(t);
    let big = "a".repeat(auth::MAX_TOKEN_LEN + 1);
    assert_eq!(verify(&big), Err(TokenError::TooLarge));
    for bad in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!.!!.!!",
        "e30.e30.",
        "bnVsbA.e30.AA",
    ] {
        assert_eq!(verify(bad), Err(TokenError::Malformed), "{bad:?}");
    }
    // Padding and standard-alphabet base64 are not base64url.
    let scopes = vec!["a".to_owned()];
    let token = env.state.issue_token("sch_x", &scopes).unwrap();
    let (h, rest) = token.access_token.expose().split_once('.').unwrap();
    assert_eq!(verify(&format!("{h}=.{rest}")), Err(TokenError::Malformed));
}

/// Signs `header.payload` with the server's current signing key, read from the store (the
/// test stands in for a forger who stole the key, to reach the checks after the signature).
async fn sign_local(env: &Env, header: &Value, payload: &Value) -> String {
    sign_local_raw(env, header, &serde_json::to_vec(payload).unwrap()).await
}

async fn sign_local_raw(env: &Env, header: &Value, payload: &[u8]) -> String {
    let stored = env
        .store
        .get_setting("auth.signingKeys")
        .await
        .unwrap()
        .unwrap();
    let keys = stored["keys"].as_array().unwrap();
    let pkcs8 = URL_SAFE_NO_PAD
        .decode(keys[keys.len() - 1]["pkcs8"].as_str().unwrap())
        .unwrap();
    let rng = ring::rand::SystemRandom::new();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &pkcs8,
        &rng,
    )
    .unwrap();
    let input = format!(
        "{}.{}",
        encode_part(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = pair.sign(&rng, input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

#[tokio::test]
async fn required_claims_must_be_present_and_well_typed() {
    let env = env().await;
    let issued = env.state.issue_token("sch_x", &["a".to_owned()]).unwrap();
    let (header, payload, _) = parts(issued.access_token.expose());
    let verify = |t: &str| env.state.verifier().verify(t);

    // Re-signing the unchanged payload gives a valid token (the helper is sound).
    assert!(verify(&sign_local(&env, &header, &payload).await).is_ok());

    for (claim, expected) in [
        ("iss", TokenError::MissingClaim("iss")),
        ("aud", TokenError::MissingClaim("aud")),
        ("exp", TokenError::MissingClaim("exp")),
        ("sub", TokenError::MissingClaim("sub")),
        ("iat", TokenError::MissingClaim("iat")),
        ("jti", TokenError::MissingClaim("jti")),
        ("client_id", TokenError::MissingClaim("client_id")),
    ] {
        let mut p = payload.clone();
        p.as_object_mut().unwrap().remove(claim);
        assert_eq!(
            verify(&sign_local(&env, &header, &p).await),
            Err(expected),
            "{claim}"
        );
    }
    for (claim, value) in [("exp", json!("soon")), ("aud", json!(7)), ("sub", json!(1))] {
        let mut p = payload.clone();
        p[claim] = value;
        assert_eq!(
            verify(&sign_local(&env, &header, &p).await),
            Err(TokenError::Malformed),
            "{claim}"
        );
    }
    // `aud` may be an array; fractional NumericDates are accepted.
    let mut p = payload.clone();
    p["aud"] = json!(["https://other.example", RESOURCE]);
    p["exp"] = json!(t0().as_second() as f64 + 0.5);
    let claims = verify(&sign_local(&env, &header, &p).await).unwrap();
    assert_eq!(claims.audience.len(), 2);
    assert_eq!(claims.expires_at, t0());
    // Duplicate members are refused rather than resolved one way or the other.
    let text = serde_json::to_string(&payload).unwrap();
    let duplicated = text.replacen('{', r#"{"iss":"https://evil.example","#, 1);
    let token = sign_local_raw(&env, &header, duplicated.as_bytes()).await;
    assert_eq!(verify(&token), Err(TokenError::Malformed));
}

// ---- keys -------------------------------------------------------------------------------

#[tokio::test]
async fn keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler.db");
    let (token, kid) = {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
        let env = env_on(store, config()).await;
        let (client, key) = register(&env, &["a"]).await;
        let token = get_token(&env, &client.id, key.expose()).await;
        (token, env.state.jwks()["keys"][0]["kid"].clone())
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let env = env_on(store, config()).await;
    assert_eq!(env.state.jwks()["keys"][0]["kid"], kid);
    assert_eq!(env.state.jwks()["keys"].as_array().unwrap().len(), 1);
    let claims = env.state.verifier().verify(&token).unwrap();
    assert!(claims.client_id.starts_with("sch_"));
    // Signing keys are secret settings: left out of backups.
    let backup = env.store.export(t0()).await.unwrap();
    assert!(backup.settings.keys().all(|k| !k.contains("signing")));
}

#[tokio::test]
async fn rotation_adds_a_key_that_signs_while_old_tokens_still_verify() {
    let env = env().await;
    let scopes = vec!["a".to_owned()];
    let old = env.state.issue_token("sch_x", &scopes).unwrap();
    let old_kid = env.state.signing_keys()[0].0.clone();

    let new_kid = env.state.rotate_signing_key().await.unwrap();
    assert_ne!(new_kid, old_kid);
    let jwks = env.state.jwks();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec![new_kid.as_str(), old_kid.as_str()]);

    let new = env.state.issue_token("sch_x", &scopes).unwrap();
    assert_eq!(parts(new.access_token.expose()).0["kid"], new_kid.as_str());
    assert!(
        env.state
            .verifier()
            .verify(old.access_token.expose())
            .is_ok()
    );
    assert!(
        env.state
            .verifier()
            .verify(new.access_token.expose())
            .is_ok()
    );

    // Another replica over the same store sees the rotation after a reload.
    let replica = env_on(env.store.clone(), config()).await;
    assert!(
        replica
            .state
            .verifier()
            .verify(new.access_token.expose())
            .is_ok()
    );

    assert!(env.state.retire_signing_key(&new_kid).await.is_err());
    assert!(!env.state.retire_signing_key("nope").await.unwrap());
    assert!(env.state.retire_signing_key(&old_kid).await.unwrap());
    assert_eq!(
        env.state.verifier().verify(old.access_token.expose()),
        Err(TokenError::UnknownKey)
    );
    assert!(
        env.state
            .verifier()
            .verify(new.access_token.expose())
            .is_ok()
    );
    replica.state.reload_signing_keys().await.unwrap();
    assert_eq!(
        replica.state.verifier().verify(old.access_token.expose()),
        Err(TokenError::UnknownKey)
    );
}

// ---- metadata ---------------------------------------------------------------------------

async fn get_json(app: &Router, path: &str) -> Reply {
    let request = Request::builder().uri(path).body(Body::empty()).unwrap();
    let reply = send(app, request).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}");
    reply
}

#[tokio::test]
async fn metadata_documents_have_the_expected_shape() {
    let env = env_with(config().with_scopes(["conversations:read", "conversations:write"])).await;

    let reply = get_json(&env.app, "/.well-known/oauth-authorization-server").await;
    assert!(reply.header(CONTENT_TYPE).starts_with("application/json"));
    assert_eq!(
        reply.json,
        json!({
            "issuer": ISSUER,
            "token_endpoint": format!("{ISSUER}/oauth/token"),
            "jwks_uri": format!("{ISSUER}/jwks.json"),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["conversations:read", "conversations:write"],
            "response_types_supported": [],
        })
    );

    let expected_prm = json!({
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "scopes_supported": ["conversations:read", "conversations:write"],
        "bearer_methods_supported": ["header"],
    });
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let reply = get_json(&env.app, path).await;
        assert!(reply.header(CONTENT_TYPE).starts_with("application/json"));
        assert_eq!(reply.json, expected_prm, "{path}");
    }

    let reply = get_json(&env.app, "/jwks.json").await;
    assert_eq!(reply.header(CONTENT_TYPE), "application/jwk-set+json");
    let keys = reply.json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let jwk = keys[0].as_object().unwrap();
    let mut members: Vec<&str> = jwk.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["alg"], "ES256");
    for c in ["x", "y"] {
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk[c].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
    }
    // kid is the RFC 7638 thumbprint.
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    let thumbprint = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ));
    assert_eq!(jwk["kid"], thumbprint.as_str());
}

#[tokio::test]
async fn configuration_errors_name_the_setting() {
    logs();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let clock = ManualClock::new(t0()).clock();
    let cases = [
        (
            AuthConfig::new("http://scheduler.example", RESOURCE),
            "auth.issuer",
        ),
        (
            AuthConfig::new("https://a.example/path", RESOURCE),
            "auth.issuer",
        ),
        (AuthConfig::new(ISSUER, "not a url"), "auth.resource"),
        (config().with_token_ttl(Duration::ZERO), "auth.token_ttl"),
        (config().with_scopes(["two words"]), "auth.scopes_supported"),
        (
            config().with_external(ExternalIssuerConfig::new("https://x", "aud", "{}")),
            "auth.external.jwks",
        ),
    ];
    for (config, setting) in cases {
        let err = AuthState::new(store.clone(), config, clock.clone())
            .await
            .expect_err(setting);
        assert!(err.is_config(), "{err}");
        assert!(err.to_string().contains(setting), "{err}");
    }
    let insecure = AuthConfig::new("http://scheduler.example", "http://scheduler.example/mcp")
        .with_allow_insecure_http(true);
    assert!(AuthState::new(store, insecure, clock).await.is_ok());
}

#[tokio::test]
async fn registration_validates_and_stores_only_the_hash() {
    logs();
    let store = SqliteStore::in_memory().unwrap();
    let (client, key) = auth::register_client(&store, " batch ", ["a", "b", "a"])
        .await
        .unwrap();
    assert_eq!(client.name, "batch");
    assert_eq!(client.scopes, vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(key.expose().len(), 43);
    assert_eq!(URL_SAFE_NO_PAD.decode(key.expose()).unwrap().len(), 32);
    assert!(client.id.starts_with("sch_") && client.id.len() == 28);
    let stored = store.get_client(&client.id).await.unwrap();
    assert_eq!(stored.key_hash, auth::hash_api_key(key.expose()));
    assert!(stored.key_hash.starts_with("sha256:"));
    assert!(!format!("{stored:?}").contains(key.expose()));
    assert!(auth::verify_api_key(key.expose(), &stored.key_hash));

    let (other, other_key) = auth::register_client(&store, "x", ["a"]).await.unwrap();
    assert_ne!(other.id, client.id);
    assert_ne!(other_key.expose(), key.expose());

    let err = auth::register_client(&store, "x", ["bad scope"])
        .await
        .unwrap_err();
    assert!(err.is_config());
    let err = auth::register_client(&store, "  ", ["a"])
        .await
        .unwrap_err();
    assert!(err.is_config());
}

// ---- middleware -------------------------------------------------------------------------

#[tokio::test]
async fn the_middleware_admits_valid_tokens_and_hands_over_the_claims() {
    let env = env().await;
    let (client, key) = register(&env, &["a", "b"]).await;
    let token = get_token(&env, &client.id, key.expose()).await;
    let reply = send(&env.app, bearer(&token)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text, format!("{} a,b", client.id));

    // The scheme is case-insensitive.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/mcp")
        .header(AUTHORIZATION, format!("bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&env.app, request).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_middleware_challenges_missing_and_invalid_tokens() {
    let env = env_with(config().with_scopes(["a"])).await;

    let request = Request::builder()
        .method(Method::POST)
        .uri("/mcp")
        .body(Body::empty())
        .unwrap();
    let reply = send(&env.app, request).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let challenge = reply.header(WWW_AUTHENTICATE);
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!(r#"resource_metadata="{METADATA_URL}""#)),
        "{challenge}"
    );
    assert!(challenge.contains(r#"scope="a""#), "{challenge}");
    assert!(!challenge.contains("error="), "{challenge}");

    // Another scheme counts as no token.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/mcp")
        .header(AUTHORIZATION, "Basic YTpi")
        .body(Body::empty())
        .unwrap();
    let reply = send(&env.app, request).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(!reply.header(WWW_AUTHENTICATE).contains("error="));

    let reply = send(&env.app, bearer("not.a.token")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let challenge = reply.header(WWW_AUTHENTICATE);
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(challenge.contains("error_description="), "{challenge}");
    assert!(
        challenge.contains(&format!(r#"resource_metadata="{METADATA_URL}""#)),
        "{challenge}"
    );

    // Expired.
    let scopes = vec!["a".to_owned()];
    let token = env.state.issue_token("sch_x", &scopes).unwrap();
    env.clock.advance(Duration::from_secs(7200));
    let reply = send(&env.app, bearer(token.access_token.expose())).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.header(WWW_AUTHENTICATE).contains("expired"));
    assert_eq!(reply.error(), "invalid_token");

    // Two Authorization headers.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/mcp")
        .header(AUTHORIZATION, "Bearer a")
        .header(AUTHORIZATION, "Bearer b")
        .body(Body::empty())
        .unwrap();
    let reply = send(&env.app, request).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply
            .header(WWW_AUTHENTICATE)
            .contains(r#"error="invalid_request""#)
    );
}

// ---- required scopes --------------------------------------------------------------------

fn no_token() -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/mcp")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn a_token_without_a_required_scope_gets_403_insufficient_scope() {
    let env = env_with(
        config()
            .with_scopes(["conversations:read"])
            .with_required_scopes(["mcp:use"]),
    )
    .await;

    // The metadata lists the required scope (added to the configured list) ...
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
    ] {
        let reply = get_json(&env.app, path).await;
        assert_eq!(
            reply.json["scopes_supported"],
            json!(["conversations:read", "mcp:use"]),
            "{path}"
        );
    }
    // ... and the 401 challenge names it (not the whole supported list).
    let reply = send(&env.app, no_token()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.header(WWW_AUTHENTICATE),
        format!(r#"Bearer scope="mcp:use", resource_metadata="{METADATA_URL}""#)
    );

    // A client registered without it gets a token, which /mcp refuses with 403.
    let (client, key) = register(&env, &["conversations:read"]).await;
    let token = get_token(&env, &client.id, key.expose()).await;
    let reply = send(&env.app, bearer(&token)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(
        reply.header(WWW_AUTHENTICATE),
        format!(
            r#"Bearer error="insufficient_scope", scope="mcp:use", resource_metadata="{METADATA_URL}", error_description="the token lacks the required scope mcp:use""#
        )
    );
    assert_eq!(reply.error(), "insufficient_scope");

    // A client registered with it is granted it (by default and on request) and admitted.
    let (client, key) = register(&env, &["mcp:use", "conversations:read"]).await;
    let reply = send(&env.app, basic_request(&client.id, key.expose(), "")).await;
    assert_eq!(reply.json["scope"], "mcp:use conversations:read");
    let token = reply.json["access_token"].as_str().unwrap();
    let reply = send(&env.app, bearer(token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.text,
        format!("{} mcp:use,conversations:read", client.id)
    );
    let reply = send(
        &env.app,
        basic_request(&client.id, key.expose(), "&scope=mcp:use"),
    )
    .await;
    assert_eq!(reply.json["scope"], "mcp:use");
    let token = reply.json["access_token"].as_str().unwrap();
    assert_eq!(send(&env.app, bearer(token)).await.status, StatusCode::OK);
    // Asking for a narrower token without it: valid, but not enough for /mcp.
    let reply = send(
        &env.app,
        basic_request(&client.id, key.expose(), "&scope=conversations:read"),
    )
    .await;
    let token = reply.json["access_token"].as_str().unwrap();
    assert_eq!(
        send(&env.app, bearer(token)).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn every_required_scope_is_needed_and_none_by_default() {
    // Without scopes_supported, the required scopes alone are published.
    let strict = env_with(config().with_required_scopes(["a", "b", "a"])).await;
    let reply = get_json(&strict.app, "/.well-known/oauth-protected-resource").await;
    assert_eq!(reply.json["scopes_supported"], json!(["a", "b"]));
    let only_a = strict
        .state
        .issue_token("sch_x", &["a".to_owned()])
        .unwrap();
    let reply = send(&strict.app, bearer(only_a.access_token.expose())).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let challenge = reply.header(WWW_AUTHENTICATE);
    assert!(challenge.contains(r#"scope="a b""#), "{challenge}");
    assert!(
        challenge.contains(r#"error_description="the token lacks the required scope b""#),
        "{challenge}"
    );
    let both = ["b".to_owned(), "c".to_owned(), "a".to_owned()];
    let token = strict.state.issue_token("sch_x", &both).unwrap();
    let reply = send(&strict.app, bearer(token.access_token.expose())).await;
    assert_eq!(reply.status, StatusCode::OK);

    // The default: nothing required, a token without scopes is admitted, no scope challenged.
    let env = env().await;
    let bare = env.state.issue_token("sch_x", &[]).unwrap();
    let reply = send(&env.app, bearer(bare.access_token.expose())).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send(&env.app, no_token()).await;
    assert!(!reply.header(WWW_AUTHENTICATE).contains("scope="));

    // A malformed required scope is a configuration error naming the setting.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let err = AuthState::new(
        store,
        config().with_required_scopes(["two words"]),
        ManualClock::new(t0()).clock(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("auth.required_scopes"), "{err}");
}

#[tokio::test]
async fn external_tokens_satisfy_required_scopes_with_scp_or_roles() {
    let key = rsa_key();
    let env = env_with(
        config()
            .with_required_scopes(["Scheduler.Use"])
            .with_external(ExternalIssuerConfig::new(
                ENTRA_ISSUER,
                ENTRA_AUDIENCE,
                rsa_jwks(&key, "entra-1"),
            )),
    )
    .await;
    let now = t0().as_second();
    let base = json!({
        "iss": ENTRA_ISSUER, "aud": ENTRA_AUDIENCE, "sub": "mi-object-id",
        "iat": now, "nbf": now, "exp": now + 3600,
    });
    let with = |name: &str, value: Value| {
        let mut payload = base.clone();
        payload[name] = value;
        rs256(&key, "entra-1", &payload)
    };
    for (token, status) in [
        (with("roles", json!(["Scheduler.Use"])), StatusCode::OK),
        (
            with("scp", json!("User.Read Scheduler.Use")),
            StatusCode::OK,
        ),
        (with("roles", json!(["Other"])), StatusCode::FORBIDDEN),
        (rs256(&key, "entra-1", &base), StatusCode::FORBIDDEN),
    ] {
        let reply = send(&env.app, bearer(&token)).await;
        assert_eq!(reply.status, status, "{}", reply.text);
    }
}

// ---- external issuer --------------------------------------------------------------------

const ENTRA_ISSUER: &str = "https://sts.windows.net/00000000-0000-0000-0000-000000000001/";
const ENTRA_AUDIENCE: &str = "api://scheduler";

#[tokio::test]
async fn tokens_of_a_configured_external_issuer_are_accepted() {
    let key = rsa_key();
    let env = env_with(config().with_external(ExternalIssuerConfig::new(
        ENTRA_ISSUER,
        ENTRA_AUDIENCE,
        rsa_jwks(&key, "entra-1"),
    )))
    .await;
    let now = t0().as_second();
    let payload = json!({
        "iss": ENTRA_ISSUER, "aud": ENTRA_AUDIENCE, "sub": "mi-object-id",
        "appid": "11111111-2222-3333-4444-555555555555", "roles": ["conversations.write"],
        "iat": now, "nbf": now, "exp": now + 3600,
    });
    let token = rs256(&key, "entra-1", &payload);
    let claims = env.state.verifier().verify(&token).unwrap();
    assert!(claims.external);
    assert_eq!(claims.subject, "mi-object-id");
    assert_eq!(claims.client_id, "11111111-2222-3333-4444-555555555555");
    assert_eq!(claims.scopes, vec!["conversations.write".to_owned()]);
    assert!(claims.token_id.is_none());
    // Through the middleware too.
    assert_eq!(send(&env.app, bearer(&token)).await.status, StatusCode::OK);

    let mut wrong_aud = payload.clone();
    wrong_aud["aud"] = json!(RESOURCE);
    assert_eq!(
        env.state
            .verifier()
            .verify(&rs256(&key, "entra-1", &wrong_aud)),
        Err(TokenError::WrongAudience)
    );
    let mut wrong_iss = payload.clone();
    wrong_iss["iss"] = json!(ISSUER);
    assert_eq!(
        env.state
            .verifier()
            .verify(&rs256(&key, "entra-1", &wrong_iss)),
        Err(TokenError::WrongIssuer)
    );
    let mut expired = payload.clone();
    expired["exp"] = json!(now - 120);
    assert_eq!(
        env.state
            .verifier()
            .verify(&rs256(&key, "entra-1", &expired)),
        Err(TokenError::Expired)
    );
    assert_eq!(
        env.state
            .verifier()
            .verify(&rs256(&key, "entra-2", &payload)),
        Err(TokenError::UnknownKey)
    );
    // The external key cannot be used with another algorithm, nor a local kid with RS256.
    let (h, rest) = token.split_once('.').unwrap();
    let mut header = decode_part(h);
    header["alg"] = json!("ES256");
    header["typ"] = json!("at+jwt");
    assert_eq!(
        env.state
            .verifier()
            .verify(&format!("{}.{rest}", encode_part(&header))),
        Err(TokenError::UnknownKey)
    );
    let local_kid = env.state.signing_keys()[0].0.clone();
    assert_eq!(
        env.state
            .verifier()
            .verify(&rs256(&key, &local_kid, &payload)),
        Err(TokenError::UnknownKey)
    );

    // A new JWKS replaces the old one.
    let external = env.state.external_issuer().unwrap();
    assert_eq!(
        external.replace_jwks(&rsa_jwks(&key, "entra-2")).unwrap(),
        1
    );
    assert!(
        env.state
            .verifier()
            .verify(&rs256(&key, "entra-2", &payload))
            .is_ok()
    );
    assert_eq!(
        env.state.verifier().verify(&token),
        Err(TokenError::UnknownKey)
    );
}

#[tokio::test]
async fn rs256_is_refused_without_an_external_issuer() {
    let key = rsa_key();
    let env = env().await;
    let now = t0().as_second();
    let payload = json!({"iss": ISSUER, "aud": RESOURCE, "sub": "x", "exp": now + 60});
    assert_eq!(
        env.state.verifier().verify(&rs256(&key, "k", &payload)),
        Err(TokenError::UnsupportedAlgorithm)
    );
}

// ---- secrets canary ---------------------------------------------------------------------

#[tokio::test]
async fn secrets_never_reach_debug_display_errors_or_logs() {
    let env = env().await;
    let (client, key) = register(&env, &["a"]).await;
    let secret = key.expose().to_owned();

    let mut seen = String::new();
    let mut tokens = Vec::new();
    for request in [
        basic_request(&client.id, &secret, ""),
        post_request(&client.id, &secret, ""),
    ] {
        let reply = send(&env.app, request).await;
        assert_eq!(reply.status, StatusCode::OK);
        tokens.push(reply.json["access_token"].as_str().unwrap().to_owned());
    }
    // Failures of every kind, with the real key somewhere in the request.
    let failures = [
        basic_request(&client.id, &format!("{secret}x"), ""),
        post_request(&secret, &secret, ""),
        basic_request(&client.id, &secret, "&scope=admin"),
        basic_request(&client.id, &secret, "&grant_type=x"),
    ];
    for request in failures {
        let reply = send(&env.app, request).await;
        assert_ne!(reply.status, StatusCode::OK);
        let _ = write!(seen, "{} {:?}", reply.text, reply.headers);
    }
    // The middleware, admitting and refusing.
    for token in &tokens {
        let reply = send(&env.app, bearer(token)).await;
        assert_eq!(reply.status, StatusCode::OK);
        let mut tampered = token.clone();
        tampered.push('A');
        let reply = send(&env.app, bearer(&tampered)).await;
        let _ = write!(seen, "{} {:?}", reply.text, reply.headers);
    }
    let issued = env
        .state
        .issue_token(&client.id, &["a".to_owned()])
        .unwrap();
    let claims = env.state.verifier().verify(&tokens[0]).unwrap();
    let error = env
        .state
        .verifier()
        .verify(&format!("{}x", tokens[0]))
        .unwrap_err();
    env.state.rotate_signing_key().await.unwrap();
    let stored = env.store.get_client(&client.id).await.unwrap();

    let _ = write!(
        seen,
        "{key:?} {key} {key:#?} {:?} {} {issued:?} {issued:#?} {claims:?} {error:?} {error} \
         {:?} {:?} {:?} {stored:?} {:?}",
        issued.access_token,
        issued.access_token,
        env.state,
        env.state.verifier(),
        env.state.config(),
        env.clock,
    );
    // Every test's log, not only this one's: no secret of this test may appear anywhere.
    let logs = logs().0.lock().unwrap().clone();
    assert!(logs.contains("access token issued"), "{logs}");
    assert!(logs.contains(&client.id), "{logs}");
    assert!(logs.contains("wrong_key"), "{logs}");
    assert!(logs.contains("<unrecognised>"), "{logs}");
    assert!(logs.contains("bearer token refused"), "{logs}");

    // The token's signature part and the whole token are secrets; the key in any form too.
    let mut canaries = vec![secret.clone(), issued.access_token.expose().to_owned()];
    for token in &tokens {
        canaries.push(token.clone());
        canaries.push(token.rsplit('.').next().unwrap().to_owned());
    }
    for canary in &canaries {
        assert!(!logs.contains(canary.as_str()), "secret in logs: {logs}");
        assert!(!seen.contains(canary.as_str()), "secret in output: {seen}");
    }
}

/// The verification cache (a verified token skips the signature check on later uses) keeps
/// every rule: expiry is checked on each use, and retiring the signing key refuses tokens
/// verified before.
#[tokio::test]
async fn cached_verifications_still_expire_and_follow_key_retirement() {
    let env = env().await;
    let (client, _) = register(&env, &["scheduler"]).await;
    let issued = env
        .state
        .issue_token(&client.id, &["scheduler".to_owned()])
        .unwrap();
    let token = issued.access_token.expose().to_owned();
    let verifier = env.state.verifier();
    assert!(verifier.verify(&token).is_ok());
    assert!(verifier.verify(&token).is_ok(), "second use (cached)");
    // Expiry is checked on every use, cached or not.
    env.clock.advance(Duration::from_secs(3_600 + 61));
    assert!(matches!(verifier.verify(&token), Err(TokenError::Expired)));
    env.clock.set(t0());
    assert!(verifier.verify(&token).is_ok());
    // A new key set invalidates the cache: retiring the old key refuses its tokens.
    let old_kid = env.state.signing_keys()[0].0.clone();
    env.state.rotate_signing_key().await.unwrap();
    assert!(env.state.retire_signing_key(&old_kid).await.unwrap());
    assert!(
        verifier.verify(&token).is_err(),
        "token of a retired key still accepted"
    );
}
