//! Fuzzes the token response parsers (RFC 6749 §5.1 and §5.2): arbitrary bytes must never
//! panic; an accepted response has a non-empty header-safe Bearer token and a bounded
//! `expires_in`; `Debug` and error messages never contain the access token.

#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use mcp_auth::oauth::{MAX_EXPIRES_IN, TokenErrorResponse, TokenResponse};

fuzz_target!(|input: &[u8]| {
    match TokenResponse::from_json(input) {
        Ok(response) => {
            let token = response.access_token().expose_secret().to_owned();
            assert!(!token.is_empty());
            assert!(token.bytes().all(|b| b.is_ascii_graphic()));
            assert!(response.token_type().eq_ignore_ascii_case("bearer"));
            assert!(response.expires_in().is_none_or(|d| d <= MAX_EXPIRES_IN));
            // The token must not show in Debug unless it is also a scope, the token type or
            // a field name. Tokens of b64token characters cannot span a field boundary.
            let b64token = token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
            let explained = [
                format!("{:?}", response.scopes()),
                format!("{:?}", response.expires_in()),
                response.token_type().to_owned(),
                "TokenResponse access_token token_type expires_in scopes refresh_token Secret \
                 redacted Some None"
                    .to_owned(),
            ]
            .iter()
            .any(|s| s.contains(&token));
            if b64token && !explained {
                assert!(!format!("{response:?}").contains(&token));
            }
            let access = response.into_access_token(&["s".to_owned()], SystemTime::now());
            assert_eq!(access.secret().expose_secret(), token);
        }
        Err(e) => {
            assert!(e.is_invalid_token_response(), "{e:?}");
            let _ = format!("{e} {e:?}");
        }
    }
    if let Ok(refusal) = TokenErrorResponse::from_json(input) {
        assert!(!refusal.error().is_empty());
        let shown = refusal.to_string();
        assert!(!shown.chars().any(char::is_control));
    }
});
