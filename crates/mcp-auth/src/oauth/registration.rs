//! Who the authorization-code client is at an authorization server: a pre-registered client,
//! a Client ID Metadata Document URL, or an RFC 7591 dynamic registration.

use std::fmt;

use serde_json::{Value, json};
use url::Url;

use crate::error::Kind;
use crate::{Error, Secret};

use super::AuthorizationServerMetadata;
use super::fetch::{Fetcher, shown};
use super::json::{Fields, printable};
use super::token_request::AuthMethod;
use super::token_response::TokenErrorResponse;

/// How the client got its identity at one authorization server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Configured: bound to the authorization server it was issued by.
    PreRegistered,
    /// A Client ID Metadata Document URL: portable across authorization servers.
    MetadataDocument,
    /// RFC 7591: bound to the authorization server that registered it.
    Dynamic,
}

/// The client's identity at the authorization server `issuer`.
#[derive(Clone)]
pub(crate) struct Registration {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) secret: Option<Secret>,
    pub(crate) method: AuthMethod,
    pub(crate) source: Source,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("secret", &self.secret)
            .field("method", &self.method)
            .field("source", &self.source)
            .finish()
    }
}

/// The token endpoint authentication a new client asks for: the first the server accepts of
/// `client_secret_basic`, `client_secret_post` and `none` (RFC 8414: a server that does not
/// say accepts `client_secret_basic`).
pub(crate) fn dynamic_method(metadata: &AuthorizationServerMetadata) -> Result<AuthMethod, Error> {
    [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::None,
    ]
    .into_iter()
    .find(|m| metadata.supports_auth_method(m.as_str()))
    .ok_or_else(|| {
        Error::new(Kind::Config).with_context(format!(
            "authorization server `{}` accepts none of client_secret_basic, client_secret_post \
             and none at its token endpoint (token_endpoint_auth_methods_supported: {:?}); \
             dynamic registration cannot produce a usable client",
            metadata.issuer(),
            metadata
                .token_endpoint_auth_methods_supported()
                .unwrap_or_default()
        ))
    })
}

/// The client metadata sent to a registration endpoint.
pub(crate) struct Request<'a> {
    pub(crate) client_name: &'a str,
    pub(crate) redirect_uri: &'a Url,
    pub(crate) method: AuthMethod,
    /// Whether to ask for `refresh_token` among the grant types.
    pub(crate) refresh: bool,
}

impl Request<'_> {
    fn body(&self) -> Value {
        let mut grant_types = vec!["authorization_code"];
        if self.refresh {
            grant_types.push("refresh_token");
        }
        json!({
            "client_name": self.client_name,
            "redirect_uris": [self.redirect_uri.as_str()],
            "grant_types": grant_types,
            "response_types": ["code"],
            "token_endpoint_auth_method": self.method.as_str(),
            "application_type": application_type(self.redirect_uri),
        })
    }
}

/// OpenID Connect `application_type` for a redirect URI (MCP requires one in registration):
/// `native` for loopback and private-use-scheme redirects, `web` for the rest.
pub(crate) fn application_type(redirect: &Url) -> &'static str {
    let loopback = match redirect.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match redirect.scheme() {
        "http" | "https" if !loopback => "web",
        _ => "native",
    }
}

/// Registers a client at `endpoint` (RFC 7591 §3) for the authorization server `issuer`.
pub(crate) async fn register(
    fetcher: &Fetcher,
    endpoint: &Url,
    issuer: &str,
    request: &Request<'_>,
) -> Result<Registration, Error> {
    let what = format!("client registration at {}", shown(endpoint));
    tracing::debug!(
        registration_endpoint = %shown(endpoint),
        issuer,
        token_endpoint_auth_method = %request.method,
        redirect_uri = %request.redirect_uri,
        "registering the client (RFC 7591)"
    );
    let reply = fetcher
        .post_json(endpoint, request.body().to_string())
        .await
        .map_err(|e| e.into_error(Kind::Config, &what))?;
    if !reply.status.is_success() {
        let detail = match TokenErrorResponse::from_json(&reply.body) {
            Ok(refusal) => format!(": `{}`", refusal),
            Err(_) => String::new(),
        };
        return Err(Error::new(Kind::Config).with_context(format!(
            "{what} was refused with HTTP {}{detail}",
            reply.status
        )));
    }
    let doc = "client registration response";
    let mut f = Fields::parse(&reply.body, doc, Kind::Config)?;
    let client_id = f.required_string("client_id")?;
    let secret = f.string("client_secret")?.filter(|s| !s.is_empty());
    let method = match f.string("token_endpoint_auth_method")?.as_deref() {
        None => request.method,
        Some("client_secret_basic") => AuthMethod::ClientSecretBasic,
        Some("client_secret_post") => AuthMethod::ClientSecretPost,
        Some("none") => AuthMethod::None,
        Some(other) => {
            return Err(f.invalid(
                "token_endpoint_auth_method",
                &format!(
                    "is `{}`, which this client cannot use",
                    printable(other, 64)
                ),
            ));
        }
    };
    if method != AuthMethod::None && secret.is_none() {
        return Err(f.invalid(
            "client_secret",
            &format!("is missing, but the registered token_endpoint_auth_method is {method}"),
        ));
    }
    tracing::debug!(
        registration_endpoint = %shown(endpoint),
        issuer,
        client_id = %printable(&client_id, 200),
        token_endpoint_auth_method = %method,
        "client registered"
    );
    Ok(Registration {
        issuer: issuer.to_owned(),
        client_id,
        secret: (method != AuthMethod::None)
            .then_some(secret.map(Secret::new))
            .flatten(),
        method,
        source: Source::Dynamic,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_types() {
        let t = |s: &str| application_type(&Url::parse(s).expect("url"));
        assert_eq!(t("http://127.0.0.1:3000/callback"), "native");
        assert_eq!(t("http://localhost/cb"), "native");
        assert_eq!(t("http://[::1]/cb"), "native");
        assert_eq!(t("com.example.app:/cb"), "native");
        assert_eq!(t("https://app.example.com/cb"), "web");
    }

    #[test]
    fn dynamic_method_prefers_a_secret_then_none() {
        let m = |j: &str| {
            dynamic_method(&AuthorizationServerMetadata::from_json(j.as_bytes()).expect("asm"))
        };
        assert_eq!(
            m(r#"{"issuer":"https://as"}"#).expect("default"),
            AuthMethod::ClientSecretBasic
        );
        assert_eq!(
            m(r#"{"issuer":"https://as","token_endpoint_auth_methods_supported":["none","client_secret_post"]}"#)
                .expect("post"),
            AuthMethod::ClientSecretPost
        );
        assert_eq!(
            m(r#"{"issuer":"https://as","token_endpoint_auth_methods_supported":["none"]}"#)
                .expect("none"),
            AuthMethod::None
        );
        assert!(
            m(r#"{"issuer":"https://as","token_endpoint_auth_methods_supported":["private_key_jwt"]}"#)
                .is_err()
        );
    }
}
