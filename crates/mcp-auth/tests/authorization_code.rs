//! The authorization-code grant against a scripted loopback authorization server (two of
//! them on one port, for migration) that checks what a real one would: PKCE S256, the exact
//! redirect URI, the code and the refresh token it issued. The scripts then misbehave on
//! purpose (wrong `state`, wrong or missing `iss`, no PKCE, refused refresh, a moved server)
//! and the tests check that the client refuses, falls back or follows as the MCP
//! authorization spec says; plus a canary over logs and formatting for every secret value.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use mcp_auth::oauth::{
    AuthorizationHandler, AuthorizationRequest, HeadlessHandler, LoopbackHandler, OAuthClient,
};
use mcp_auth::{AuthLayer, CachedTokenSource, Challenge, Error, TokenRequest, TokenSource};
use mcp_transport::http::{HttpClient, HttpConfig};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use url::Url;

// ---- the scripted authorization server ----------------------------------------------------

/// How the script answers; changed by tests between calls.
#[derive(Clone)]
struct Script {
    /// The issuer the protected-resource metadata lists (`as1` or `as2`).
    current: &'static str,
    prm_scopes: Option<Vec<&'static str>>,
    scopes_supported: Option<Vec<&'static str>>,
    pkce_methods: Option<Vec<&'static str>>,
    /// `authorization_response_iss_parameter_supported` (absent when `None`).
    iss_advertised: Option<bool>,
    iss: Iss,
    cimd: bool,
    registration: bool,
    auth_methods: Vec<&'static str>,
    issue_refresh: bool,
    refuse_refresh: bool,
    /// Refuse code exchanges, repeating the code and the verifier in the description.
    refuse_code: bool,
    wrong_state: bool,
    deny: bool,
}

#[derive(Clone, Copy)]
enum Iss {
    Correct,
    Omit,
    Evil,
    TrailingSlash,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            current: "as1",
            prm_scopes: None,
            scopes_supported: None,
            pkce_methods: Some(vec!["S256"]),
            iss_advertised: Some(true),
            iss: Iss::Correct,
            cimd: false,
            registration: true,
            auth_methods: vec!["none"],
            issue_refresh: false,
            refuse_refresh: false,
            refuse_code: false,
            wrong_state: false,
            deny: false,
        }
    }
}

/// One request the script saw.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    query: HashMap<String, String>,
    form: HashMap<String, String>,
    json: Value,
    authorization: Option<String>,
}

/// A code the script issued: what the token request must match.
struct Grant {
    challenge: String,
    redirect_uri: String,
    client_id: String,
    scope: String,
}

#[derive(Default)]
struct Book {
    seen: Vec<Seen>,
    codes: HashMap<String, Grant>,
    refresh: HashMap<String, String>,
    access: Vec<String>,
    counter: u32,
}

