//! Token endpoint answers: RFC 6749 §5.1 success and §5.2 error responses.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::error::Kind;
use crate::{AccessToken, Error, Secret};

use super::json::{Fields, printable};

/// The longest `expires_in` accepted (ten years); a larger value is treated as malformed.
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A successful token response (RFC 6749 §5.1), checked strictly:
///
/// - `access_token`: required, non-empty, visible ASCII only (it goes into an
///   `Authorization` header);
/// - `token_type`: required, `Bearer` (case-insensitive);
/// - `expires_in`: optional; a non-negative whole number of seconds (a JSON integer or a
///   string of digits, as some servers send), at most [`MAX_EXPIRES_IN`];
/// - `scope`: optional, space-separated; absent means "the scopes requested"
///   (RFC 6749 §5.1);
/// - `refresh_token`: optional.
///
/// `Debug` shows neither token.
///
/// ```
/// use std::time::Duration;
/// use mcp_auth::oauth::TokenResponse;
///
/// let r = TokenResponse::from_json(
///     br#"{"access_token": "eyJ.x.y", "token_type": "bearer", "expires_in": "3600", "scope": "a b"}"#,
/// )?;
/// assert_eq!(r.expires_in(), Some(Duration::from_secs(3600)));
/// assert_eq!(r.scopes(), Some(&["a".to_owned(), "b".to_owned()][..]));
/// assert!(!format!("{r:?}").contains("eyJ"));
///
/// let err = TokenResponse::from_json(br#"{"access_token": "t", "token_type": "bearer", "expires_in": -5}"#)
///     .unwrap_err();
/// assert!(err.is_invalid_token_response() && err.to_string().contains("expires_in"));
/// # Ok::<(), mcp_auth::Error>(())
/// ```
#[derive(Clone)]
pub struct TokenResponse {
    access_token: Secret,
    token_type: String,
    expires_in: Option<Duration>,
    scopes: Option<Vec<String>>,
    refresh_token: Option<Secret>,
}

const DOC: &str = "token response";

impl TokenResponse {
    /// Parses and checks a token response body.
    ///
    /// # Errors
    ///
    /// [`Error::is_invalid_token_response`], naming the member that is missing or malformed
    /// (never its value). Never panics.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let mut f = Fields::parse(bytes, DOC, Kind::InvalidTokenResponse)?;
        let access_token = match f.take("access_token") {
            None => return Err(f.invalid("access_token", "is missing")),
            Some(Value::String(s)) => s,
            Some(_) => return Err(f.invalid("access_token", "is not a string")),
        };
        if access_token.is_empty() {
            return Err(f.invalid("access_token", "is empty"));
        }
        if !access_token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(f.invalid(
                "access_token",
                "contains characters not allowed in an Authorization header",
            ));
        }
        let access_token = Secret::new(access_token);
        let token_type = f.required_string("token_type")?;
        if !token_type.eq_ignore_ascii_case("bearer") {
            return Err(f.invalid(
                "token_type",
                &format!(
                    "is `{}`; only Bearer tokens are supported",
                    printable(&token_type, 40)
                ),
            ));
        }
        let expires_in = match f.take("expires_in") {
            None => None,
            Some(value) => Some(expires_in(&value).map_err(|why| f.invalid("expires_in", why))?),
        };
        let scopes = f.string("scope")?.map(|s| {
            let mut scopes: Vec<String> = Vec::new();
            for scope in s.split_ascii_whitespace() {
                if !scopes.iter().any(|x| x == scope) {
                    scopes.push(scope.to_owned());
                }
            }
            scopes
        });
        let refresh_token = match f.take("refresh_token") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(Secret::new(s)),
            Some(_) => return Err(f.invalid("refresh_token", "is not a non-empty string")),
        };
        Ok(Self {
            access_token,
            token_type,
            expires_in,
            scopes,
            refresh_token,
        })
    }

    /// `access_token`.
    pub fn access_token(&self) -> &Secret {
        &self.access_token
    }

    /// `token_type` as sent (always `Bearer` in some letter case).
    pub fn token_type(&self) -> &str {
        &self.token_type
    }

    /// `expires_in`, if sent.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// The granted scopes (`scope`, split at spaces), if sent.
    pub fn scopes(&self) -> Option<&[String]> {
        self.scopes.as_deref()
    }

    /// `refresh_token`, if sent.
    pub fn refresh_token(&self) -> Option<&Secret> {
        self.refresh_token.as_ref()
    }

    /// The [`AccessToken`]: expiry `issued_at + expires_in`, scopes as granted or, when the
    /// response does not say, `requested`.
    pub fn into_access_token(self, requested: &[String], issued_at: SystemTime) -> AccessToken {
        let expires_at = self.expires_in.and_then(|d| issued_at.checked_add(d));
        let scopes = self.scopes.unwrap_or_else(|| requested.to_vec());
        AccessToken::new(self.access_token, expires_at).with_scopes(scopes)
    }
}

