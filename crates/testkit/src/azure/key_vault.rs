//! A fake Azure Key Vault (secrets data plane) on loopback: `GET /secrets/{name}[/{version}]`
//! with the bearer challenge the official client expects, secret versions, disabled secrets,
//! throttling, and the real vault's error bodies.
//!
//! | request | answer |
//! |---|---|
//! | any, while [`throttle_next`](FakeKeyVault::throttle_next) lasts | `429`, `Retry-After`, `Throttled` |
//! | no `Authorization: Bearer`, or a token the fake does not accept | `401` with `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>", resource="https://vault.azure.net"` |
//! | no `api-version` query parameter | `400` `MissingApiVersionParameter` |
//! | unknown name or version | `404` `SecretNotFound` |
//! | a [`disable`](FakeKeyVault::disable)d secret | `403` `Forbidden` / `SecretDisabled` |
//! | otherwise | `200` with `value`, `id` and `attributes` |
//!
//! The `id` in answers is `https://<Host header>/secrets/<name>/<version>`, so when the
//! client's transport keeps the vault's host name the ids look like the real vault's
//! ([`set_vault_host`](FakeKeyVault::set_vault_host) fixes the host instead).
//!
//! ```
//! use testkit::azure::FakeKeyVault;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let vault = FakeKeyVault::start().await?;
//! let v1 = vault.set_secret("api-key", "one");
//! let v2 = vault.set_secret("api-key", "two"); // now the current version
//! assert_ne!(v1, v2);
//! vault.require_token("token-from-the-fake-entra");
//! vault.throttle_next(1, 2);
//! assert_eq!(vault.secret_reads("api-key"), 0);
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{HeaderValue, Method, StatusCode, header};
use serde_json::json;

use super::{Reply, Req, Server, json_reply, now_unix, random_hex};
use crate::lock;

/// The tenant named in the challenge unless [`FakeKeyVault::set_tenant`] changes it.
pub const DEFAULT_TENANT: &str = "72f988bf-0000-4000-8000-00000000f4ce";

/// One request the fake vault received. Never holds a whole token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: Method,
    /// The path, e.g. `/secrets/db/0123...`.
    pub path: String,
    /// The raw query string, if any (e.g. `api-version=2025-07-01`).
    pub query: Option<String>,
    /// Whether it carried an `Authorization: Bearer <token>` header with a non-empty token.
    pub had_bearer: bool,
    /// The first 8 characters of that token (no more, so logs of these stay harmless).
    pub token_prefix: Option<String>,
    /// The status the fake answered with.
    pub status: u16,
}

struct Version {
    id: String,
    value: String,
    created: u64,
}

#[derive(Default)]
struct Secret {
    /// Oldest first; the last one is current.
    versions: Vec<Version>,
    disabled: bool,
}

struct Throttle {
    remaining: usize,
    retry_after_secs: u64,
}

struct State {
    secrets: HashMap<String, Secret>,
    tenant: String,
    vault_host: Option<String>,
    /// `None`: any non-empty bearer token is accepted.
    accepted: Option<HashSet<String>>,
    throttle: Throttle,
    requests: Vec<RecordedRequest>,
    reads: HashMap<String, usize>,
}

/// A fake Key Vault on `127.0.0.1`. See the [module docs](self).
pub struct FakeKeyVault {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeKeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("FakeKeyVault")
            .field("addr", &self.server.addr())
            .field("secrets", &state.secrets.len())
            .field("requests", &state.requests.len())
            .finish_non_exhaustive()
    }
}

impl FakeKeyVault {
    /// Starts an empty vault on `127.0.0.1:0` that accepts any non-empty bearer token. Must be
    /// called inside a Tokio runtime; the server runs on it until dropped.
    pub async fn start() -> io::Result<Self> {
        let state = Arc::new(Mutex::new(State {
            secrets: HashMap::new(),
            tenant: DEFAULT_TENANT.to_string(),
            vault_host: None,
            accepted: None,
            throttle: Throttle {
                remaining: 0,
                retry_after_secs: 0,
            },
            requests: Vec::new(),
            reads: HashMap::new(),
        }));
        let shared = state.clone();
        let server = Server::start(move |req| answer(&shared, &req)).await?;
        Ok(Self { server, state })
    }

    /// The address the vault listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:{port}`, where the client's transport should send vault requests.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Adds a new version of secret `name` with `value` and makes it current; returns its
    /// version id (32 random lowercase hex digits, like the real vault's).
    pub fn set_secret(&self, name: &str, value: &str) -> String {
        let id = random_hex(2);
        lock(&self.state)
            .secrets
            .entry(name.to_string())
            .or_default()
            .versions
            .push(Version {
                id: id.clone(),
                value: value.to_string(),
                created: now_unix(),
            });
        id
    }