struct ScriptedAs {
    base: String,
    script: Arc<Mutex<Script>>,
    book: Arc<Mutex<Book>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedAs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedAs {
    async fn start(script: Script) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(script));
        let book: Arc<Mutex<Book>> = Arc::default();
        let (b, s, k) = (base.clone(), script.clone(), book.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (b, s, k) = (b.clone(), s.clone(), k.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (b, s, k) = (b.clone(), s.clone(), k.clone());
                        async move { Ok::<_, Infallible>(answer(req, &b, &s, &k).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            base,
            script,
            book,
            task,
        }
    }

    fn mcp(&self) -> String {
        format!("{}/mcp", self.base)
    }

    fn issuer(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    fn set(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.script.lock().unwrap());
    }

    fn seen(&self) -> Vec<Seen> {
        self.book.lock().unwrap().seen.clone()
    }

    /// Requests to paths ending in `suffix` (`/authorize`, `/token`, `/register`).
    fn to(&self, suffix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.ends_with(suffix))
            .collect()
    }

    /// The 401 challenge of the MCP server, with `scope` if given.
    fn challenge(&self, scope: Option<&str>) -> Challenge {
        let scope = scope.map_or(String::new(), |s| format!(r#", scope="{s}""#));
        Challenge::parse(&format!(
            r#"Bearer error="invalid_token", resource_metadata="{}/.well-known/oauth-protected-resource/mcp"{scope}"#,
            self.base
        ))
        .unwrap()
    }

    fn valid(&self, token: &str) -> Option<String> {
        let book = self.book.lock().unwrap();
        book.access.iter().any(|t| t == token).then(String::new)
    }
}

fn json_response(status: u16, body: &Value) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn pairs(bytes: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

async fn answer(
    req: http::Request<hyper::body::Incoming>,
    base: &str,
    script: &Mutex<Script>,
    book: &Mutex<Book>,
) -> http::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: pairs(parts.uri.query().unwrap_or("").as_bytes()),
        form: pairs(&body),
        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
        authorization: parts
            .headers
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_owned()),
    };
    let script = script.lock().unwrap().clone();
    let mut book = book.lock().unwrap();
    book.seen.push(seen.clone());
    book.counter += 1;
    let n = book.counter;
    let path = seen.path.as_str();
    if path == "/.well-known/oauth-protected-resource/mcp" {
        let mut prm = json!({"resource": format!("{base}/mcp"),
            "authorization_servers": [format!("{base}/{}", script.current)]});
        if let Some(scopes) = &script.prm_scopes {
            prm["scopes_supported"] = json!(scopes);
        }
        return json_response(200, &prm);
    }
    if path == "/mcp" {
        let token = seen
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "));
        return match token.filter(|t| book.access.iter().any(|a| a == t)) {
            Some(_) => json_response(200, &json!({"jsonrpc": "2.0", "id": 1, "result": {}})),
            None => http::Response::builder()
                .status(401)
                .header(
                    WWW_AUTHENTICATE,
                    format!(
                        r#"Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp""#
                    ),
                )
                .body(Full::new(Bytes::new()))
                .unwrap(),
        };
    }
    let Some((name, rest)) = path
        .strip_prefix("/.well-known/oauth-authorization-server/")
        .map(|n| (n, ""))
        .or_else(|| path.trim_start_matches('/').split_once('/'))
    else {
        return json_response(404, &json!({"error": "not_found"}));
    };
    let issuer = format!("{base}/{name}");
    match rest {
        "" => {
            let mut asm = json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "response_types_supported": ["code"],
                "token_endpoint_auth_methods_supported": script.auth_methods,
            });
            if script.registration {
                asm["registration_endpoint"] = json!(format!("{issuer}/register"));
            }
            if let Some(m) = &script.pkce_methods {
                asm["code_challenge_methods_supported"] = json!(m);
            }
            if let Some(a) = script.iss_advertised {
                asm["authorization_response_iss_parameter_supported"] = json!(a);
            }
            if let Some(s) = &script.scopes_supported {
                asm["scopes_supported"] = json!(s);
            }
            if script.cimd {
                asm["client_id_metadata_document_supported"] = json!(true);
            }
            json_response(200, &asm)
        }
        "register" => json_response(
            201,
            &json!({"client_id": format!("{name}-client-{n}"), "client_secret": format!("{name}-secret-{n}"),
                "token_endpoint_auth_method": seen.json["token_endpoint_auth_method"]}),
        ),
        "authorize" => {
            let q = &seen.query;
            let mut to = Url::parse(&q["redirect_uri"]).unwrap();
            let state = if script.wrong_state {
                "not-the-state".to_owned()
            } else {
                q["state"].clone()
            };
            if script.deny {
                to.query_pairs_mut()
                    .append_pair("error", "access_denied")
                    .append_pair("state", &state);
            } else {
                let code = format!("code-canary-{n}");
                book.codes.insert(
                    code.clone(),
                    Grant {
                        challenge: q["code_challenge"].clone(),
                        redirect_uri: q["redirect_uri"].clone(),
                        client_id: q["client_id"].clone(),
                        scope: q.get("scope").cloned().unwrap_or_default(),
                    },
                );
                to.query_pairs_mut()
                    .append_pair("code", &code)
                    .append_pair("state", &state);
            }
            let iss = match script.iss {
                Iss::Correct => Some(issuer.clone()),
                Iss::Omit => None,
                Iss::Evil => Some("https://evil.example".to_owned()),
                Iss::TrailingSlash => Some(format!("{issuer}/")),
            };
            if let Some(iss) = iss {
                to.query_pairs_mut().append_pair("iss", &iss);
            }
            http::Response::builder()
                .status(302)
                .header(LOCATION, to.as_str())
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
        "token" => {
            let f = &seen.form;
            let (scope, problem) = match f.get("grant_type").map(String::as_str) {
                Some("authorization_code") if script.refuse_code => (
                    String::new(),
                    Some(format!(
                        "code {} with verifier {} refused",
                        f["code"], f["code_verifier"]
                    )),
                ),
                Some("authorization_code") => match book.codes.remove(&f["code"]) {
                    None => (String::new(), Some(format!("unknown code {}", f["code"]))),
                    Some(g) => {
                        let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                        let computed = URL_SAFE_NO_PAD.encode(ring::digest::digest(
                            &ring::digest::SHA256,
                            verifier.as_bytes(),
                        ));
                        let problem = if computed != g.challenge {
                            Some(format!("verifier {verifier} does not match"))
                        } else if f.get("redirect_uri") != Some(&g.redirect_uri) {
                            Some("redirect_uri differs".to_owned())
                        } else if f.get("client_id").is_some_and(|c| *c != g.client_id) {
                            Some("client_id differs".to_owned())
                        } else {
                            None
                        };
                        (g.scope, problem)
                    }
                },
                Some("refresh_token") if script.refuse_refresh => (
                    String::new(),
                    Some(format!("refresh token {} was revoked", f["refresh_token"])),
                ),
                Some("refresh_token") => match book.refresh.get(&f["refresh_token"]) {
                    Some(scope) => (scope.clone(), None),
                    None => (String::new(), Some("unknown refresh token".to_owned())),
                },
                _ => (String::new(), Some("unsupported grant".to_owned())),
            };
            if let Some(problem) = problem {
                return json_response(
                    400,
                    &json!({"error": "invalid_grant", "error_description": problem}),
                );
            }
            let access = format!("access-canary-{name}-{n}");
            book.access.push(access.clone());
            let mut body = json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600, "scope": scope});
            if script.issue_refresh {
                let refresh = format!("refresh-canary-{n}");
                book.refresh.insert(refresh.clone(), scope);
                body["refresh_token"] = json!(refresh);
            }
            json_response(200, &body)
        }
        _ => json_response(404, &json!({"error": "not_found"})),
    }
}

