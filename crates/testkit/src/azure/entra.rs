//! A fake Microsoft Entra ID token endpoint on loopback, for the client-credentials flow with a
//! client secret or a federated assertion (workload identity).
//!
//! `POST /{tenant}/oauth2/v2.0/token`, form body `grant_type=client_credentials`, `client_id`,
//! `scope` (e.g. `https://vault.azure.net/.default`) and either `client_secret` or
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` +
//! `client_assertion`:
//!
//! | request | answer |
//! |---|---|
//! | a tenant nothing was registered for | `400` `invalid_request` (AADSTS90002) |
//! | another `grant_type` | `400` `unsupported_grant_type` (AADSTS70003) |
//! | no `client_id` / no `scope` | `400` `invalid_request` (AADSTS900144) |
//! | a `scope` without `/.default` | `400` `invalid_scope` (AADSTS1002012) |
//! | an unregistered `client_id` | `400` `unauthorized_client` (AADSTS700016) |
//! | a wrong `client_secret` | `401` `invalid_client` (AADSTS7000215) |
//! | a wrong `client_assertion` | `401` `invalid_client` (AADSTS70021) |
//! | neither credential | `401` `invalid_client` (AADSTS7000218) |
//! | a registered credential | `200` `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":...}` |
//!
//! `GET /{tenant}/v2.0/.well-known/openid-configuration` answers a minimal discovery document
//! whose endpoints point back at this fake (through the request's `Host`).
//! [`authority`](FakeEntra::authority) is where tests redirect
//! `https://login.microsoftonline.com`. Recorded requests never hold a secret or assertion.
//!
//! ```
//! use testkit::azure::FakeEntra;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let entra = FakeEntra::start().await?;
//! entra.register_secret("tenant-a", "app-1", "s3cret");
//! entra.register_assertion("tenant-a", "app-2", "eyJhbGciOi...");
//! assert!(entra.requests().is_empty());
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{IssuedToken, Reply, Req, Server, json_reply, now_unix, parse_form, random_hex};
use crate::lock;

/// The `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// `expires_in` of issued tokens, in seconds.
const EXPIRES_IN: u64 = 3599;

/// Which client credential a token request presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialKind {
    /// Neither `client_secret` nor `client_assertion`.
    None,
    /// A `client_secret`.
    Secret,
    /// A `client_assertion` (federated / workload identity, or a certificate's JWT).
    Assertion,
    /// Both (rejected).
    Both,
}

/// One request the fake received. Never holds a secret or an assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntraRequest {
    /// HTTP method.
    pub method: Method,
    /// The path, e.g. `/tenant-a/oauth2/v2.0/token`.
    pub path: String,
    /// The tenant named by the path, if the path had one.
    pub tenant: Option<String>,
    /// The form's `grant_type`.
    pub grant_type: Option<String>,
    /// The form's `client_id`.
    pub client_id: Option<String>,
    /// The form's `scope`.
    pub scope: Option<String>,
    /// Which credential the form carried.
    pub credential: CredentialKind,
    /// The form's `client_assertion_type`.
    pub client_assertion_type: Option<String>,
    /// The status the fake answered with.
    pub status: u16,
}

#[derive(Default)]
struct Client {
    secrets: HashSet<String>,
    assertions: HashSet<String>,
}

struct Failures {
    remaining: usize,
    status: StatusCode,
}

struct State {
    tenants: HashSet<String>,
    clients: HashMap<(String, String), Client>,
    failures: Failures,
    issued: Vec<IssuedToken>,
    requests: Vec<EntraRequest>,
}

/// A fake Entra token endpoint on `127.0.0.1`. See the [module docs](self).
pub struct FakeEntra {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeEntra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("FakeEntra")
            .field("addr", &self.server.addr())
            .field("tenants", &state.tenants.len())
            .field("issued", &state.issued.len())
            .finish_non_exhaustive()
    }
}

