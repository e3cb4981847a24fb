//! Finding the authorization server of an MCP server: RFC 9728 protected-resource metadata
//! (from the challenge's `resource_metadata`, else the well-known URIs in the MCP order), then
//! RFC 8414 / OpenID Connect metadata of the chosen issuer, each document validated.

use url::Url;

use crate::Error;
use crate::error::Kind;

use super::fetch::{FetchError, Fetcher, check_endpoint, endpoint_url, shown};
use super::metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};

/// What discovery found: the documents and the URLs derived from them.
#[derive(Debug)]
pub(crate) struct Discovered {
    /// Where the protected-resource metadata came from.
    pub(crate) resource_metadata_url: Url,
    pub(crate) resource_metadata: ProtectedResourceMetadata,
    pub(crate) metadata: AuthorizationServerMetadata,
    pub(crate) token_endpoint: Url,
}

impl Discovered {
    /// The authorization server's issuer identifier (as validated against its metadata).
    pub(crate) fn issuer(&self) -> &str {
        self.metadata.issuer()
    }
}

/// `.well-known` suffix of RFC 9728.
const PRM_SUFFIX: &str = "oauth-protected-resource";
/// `.well-known` suffix of RFC 8414.
const OAUTH_AS_SUFFIX: &str = "oauth-authorization-server";
/// `.well-known` suffix of OpenID Connect Discovery.
const OIDC_SUFFIX: &str = "openid-configuration";

/// The well-known protected-resource metadata URIs of `server`, in the MCP order: the
/// path-inserted one first (when the server URL has a path), then the root one.
pub(crate) fn resource_metadata_urls(server: &Url) -> Vec<Url> {
    let path = server.path().trim_end_matches('/');
    let mut urls = Vec::with_capacity(2);
    for candidate in [
        format!("/.well-known/{PRM_SUFFIX}{path}"),
        format!("/.well-known/{PRM_SUFFIX}"),
    ] {
        let mut url = server.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.set_path(&candidate);
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    urls
}

/// The authorization-server metadata URIs of `issuer`, in the MCP order (RFC 8414 §3.1 with
/// path insertion, then OpenID Connect Discovery with path insertion and appending).
pub(crate) fn authorization_server_metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let candidates = if path.is_empty() {
        vec![
            format!("/.well-known/{OAUTH_AS_SUFFIX}"),
            format!("/.well-known/{OIDC_SUFFIX}"),
        ]
    } else {
        vec![
            format!("/.well-known/{OAUTH_AS_SUFFIX}{path}"),
            format!("/.well-known/{OIDC_SUFFIX}{path}"),
            format!("{path}/.well-known/{OIDC_SUFFIX}"),
        ]
    };
    candidates
        .into_iter()
        .map(|p| {
            let mut url = issuer.clone();
            url.set_query(None);
            url.set_fragment(None);
            url.set_path(&p);
            url
        })
        .collect()
}

/// The canonical URI of an MCP server (RFC 8707, MCP "Canonical Server URI"): lowercase
/// scheme and host, no fragment, no trailing slash.
pub(crate) fn canonical_resource(server: &Url) -> String {
    let mut url = server.clone();
    url.set_fragment(None);
    let s = url.as_str();
    match url.query() {
        Some(_) => s.to_owned(),
        None => s.trim_end_matches('/').to_owned(),
    }
}

/// True if the metadata's `resource` identifies `server`: the same origin, and the
/// resource's path is the server's path or a parent of it (on a `/` boundary).
pub(crate) fn resource_matches(resource: &str, server: &Url) -> bool {
    let Ok(resource) = Url::parse(resource) else {
        return false;
    };
    if resource.scheme() != server.scheme()
        || resource.host() != server.host()
        || resource.port_or_known_default() != server.port_or_known_default()
        || resource.fragment().is_some()
    {
        return false;
    }
    let r = resource.path().trim_end_matches('/');
    let s = server.path().trim_end_matches('/');
    s == r || s.strip_prefix(r).is_some_and(|rest| rest.starts_with('/'))
}