    /// Disables secret `name` (every version): reads get `403` `SecretDisabled`. Creates the
    /// secret (with no versions) if it does not exist yet.
    pub fn disable(&self, name: &str) {
        lock(&self.state)
            .secrets
            .entry(name.to_string())
            .or_default()
            .disabled = true;
    }

    /// Enables secret `name` again after [`disable`](Self::disable).
    pub fn enable(&self, name: &str) {
        if let Some(secret) = lock(&self.state).secrets.get_mut(name) {
            secret.disabled = false;
        }
    }

    /// Removes secret `name` and all its versions (reads get `404`).
    pub fn delete(&self, name: &str) {
        lock(&self.state).secrets.remove(name);
    }

    /// The tenant named in the `401` challenge (default [`DEFAULT_TENANT`]).
    pub fn set_tenant(&self, tenant: &str) {
        lock(&self.state).tenant = tenant.to_string();
    }

    /// The tenant named in the `401` challenge.
    pub fn tenant(&self) -> String {
        lock(&self.state).tenant.clone()
    }

    /// Uses `host` (e.g. `myvault.vault.azure.net`) in the `id` of answers instead of the
    /// request's `Host` header.
    pub fn set_vault_host(&self, host: &str) {
        lock(&self.state).vault_host = Some(host.to_string());
    }

    /// Adds `token` to the tokens the vault accepts. The first call ends the default of
    /// accepting any non-empty bearer token: from then on only listed tokens are valid.
    pub fn accept_token(&self, token: &str) {
        lock(&self.state)
            .accepted
            .get_or_insert_with(HashSet::new)
            .insert(token.to_string());
    }

    /// Makes `token` the only valid one (every other bearer gets the `401` challenge).
    pub fn require_token(&self, token: &str) {
        lock(&self.state).accepted = Some(HashSet::from([token.to_string()]));
    }

    /// Goes back to accepting any non-empty bearer token.
    pub fn accept_any_token(&self) {
        lock(&self.state).accepted = None;
    }

    /// The next `n` requests (whatever they are) get `429 Too Many Requests` with
    /// `Retry-After: <retry_after_secs>` and a `Throttled` error body. Replaces an earlier
    /// setting.
    pub fn throttle_next(&self, n: usize, retry_after_secs: u64) {
        lock(&self.state).throttle = Throttle {
            remaining: n,
            retry_after_secs,
        };
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// How many `200` answers the vault gave for secret `name` (any version).
    pub fn secret_reads(&self, name: &str) -> usize {
        lock(&self.state).reads.get(name).copied().unwrap_or(0)
    }
}

fn error_body(code: &str, message: &str) -> serde_json::Value {
    json!({"error": {"code": code, "message": message}})
}

fn answer(state: &Mutex<State>, req: &Req) -> Reply {
    let mut state = lock(state);
    let token = req
        .header("authorization")
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty());
    let (status, name, reply) = decide(&state, req, token);
    if let Some(name) = name {
        *state.reads.entry(name).or_insert(0) += 1;
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        state.throttle.remaining = state.throttle.remaining.saturating_sub(1);
    }
    state.requests.push(RecordedRequest {
        method: req.method.clone(),
        path: req.uri.path().to_string(),
        query: req.uri.query().map(str::to_string),
        had_bearer: token.is_some(),
        token_prefix: token.map(|t| t.chars().take(8).collect()),
        status: status.as_u16(),
    });
    reply
}

