//! The discovery documents: RFC 9728 protected-resource metadata and RFC 8414 / OpenID
//! Connect authorization-server metadata.

use crate::Error;
use crate::error::Kind;

use super::json::Fields;

/// An RFC 9728 protected-resource metadata document: which authorization servers issue tokens
/// for an MCP server, and the scopes it uses.
///
/// Only the members an OAuth client needs are kept; unknown members are ignored.
///
/// ```
/// use mcp_auth::oauth::ProtectedResourceMetadata;
///
/// let prm = ProtectedResourceMetadata::from_json(br#"{
///     "resource": "https://mcp.example.com/mcp",
///     "authorization_servers": ["https://auth.example.com"],
///     "scopes_supported": ["files:read"]
/// }"#)?;
/// assert_eq!(prm.resource(), "https://mcp.example.com/mcp");
/// assert_eq!(prm.authorization_servers(), ["https://auth.example.com"]);
/// assert_eq!(prm.scopes_supported(), Some(&["files:read".to_owned()][..]));
/// # Ok::<(), mcp_auth::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedResourceMetadata {
    resource: String,
    authorization_servers: Vec<String>,
    scopes_supported: Option<Vec<String>>,
    bearer_methods_supported: Option<Vec<String>>,
    resource_name: Option<String>,
}

impl ProtectedResourceMetadata {
    /// Parses the document. `resource` is required; every member present must have its RFC
    /// 9728 type.
    ///
    /// # Errors
    ///
    /// [`Error::is_discovery`], naming the member that is missing or malformed. Never panics.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let mut f = Fields::parse(bytes, "protected resource metadata", Kind::Discovery)?;
        Ok(Self {
            resource: f.required_string("resource")?,
            authorization_servers: f.string_list("authorization_servers")?.unwrap_or_default(),
            scopes_supported: f.string_list("scopes_supported")?,
            bearer_methods_supported: f.string_list("bearer_methods_supported")?,
            resource_name: f.string("resource_name")?,
        })
    }

    /// `resource`: the protected resource's identifier (the MCP server's canonical URI).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// `authorization_servers`: issuer identifiers of the authorization servers (may be empty
    /// in the document; discovery then fails).
    pub fn authorization_servers(&self) -> &[String] {
        &self.authorization_servers
    }

    /// `scopes_supported`, if the document has it.
    pub fn scopes_supported(&self) -> Option<&[String]> {
        self.scopes_supported.as_deref()
    }

    /// `bearer_methods_supported`, if the document has it.
    pub fn bearer_methods_supported(&self) -> Option<&[String]> {
        self.bearer_methods_supported.as_deref()
    }

    /// `resource_name`, if the document has it.
    pub fn resource_name(&self) -> Option<&str> {
        self.resource_name.as_deref()
    }
}

/// An RFC 8414 (or OpenID Connect Discovery) authorization-server metadata document.
///
/// Holds the members the client-credentials grant uses today and those the authorization-code
/// grant, dynamic client registration and refresh need (`authorization_endpoint`,
/// `registration_endpoint`, `code_challenge_methods_supported`,
/// `authorization_response_iss_parameter_supported`, ...). Unknown members are ignored.
///
/// ```
/// use mcp_auth::oauth::AuthorizationServerMetadata;
///
/// let asm = AuthorizationServerMetadata::from_json(br#"{
///     "issuer": "https://auth.example.com",
///     "token_endpoint": "https://auth.example.com/oauth/token",
///     "token_endpoint_auth_methods_supported": ["client_secret_post"]
/// }"#)?;
/// assert_eq!(asm.issuer(), "https://auth.example.com");
/// assert!(asm.supports_auth_method("client_secret_post"));
/// assert!(!asm.supports_auth_method("client_secret_basic"));
/// # Ok::<(), mcp_auth::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationServerMetadata {
    issuer: String,
    token_endpoint: Option<String>,
    authorization_endpoint: Option<String>,
    registration_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    jwks_uri: Option<String>,
    scopes_supported: Option<Vec<String>>,
    response_types_supported: Option<Vec<String>>,
    grant_types_supported: Option<Vec<String>>,
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    code_challenge_methods_supported: Option<Vec<String>>,
    authorization_response_iss_parameter_supported: bool,
    client_id_metadata_document_supported: bool,
}