// ---- helpers ------------------------------------------------------------------------------

/// Every event of this test binary, at TRACE, captured as text (one process-wide subscriber:
/// per-test ones lose events to tracing's callsite-interest cache under parallel tests).
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || writer.clone())
                .finish(),
        )
        .unwrap();
        captured
    })
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A dynamically registering client of the scripted server, headless.
fn client(fake: &ScriptedAs) -> OAuthClient {
    logs();
    OAuthClient::authorization_code(HeadlessHandler::new())
        .server_url(fake.mcp())
        .build()
        .unwrap()
}

async fn first_token(
    client: &OAuthClient,
    fake: &ScriptedAs,
) -> Result<mcp_auth::AccessToken, Error> {
    client
        .token(&TokenRequest::new().challenge(fake.challenge(None)))
        .await
}

// ---- the flow ------------------------------------------------------------------------------

#[tokio::test]
async fn scripted_flow_sends_pkce_state_resource_and_exact_redirect_and_registers_once() {
    let fake = ScriptedAs::start(Script::default()).await;
    let client = client(&fake);
    let token = first_token(&client, &fake).await.unwrap();
    assert!(
        token
            .secret()
            .expose_secret()
            .starts_with("access-canary-as1-")
    );

    let register = fake.to("/register");
    assert_eq!(register.len(), 1);
    let body = &register[0].json;
    assert_eq!(body["application_type"], "native");
    assert_eq!(body["redirect_uris"], json!(["http://127.0.0.1/callback"]));
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(body["token_endpoint_auth_method"], "none");

    let authorize = &fake.to("/authorize")[0].query;
    assert_eq!(authorize["response_type"], "code");
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert_eq!(authorize["code_challenge"].len(), 43);
    assert!(authorize["state"].len() >= 43);
    assert_eq!(authorize["redirect_uri"], "http://127.0.0.1/callback");
    assert_eq!(authorize["resource"], fake.mcp());
    assert!(
        !authorize.contains_key("scope"),
        "no scope anywhere: omitted"
    );
    let exchange = &fake.to("/token")[0].form;
    assert_eq!(exchange["grant_type"], "authorization_code");
    assert_eq!(exchange["resource"], fake.mcp());
    assert_eq!(exchange["redirect_uri"], "http://127.0.0.1/callback");
    assert_eq!(exchange["client_id"], authorize["client_id"]);
    assert!(
        !exchange.contains_key("client_secret"),
        "registered as a public client"
    );

    // The server refuses the token: a new authorization, with the same registration.
    let again = client
        .token(
            &TokenRequest::new()
                .challenge(fake.challenge(None))
                .rejected(token.clone()),
        )
        .await
        .unwrap();
    assert!(!again.same_token(&token));
    assert_eq!(fake.to("/register").len(), 1, "registered once");
    let second = &fake.to("/authorize")[1].query;
    assert_eq!(second["client_id"], authorize["client_id"]);
    assert_ne!(second["state"], authorize["state"]);
    assert_ne!(second["code_challenge"], authorize["code_challenge"]);
}

