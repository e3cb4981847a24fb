//! A fake managed identity token endpoint on loopback, in either of its two shapes:
//!
//! - **App Service** ([`FakeManagedIdentity::app_service`]):
//!   `GET /msi/token?api-version=2019-08-01&resource=<r>[&client_id=<id>]` with header
//!   `X-IDENTITY-HEADER: <the identity header>`; put [`endpoint`](FakeManagedIdentity::endpoint)
//!   in `IDENTITY_ENDPOINT` and the header value in `IDENTITY_HEADER`. Answers
//!   `{"access_token","expires_on":"<unix>","resource","token_type":"Bearer","client_id"}`.
//! - **IMDS** ([`FakeManagedIdentity::imds`]):
//!   `GET /metadata/identity/oauth2/token?api-version=...&resource=<r>[&client_id=..]` with
//!   header `Metadata: true` (without it: `400`
//!   `{"error":"invalid_request","error_description":"Required metadata header not specified"}`).
//!   Answers `{"access_token","refresh_token":"","expires_in":"3599","expires_on":"<unix>",
//!   "not_before":"<unix>","resource","token_type":"Bearer"}` (numbers as strings, as IMDS
//!   does). The real IMDS lives at `169.254.169.254`: tests reach this fake by redirecting the
//!   SDK's transport, never by sending anything to that address.
//!
//! Both modes answer whatever the `Host` header says, accept any `api-version` value (the
//! official client sends `2019-08-01` to both), and also take `object_id`, `principal_id`,
//! `msi_res_id` and `mi_res_id`. Tokens are random hex strings valid for an hour; every one
//! handed out is listed by [`issued`](FakeManagedIdentity::issued).
//! [`fail_next`](FakeManagedIdentity::fail_next) scripts failures.
//!
//! ```
//! use testkit::azure::FakeManagedIdentity;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let msi = FakeManagedIdentity::app_service("secret-header-value").await?;
//! assert!(msi.endpoint().ends_with("/msi/token"));
//! msi.fail_next(1, 500);
//! assert!(msi.issued().is_empty());
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{IssuedToken, Reply, Req, Server, json_reply, now_unix, random_hex};
use crate::lock;

/// The `client_id` App Service reports for the system-assigned identity.
pub const SYSTEM_CLIENT_ID: &str = "5f3c1a2e-0000-4000-8000-000000000001";

/// Lifetime of issued tokens, in seconds.
const LIFETIME: u64 = 3600;

const APP_SERVICE_PATH: &str = "/msi/token";
const IMDS_PATH: &str = "/metadata/identity/oauth2/token";

/// Which managed identity endpoint the fake plays.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// App Service / Functions (`IDENTITY_ENDPOINT`), checking `X-IDENTITY-HEADER`.
    AppService {
        /// The value `X-IDENTITY-HEADER` must carry.
        identity_header: String,
    },
    /// The VM instance metadata service, checking `Metadata: true`.
    Imds,
}

/// One request the fake received. Never holds the identity header's value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdentityRequest {
    /// HTTP method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Whether it carried `Metadata: true`.
    pub metadata_header: bool,
    /// Whether it carried an `X-IDENTITY-HEADER` (right or wrong).
    pub identity_header: bool,
    /// The status the fake answered with.
    pub status: u16,
}

struct Failures {
    remaining: usize,
    status: StatusCode,
    body: Option<Value>,
}

struct State {
    mode: Mode,
    /// `None`: any `client_id` is a known user-assigned identity.
    assigned: Option<HashSet<String>>,
    failures: Failures,
    issued: Vec<IssuedToken>,
    requests: Vec<IdentityRequest>,
}

/// A fake managed identity endpoint on `127.0.0.1`. See the [module docs](self).
pub struct FakeManagedIdentity {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeManagedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        let mode = match state.mode {
            Mode::AppService { .. } => "app_service",
            Mode::Imds => "imds",
        };
        f.debug_struct("FakeManagedIdentity")
            .field("addr", &self.server.addr())
            .field("mode", &mode)
            .field("issued", &state.issued.len())
            .finish_non_exhaustive()
    }
}

