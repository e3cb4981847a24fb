//! One token request, for any grant: the grant's form parameters, client authentication
//! (`client_secret_basic`, `client_secret_post`, `private_key_jwt`), the RFC 8707 `resource`,
//! and the strict reading of the answer.

use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{AUTHORIZATION, RETRY_AFTER};
use http::{HeaderMap, HeaderValue};
use url::Url;

use crate::error::Kind;
use crate::{AccessToken, Error, Secret};

use super::assertion::{ASSERTION_LIFETIME, JWT_BEARER_ASSERTION_TYPE, PrivateKey};
use super::fetch::{Fetcher, shown};
use super::json::printable;
use super::token_response::{TokenErrorResponse, TokenResponse};

/// How the client authenticates at the token endpoint (RFC 6749 §2.3, RFC 7523, OpenID
/// Connect Core §9; the names are those of `token_endpoint_auth_methods_supported`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1). The default for
    /// a client secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the request body.
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523 §2.2).
    PrivateKeyJwt,
    /// No client authentication: a public client sends its `client_id` in the body (RFC 6749
    /// §2.1; authorization-code clients registered with `none` or identified by a client ID
    /// metadata document).
    None,
}

impl AuthMethod {
    /// The registered name (`client_secret_basic`, `client_secret_post`, `private_key_jwt`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The client's credential.
#[derive(Clone)]
pub(crate) enum Credential {
    Secret(Secret),
    PrivateKey(PrivateKey),
    /// A public client: nothing to authenticate with.
    None,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Secret(s) => f.debug_tuple("Secret").field(s).finish(),
            Credential::PrivateKey(k) => f.debug_tuple("PrivateKey").field(k).finish(),
            Credential::None => f.write_str("None"),
        }
    }
}

/// Everything one token request needs besides the grant's own parameters.
pub(crate) struct Exchange<'a> {
    pub(crate) fetcher: &'a Fetcher,
    pub(crate) endpoint: &'a Url,
    pub(crate) client_id: &'a str,
    pub(crate) credential: &'a Credential,
    pub(crate) method: AuthMethod,
    /// `aud` of a `private_key_jwt` assertion.
    pub(crate) audience: &'a str,
    /// RFC 8707 `resource`, if known.
    pub(crate) resource: Option<&'a str>,
    /// Scopes asked for (omitted from the request when empty).
    pub(crate) scopes: &'a [String],
}