#[tokio::test]
async fn scripted_without_a_challenge_the_flow_waits_for_one() {
    let fake = ScriptedAs::start(Script::default()).await;
    let err = client(&fake).token(&TokenRequest::new()).await.unwrap_err();
    assert!(err.is_challenge_required(), "{err}");
    assert!(fake.seen().is_empty());
}

#[tokio::test]
async fn scripted_state_mismatch_is_refused_before_the_code_is_used() {
    let fake = ScriptedAs::start(Script {
        wrong_state: true,
        ..Script::default()
    })
    .await;
    let err = first_token(&client(&fake), &fake).await.unwrap_err();
    assert!(err.is_invalid_authorization_response(), "{err}");
    assert!(err.to_string().contains("state"), "{err}");
    assert!(
        fake.to("/token").is_empty(),
        "the code never reached the token endpoint"
    );
}

#[tokio::test]
async fn scripted_iss_is_compared_exactly_and_required_only_when_advertised() {
    // (advertised, what the redirect carries, accepted)
    let cases = [
        (Some(true), Iss::Correct, true),
        (Some(true), Iss::Omit, false),
        (Some(true), Iss::Evil, false),
        (Some(true), Iss::TrailingSlash, false),
        (None, Iss::Omit, true),
        (Some(false), Iss::Omit, true),
        (None, Iss::Correct, true),
        (None, Iss::Evil, false),
        (Some(false), Iss::TrailingSlash, false),
    ];
    for (advertised, iss, accepted) in cases {
        let fake = ScriptedAs::start(Script {
            iss_advertised: advertised,
            iss,
            ..Script::default()
        })
        .await;
        let result = first_token(&client(&fake), &fake).await;
        assert_eq!(result.is_ok(), accepted, "{advertised:?}: {result:?}");
        if let Err(err) = result {
            assert!(err.is_invalid_authorization_response(), "{err}");
            assert!(err.to_string().contains("iss"), "{err}");
            assert!(
                fake.to("/token").is_empty(),
                "no code exchange after a bad iss"
            );
        }
    }
}

#[tokio::test]
async fn scripted_server_without_pkce_s256_is_refused() {
    for methods in [None, Some(vec!["plain"])] {
        let fake = ScriptedAs::start(Script {
            pkce_methods: methods.clone(),
            ..Script::default()
        })
        .await;
        let err = first_token(&client(&fake), &fake).await.unwrap_err();
        assert!(
            err.is_discovery() && err.to_string().contains("S256"),
            "{err}"
        );
        assert!(fake.to("/authorize").is_empty(), "{methods:?}");
    }
}

#[tokio::test]
async fn scripted_access_denied_is_authorization_denied() {
    let fake = ScriptedAs::start(Script {
        deny: true,
        ..Script::default()
    })
    .await;
    let err = first_token(&client(&fake), &fake).await.unwrap_err();
    assert!(err.is_authorization_denied(), "{err}");
    assert!(err.to_string().contains("access_denied"), "{err}");
}

