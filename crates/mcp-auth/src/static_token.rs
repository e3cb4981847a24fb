//! [`StaticToken`]: a fixed bearer token.

use std::fmt;

use crate::error::Kind;
use crate::{AccessToken, BoxFuture, Error, Secret, TokenRequest, TokenSource};

/// A [`TokenSource`] that always returns one configured bearer token (an API key or a
/// long-lived token from configuration).
///
/// It cannot refresh, so:
///
/// - a request that marks the token as [`rejected`](TokenRequest::rejected) gets an error with
///   [`Error::is_config`] true: the configured credential is what is wrong, and only a new
///   configuration fixes it;
/// - an empty token is an [`Error::is_config`] error on every call;
/// - requested scopes are not checked: the token carries whatever it carries, and the resource
///   server decides.
///
/// `Debug` never shows the token.
///
/// ```
/// use mcp_auth::{StaticToken, TokenRequest, TokenSource};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let source = StaticToken::new("my-api-key");
/// let token = source.token(&TokenRequest::new()).await.unwrap();
/// assert_eq!(token.secret().expose_secret(), "my-api-key");
///
/// let err = source.token(&TokenRequest::new().rejected(token)).await.unwrap_err();
/// assert!(err.is_config());
/// # }
/// ```
#[derive(Clone)]
pub struct StaticToken {
    token: AccessToken,
}

impl StaticToken {
    /// A static bearer token without expiry.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            token: AccessToken::new(secret, None),
        }
    }

    /// The token returned on every call.
    pub fn access_token(&self) -> &AccessToken {
        &self.token
    }
}

impl From<AccessToken> for StaticToken {
    /// Serves `token` as it is (its expiry and scopes included).
    fn from(token: AccessToken) -> Self {
        Self { token }
    }
}

impl TokenSource for StaticToken {
    fn token<'a>(&'a self, request: &'a TokenRequest) -> BoxFuture<'a, Result<AccessToken, Error>> {
        let result = if self.token.secret().is_empty() {
            Err(Error::new(Kind::Config)
                .with_context("the configured static bearer token is empty"))
        } else if request
            .rejected
            .as_ref()
            .is_some_and(|r| r.same_token(&self.token) || r.secret() == self.token.secret())
        {
            Err(Error::new(Kind::Config).with_context(
                "the resource server rejected the configured static bearer token, and a static \
                 token cannot be refreshed; configure a valid one",
            ))
        } else {
            Ok(self.token.clone())
        };
        Box::pin(std::future::ready(result))
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticToken")
            .field("token", &self.token)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_or_never<T>(f: BoxFuture<'_, T>) -> T {
        let mut f = f;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("static token future was pending"),
        }
    }

    #[test]
    fn returns_the_same_token_until_rejected() {
        let source = StaticToken::new("k-1");
        let a = now_or_never(source.token(&TokenRequest::new())).expect("token");
        let b = now_or_never(source.token(&TokenRequest::new().scopes(["x"]))).expect("token");
        assert!(a.same_token(&b));
        let err =
            now_or_never(source.token(&TokenRequest::new().rejected(a))).expect_err("rejected");
        assert!(err.is_config());
        assert!(err.to_string().contains("static bearer token"), "{err}");
        // A value-equal token from elsewhere counts as rejected too.
        let other = AccessToken::new("k-1", None);
        assert!(now_or_never(source.token(&TokenRequest::new().rejected(other))).is_err());
        // Another token being rejected does not concern this one.
        let other = AccessToken::new("k-2", None);
        assert!(now_or_never(source.token(&TokenRequest::new().rejected(other))).is_ok());
    }

    #[test]
    fn empty_token_is_a_config_error_and_debug_is_redacted() {
        let err =
            now_or_never(StaticToken::new("").token(&TokenRequest::new())).expect_err("empty");
        assert!(err.is_config());
        let dbg = format!("{:?}", StaticToken::new("canary-st-77"));
        assert!(!dbg.contains("canary-st-77"), "{dbg}");
    }
}