impl FakeManagedIdentity {
    /// Starts an App Service managed identity endpoint on `127.0.0.1:0` that requires
    /// `X-IDENTITY-HEADER: <identity_header>`. Must be called inside a Tokio runtime.
    pub async fn app_service(identity_header: &str) -> io::Result<Self> {
        Self::start(Mode::AppService {
            identity_header: identity_header.to_string(),
        })
        .await
    }

    /// Starts an IMDS managed identity endpoint on `127.0.0.1:0` that requires
    /// `Metadata: true`. Must be called inside a Tokio runtime.
    pub async fn imds() -> io::Result<Self> {
        Self::start(Mode::Imds).await
    }

    async fn start(mode: Mode) -> io::Result<Self> {
        let state = Arc::new(Mutex::new(State {
            mode,
            assigned: None,
            failures: Failures {
                remaining: 0,
                status: StatusCode::INTERNAL_SERVER_ERROR,
                body: None,
            },
            issued: Vec::new(),
            requests: Vec::new(),
        }));
        let shared = state.clone();
        let server = Server::start(move |req| answer(&shared, &req)).await?;
        Ok(Self { server, state })
    }

    /// The address the endpoint listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Which endpoint this fake plays.
    pub fn mode(&self) -> Mode {
        lock(&self.state).mode.clone()
    }

    /// The token URL: `http://127.0.0.1:{port}/msi/token` (App Service, the value for
    /// `IDENTITY_ENDPOINT`) or `http://127.0.0.1:{port}/metadata/identity/oauth2/token`
    /// (IMDS, where to redirect `http://169.254.169.254/metadata/identity/oauth2/token`).
    pub fn endpoint(&self) -> String {
        let path = match lock(&self.state).mode {
            Mode::AppService { .. } => APP_SERVICE_PATH,
            Mode::Imds => IMDS_PATH,
        };
        format!("http://{}{path}", self.server.addr())
    }

    /// Makes `client_id` a user-assigned identity of this resource. Before the first call any
    /// `client_id` is accepted; after it, requests naming an unassigned `client_id` get `400`
    /// "Identity not found". Requests naming none (system-assigned) always succeed.
    pub fn assign_identity(&self, client_id: &str) {
        lock(&self.state)
            .assigned
            .get_or_insert_with(HashSet::new)
            .insert(client_id.to_string());
    }

    /// The next `n` token requests get `status` with the fake's usual error body for it (for
    /// `400`: "Identity not found"). Replaces an earlier setting.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.set_failures(n, status, None);
    }

    /// Like [`fail_next`](Self::fail_next), with `body` as the JSON answer.
    pub fn fail_next_with_body(&self, n: usize, status: u16, body: Value) {
        self.set_failures(n, status, Some(body));
    }

    fn set_failures(&self, n: usize, status: u16, body: Option<Value>) {
        lock(&self.state).failures = Failures {
            remaining: n,
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        };
    }

    /// Every token handed out so far, oldest first.
    pub fn issued(&self) -> Vec<IssuedToken> {
        lock(&self.state).issued.clone()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<IdentityRequest> {
        lock(&self.state).requests.clone()
    }
}

fn oauth_error(error: &str, description: &str) -> Value {
    json!({"error": error, "error_description": description})
}

fn answer(state: &Mutex<State>, req: &Req) -> Reply {
    let mut state = lock(state);
    let (status, reply) = decide(&mut state, req);
    state.requests.push(IdentityRequest {
        method: req.method.clone(),
        path: req.uri.path().to_string(),
        query: req.uri.query().map(str::to_string),
        metadata_header: req
            .header("metadata")
            .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        identity_header: req.headers.contains_key("x-identity-header"),
        status: status.as_u16(),
    });
    reply
}