#[tokio::test]
async fn scripted_refresh_token_is_used_first_and_a_refused_one_falls_back_to_authorization() {
    let fake = ScriptedAs::start(Script {
        issue_refresh: true,
        prm_scopes: Some(vec!["mcp:read"]),
        ..Script::default()
    })
    .await;
    let client = client(&fake);
    let first = first_token(&client, &fake).await.unwrap();
    assert_eq!(first.scopes(), ["mcp:read"]);

    // Rejected: refreshed, no new authorization.
    let rejected = TokenRequest::new()
        .challenge(fake.challenge(None))
        .rejected(first.clone());
    let refreshed = client.token(&rejected).await.unwrap();
    assert!(!refreshed.same_token(&first));
    assert_eq!(refreshed.scopes(), ["mcp:read"]);
    let tokens = fake.to("/token");
    assert_eq!(tokens[1].form["grant_type"], "refresh_token");
    assert_eq!(tokens[1].form["resource"], fake.mcp());
    assert_eq!(fake.to("/authorize").len(), 1);

    // Expiry (no rejection, no challenge): refreshed with the rotated refresh token.
    let expired = client.token(&TokenRequest::new()).await.unwrap();
    let tokens = fake.to("/token");
    assert_eq!(tokens[2].form["grant_type"], "refresh_token");
    assert_ne!(
        tokens[2].form["refresh_token"],
        tokens[1].form["refresh_token"]
    );
    assert_eq!(fake.to("/authorize").len(), 1);

    // The server revokes it: the client authorizes again.
    fake.set(|s| s.refuse_refresh = true);
    let rejected = TokenRequest::new()
        .challenge(fake.challenge(None))
        .rejected(expired);
    let fresh = client.token(&rejected).await.unwrap();
    assert_eq!(fake.to("/token")[3].form["grant_type"], "refresh_token");
    assert_eq!(
        fake.to("/authorize").len(),
        2,
        "fell back to a new authorization"
    );
    assert!(fresh.secret().expose_secret().starts_with("access-canary-"));
}

#[tokio::test]
async fn scripted_step_up_reauthorizes_with_the_union_instead_of_refreshing() {
    let fake = ScriptedAs::start(Script {
        issue_refresh: true,
        ..Script::default()
    })
    .await;
    let client = client(&fake);
    let first = client
        .token(&TokenRequest::new().challenge(fake.challenge(Some("files:read"))))
        .await
        .unwrap();
    assert_eq!(fake.to("/authorize")[0].query["scope"], "files:read");
    let step_up = Challenge::parse(&format!(
        r#"Bearer error="insufficient_scope", scope="files:write", resource_metadata="{}/.well-known/oauth-protected-resource/mcp""#,
        fake.base
    ))
    .unwrap();
    let token = client
        .token(
            &TokenRequest::new()
                .scopes(["files:write"])
                .challenge(step_up)
                .rejected(first),
        )
        .await
        .unwrap();
    assert_eq!(
        fake.to("/authorize")[1].query["scope"],
        "files:read files:write"
    );
    assert_eq!(token.scopes(), ["files:read", "files:write"]);
    assert!(
        fake.to("/token")
            .iter()
            .all(|t| t.form["grant_type"] == "authorization_code"),
        "a refresh cannot add scopes"
    );
}

#[tokio::test]
async fn scripted_offline_access_only_when_the_server_lists_it() {
    for (listed, wanted) in [(true, true), (false, true), (true, false)] {
        let fake = ScriptedAs::start(Script {
            scopes_supported: Some(if listed {
                vec!["mcp", "offline_access"]
            } else {
                vec!["mcp"]
            }),
            prm_scopes: Some(vec!["mcp"]),
            ..Script::default()
        })
        .await;
        let client = OAuthClient::authorization_code(HeadlessHandler::new())
            .server_url(fake.mcp())
            .offline_access(wanted)
            .build()
            .unwrap();
        first_token(&client, &fake).await.unwrap();
        let scope = fake.to("/authorize")[0].query["scope"].clone();
        let expected = if listed && wanted {
            "mcp offline_access"
        } else {
            "mcp"
        };
        assert_eq!(scope, expected, "listed {listed}, wanted {wanted}");
    }
}

#[tokio::test]
async fn scripted_cimd_client_id_is_used_when_advertised_else_dcr() {
    const CIMD: &str = "https://client.example/mcp-client.json";
    for advertised in [true, false] {
        let fake = ScriptedAs::start(Script {
            cimd: advertised,
            ..Script::default()
        })
        .await;
        let client = OAuthClient::authorization_code(HeadlessHandler::new())
            .server_url(fake.mcp())
            .client_metadata_url(CIMD)
            .build()
            .unwrap();
        first_token(&client, &fake).await.unwrap();
        let client_id = fake.to("/authorize")[0].query["client_id"].clone();
        if advertised {
            assert_eq!(client_id, CIMD);
            assert!(fake.to("/register").is_empty());
            assert_eq!(fake.to("/token")[0].form["client_id"], CIMD);
        } else {
            assert_eq!(client_id, "as1-client-3", "{:?}", fake.to("/register"));
            assert_eq!(fake.to("/register").len(), 1);
        }
    }
    let err = OAuthClient::authorization_code(HeadlessHandler::new())
        .server_url("https://mcp.example/mcp")
        .client_metadata_url("http://client.example/doc.json")
        .build()
        .unwrap_err();
    assert!(
        err.is_config() && err.to_string().contains("client_metadata_url"),
        "{err}"
    );
}