impl FakeEntra {
    /// Starts a token endpoint on `127.0.0.1:0` with no tenants. Must be called inside a Tokio
    /// runtime; the server runs on it until dropped.
    pub async fn start() -> io::Result<Self> {
        let state = Arc::new(Mutex::new(State {
            tenants: HashSet::new(),
            clients: HashMap::new(),
            failures: Failures {
                remaining: 0,
                status: StatusCode::INTERNAL_SERVER_ERROR,
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

    /// `http://127.0.0.1:{port}`: where tests redirect `https://login.microsoftonline.com`.
    pub fn authority(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.authority())
    }

    /// Makes `tenant` known (registering a client does too).
    pub fn add_tenant(&self, tenant: &str) {
        lock(&self.state).tenants.insert(tenant.to_string());
    }

    /// Lets application `client_id` of `tenant` get tokens with `client_secret=<secret>`.
    pub fn register_secret(&self, tenant: &str, client_id: &str, secret: &str) {
        let mut state = lock(&self.state);
        state.tenants.insert(tenant.to_string());
        state
            .clients
            .entry((tenant.to_string(), client_id.to_string()))
            .or_default()
            .secrets
            .insert(secret.to_string());
    }

    /// Lets application `client_id` of `tenant` get tokens with
    /// `client_assertion=<assertion>` (compared as an opaque string, e.g. the contents of
    /// `AZURE_FEDERATED_TOKEN_FILE`).
    pub fn register_assertion(&self, tenant: &str, client_id: &str, assertion: &str) {
        let mut state = lock(&self.state);
        state.tenants.insert(tenant.to_string());
        state
            .clients
            .entry((tenant.to_string(), client_id.to_string()))
            .or_default()
            .assertions
            .insert(assertion.to_string());
    }

    /// The next `n` token requests get `status` with an Entra-shaped error body. Replaces an
    /// earlier setting.
    pub fn fail_next(&self, n: usize, status: u16) {
        lock(&self.state).failures = Failures {
            remaining: n,
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        };
    }

    /// Every token handed out so far, oldest first (`resource` holds the requested scope).
    pub fn issued(&self) -> Vec<IssuedToken> {
        lock(&self.state).issued.clone()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<EntraRequest> {
        lock(&self.state).requests.clone()
    }
}

/// An Entra error body: `error`, `error_description` (with the trace and correlation ids and
/// timestamp Entra appends), `error_codes`, `timestamp`, `trace_id`, `correlation_id`.
fn entra_error(error: &str, code: u32, description: &str) -> Value {
    let trace_id = guid();
    let correlation_id = guid();
    let timestamp = format!("unix:{}", now_unix());
    json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} \
             Timestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    })
}

fn guid() -> String {
    let h = random_hex(2);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn answer(state: &Mutex<State>, req: &Req) -> Reply {
    let mut state = lock(state);
    let form = if req.method == Method::POST {
        parse_form(&String::from_utf8_lossy(&req.body))
    } else {
        Vec::new()
    };
    let field = |name: &str| {
        form.iter()
            .find_map(|(k, v)| (k == name).then(|| v.clone()))
    };
    let path = req.uri.path().to_string();
    let tenant = path
        .strip_prefix('/')
        .and_then(|p| p.split('/').next())
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let credential = match (field("client_secret"), field("client_assertion")) {
        (None, None) => CredentialKind::None,
        (Some(_), None) => CredentialKind::Secret,
        (None, Some(_)) => CredentialKind::Assertion,
        (Some(_), Some(_)) => CredentialKind::Both,
    };
    let (status, body) = decide(&mut state, req, tenant.as_deref(), &field);
    state.requests.push(EntraRequest {
        method: req.method.clone(),
        path,
        tenant,
        grant_type: field("grant_type"),
        client_id: field("client_id"),
        scope: field("scope"),
        credential,
        client_assertion_type: field("client_assertion_type"),
        status: status.as_u16(),
    });
    json_reply(status, &body)
}

fn decide(
    state: &mut State,
    req: &Req,
    tenant: Option<&str>,
    field: &dyn Fn(&str) -> Option<String>,
) -> (StatusCode, Value) {
    let path = req.uri.path();
    let Some(tenant) = tenant else {
        return (
            StatusCode::NOT_FOUND,
            entra_error("invalid_request", 900561, "The endpoint does not exist."),
        );
    };
    let unknown_tenant = |error: &str| {
        (
            StatusCode::BAD_REQUEST,
            entra_error(
                error,
                90002,
                &format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct \
                     tenant ID and are signing into the correct cloud."
                ),
            ),
        )
    };

    if path == format!("/{tenant}/v2.0/.well-known/openid-configuration") {
        if !state.tenants.contains(tenant) {
            return unknown_tenant("invalid_tenant");
        }
        let base = format!("http://{}", req.header("host").unwrap_or("localhost"));
        return (
            StatusCode::OK,
            json!({
                "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
                "token_endpoint_auth_methods_supported":
                    ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": format!("https://login.microsoftonline.com/{tenant}/v2.0"),
                "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
                "tenant_region_scope": null,
                "cloud_instance_name": "microsoftonline.com",
            }),
        );
    }
    if path != format!("/{tenant}/oauth2/v2.0/token") {
        return (
            StatusCode::NOT_FOUND,
            entra_error("invalid_request", 900561, "The endpoint does not exist."),
        );
    }
    if req.method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            entra_error(
                "invalid_request",
                900561,
                "The endpoint only accepts POST requests.",
            ),
        );
    }
    if state.failures.remaining > 0 {
        state.failures.remaining -= 1;
        let status = state.failures.status;
        let body = match status {
            StatusCode::TOO_MANY_REQUESTS => entra_error(
                "temporarily_unavailable",
                50196,
                "The server terminated an operation because it encountered a client request loop.",
            ),
            s if s.is_server_error() => entra_error(
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
            ),
            _ => entra_error("invalid_request", 90000, "Scripted failure."),
        };
        return (status, body);
    }
    if !state.tenants.contains(tenant) {
        return unknown_tenant("invalid_request");
    }
    let missing = |name: &str| {
        (
            StatusCode::BAD_REQUEST,
            entra_error(
                "invalid_request",
                900144,
                &format!("The request body must contain the following parameter: '{name}'."),
            ),
        )
    };
    match field("grant_type") {
        None => return missing("grant_type"),
        Some(g) if g != "client_credentials" => {
            return (
                StatusCode::BAD_REQUEST,
                entra_error(
                    "unsupported_grant_type",
                    70003,
                    "The app requested an unsupported grant type.",
                ),
            );
        }
        Some(_) => {}
    }
    let Some(client_id) = field("client_id") else {
        return missing("client_id");
    };
    let Some(scope) = field("scope") else {
        return missing("scope");
    };
    if !scope.ends_with("/.default") {
        return (
            StatusCode::BAD_REQUEST,
            entra_error(
                "invalid_scope",
                1002012,
                &format!(
                    "The provided value for scope {scope} is not valid. Client credential flows \
                     must have a scope value with /.default suffixed to the resource identifier \
                     (application ID URI)."
                ),
            ),
        );
    }
    let Some(client) = state.clients.get(&(tenant.to_string(), client_id.clone())) else {
        return (
            StatusCode::BAD_REQUEST,
            entra_error(
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory \
                     '{tenant}'."
                ),
            ),
        );
    };
    let invalid_client = |code: u32, description: &str| {
        (
            StatusCode::UNAUTHORIZED,
            entra_error("invalid_client", code, description),
        )
    };
    match (field("client_secret"), field("client_assertion")) {
        (None, None) => {
            return invalid_client(
                7000218,
                "The request body must contain the following parameter: 'client_assertion' \
                 or 'client_secret'.",
            );
        }
        (Some(_), Some(_)) => {
            return (
                StatusCode::BAD_REQUEST,
                entra_error(
                    "invalid_request",
                    90014,
                    "Only one of 'client_secret' and 'client_assertion' may be presented.",
                ),
            );
        }
        (Some(secret), None) => {
            if !client.secrets.contains(&secret) {
                return invalid_client(
                    7000215,
                    &format!(
                        "Invalid client secret provided. Ensure the secret being sent in the \
                         request is the client secret value, not the client secret ID, for a \
                         secret added to app '{client_id}'."
                    ),
                );
            }
        }
        (None, Some(assertion)) => {
            if field("client_assertion_type").as_deref() != Some(JWT_BEARER) {
                return (
                    StatusCode::BAD_REQUEST,
                    entra_error(
                        "invalid_request",
                        900144,
                        &format!(
                            "The request body must contain the following parameter: \
                             'client_assertion_type' with the value '{JWT_BEARER}'."
                        ),
                    ),
                );
            }
            if !client.assertions.contains(&assertion) {
                return invalid_client(
                    70021,
                    "No matching federated identity record found for presented assertion.",
                );
            }
        }
    }

    let token = IssuedToken {
        access_token: random_hex(4),
        resource: scope,
        client_id: Some(client_id),
        tenant: Some(tenant.to_string()),
        expires_on: now_unix() + EXPIRES_IN,
    };
    let body = json!({
        "token_type": "Bearer",
        "expires_in": EXPIRES_IN,
        "ext_expires_in": EXPIRES_IN,
        "access_token": token.access_token,
    });
    state.issued.push(token);
    (StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::super::test_http::{Resp, send};
    use super::*;

    const SCOPE: &str = "scope=https%3A%2F%2Fvault.azure.net%2F.default";
    const FORM: [(&str, &str); 1] = [("Content-Type", "application/x-www-form-urlencoded")];

    async fn post(entra: &FakeEntra, tenant: &str, body: &str) -> Resp {
        let target = format!("/{tenant}/oauth2/v2.0/token");
        send(
            entra.addr(),
            "POST",
            &target,
            "login.microsoftonline.com",
            &FORM,
            body,
        )
        .await
    }

    #[tokio::test]
    async fn client_secret_flow() {
        let entra = FakeEntra::start().await.unwrap();
        entra.register_secret("t1", "app", "right");

        let ok = format!("grant_type=client_credentials&client_id=app&client_secret=right&{SCOPE}");
        let r = post(&entra, "t1", &ok).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        let body = r.json();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3599);
        assert_eq!(body["ext_expires_in"], 3599);
        let token = body["access_token"].as_str().unwrap();
        let issued = entra.issued();
        assert_eq!(issued.len(), 1);
        assert_eq!(issued[0].access_token, token);
        assert_eq!(issued[0].resource, "https://vault.azure.net/.default");
        assert_eq!(issued[0].tenant.as_deref(), Some("t1"));

        let bad =
            format!("grant_type=client_credentials&client_id=app&client_secret=wrong&{SCOPE}");
        let r = post(&entra, "t1", &bad).await;
        assert_eq!(r.status, 401);
        let body = r.json();
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(body["error_codes"], json!([7000215]));
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with("AADSTS7000215: Invalid client secret provided.")
        );

        let r = post(&entra, "nope", &ok).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["error"], "invalid_request");
        assert_eq!(r.json()["error_codes"], json!([90002]));

        let r = post(
            &entra,
            "t1",
            &format!("grant_type=client_credentials&client_id=other&client_secret=right&{SCOPE}"),
        )
        .await;
        assert_eq!(
            (r.status, r.json()["error"].clone()),
            (400, json!("unauthorized_client"))
        );
        let r = post(
            &entra,
            "t1",
            &format!("grant_type=password&client_id=app&{SCOPE}"),
        )
        .await;
        assert_eq!(r.json()["error"], "unsupported_grant_type");
        let r = post(&entra, "t1", "grant_type=client_credentials&client_id=app&client_secret=right&scope=https%3A%2F%2Fvault.azure.net").await;
        assert_eq!(r.json()["error"], "invalid_scope");
        let r = post(
            &entra,
            "t1",
            &format!("grant_type=client_credentials&client_id=app&{SCOPE}"),
        )
        .await;
        assert_eq!(
            (r.status, r.json()["error_codes"].clone()),
            (401, json!([7000218]))
        );

        let reqs = entra.requests();
        assert_eq!(reqs.len(), 7);
        assert_eq!(reqs[0].credential, CredentialKind::Secret);
        assert_eq!(reqs[0].grant_type.as_deref(), Some("client_credentials"));
        assert_eq!(reqs[0].client_id.as_deref(), Some("app"));
        assert_eq!(
            reqs[0].scope.as_deref(),
            Some("https://vault.azure.net/.default")
        );
        assert_eq!(reqs[0].tenant.as_deref(), Some("t1"));
        assert_eq!(reqs[1].status, 401);
        assert_eq!(reqs[6].credential, CredentialKind::None);
        // Nothing recorded holds the secret.
        assert!(!format!("{reqs:?}").contains("right"));
    }

    #[tokio::test]
    async fn federated_assertion_flow_and_discovery() {
        let entra = FakeEntra::start().await.unwrap();
        entra.register_assertion("t2", "wl", "eyJ.fed.token");
        let enc_type = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
        let ok = format!(
            "client_assertion=eyJ.fed.token&client_assertion_type={enc_type}&client_id=wl&grant_type=client_credentials&{SCOPE}"
        );
        let r = post(&entra, "t2", &ok).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["token_type"], "Bearer");
        let r = post(&entra, "t2", &ok.replace("eyJ.fed.token", "eyJ.other")).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"], "invalid_client");
        let r = post(&entra, "t2", &ok.replace(enc_type, "x")).await;
        assert_eq!(r.status, 400);
        // A secret is no good for an app with only a federated credential.
        let r = post(
            &entra,
            "t2",
            &format!("grant_type=client_credentials&client_id=wl&client_secret=s&{SCOPE}"),
        )
        .await;
        assert_eq!(r.status, 401);

        let reqs = entra.requests();
        assert_eq!(reqs[0].credential, CredentialKind::Assertion);
        assert_eq!(reqs[0].client_assertion_type.as_deref(), Some(JWT_BEARER));
        assert!(!format!("{reqs:?}").contains("fed.token"));
        assert_eq!(entra.issued().len(), 1);

        entra.fail_next(1, 503);
        let r = post(&entra, "t2", &ok).await;
        assert_eq!(
            (r.status, r.json()["error"].clone()),
            (503, json!("temporarily_unavailable"))
        );
        assert_eq!(post(&entra, "t2", &ok).await.status, 200);

        let r = send(
            entra.addr(),
            "GET",
            "/t2/v2.0/.well-known/openid-configuration",
            "login.example",
            &[],
            "",
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json()["token_endpoint"],
            "http://login.example/t2/oauth2/v2.0/token"
        );
        let r = send(
            entra.addr(),
            "GET",
            "/zz/v2.0/.well-known/openid-configuration",
            "x",
            &[],
            "",
        )
        .await;
        assert_eq!(r.status, 400);
        assert_eq!(
            entra.token_url("t2"),
            format!("{}/t2/oauth2/v2.0/token", entra.authority())
        );
    }
}
