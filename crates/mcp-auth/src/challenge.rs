//! Parsing a resource server's `WWW-Authenticate: Bearer ...` challenge (RFC 6750 §3,
//! RFC 9728 §5.1 `resource_metadata`, RFC 7235 syntax).

use std::fmt;

/// A Bearer challenge from a `WWW-Authenticate` header.
///
/// Only the `Bearer` scheme is read; other schemes in the same header are skipped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    realm: Option<String>,
    scope: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    resource_metadata: Option<String>,
}

impl Challenge {
    /// Parses the first Bearer challenge in a `WWW-Authenticate` header value.
    ///
    /// Returns `None` if the header has no Bearer challenge or is malformed. Never panics.
    ///
    /// ```
    /// let c = mcp_auth::Challenge::parse(
    ///     r#"Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource""#,
    /// ).unwrap();
    /// assert!(c.is_insufficient_scope());
    /// assert_eq!(c.scopes().collect::<Vec<_>>(), ["files:read", "files:write"]);
    /// ```
    pub fn parse(header: &str) -> Option<Challenge> {
        let mut p = Parser {
            s: header.as_bytes(),
            i: 0,
        };
        loop {
            p.skip_ws_commas();
            if p.done() {
                return None;
            }
            let scheme = p.token()?;
            let bearer = scheme.eq_ignore_ascii_case("bearer");
            let mut challenge = Challenge::default();
            // auth-params (or a token68) until the next scheme.
            loop {
                p.skip_ws();
                if p.done() {
                    break;
                }
                let save = p.i;
                let Some(name) = p.token() else {
                    // A token68 (e.g. `Basic abc==`): skip to the next comma.
                    p.skip_until_comma();
                    p.skip_ws_commas();
                    if p.next_is_scheme() {
                        break;
                    }
                    continue;
                };
                p.skip_ws();
                if p.peek() != Some(b'=') {
                    // A bare token: the next challenge's scheme.
                    p.i = save;
                    break;
                }
                p.i += 1;
                p.skip_ws();
                if matches!(p.peek(), None | Some(b'=' | b',')) {
                    // `name=` followed by padding or nothing: a token68 such as `abc==`.
                    p.skip_until_comma();
                    p.skip_ws_commas();
                    if p.next_is_scheme() {
                        break;
                    }
                    continue;
                }
                let value = if p.peek() == Some(b'"') {
                    p.quoted()?
                } else {
                    p.token()?.to_owned()
                };
                if bearer {
                    challenge.set(name, value);
                }
                p.skip_ws();
                match p.peek() {
                    Some(b',') => p.skip_ws_commas(),
                    None => {}
                    Some(_) => return None,
                }
            }
            if bearer {
                return Some(challenge);
            }
        }
    }

    fn set(&mut self, name: &str, value: String) {
        let slot = match name.to_ascii_lowercase().as_str() {
            "realm" => &mut self.realm,
            "scope" => &mut self.scope,
            "error" => &mut self.error,
            "error_description" => &mut self.error_description,
            "resource_metadata" => &mut self.resource_metadata,
            _ => return,
        };
        if slot.is_none() {
            *slot = Some(value);
        }
    }

    /// The `realm` parameter.
    pub fn realm(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// The scopes the server asks for (the space-separated `scope` parameter).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or("").split_ascii_whitespace()
    }

    /// True if the challenge names scopes.
    pub fn has_scope(&self) -> bool {
        self.scopes().next().is_some()
    }

    /// The `error` code (`invalid_token`, `insufficient_scope`, ...).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The `error_description` parameter.
    pub fn error_description(&self) -> Option<&str> {
        self.error_description.as_deref()
    }

    /// The RFC 9728 `resource_metadata` URL.
    pub fn resource_metadata(&self) -> Option<&str> {
        self.resource_metadata.as_deref()
    }

    /// True for `error="insufficient_scope"`.
    pub fn is_insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Challenges carry no secrets, but error_description is server-chosen text: keep it.
        f.debug_struct("Challenge")
            .field("realm", &self.realm)
            .field("scope", &self.scope)
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .field("resource_metadata", &self.resource_metadata)
            .finish()
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_ws_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    fn skip_until_comma(&mut self) {
        while !matches!(self.peek(), None | Some(b',')) {
            self.i += 1;
        }
    }

    /// After a comma: does a `scheme` (token not followed by `=`) start here?
    fn next_is_scheme(&self) -> bool {
        let mut j = self.i;
        while j < self.s.len() && is_tchar(self.s[j]) {
            j += 1;
        }
        if j == self.i {
            return false;
        }
        while j < self.s.len() && matches!(self.s[j], b' ' | b'\t') {
            j += 1;
        }
        self.s.get(j) != Some(&b'=')
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        if self.i == start {
            return None;
        }
        std::str::from_utf8(&self.s[start..self.i]).ok()
    }

    fn quoted(&mut self) -> Option<String> {
        // Precondition: at the opening quote.
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return String::from_utf8(out).ok();
                }
                b'\\' => {
                    self.i += 1;
                    out.push(self.peek()?);
                    self.i += 1;
                }
                c => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_params_case_insensitively() {
        let c = Challenge::parse(
            r#"bearer Realm="mcp", error="invalid_token", error_description="expired \"a\"", resource_metadata="http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp""#,
        )
        .expect("bearer");
        assert_eq!(c.realm(), Some("mcp"));
        assert_eq!(c.error(), Some("invalid_token"));
        assert_eq!(c.error_description(), Some("expired \"a\""));
        assert_eq!(
            c.resource_metadata(),
            Some("http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp")
        );
        assert!(!c.has_scope());
    }

    #[test]
    fn skips_other_schemes_and_token68() {
        let c = Challenge::parse(r#"Basic realm="x", Negotiate abc==, Bearer scope="a b""#)
            .expect("bearer");
        assert_eq!(c.scopes().collect::<Vec<_>>(), ["a", "b"]);
        let c = Challenge::parse(r#"Basic abc==, Bearer scope=a"#).expect("bearer");
        assert_eq!(c.scopes().collect::<Vec<_>>(), ["a"]);
        assert!(Challenge::parse("Bearer").is_some());
    }

    #[test]
    fn malformed_headers_give_none_not_panics() {
        for h in [
            "",
            "Basic realm=x",
            r#"Bearer realm="unterminated"#,
            "Bearer a=\"\\",
            "Bearer a=b c",
            "Bearer =",
        ] {
            let _ = Challenge::parse(h);
        }
        assert!(Challenge::parse("Basic realm=x").is_none());
        assert!(Challenge::parse(r#"Bearer realm="unterminated"#).is_none());
    }
}