#[tokio::test]
async fn scripted_dcr_picks_a_method_the_server_accepts_and_uses_the_secret() {
    for (supported, basic) in [("client_secret_basic", true), ("client_secret_post", false)] {
        let fake = ScriptedAs::start(Script {
            auth_methods: vec![supported],
            ..Script::default()
        })
        .await;
        first_token(&client(&fake), &fake).await.unwrap();
        assert_eq!(
            fake.to("/register")[0].json["token_endpoint_auth_method"],
            supported
        );
        let exchange = &fake.to("/token")[0];
        assert_eq!(
            exchange
                .authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Basic ")),
            basic
        );
        assert_eq!(exchange.form.contains_key("client_secret"), !basic);
    }
}

#[tokio::test]
async fn scripted_authorization_server_migration_registers_again_at_the_new_server() {
    let fake = ScriptedAs::start(Script::default()).await;
    let client = client(&fake);
    let first = first_token(&client, &fake).await.unwrap();
    let as1_client = fake.to("/authorize")[0].query["client_id"].clone();
    fake.set(|s| s.current = "as2");
    let token = client
        .token(
            &TokenRequest::new()
                .challenge(fake.challenge(None))
                .rejected(first),
        )
        .await
        .unwrap();
    assert!(
        token
            .secret()
            .expose_secret()
            .starts_with("access-canary-as2-")
    );
    let register: Vec<String> = fake.to("/register").into_iter().map(|s| s.path).collect();
    assert_eq!(register, ["/as1/register", "/as2/register"]);
    let at_as2: Vec<Seen> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/as2/"))
        .collect();
    assert!(
        at_as2
            .iter()
            .all(|s| !format!("{s:?}").contains(&as1_client)),
        "the first server's client id never reaches the second"
    );
}

#[tokio::test]
async fn scripted_pre_registered_client_stays_bound_to_its_authorization_server() {
    let fake = ScriptedAs::start(Script {
        auth_methods: vec!["client_secret_basic"],
        registration: false,
        ..Script::default()
    })
    .await;
    logs();
    let client = OAuthClient::authorization_code(HeadlessHandler::new())
        .server_url(fake.mcp())
        .client_id("pre-registered")
        .client_secret("pre-secret")
        .build()
        .unwrap();
    let first = first_token(&client, &fake).await.unwrap();
    let exchange = &fake.to("/token")[0];
    let basic = base64::engine::general_purpose::STANDARD.encode("pre-registered:pre-secret");
    assert_eq!(
        exchange.authorization.as_deref(),
        Some(&*format!("Basic {basic}"))
    );
    fake.set(|s| s.current = "as2");
    let err = client
        .token(
            &TokenRequest::new()
                .challenge(fake.challenge(None))
                .rejected(first),
        )
        .await
        .unwrap_err();
    assert!(
        err.is_discovery() && err.to_string().contains("bound"),
        "{err}"
    );
    assert!(fake.seen().iter().all(|s| !s.path.starts_with("/as2/")));
}

