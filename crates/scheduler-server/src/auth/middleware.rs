//! The bearer-token check in front of protected routes (`/mcp`): RFC 6750 header parsing, the
//! required-scope check, and `WWW-Authenticate` challenges that point at the RFC 9728
//! resource metadata.

use axum::Json;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use serde_json::json;

use super::jwt::TokenError;
use super::state::AuthState;

/// Middleware that admits only requests with a valid bearer token carrying every
/// [required scope](super::AuthConfig::required_scopes), and puts its verified
/// [`Claims`](super::Claims) into the request extensions.
///
/// - No `Authorization: Bearer` header: `401` with
///   `WWW-Authenticate: Bearer resource_metadata="<resource metadata URL>"`, and
///   `scope="<scopes>"`: the required scopes if any are configured, else
///   [`scopes_supported`](super::AuthConfig::scopes_supported) if not empty.
/// - A token that does not verify: `401` with `error="invalid_token"` and a short
///   `error_description` added.
/// - A valid token without every required scope: `403` with `error="insufficient_scope"`,
///   `scope="<required scopes>"` (all of them, space-separated: what a new token must carry
///   for this resource), `resource_metadata` and `error_description` (RFC 6750 §3.1, the MCP
///   authorization spec's scope challenge). A token's scopes are its `scope` and `scp`
///   claims (space-separated) and, for the external issuer's tokens, its `roles`.
/// - Several `Authorization` headers: `400` with `error="invalid_request"`.
///
/// ```
/// use axum::{Extension, Router, middleware, routing::post};
/// use scheduler_server::auth::{AuthState, Claims, require_bearer};
///
/// fn protect(state: AuthState) -> Router {
///     Router::new()
///         .route("/mcp", post(|Extension(claims): Extension<Claims>| async move { claims.client_id }))
///         .layer(middleware::from_fn_with_state(state, require_bearer))
/// }
/// ```
pub async fn require_bearer(
    State(state): State<AuthState>,
    mut request: Request,
    next: Next,
) -> Response {
    let mut values = request.headers().get_all(AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return challenge(
            &state,
            StatusCode::BAD_REQUEST,
            Some(("invalid_request", "more than one Authorization header")),
        );
    }
    let token = first
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = token else {
        return challenge(&state, StatusCode::UNAUTHORIZED, None);
    };
    match state.verifier().verify_refreshing(token).await {
        Ok(claims) => {
            let required = &state.config().required_scopes;
            let missing: Vec<&str> = required
                .iter()
                .filter(|s| !claims.has_scope(s))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                tracing::debug!(
                    client_id = %claims.client_id,
                    missing = %missing.join(" "),
                    "bearer token lacks a required scope"
                );
                let description =
                    format!("the token lacks the required scope {}", missing.join(" "));
                return challenge(
                    &state,
                    StatusCode::FORBIDDEN,
                    Some(("insufficient_scope", description.as_str())),
                );
            }
            request.extensions_mut().insert(claims);
            next.run(request).await
        }
        Err(err) => {
            tracing::debug!(reason = err.reason(), "bearer token refused");
            invalid_token(&state, err)
        }
    }
}

fn invalid_token(state: &AuthState, err: TokenError) -> Response {
    let description = err.to_string();
    challenge(
        state,
        StatusCode::UNAUTHORIZED,
        Some(("invalid_token", description.as_str())),
    )
}

/// A `WWW-Authenticate: Bearer` challenge (RFC 6750 §3) with a JSON body. Parameters, in
/// order: `error`, `scope`, `resource_metadata`, `error_description`.
fn challenge(state: &AuthState, status: StatusCode, error: Option<(&str, &str)>) -> Response {
    let mut params: Vec<String> = Vec::new();
    if let Some((code, _)) = error {
        params.push(format!(r#"error="{code}""#));
    }
    let config = state.config();
    let scopes = if config.required_scopes.is_empty() {
        &config.scopes_supported
    } else {
        &config.required_scopes
    };
    if !scopes.is_empty() {
        params.push(format!(r#"scope="{}""#, scopes.join(" ")));
    }
    params.push(format!(
        r#"resource_metadata="{}""#,
        state.resource_metadata_url()
    ));
    if let Some((_, description)) = error {
        params.push(format!(r#"error_description="{description}""#));
    }
    let header = format!("Bearer {}", params.join(", "));
    let body = match error {
        Some((code, description)) => json!({ "error": code, "error_description": description }),
        None => {
            json!({ "error": "unauthorized", "error_description": "a bearer token is required" })
        }
    };
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&header) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}