impl Exchange<'_> {
    /// The form body, the authentication headers and the credential sent.
    fn prepare(&self, grant: &[(&str, &str)]) -> Result<(String, HeaderMap, Secret), Error> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(grant.iter().copied());
        if !self.scopes.is_empty() {
            form.append_pair("scope", &self.scopes.join(" "));
        }
        if let Some(resource) = self.resource {
            form.append_pair("resource", resource);
        }
        let mut headers = HeaderMap::new();
        // What the answer must never repeat (a server could echo it in error_description).
        let sent_secret = match (self.method, self.credential) {
            (AuthMethod::ClientSecretBasic, Credential::Secret(secret)) => {
                let pair = format!(
                    "{}:{}",
                    form_urlencoded::byte_serialize(self.client_id.as_bytes()).collect::<String>(),
                    form_urlencoded::byte_serialize(secret.expose_secret().as_bytes())
                        .collect::<String>()
                );
                let pair = Secret::new(pair);
                let mut value = HeaderValue::try_from(format!(
                    "Basic {}",
                    STANDARD.encode(pair.expose_secret())
                ))
                .map_err(|_| {
                    Error::new(Kind::Config)
                        .with_context("the client credentials cannot form a Basic header")
                })?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
                secret.clone()
            }
            (AuthMethod::ClientSecretPost, Credential::Secret(secret)) => {
                form.append_pair("client_id", self.client_id);
                form.append_pair("client_secret", secret.expose_secret());
                secret.clone()
            }
            (AuthMethod::PrivateKeyJwt, Credential::PrivateKey(key)) => {
                let assertion = key.assertion(
                    self.client_id,
                    self.audience,
                    SystemTime::now(),
                    ASSERTION_LIFETIME,
                )?;
                form.append_pair("client_id", self.client_id);
                form.append_pair("client_assertion_type", JWT_BEARER_ASSERTION_TYPE);
                form.append_pair("client_assertion", assertion.expose_secret());
                assertion
            }
            (AuthMethod::None, _) => {
                form.append_pair("client_id", self.client_id);
                Secret::new(String::new())
            }
            (method, _) => {
                return Err(Error::new(Kind::Config).with_context(format!(
                    "client authentication {method} does not fit the configured credential"
                )));
            }
        };
        Ok((form.finish(), headers, sent_secret))
    }

    /// Sends the request with the grant's parameters (`grant_type` first) and reads the answer.
    pub(crate) async fn send(&self, grant: &[(&str, &str)]) -> Result<AccessToken, Error> {
        let (response, issued_at) = self.exchange(grant, &[]).await?;
        Ok(response.into_access_token(self.scopes, issued_at))
    }

    /// [`send`](Self::send), returning the whole token response (its refresh token too) and
    /// when it was requested. `secrets` are grant values (a code, a verifier, a refresh token)
    /// that an error description must not repeat, besides the client credential.
    pub(crate) async fn exchange(
        &self,
        grant: &[(&str, &str)],
        secrets: &[&Secret],
    ) -> Result<(TokenResponse, SystemTime), Error> {
        let endpoint = shown(self.endpoint);
        let scope = self.scopes.join(" ");
        let (body, headers, credential) = self.prepare(grant)?;
        let mut sent: Vec<&Secret> = secrets.to_vec();
        sent.push(&credential);
        tracing::debug!(
            token_endpoint = %endpoint,
            grant_type = grant.first().map_or("", |(_, v)| *v),
            auth_method = %self.method,
            scope = %scope,
            resource = self.resource.unwrap_or(""),
            "requesting an access token"
        );
        let issued_at = SystemTime::now();
        let what = format!("token request to {endpoint}");
        let reply = self
            .fetcher
            .post_form(self.endpoint, body, headers)
            .await
            .map_err(|e| e.into_error(Kind::InvalidTokenResponse, &what))
            .inspect_err(
                |e| tracing::warn!(token_endpoint = %endpoint, error = %e, "token request failed"),
            )?;

        let result = if reply.status.is_success() {
            match TokenResponse::from_json(&reply.body) {
                Ok(response) => Ok(response),
                Err(e) => Err(match TokenErrorResponse::from_json(&reply.body) {
                    // An error body under a 2xx status: still the server's refusal.
                    Ok(refusal) => refused(&endpoint, reply.status, &refusal, &sent, None),
                    Err(_) => {
                        let mut context = format!("{endpoint} answered HTTP {}: {e}", reply.status);
                        if !reply.is_json() {
                            context.push_str(" (the Content-Type is not JSON)");
                        }
                        Error::new(Kind::InvalidTokenResponse).with_context(context)
                    }
                }),
            }
        } else {
            let retry_after = reply
                .headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(|v| printable(v, 40));
            Err(match TokenErrorResponse::from_json(&reply.body) {
                Ok(refusal) => refused(
                    &endpoint,
                    reply.status,
                    &refusal,
                    &sent,
                    retry_after.as_deref(),
                ),
                Err(_) => Error::new(Kind::TokenEndpoint).with_context(format!(
                    "{endpoint} answered HTTP {} without an OAuth error body{}",
                    reply.status,
                    retry_after.map_or(String::new(), |r| format!(" (Retry-After: {r})"))
                )),
            })
        };
        match result {
            Ok(response) => {
                tracing::debug!(
                    token_endpoint = %endpoint,
                    expires_in = ?response.expires_in(),
                    granted_scope = ?response.scopes(),
                    "access token received"
                );
                Ok((response, issued_at))
            }
            Err(e) => {
                tracing::warn!(token_endpoint = %endpoint, error = %e, "token request refused");
                Err(e)
            }
        }
    }
}

/// The error for an RFC 6749 §5.2 refusal: the code, and the description unless it repeats
/// a secret the client sent.
fn refused(
    endpoint: &str,
    status: http::StatusCode,
    refusal: &TokenErrorResponse,
    sent: &[&Secret],
    retry_after: Option<&str>,
) -> Error {
    let echoes = |text: &str| {
        sent.iter().any(|s| {
            let secret = s.expose_secret();
            !secret.is_empty() && text.contains(secret)
        })
    };
    let mut context = format!(
        "{endpoint} answered HTTP {} with `{}`",
        status,
        printable(refusal.error(), 64)
    );
    if echoes(refusal.error()) {
        context = format!(
            "{endpoint} answered HTTP {status} with an error code that repeats a secret it was sent"
        );
    }
    match refusal.error_description() {
        Some(d) if echoes(d) => {
            context.push_str(" (its description repeats a secret it was sent; not shown)")
        }
        Some(d) => {
            context.push_str(": ");
            context.push_str(&printable(d, 200));
        }
        None => {}
    }
    if let Some(r) = retry_after {
        context.push_str(&format!(" (Retry-After: {r})"));
    }
    Error::new(Kind::TokenEndpoint).with_context(context)
}