#[test]
fn builder_settings_that_cannot_work_are_config_errors() {
    let build = |b: mcp_auth::oauth::AuthorizationCodeBuilder| b.build().unwrap_err();
    let base = || OAuthClient::authorization_code(HeadlessHandler::new());
    let cases = [
        (build(base()), "server_url"),
        (
            build(
                base()
                    .server_url("https://m.example/mcp")
                    .client_secret("s"),
            ),
            "client id",
        ),
        (
            build(base().server_url("https://m.example/mcp").client_id("")),
            "client id",
        ),
        (
            build(
                base()
                    .server_url("https://m.example/mcp")
                    .client_id("c")
                    .auth_method(mcp_auth::oauth::AuthMethod::ClientSecretBasic),
            ),
            "secret",
        ),
        (
            build(
                base()
                    .server_url("https://m.example/mcp")
                    .auth_method(mcp_auth::oauth::AuthMethod::ClientSecretPost),
            ),
            "pre-registered",
        ),
        (
            build(
                base()
                    .server_url("https://m.example/mcp")
                    .client_metadata_url("https://client.example/"),
            ),
            "path",
        ),
        (
            build(base().server_url("http://m.example/mcp")),
            "plain http",
        ),
    ];
    for (err, names) in cases {
        assert!(
            err.is_config() && err.to_string().contains(names),
            "{names}: {err}"
        );
    }
    let err = OAuthClient::client_credentials("c", "s")
        .token_endpoint("https://as.example/token")
        .auth_method(mcp_auth::oauth::AuthMethod::None)
        .build()
        .unwrap_err();
    assert!(err.is_config() && err.to_string().contains("none"), "{err}");
}

#[tokio::test]
async fn scripted_no_way_to_register_is_a_config_error() {
    let fake = ScriptedAs::start(Script {
        registration: false,
        ..Script::default()
    })
    .await;
    let err = first_token(&client(&fake), &fake).await.unwrap_err();
    assert!(
        err.is_config() && err.to_string().contains("pre-registered"),
        "{err}"
    );
}

#[tokio::test]
async fn scripted_auth_layer_and_cache_authorize_once_for_many_requests() {
    let fake = ScriptedAs::start(Script::default()).await;
    let source = CachedTokenSource::new(client(&fake));
    let http = HttpClient::new(&HttpConfig::default()).unwrap();
    let service = tower::ServiceBuilder::new()
        .layer(AuthLayer::new(source))
        .service(http);
    for _ in 0..3 {
        let request = http::Request::post(fake.mcp())
            .header(CONTENT_TYPE, "application/json")
            .body(Bytes::from_static(b"{}"))
            .unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(fake.to("/authorize").len(), 1);
    let mcp: Vec<Option<String>> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path == "/mcp")
        .map(|s| s.authorization)
        .collect();
    assert_eq!(
        mcp.len(),
        4,
        "one unauthenticated first try, then three with the token"
    );
    assert!(mcp[0].is_none() && mcp[1..].iter().all(Option::is_some));
    assert!(
        fake.valid(mcp[1].as_deref().unwrap().trim_start_matches("Bearer "))
            .is_some()
    );
}

#[tokio::test]
async fn scripted_loopback_handler_receives_the_browser_and_the_flow_completes() {
    let fake = ScriptedAs::start(Script::default()).await;
    logs();
    // The "browser": follows the authorization URL to the scripted server, then its redirect
    // to the loopback listener.
    let handler = LoopbackHandler::bind(0)
        .unwrap()
        .timeout(Duration::from_secs(10))
        .on_url(|url| {
            let url = url.clone();
            tokio::spawn(async move {
                let http = HttpClient::new(&HttpConfig::default()).unwrap();
                let get = |u: &str| http::Request::get(u).body(Bytes::new()).unwrap();
                let answer = http.clone().oneshot(get(url.as_str())).await.unwrap();
                let location = answer.headers()[LOCATION].to_str().unwrap().to_owned();
                let page = http.oneshot(get(&location)).await.unwrap();
                assert_eq!(page.status(), StatusCode::OK);
            });
        });
    let redirect = handler.redirect_uri();
    assert_eq!(redirect.host_str(), Some("127.0.0.1"));
    assert_ne!(redirect.port(), Some(0));
    let client = OAuthClient::authorization_code(handler)
        .server_url(fake.mcp())
        .build()
        .unwrap();
    first_token(&client, &fake).await.unwrap();
    assert_eq!(
        fake.to("/authorize")[0].query["redirect_uri"],
        redirect.as_str()
    );
    assert_eq!(
        fake.to("/register")[0].json["redirect_uris"],
        json!([redirect.as_str()])
    );
}

/// Keeps the authorization request of a flow (and fails it), for handler tests:
/// [`AuthorizationRequest`] is made by the client only.
struct Capture(Mutex<Option<AuthorizationRequest>>);

impl AuthorizationHandler for Capture {
    fn redirect_uri(&self) -> Url {
        Url::parse("http://127.0.0.1/callback").unwrap()
    }

