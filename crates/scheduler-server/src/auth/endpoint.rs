//! The HTTP side of the authorization server: `POST /oauth/token` (client credentials, RFC
//! 6749 §4.4, errors per §5.2), the JWKS and the RFC 8414 / RFC 9728 metadata documents.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Json;
use axum::body::to_bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;

use super::client::{is_client_id_shape, is_scope_token, verify_api_key};
use super::form::{FormError, decode_component, parse_form};
use super::secret::{ApiKey, wipe};
use super::state::AuthState;
use crate::store::StoreError;

/// Largest token request body read (16 KiB).
const MAX_BODY: usize = 16 * 1024;

/// Longest client id looked up.
const MAX_CLIENT_ID_LEN: usize = 256;

/// A hash no key matches, checked for unknown clients so they cost the same as known ones.
const NO_CLIENT_HASH: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// An RFC 6749 §5.2 error response.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: &'static str,
    basic_challenge: bool,
    retry_after: Option<Duration>,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: &'static str) -> Self {
        Self {
            status,
            code,
            description,
            basic_challenge: false,
            retry_after: None,
        }
    }

    fn invalid_request(description: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_client(description: &'static str, basic_challenge: bool) -> Self {
        Self {
            basic_challenge,
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code, "error_description": self.description });
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        no_store(headers);
        if self.basic_challenge {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="scheduler", charset="UTF-8""#),
            );
        }
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

/// How the client authenticated.
enum Method {
    Basic,
    Post,
}

/// The client id (public) and key (secret, wiped on drop) a request presented.
struct Credentials {
    id: String,
    key: ApiKey,
    method: Method,
}

/// `POST /oauth/token`.
pub(crate) async fn token(State(state): State<AuthState>, request: Request) -> Response {
    match token_inner(&state, request).await {
        Ok(response) | Err(response) => response,
    }
}

async fn token_inner(state: &AuthState, request: Request) -> Result<Response, Response> {
    let (parts, body) = request.into_parts();
    let peer: Option<IpAddr> = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());

    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::invalid_request(
            "the request body must be application/x-www-form-urlencoded",
        )
        .into_response());
    }
    let body = to_bytes(body, MAX_BODY).await.map_err(|_| {
        OAuthError::invalid_request("the request body is unreadable or larger than 16 KiB")
            .into_response()
    })?;
    let form = parse_form(&body);
    // The body may hold the client secret (client_secret_post): wipe it if it is ours alone.
    if let Ok(mut body) = body.try_into_mut() {
        wipe(&mut body);
    }
    let mut form = form.map_err(|e| {
        OAuthError::invalid_request(match e {
            FormError::Duplicate => "a request parameter is repeated",
            FormError::BadEncoding => "the request body is not valid form encoding",
        })
        .into_response()
    })?;
    // Keep the secret only in a wiped-on-drop holder.
    let form_secret = form
        .iter()
        .position(|(n, _)| n == "client_secret")
        .map(|i| ApiKey::new(form.swap_remove(i).1));
    let param = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };

    match param("grant_type") {
        None => {
            return Err(OAuthError::invalid_request("grant_type is missing").into_response());
        }
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only the client_credentials grant is supported",
            )
            .into_response());
        }
    }

    let credentials = credentials(&parts.headers, param("client_id"), form_secret)
        .map_err(IntoResponse::into_response)?;
    let basic = matches!(credentials.method, Method::Basic);
    let log_id = if is_client_id_shape(&credentials.id) {
        credentials.id.as_str()
    } else {
        "<unrecognised>"
    };

    let now = state.now();
    if let Err(wait) = state.limiter().check(Some(&credentials.id), peer, now) {
        tracing::warn!(client_id = %log_id, reason = "rate_limited", "token request refused");
        return Err(OAuthError {
            retry_after: Some(wait),
            ..OAuthError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                "too many failed client authentications; retry later",
            )
        }
        .into_response());
    }

    let client = match state.store().get_client(&credentials.id).await {
        Ok(client) => Some(client),
        Err(StoreError::NotFound) => None,
        Err(e) => {
            tracing::error!(client_id = %log_id, error = %e, "token request: store failed");
            return Err(OAuthError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the server could not check the client",
            )
            .into_response());
        }
    };
    let known = client.is_some();
    let key_hash = client
        .as_ref()
        .map_or(NO_CLIENT_HASH, |c| c.key_hash.as_str());
    let key_ok = verify_api_key(credentials.key.expose(), key_hash);
    let Some(client) = client.filter(|_| key_ok) else {
        state
            .limiter()
            .record_failure(Some(&credentials.id), peer, now);
        let reason = if known { "wrong_key" } else { "unknown_client" };
        tracing::warn!(client_id = %log_id, reason, "token request refused");
        return Err(
            OAuthError::invalid_client("client authentication failed", basic).into_response(),
        );
    };
    if client.disabled {
        tracing::warn!(client_id = %log_id, reason = "client_disabled", "token request refused");
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "the client is disabled",
        )
        .into_response());
    }

    let supported = &state.config().scopes_supported;
    let allowed = |s: &str| {
        client.scopes.iter().any(|c| c == s)
            && (supported.is_empty() || supported.iter().any(|x| x == s))
    };
    let scopes: Vec<String> = match param("scope") {
        None => client
            .scopes
            .iter()
            .filter(|s| allowed(s))
            .cloned()
            .collect(),
        Some(requested) => {
            let mut scopes: Vec<String> = Vec::new();
            for s in requested.split(' ') {
                if !is_scope_token(s) || !allowed(s) {
                    tracing::warn!(client_id = %log_id, reason = "invalid_scope", "token request refused");
                    return Err(OAuthError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        "a requested scope is malformed or not granted to this client",
                    )
                    .into_response());
                }
                if !scopes.iter().any(|x| x == s) {
                    scopes.push(s.to_owned());
                }
            }
            scopes
        }
    };
    if let Some(resource) = param("resource")
        && resource.trim_end_matches('/') != state.config().resource
    {
        tracing::warn!(client_id = %log_id, reason = "invalid_target", "token request refused");
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "the requested resource is not served here",
        )
        .into_response());
    }

    let issued = state.issue_token(&client.id, &scopes).map_err(|e| {
        tracing::error!(client_id = %log_id, error = %e, "token request: signing failed");
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the server could not issue a token",
        )
        .into_response()
    })?;
    let scope = issued.scopes.join(" ");
    tracing::info!(client_id = %client.id, scope = %scope, "access token issued");
    let body = json!({
        "access_token": issued.access_token.expose(),
        "token_type": "Bearer",
        "expires_in": issued.expires_in.as_secs(),
        "scope": scope,
    });
    let mut response = Json(body).into_response();
    no_store(response.headers_mut());
    Ok(response)
}