impl AuthorizationServerMetadata {
    /// Parses the document. `issuer` is required; every member present must have its RFC
    /// 8414 type. Whether `issuer` matches the URL the document came from is checked by
    /// discovery, which knows that URL.
    ///
    /// # Errors
    ///
    /// [`Error::is_discovery`], naming the member that is missing or malformed. Never panics.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let mut f = Fields::parse(bytes, "authorization server metadata", Kind::Discovery)?;
        Ok(Self {
            issuer: f.required_string("issuer")?,
            token_endpoint: f.string("token_endpoint")?,
            authorization_endpoint: f.string("authorization_endpoint")?,
            registration_endpoint: f.string("registration_endpoint")?,
            revocation_endpoint: f.string("revocation_endpoint")?,
            jwks_uri: f.string("jwks_uri")?,
            scopes_supported: f.string_list("scopes_supported")?,
            response_types_supported: f.string_list("response_types_supported")?,
            grant_types_supported: f.string_list("grant_types_supported")?,
            token_endpoint_auth_methods_supported: f
                .string_list("token_endpoint_auth_methods_supported")?,
            token_endpoint_auth_signing_alg_values_supported: f
                .string_list("token_endpoint_auth_signing_alg_values_supported")?,
            code_challenge_methods_supported: f.string_list("code_challenge_methods_supported")?,
            authorization_response_iss_parameter_supported: f
                .boolean("authorization_response_iss_parameter_supported")?
                .unwrap_or(false),
            client_id_metadata_document_supported: f
                .boolean("client_id_metadata_document_supported")?
                .unwrap_or(false),
        })
    }

    /// `issuer`: the authorization server's issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `token_endpoint`.
    pub fn token_endpoint(&self) -> Option<&str> {
        self.token_endpoint.as_deref()
    }

    /// `authorization_endpoint` (authorization-code grant).
    pub fn authorization_endpoint(&self) -> Option<&str> {
        self.authorization_endpoint.as_deref()
    }

    /// `registration_endpoint` (RFC 7591 dynamic client registration).
    pub fn registration_endpoint(&self) -> Option<&str> {
        self.registration_endpoint.as_deref()
    }

    /// `revocation_endpoint` (RFC 7009).
    pub fn revocation_endpoint(&self) -> Option<&str> {
        self.revocation_endpoint.as_deref()
    }

    /// `jwks_uri`.
    pub fn jwks_uri(&self) -> Option<&str> {
        self.jwks_uri.as_deref()
    }

    /// `scopes_supported`, if the document has it.
    pub fn scopes_supported(&self) -> Option<&[String]> {
        self.scopes_supported.as_deref()
    }

    /// `response_types_supported`, if the document has it.
    pub fn response_types_supported(&self) -> Option<&[String]> {
        self.response_types_supported.as_deref()
    }

    /// `grant_types_supported`, if the document has it (RFC 8414 default when absent:
    /// `authorization_code` and `implicit`).
    pub fn grant_types_supported(&self) -> Option<&[String]> {
        self.grant_types_supported.as_deref()
    }

    /// `token_endpoint_auth_methods_supported`, if the document has it.
    pub fn token_endpoint_auth_methods_supported(&self) -> Option<&[String]> {
        self.token_endpoint_auth_methods_supported.as_deref()
    }

    /// `token_endpoint_auth_signing_alg_values_supported`, if the document has it.
    pub fn token_endpoint_auth_signing_alg_values_supported(&self) -> Option<&[String]> {
        self.token_endpoint_auth_signing_alg_values_supported
            .as_deref()
    }

    /// `code_challenge_methods_supported` (PKCE), if the document has it.
    pub fn code_challenge_methods_supported(&self) -> Option<&[String]> {
        self.code_challenge_methods_supported.as_deref()
    }

    /// `authorization_response_iss_parameter_supported` (RFC 9207); false when absent.
    pub fn authorization_response_iss_parameter_supported(&self) -> bool {
        self.authorization_response_iss_parameter_supported
    }

    /// `client_id_metadata_document_supported`; false when absent.
    pub fn client_id_metadata_document_supported(&self) -> bool {
        self.client_id_metadata_document_supported
    }

    /// True if the token endpoint accepts client authentication `method` (RFC 8414: when
    /// the document does not say, only `client_secret_basic`).
    pub fn supports_auth_method(&self, method: &str) -> bool {
        match &self.token_endpoint_auth_methods_supported {
            Some(methods) => methods.iter().any(|m| m == method),
            None => method == "client_secret_basic",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_members_and_types_are_checked() {
        let err = ProtectedResourceMetadata::from_json(br#"{"authorization_servers": []}"#)
            .expect_err("no resource");
        assert!(
            err.is_discovery() && err.to_string().contains("`resource`"),
            "{err}"
        );
        let err = ProtectedResourceMetadata::from_json(
            br#"{"resource": "https://r", "authorization_servers": "https://as"}"#,
        )
        .expect_err("not an array");
        assert!(err.to_string().contains("`authorization_servers`"), "{err}");
        let err = AuthorizationServerMetadata::from_json(br#"{"token_endpoint": "x"}"#)
            .expect_err("no issuer");
        assert!(err.to_string().contains("`issuer`"), "{err}");
        let err = AuthorizationServerMetadata::from_json(
            br#"{"issuer": "https://as", "authorization_response_iss_parameter_supported": "yes"}"#,
        )
        .expect_err("not a bool");
        assert!(
            err.to_string()
                .contains("`authorization_response_iss_parameter_supported`"),
            "{err}"
        );
    }

    #[test]
    fn as_metadata_keeps_what_later_grants_need() {
        let asm = AuthorizationServerMetadata::from_json(
            br#"{"issuer": "https://as", "authorization_endpoint": "https://as/authorize",
                "registration_endpoint": "https://as/register", "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": true, "extra": {"x": 1}}"#,
        )
        .expect("valid");
        assert_eq!(asm.authorization_endpoint(), Some("https://as/authorize"));
        assert_eq!(asm.registration_endpoint(), Some("https://as/register"));
        assert!(asm.authorization_response_iss_parameter_supported());
        assert!(asm.supports_auth_method("client_secret_basic"));
        assert!(!asm.supports_auth_method("private_key_jwt"));
    }
}