fn decide(state: &mut State, req: &Req) -> (StatusCode, Reply) {
    let fail = |status: StatusCode, body: Value| (status, json_reply(status, &body));
    let path = match state.mode {
        Mode::AppService { .. } => APP_SERVICE_PATH,
        Mode::Imds => IMDS_PATH,
    };
    let req_path = req.uri.path();
    if req_path != path && req_path.strip_suffix('/') != Some(path) {
        return fail(
            StatusCode::NOT_FOUND,
            oauth_error("not_found", &format!("No such endpoint: {req_path}")),
        );
    }
    if req.method != Method::GET {
        return fail(
            StatusCode::METHOD_NOT_ALLOWED,
            oauth_error("invalid_request", "Only GET is supported"),
        );
    }
    if state.failures.remaining > 0 {
        state.failures.remaining -= 1;
        let status = state.failures.status;
        let body = state.failures.body.clone().unwrap_or_else(|| match status {
            StatusCode::BAD_REQUEST => oauth_error("invalid_request", "Identity not found"),
            StatusCode::TOO_MANY_REQUESTS => {
                oauth_error("too_many_requests", "Too many requests, retry later")
            }
            s if s.is_server_error() => oauth_error("server_error", "Internal server error"),
            s => oauth_error(
                "invalid_request",
                &format!("Scripted failure {}", s.as_u16()),
            ),
        });
        return fail(status, body);
    }

    match &state.mode {
        Mode::AppService { identity_header } => match req.header("x-identity-header") {
            None => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    oauth_error(
                        "invalid_request",
                        "Required header X-IDENTITY-HEADER not specified",
                    ),
                );
            }
            Some(v) if v != identity_header => {
                return fail(
                    StatusCode::UNAUTHORIZED,
                    oauth_error("unauthorized_client", "X-IDENTITY-HEADER is not valid"),
                );
            }
            Some(_) => {}
        },
        Mode::Imds => {
            if !req
                .header("metadata")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            {
                return fail(
                    StatusCode::BAD_REQUEST,
                    oauth_error("invalid_request", "Required metadata header not specified"),
                );
            }
        }
    }

    let Some(_api_version) = req.query_param("api-version").filter(|v| !v.is_empty()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            oauth_error(
                "invalid_request",
                "Required query variable 'api-version' is missing",
            ),
        );
    };
    let Some(resource) = req.query_param("resource").filter(|v| !v.is_empty()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            oauth_error(
                "invalid_request",
                "Required query variable 'resource' is missing",
            ),
        );
    };
    let client_id = req.query_param("client_id").filter(|v| !v.is_empty());
    if let (Some(id), Some(assigned)) = (&client_id, &state.assigned)
        && !assigned.contains(id)
    {
        return fail(
            StatusCode::BAD_REQUEST,
            oauth_error("invalid_request", "Identity not found"),
        );
    }

    let now = now_unix();
    let token = IssuedToken {
        access_token: random_hex(4),
        resource: resource.clone(),
        client_id: client_id.clone(),
        tenant: None,
        expires_on: now + LIFETIME,
    };
    let body = match state.mode {
        Mode::AppService { .. } => json!({
            "access_token": token.access_token,
            "expires_on": token.expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id.as_deref().unwrap_or(SYSTEM_CLIENT_ID),
        }),
        Mode::Imds => json!({
            "access_token": token.access_token,
            "refresh_token": "",
            "expires_in": (LIFETIME - 1).to_string(),
            "expires_on": token.expires_on.to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    };
    state.issued.push(token);
    (StatusCode::OK, json_reply(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    use super::super::test_http::send;
    use super::*;

    const RES: &str = "resource=https%3A%2F%2Fvault.azure.net";

    #[tokio::test]
    async fn app_service_checks_the_identity_header() {
        let msi = FakeManagedIdentity::app_service("hdr-secret")
            .await
            .unwrap();
        assert_eq!(msi.endpoint(), format!("http://{}/msi/token", msi.addr()));
        let target = format!("/msi/token?api-version=2019-08-01&{RES}");
        let r = send(msi.addr(), "GET", &target, "localhost", &[], "").await;
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["error"], "invalid_request");
        let r = send(
            msi.addr(),
            "GET",
            &target,
            "localhost",
            &[("X-IDENTITY-HEADER", "wrong")],
            "",
        )
        .await;
        assert_eq!(r.status, 401);
        assert!(msi.issued().is_empty());

        let ok = [("X-IDENTITY-HEADER", "hdr-secret")];
        let r = send(msi.addr(), "GET", &target, "localhost", &ok, "").await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        let body = r.json();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["resource"], "https://vault.azure.net");
        assert_eq!(body["client_id"], SYSTEM_CLIENT_ID);
        let expires: u64 = body["expires_on"].as_str().unwrap().parse().unwrap();
        assert!(expires >= now_unix() + 3500);

        let target = format!("/msi/token?api-version=2019-08-01&{RES}&client_id=uai-1");
        let r = send(msi.addr(), "GET", &target, "localhost", &ok, "").await;
        assert_eq!(r.json()["client_id"], "uai-1");

        let issued = msi.issued();
        assert_eq!(issued.len(), 2);
        assert_eq!(
            issued[0].access_token,
            body["access_token"].as_str().unwrap()
        );
        assert_eq!(issued[0].resource, "https://vault.azure.net");
        assert_eq!(issued[0].client_id, None);
        assert_eq!(issued[1].client_id.as_deref(), Some("uai-1"));
        assert_ne!(issued[0].access_token, issued[1].access_token);

        let reqs = msi.requests();
        assert_eq!(reqs.len(), 4);
        assert!(!reqs[0].identity_header && reqs[1].identity_header);
        assert_eq!(
            reqs.iter().map(|r| r.status).collect::<Vec<_>>(),
            [400, 401, 200, 200]
        );

        let r = send(
            msi.addr(),
            "GET",
            "/msi/token?api-version=2019-08-01",
            "x",
            &ok,
            "",
        )
        .await;
        assert_eq!(r.status, 400);
        let r = send(msi.addr(), "GET", &format!("/other?{RES}"), "x", &ok, "").await;
        assert_eq!(r.status, 404);
    }

    #[tokio::test]
    async fn imds_checks_the_metadata_header_and_scripts_failures() {
        let msi = FakeManagedIdentity::imds().await.unwrap();
        assert_eq!(msi.mode(), Mode::Imds);
        let target = format!("/metadata/identity/oauth2/token?api-version=2018-02-01&{RES}");
        let host = "169.254.169.254";
        let r = send(msi.addr(), "GET", &target, host, &[], "").await;
        assert_eq!(r.status, 400);
        assert_eq!(
            r.json(),
            json!({"error":"invalid_request","error_description":"Required metadata header not specified"})
        );

        let md = [("Metadata", "true")];
        let r = send(msi.addr(), "GET", &target, host, &md, "").await;
        assert_eq!(r.status, 200);
        let body = r.json();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["refresh_token"], "");
        assert_eq!(body["expires_in"], "3599");
        assert!(body["expires_on"].as_str().unwrap().parse::<u64>().is_ok());
        assert!(body["not_before"].as_str().unwrap().parse::<u64>().is_ok());
        assert_eq!(body["resource"], "https://vault.azure.net");

        msi.fail_next(2, 500);
        for _ in 0..2 {
            let r = send(msi.addr(), "GET", &target, host, &md, "").await;
            assert_eq!(r.status, 500);
        }
        msi.fail_next(1, 400);
        let r = send(msi.addr(), "GET", &target, host, &md, "").await;
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["error_description"], "Identity not found");
        msi.fail_next_with_body(1, 503, json!({"error": "busy"}));
        let r = send(msi.addr(), "GET", &target, host, &md, "").await;
        assert_eq!((r.status, r.json()), (503, json!({"error": "busy"})));

        msi.assign_identity("known");
        let r = send(
            msi.addr(),
            "GET",
            &format!("{target}&client_id=other"),
            host,
            &md,
            "",
        )
        .await;
        assert_eq!(r.status, 400);
        let r = send(
            msi.addr(),
            "GET",
            &format!("{target}&client_id=known"),
            host,
            &md,
            "",
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(msi.issued().len(), 2);
        assert!(msi.requests()[1].metadata_header);
    }
}