/// Finds the client credentials: HTTP Basic (client_secret_basic) or form parameters
/// (client_secret_post), never both.
fn credentials(
    headers: &HeaderMap,
    form_id: Option<&str>,
    form_secret: Option<ApiKey>,
) -> Result<Credentials, OAuthError> {
    let mut authorization = headers.get_all(AUTHORIZATION).iter();
    let header = authorization.next();
    if authorization.next().is_some() {
        return Err(OAuthError::invalid_request(
            "more than one Authorization header",
        ));
    }
    let credentials = match (header, form_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not both",
            ));
        }
        (Some(value), None) => {
            let (id, key) = parse_basic(value).ok_or_else(|| {
                OAuthError::invalid_client(
                    "the Authorization header is not valid Basic credentials",
                    true,
                )
            })?;
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the one in the Authorization header",
                ));
            }
            Credentials {
                id,
                key,
                method: Method::Basic,
            }
        }
        (None, Some(key)) => {
            let id = form_id.ok_or_else(|| {
                OAuthError::invalid_client("client_secret given without client_id", false)
            })?;
            Credentials {
                id: id.to_owned(),
                key,
                method: Method::Post,
            }
        }
        (None, None) => {
            return Err(OAuthError::invalid_client(
                "client authentication is required",
                true,
            ));
        }
    };
    if credentials.id.is_empty()
        || credentials.id.len() > MAX_CLIENT_ID_LEN
        || credentials.id.chars().any(char::is_control)
    {
        let basic = matches!(credentials.method, Method::Basic);
        return Err(OAuthError::invalid_client(
            "the client id is malformed",
            basic,
        ));
    }
    Ok(credentials)
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1, RFC 7617).
fn parse_basic(value: &HeaderValue) -> Option<(String, ApiKey)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = encoded.trim();
    let mut decoded = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .ok()?;
    let parsed = decoded.iter().position(|b| *b == b':').and_then(|colon| {
        let id = decode_component(&decoded[..colon]).ok()?;
        let key = decode_component(&decoded[colon + 1..]).ok()?;
        Some((id, ApiKey::new(key)))
    });
    wipe(&mut decoded);
    parsed
}

/// `GET /.well-known/oauth-authorization-server`.
pub(crate) async fn authorization_server_metadata(State(state): State<AuthState>) -> Response {
    cacheable(
        Json(state.authorization_server_metadata()).into_response(),
        3600,
    )
}

/// `GET /.well-known/oauth-protected-resource[/<resource path>]`.
pub(crate) async fn protected_resource_metadata(State(state): State<AuthState>) -> Response {
    cacheable(
        Json(state.protected_resource_metadata()).into_response(),
        3600,
    )
}

/// `GET /jwks.json`.
pub(crate) async fn jwks(State(state): State<AuthState>) -> Response {
    let mut response = cacheable(Json(state.jwks()).into_response(), 300);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    response
}

fn cacheable(mut response: Response, max_age: u32) -> Response {
    let value = format!("public, max-age={max_age}");
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(CACHE_CONTROL, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(raw))).expect("header")
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let (id, key) = parse_basic(&basic("sch_a%3Ab:k+e%2By")).expect("parsed");
        assert_eq!(id, "sch_a:b");
        assert_eq!(key.expose(), "k e+y");
        let (id, key) = parse_basic(&basic("id:")).expect("parsed");
        assert_eq!((id.as_str(), key.expose()), ("id", ""));
        assert!(parse_basic(&basic("no-colon")).is_none());
        assert!(parse_basic(&HeaderValue::from_static("Bearer abc")).is_none());
        assert!(parse_basic(&HeaderValue::from_static("Basic !!!")).is_none());
        let lower = HeaderValue::from_str(&format!("basic {}", STANDARD.encode("a:b"))).expect("h");
        assert!(parse_basic(&lower).is_some());
    }

    #[test]
    fn one_method_only() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, basic("a:b"));
        let err = credentials(&headers, None, Some(ApiKey::new("b".into())))
            .err()
            .expect("refused");
        assert_eq!(err.code, "invalid_request");
        let err = credentials(&HeaderMap::new(), None, None)
            .err()
            .expect("refused");
        assert_eq!((err.code, err.basic_challenge), ("invalid_client", true));
        let ok = credentials(
            &HeaderMap::new(),
            Some("id"),
            Some(ApiKey::new("key".into())),
        )
        .expect("post");
        assert!(matches!(ok.method, Method::Post));
    }
}