/// Fetches and validates the protected-resource metadata.
///
/// `from_challenge`: the challenge's `resource_metadata` URL (only that one is tried).
/// Otherwise the well-known URIs are tried in order; `Ok(None)` when none has a document.
pub(crate) async fn find_resource_metadata(
    fetcher: &Fetcher,
    server: &Url,
    from_challenge: Option<&str>,
    allow_insecure_http: bool,
) -> Result<Option<(Url, ProtectedResourceMetadata)>, Error> {
    let candidates = match from_challenge {
        Some(value) => {
            let url = server.join(value.trim()).map_err(|e| {
                Error::new(Kind::Discovery)
                    .with_context("the challenge's resource_metadata is not a valid URL")
                    .with_source(e)
            })?;
            check_endpoint(
                &url,
                "the challenge's resource_metadata URL",
                allow_insecure_http,
                Kind::Discovery,
            )?;
            vec![url]
        }
        None => resource_metadata_urls(server),
    };
    for url in candidates {
        let what = format!("protected resource metadata at {}", shown(&url));
        tracing::debug!(url = %shown(&url), "fetching protected resource metadata");
        let reply = fetcher
            .get(&url)
            .await
            .map_err(|e: FetchError| e.into_error(Kind::Discovery, &what))?;
        if !reply.status.is_success() {
            tracing::debug!(url = %shown(&url), status = %reply.status, "no protected resource metadata here");
            if from_challenge.is_some() {
                return Err(Error::new(Kind::Discovery).with_context(format!(
                    "{what} (named by the server's challenge): HTTP {}",
                    reply.status
                )));
            }
            continue;
        }
        let prm = ProtectedResourceMetadata::from_json(&reply.body)
            .map_err(|e| Error::new(Kind::Discovery).with_context(format!("{what}: {e}")))?;
        if !resource_matches(prm.resource(), server) {
            return Err(Error::new(Kind::Discovery).with_context(format!(
                "{what} names resource `{}`, which is not the MCP server `{}`; refusing to \
                 use it (RFC 9728 §3.3)",
                super::json::printable(prm.resource(), 200),
                shown(server)
            )));
        }
        tracing::debug!(
            url = %shown(&url),
            resource = %prm.resource(),
            authorization_servers = ?prm.authorization_servers(),
            scopes_supported = ?prm.scopes_supported(),
            "protected resource metadata found"
        );
        return Ok(Some((url, prm)));
    }
    Ok(None)
}

/// Picks the authorization server from `authorization_servers`: `expected` (a pinned or
/// previously used issuer) must be listed; otherwise the first one.
pub(crate) fn choose_issuer<'a>(
    prm: &'a ProtectedResourceMetadata,
    prm_url: &Url,
    expected: Option<&str>,
) -> Result<&'a str, Error> {
    let servers = prm.authorization_servers();
    let Some(first) = servers.first() else {
        return Err(Error::new(Kind::Discovery).with_context(format!(
            "protected resource metadata at {} lists no authorization_servers",
            shown(prm_url)
        )));
    };
    match expected {
        None => Ok(first),
        Some(expected) => servers
            .iter()
            .find(|s| *s == expected)
            .map(String::as_str)
            .ok_or_else(|| {
                Error::new(Kind::Discovery).with_context(format!(
                    "the client's credentials are bound to authorization server `{expected}`, \
                     but the protected resource metadata at {} lists only {:?}; refusing to \
                     send them elsewhere",
                    shown(prm_url),
                    servers
                ))
            }),
    }
}