fn expires_in(value: &Value) -> Result<Duration, &'static str> {
    const WHY: &str = "must be a non-negative whole number of seconds";
    let secs = match value {
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(s), _, _) => s,
            (None, Some(_), _) => return Err("is negative"),
            (None, None, Some(f)) if f < 0.0 => return Err("is negative"),
            // A float with a fractional part or beyond u64: not a whole number of seconds.
            _ => return Err(WHY),
        },
        Value::String(s) => {
            let s = s.trim();
            if s.starts_with('-') {
                return Err("is negative");
            }
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(WHY);
            }
            s.parse::<u64>().map_err(|_| "is too large")?
        }
        _ => return Err(WHY),
    };
    let d = Duration::from_secs(secs);
    if d > MAX_EXPIRES_IN {
        return Err("is implausibly large (more than ten years)");
    }
    Ok(d)
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .field("refresh_token", &self.refresh_token)
            .finish()
    }
}

/// An RFC 6749 §5.2 error response: `error`, `error_description`, `error_uri`.
///
/// The texts are the server's; [`Display`](fmt::Display) shows them without control
/// characters and shortened.
///
/// ```
/// use mcp_auth::oauth::TokenErrorResponse;
///
/// let e = TokenErrorResponse::from_json(br#"{"error": "invalid_client", "error_description": "bad key"}"#)?;
/// assert_eq!(e.error(), "invalid_client");
/// assert_eq!(e.to_string(), "invalid_client: bad key");
/// # Ok::<(), mcp_auth::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenErrorResponse {
    error: String,
    error_description: Option<String>,
    error_uri: Option<String>,
}

impl TokenErrorResponse {
    /// Parses an error response body (`error` is required).
    ///
    /// # Errors
    ///
    /// [`Error::is_invalid_token_response`], naming the member that is missing or malformed.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let mut f = Fields::parse(bytes, "token error response", Kind::InvalidTokenResponse)?;
        Ok(Self {
            error: f.required_string("error")?,
            error_description: f.string("error_description")?,
            error_uri: f.string("error_uri")?,
        })
    }

    /// The error code (`invalid_client`, `invalid_scope`, ...).
    pub fn error(&self) -> &str {
        &self.error
    }

    /// `error_description`, if sent.
    pub fn error_description(&self) -> Option<&str> {
        self.error_description.as_deref()
    }

    /// `error_uri`, if sent.
    pub fn error_uri(&self) -> Option<&str> {
        self.error_uri.as_deref()
    }
}

impl fmt::Display for TokenErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&printable(&self.error, 64))?;
        if let Some(d) = &self.error_description {
            write!(f, ": {}", printable(d, 200))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<TokenResponse, Error> {
        TokenResponse::from_json(json.as_bytes())
    }

    #[test]
    fn expires_in_forms() {
        let ok = |v: &str| {
            parse(&format!(
                r#"{{"access_token":"t","token_type":"Bearer","expires_in":{v}}}"#
            ))
            .map(|r| r.expires_in())
        };
        assert_eq!(ok("60").ok().flatten(), Some(Duration::from_secs(60)));
        assert_eq!(ok("\"60\"").ok().flatten(), Some(Duration::from_secs(60)));
        assert_eq!(ok("0").ok().flatten(), Some(Duration::ZERO));
        assert_eq!(ok("null").ok().flatten(), None);
        for bad in [
            "-1",
            "\"-1\"",
            "1.5",
            "-1.5",
            "\"abc\"",
            "\"\"",
            "true",
            "[]",
            "1e300",
            "99999999999999999999",
            "\"99999999999999999999\"",
            "400000000",
        ] {
            let err = ok(bad).expect_err(bad);
            assert!(
                err.is_invalid_token_response() && err.to_string().contains("`expires_in`"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn required_members() {
        for (json, field) in [
            (r#"{"token_type":"Bearer"}"#, "access_token"),
            (
                r#"{"access_token":"","token_type":"Bearer"}"#,
                "access_token",
            ),
            (
                r#"{"access_token":7,"token_type":"Bearer"}"#,
                "access_token",
            ),
            (
                r#"{"access_token":"a b","token_type":"Bearer"}"#,
                "access_token",
            ),
            (r#"{"access_token":"t"}"#, "token_type"),
            (r#"{"access_token":"t","token_type":"mac"}"#, "token_type"),
            (
                r#"{"access_token":"t","token_type":"Bearer","scope":5}"#,
                "scope",
            ),
        ] {
            let err = parse(json).expect_err(json);
            assert!(
                err.to_string().contains(&format!("`{field}`")),
                "{json}: {err}"
            );
        }
        let r =
            parse(r#"{"access_token":"t","token_type":"BEARER","scope":"a  a b"}"#).expect("valid");
        assert_eq!(r.scopes(), Some(&["a".to_owned(), "b".to_owned()][..]));
    }

    #[test]
    fn access_token_scopes_default_to_requested() {
        let now = SystemTime::UNIX_EPOCH;
        let t = parse(r#"{"access_token":"t","token_type":"Bearer","expires_in":10}"#)
            .expect("valid")
            .into_access_token(&["x".to_owned()], now);
        assert_eq!(t.scopes(), ["x"]);
        assert_eq!(t.expires_at(), Some(now + Duration::from_secs(10)));
    }
}
