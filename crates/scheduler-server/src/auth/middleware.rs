//! The bearer-token check in front of protected routes (`/mcp`): RFC 6750 header parsing and
//! `WWW-Authenticate` challenges that point at the RFC 9728 resource metadata.

use axum::Json;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use serde_json::json;

use super::jwt::TokenError;
use super::state::AuthState;

/// Middleware that admits only requests with a valid bearer token and puts its verified
/// [`Claims`](super::Claims) into the request extensions.
///
/// - No `Authorization: Bearer` header: `401` with
///   `WWW-Authenticate: Bearer resource_metadata="<resource metadata URL>"` (and `scope`
///   when scopes are configured).
/// - A token that does not verify: `401` with `error="invalid_token"` and a short
///   `error_description` added.
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
    match state.verifier().verify(token) {
        Ok(claims) => {
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

fn challenge(state: &AuthState, status: StatusCode, error: Option<(&str, &str)>) -> Response {
    let mut params: Vec<String> = Vec::new();
    if let Some((code, description)) = error {
        params.push(format!(r#"error="{code}""#));
        params.push(format!(r#"error_description="{description}""#));
    }
    params.push(format!(
        r#"resource_metadata="{}""#,
        state.resource_metadata_url()
    ));
    let scopes = &state.config().scopes_supported;
    if !scopes.is_empty() {
        params.push(format!(r#"scope="{}""#, scopes.join(" ")));
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