/// Fetches the metadata of `issuer` from its well-known URIs in order and validates it:
/// `issuer` must be identical to the identifier the URIs were built from (RFC 8414 §3.3), and
/// a `token_endpoint` must be given.
pub(crate) async fn find_authorization_server(
    fetcher: &Fetcher,
    issuer: &str,
    allow_insecure_http: bool,
) -> Result<(AuthorizationServerMetadata, Url), Error> {
    let issuer_url = endpoint_url(
        issuer,
        "authorization server issuer",
        allow_insecure_http,
        Kind::Discovery,
    )?;
    if issuer_url.query().is_some() {
        return Err(Error::new(Kind::Discovery).with_context(format!(
            "authorization server issuer `{}` has a query component (RFC 8414 §2)",
            shown(&issuer_url)
        )));
    }
    let candidates = authorization_server_metadata_urls(&issuer_url);
    let mut tried = Vec::new();
    for url in &candidates {
        let what = format!("authorization server metadata at {}", shown(url));
        tracing::debug!(url = %shown(url), issuer, "fetching authorization server metadata");
        let reply = fetcher
            .get(url)
            .await
            .map_err(|e| e.into_error(Kind::Discovery, &what))?;
        if !reply.status.is_success() {
            tracing::debug!(url = %shown(url), status = %reply.status, "no authorization server metadata here");
            tried.push(format!("{} (HTTP {})", shown(url), reply.status.as_u16()));
            continue;
        }
        let metadata = AuthorizationServerMetadata::from_json(&reply.body)
            .map_err(|e| Error::new(Kind::Discovery).with_context(format!("{what}: {e}")))?;
        if metadata.issuer() != issuer {
            return Err(Error::new(Kind::Discovery).with_context(format!(
                "{what} names issuer `{}`, not `{issuer}` from which the URL was built; \
                 refusing to use it (RFC 8414 §3.3)",
                super::json::printable(metadata.issuer(), 200)
            )));
        }
        let endpoint = metadata.token_endpoint().ok_or_else(|| {
            Error::new(Kind::Discovery).with_context(format!("{what}: `token_endpoint` is missing"))
        })?;
        let token_endpoint = endpoint_url(
            endpoint,
            &format!("{what}: `token_endpoint`"),
            allow_insecure_http,
            Kind::Discovery,
        )?;
        tracing::debug!(
            url = %shown(url),
            issuer,
            token_endpoint = %shown(&token_endpoint),
            auth_methods = ?metadata.token_endpoint_auth_methods_supported(),
            "authorization server metadata found"
        );
        return Ok((metadata, token_endpoint));
    }
    Err(Error::new(Kind::Discovery).with_context(format!(
        "no authorization server metadata for issuer `{issuer}`; tried {}",
        tried.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    fn strings(urls: Vec<Url>) -> Vec<String> {
        urls.into_iter().map(String::from).collect()
    }

    #[test]
    fn well_known_orders() {
        assert_eq!(
            strings(resource_metadata_urls(&url(
                "https://ex.com/public/mcp?x=1"
            ))),
            [
                "https://ex.com/.well-known/oauth-protected-resource/public/mcp",
                "https://ex.com/.well-known/oauth-protected-resource",
            ]
        );
        assert_eq!(
            strings(resource_metadata_urls(&url("https://ex.com/"))),
            ["https://ex.com/.well-known/oauth-protected-resource"]
        );
        assert_eq!(
            strings(authorization_server_metadata_urls(&url(
                "https://auth.ex.com/tenant1"
            ))),
            [
                "https://auth.ex.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.ex.com/.well-known/openid-configuration/tenant1",
                "https://auth.ex.com/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            strings(authorization_server_metadata_urls(&url(
                "https://auth.ex.com"
            ))),
            [
                "https://auth.ex.com/.well-known/oauth-authorization-server",
                "https://auth.ex.com/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn resource_matching() {
        let server = url("https://MCP.example.com/api/mcp");
        assert!(resource_matches("https://mcp.example.com/api/mcp", &server));
        assert!(resource_matches(
            "https://mcp.example.com/api/mcp/",
            &server
        ));
        assert!(resource_matches("https://mcp.example.com/api", &server));
        assert!(resource_matches("https://mcp.example.com", &server));
        assert!(resource_matches(
            "https://mcp.example.com:443/api/mcp",
            &server
        ));
        assert!(!resource_matches("https://mcp.example.com/ap", &server));
        assert!(!resource_matches(
            "https://mcp.example.com/api/mcp/x",
            &server
        ));
        assert!(!resource_matches(
            "https://evil.example.com/api/mcp",
            &server
        ));
        assert!(!resource_matches("http://mcp.example.com/api/mcp", &server));
        assert!(!resource_matches(
            "https://mcp.example.com:8443/api/mcp",
            &server
        ));
        assert!(!resource_matches("not a url", &server));
        assert_eq!(
            canonical_resource(&url("HTTPS://MCP.example.com/")),
            "https://mcp.example.com"
        );
        assert_eq!(
            canonical_resource(&url("https://mcp.example.com/mcp#x")),
            "https://mcp.example.com/mcp"
        );
    }
}