    fn authorize<'a>(
        &'a self,
        request: &'a AuthorizationRequest,
    ) -> mcp_auth::BoxFuture<'a, Result<Url, Error>> {
        *self.0.lock().unwrap() = Some(request.clone());
        Box::pin(async { Err(Error::other("captured")) })
    }
}

#[tokio::test]
async fn scripted_headless_handler_only_requests_the_authorization_endpoint() {
    let fake = ScriptedAs::start(Script::default()).await;
    logs();
    let capture = Arc::new(Capture(Mutex::new(None)));
    let client = OAuthClient::authorization_code(capture.clone())
        .server_url(fake.mcp())
        .build()
        .unwrap();
    first_token(&client, &fake).await.unwrap_err();
    let request = capture.0.lock().unwrap().clone().unwrap();
    assert_eq!(request.authorization_endpoint.path(), "/as1/authorize");
    assert_eq!(request.issuer, fake.issuer("as1"));
    let state = request
        .url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    assert!(
        !format!("{request:?}").contains(&state),
        "Debug shows no query"
    );
    let before = fake.seen().len();

    let handler = HeadlessHandler::new();
    for elsewhere in [
        format!("{}/as1/token?x=1", fake.base),
        "http://127.0.0.2:9/as1/authorize".to_owned(),
        format!(
            "{}/as1/authorize",
            fake.base.replace("http://", "http://user:pw@")
        ),
    ] {
        let mut moved = request.clone();
        moved.url = Url::parse(&elsewhere).unwrap();
        let err = handler.authorize(&moved).await.unwrap_err();
        assert!(err.is_config(), "{elsewhere}: {err}");
    }
    assert_eq!(fake.seen().len(), before, "nothing was sent");

    // The real request: one GET, no credentials, the redirect read and not followed.
    let callback = handler.authorize(&request).await.unwrap();
    assert_eq!(callback.path(), "/callback");
    assert!(callback.query_pairs().any(|(k, _)| k == "code"));
    let get = fake.seen().pop().unwrap();
    assert_eq!(
        (get.method, get.path.as_str()),
        (Method::GET, "/as1/authorize")
    );
    assert!(get.authorization.is_none());
    assert_eq!(fake.seen().len(), before + 1);
}

// ---- secrets canary -----------------------------------------------------------------------

#[tokio::test]
async fn secrets_never_reach_logs_debug_display_or_errors() {
    let captured = logs();
    let fake = ScriptedAs::start(Script {
        issue_refresh: true,
        auth_methods: vec!["client_secret_post"],
        ..Script::default()
    })
    .await;
    let client = client(&fake);
    let mut shown = format!("{client:?}");
    let token = first_token(&client, &fake).await.unwrap();
    let rejected = |t: &mcp_auth::AccessToken| {
        TokenRequest::new()
            .challenge(fake.challenge(None))
            .rejected(t.clone())
    };
    let refreshed = client.token(&rejected(&token)).await.unwrap();
    shown += &format!(
        "{client:?} {token:?} {refreshed:?} {:?}",
        rejected(&refreshed)
    );
    // Both refusals repeat what was sent: the refresh token, then the code and verifier.
    fake.set(|s| {
        s.refuse_refresh = true;
        s.refuse_code = true;
    });
    let err = client.token(&rejected(&refreshed)).await.unwrap_err();
    assert!(err.is_token_endpoint(), "{err}");
    assert!(err.to_string().contains("not shown"), "{err}");
    shown += &format!("{err} {err:?} {client:?}");

    let mut secrets: Vec<String> = Vec::new();
    for seen in fake.seen() {
        for key in ["code", "code_verifier", "refresh_token", "client_secret"] {
            secrets.extend(seen.form.get(key).cloned());
        }
    }
    secrets.extend(fake.book.lock().unwrap().access.iter().cloned());
    for prefix in [
        "code-canary-",
        "refresh-canary-",
        "access-canary-",
        "as1-secret-",
    ] {
        assert!(
            secrets.iter().any(|s| s.starts_with(prefix)),
            "{prefix} was used"
        );
    }
    assert!(secrets.iter().any(|s| s.len() == 43), "a verifier was used");

    let logs = captured.text();
    assert!(logs.contains("authorization request"), "the capture works");
    assert!(
        logs.contains("refreshing the access token failed"),
        "the refresh failure is logged"
    );
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "{secret} in logs");
        assert!(
            !shown.contains(secret.as_str()),
            "{secret} in formatting:\n{shown}"
        );
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