/// The answer, and the secret name to count as read when it is a `200`.
fn decide(state: &State, req: &Req, token: Option<&str>) -> (StatusCode, Option<String>, Reply) {
    if state.throttle.remaining > 0 {
        let status = StatusCode::TOO_MANY_REQUESTS;
        let mut reply = json_reply(
            status,
            &error_body(
                "Throttled",
                "Request was not processed because too many requests were received. \
                 Reason: VaultRequestTypeLimitReached",
            ),
        );
        reply.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(state.throttle.retry_after_secs),
        );
        return (status, None, reply);
    }

    let valid = match (token, &state.accepted) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(t), Some(accepted)) => accepted.contains(t),
    };
    if !valid {
        let status = StatusCode::UNAUTHORIZED;
        let message = if token.is_none() {
            "AKV10000: Request is missing a Bearer or PoP token."
        } else {
            "AKV10032: Invalid issuer or token. The token is not valid for this vault."
        };
        let mut reply = json_reply(status, &error_body("Unauthorized", message));
        let challenge = format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{}\", \
             resource=\"https://vault.azure.net\"",
            state.tenant
        );
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            reply.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        return (status, None, reply);
    }

    if req.query_param("api-version").is_none_or(|v| v.is_empty()) {
        let status = StatusCode::BAD_REQUEST;
        let reply = json_reply(
            status,
            &error_body(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ),
        );
        return (status, None, reply);
    }

    let path = req.uri.path();
    let segments: Vec<&str> = path
        .strip_prefix("/secrets/")
        .map(|rest| rest.strip_suffix('/').unwrap_or(rest).split('/').collect())
        .unwrap_or_default();
    let (name, version) = match segments.as_slice() {
        [name] if !name.is_empty() => (*name, None),
        [name, version] if !name.is_empty() && !version.is_empty() => (*name, Some(*version)),
        _ => {
            let status = StatusCode::NOT_FOUND;
            let reply = json_reply(
                status,
                &error_body(
                    "NotFound",
                    &format!("The requested resource {path} was not found on this fake vault."),
                ),
            );
            return (status, None, reply);
        }
    };
    if req.method != Method::GET {
        let status = StatusCode::METHOD_NOT_ALLOWED;
        let reply = json_reply(
            status,
            &error_body(
                "BadParameter",
                &format!(
                    "The fake vault only answers GET on secrets, not {}.",
                    req.method
                ),
            ),
        );
        return (status, None, reply);
    }

    let secret = state.secrets.get(name);
    let found = secret.and_then(|s| match version {
        None => s.versions.last(),
        Some(v) => s.versions.iter().find(|x| x.id == v),
    });
    let (Some(secret), Some(found)) = (secret, found) else {
        let status = StatusCode::NOT_FOUND;
        let message = match version {
            None => format!(
                "A secret with (name/id) {name} was not found in this key vault. If you recently \
                 deleted this secret you may be able to recover it using the correct recovery \
                 command. For help resolving this issue, please see \
                 https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
            Some(v) => format!(
                "A secret with (name/id) {name}/{v} was not found in this key vault. If you \
                 recently deleted this secret you may be able to recover it using the correct \
                 recovery command. For help resolving this issue, please see \
                 https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
        };
        let reply = json_reply(status, &error_body("SecretNotFound", &message));
        return (status, None, reply);
    };
    if secret.disabled {
        let status = StatusCode::FORBIDDEN;
        let reply = json_reply(
            status,
            &json!({"error": {
                "code": "Forbidden",
                "message": "Operation get is not allowed on a disabled secret.",
                "innererror": {"code": "SecretDisabled"}
            }}),
        );
        return (status, None, reply);
    }

    let host = state
        .vault_host
        .clone()
        .or_else(|| req.header("host").map(str::to_string))
        .unwrap_or_else(|| "localhost".to_string());
    let status = StatusCode::OK;
    let reply = json_reply(
        status,
        &json!({
            "value": found.value,
            "id": format!("https://{host}/secrets/{name}/{}", found.id),
            "attributes": {
                "enabled": true,
                "created": found.created,
                "updated": found.created,
                "recoverableDays": 90,
                "recoveryLevel": "Recoverable+Purgeable"
            },
            "tags": {}
        }),
    );
    (status, Some(name.to_string()), reply)
}

#[cfg(test)]
mod tests {
    use super::super::test_http::send;
    use super::*;

    const HOST: &str = "myvault.vault.azure.net";
    const API: &str = "api-version=2025-07-01";

    async fn get(
        vault: &FakeKeyVault,
        target: &str,
        token: Option<&str>,
    ) -> super::super::test_http::Resp {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        send(vault.addr(), "GET", target, HOST, &headers, "").await
    }

    #[tokio::test]
    async fn challenge_then_success_with_versions() {
        let vault = FakeKeyVault::start().await.unwrap();
        vault.set_tenant("tenant-1");
        let v1 = vault.set_secret("db", "one");
        let v2 = vault.set_secret("db", "two");
        assert_eq!(v1.len(), 32);
        assert_ne!(v1, v2);

        let r = get(&vault, &format!("/secrets/db?{API}"), None).await;
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some(
                "Bearer authorization=\"https://login.microsoftonline.com/tenant-1\", \
                 resource=\"https://vault.azure.net\""
            )
        );
        assert_eq!(r.json()["error"]["code"], "Unauthorized");

        let r = get(&vault, &format!("/secrets/db?{API}"), Some("abcdefghijkl")).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        let body = r.json();
        assert_eq!(body["value"], "two");
        assert_eq!(
            body["id"],
            format!("https://{HOST}/secrets/db/{v2}").as_str()
        );
        assert_eq!(body["attributes"]["enabled"], true);
        assert!(body["attributes"]["created"].as_u64().unwrap() > 1_600_000_000);
        assert!(body["attributes"]["updated"].is_u64());
        assert_eq!(body["attributes"]["recoveryLevel"], "Recoverable+Purgeable");

        let r = get(
            &vault,
            &format!("/secrets/db/{v1}/?{API}"),
            Some("abcdefghijkl"),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["value"], "one");
        let r = get(&vault, &format!("/secrets/db/?{API}"), Some("abcdefghijkl")).await;
        assert_eq!(r.json()["value"], "two");
        assert_eq!(vault.secret_reads("db"), 3);

        let all = vault.requests();
        assert_eq!(all.len(), 4);
        assert!(!all[0].had_bearer);
        assert_eq!(all[0].token_prefix, None);
        assert_eq!(all[0].status, 401);
        assert_eq!(all[1].token_prefix.as_deref(), Some("abcdefgh"));
        assert_eq!(all[1].path, "/secrets/db");
        assert_eq!(all[1].query.as_deref(), Some(API));
        assert_eq!(all[1].method, Method::GET);
    }

    #[tokio::test]
    async fn error_bodies_404_403_400() {
        let vault = FakeKeyVault::start().await.unwrap();
        vault.set_vault_host("fixed.vault.azure.net");
        let v = vault.set_secret("s", "x");

        let r = get(&vault, &format!("/secrets/nope?{API}"), Some("t")).await;
        assert_eq!(r.status, 404);
        let body = r.json();
        assert_eq!(body["error"]["code"], "SecretNotFound");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("A secret with (name/id) nope was not found in this key vault.")
        );
        let r = get(
            &vault,
            &format!("/secrets/s/{}?{API}", "0".repeat(32)),
            Some("t"),
        )
        .await;
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["error"]["code"], "SecretNotFound");

        let r = get(&vault, "/secrets/s", Some("t")).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["error"]["code"], "MissingApiVersionParameter");

        let r = get(&vault, &format!("/secrets/s/{v}?{API}"), Some("t")).await;
        assert_eq!(
            r.json()["id"],
            format!("https://fixed.vault.azure.net/secrets/s/{v}").as_str()
        );

        vault.disable("s");
        let r = get(&vault, &format!("/secrets/s?{API}"), Some("t")).await;
        assert_eq!(r.status, 403);
        let body = r.json();
        assert_eq!(body["error"]["code"], "Forbidden");
        assert_eq!(
            body["error"]["message"],
            "Operation get is not allowed on a disabled secret."
        );
        assert_eq!(body["error"]["innererror"]["code"], "SecretDisabled");
        vault.enable("s");
        let r = get(&vault, &format!("/secrets/s?{API}"), Some("t")).await;
        assert_eq!(r.status, 200);
        assert_eq!(vault.secret_reads("s"), 2);
        assert_eq!(vault.secret_reads("nope"), 0);
    }

    #[tokio::test]
    async fn throttling_then_recovery() {
        let vault = FakeKeyVault::start().await.unwrap();
        vault.set_secret("s", "x");
        vault.throttle_next(2, 7);
        for _ in 0..2 {
            let r = get(&vault, &format!("/secrets/s?{API}"), Some("t")).await;
            assert_eq!(r.status, 429);
            assert_eq!(r.header("retry-after"), Some("7"));
            assert_eq!(r.json()["error"]["code"], "Throttled");
        }
        let r = get(&vault, &format!("/secrets/s?{API}"), Some("t")).await;
        assert_eq!(r.status, 200);
        assert_eq!(vault.secret_reads("s"), 1);
    }

    #[tokio::test]
    async fn token_acceptance() {
        let vault = FakeKeyVault::start().await.unwrap();
        vault.set_secret("s", "x");
        let target = format!("/secrets/s?{API}");
        assert_eq!(get(&vault, &target, Some("anything")).await.status, 200);
        // An empty bearer is no bearer.
        let r = send(
            vault.addr(),
            "GET",
            &target,
            HOST,
            &[("Authorization", "Bearer ")],
            "",
        )
        .await;
        assert_eq!(r.status, 401);
        vault.require_token("good");
        let r = get(&vault, &target, Some("bad")).await;
        assert_eq!(r.status, 401);
        assert!(r.header("www-authenticate").is_some());
        assert_eq!(get(&vault, &target, Some("good")).await.status, 200);
        vault.accept_token("also-good");
        assert_eq!(get(&vault, &target, Some("also-good")).await.status, 200);
        vault.require_token("only");
        assert_eq!(get(&vault, &target, Some("good")).await.status, 401);
        vault.accept_any_token();
        assert_eq!(get(&vault, &target, Some("good")).await.status, 200);
        vault.delete("s");
        assert_eq!(get(&vault, &target, Some("good")).await.status, 404);
    }
}
