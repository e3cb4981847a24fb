//! [`AzureTokenSource`]: tokens from an Azure SDK credential (feature `azure`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::time::OffsetDateTime;

use crate::error::Kind;
use crate::{AccessToken, BoxFuture, Error, Secret, TokenRequest, TokenSource};

/// A [`TokenSource`] backed by any `azure_core` [`TokenCredential`] (managed identity, workload
/// identity, Azure CLI, client secret, ... from `azure_identity`), asking for a configured list
/// of scopes such as `api://<app-id>/.default`.
///
/// Scopes in a [`TokenRequest`] are added to the configured ones. The returned token records
/// the scopes it was requested with and the credential's `expires_on`.
///
/// Azure credentials keep their own token cache, so a token the resource server rejected may
/// come back from the credential unchanged; the source then answers with an
/// [`Error::is_config`] error (the audience or scope is likely wrong) instead of handing the
/// rejected token out again. Put a [`CachedTokenSource`](crate::CachedTokenSource) in front
/// for proactive, jittered refresh.
///
/// Errors map from the credential's error kind: connection and I/O failures to
/// [`Error::is_unreachable`], unparsable answers to [`Error::is_invalid_token_response`],
/// everything else (credential and HTTP errors) to [`Error::is_token_endpoint`]; the Azure
/// error is the [`source`](std::error::Error::source).
///
/// ```no_run
/// # fn credential() -> std::sync::Arc<dyn azure_core::credentials::TokenCredential> { unimplemented!() }
/// use mcp_auth::{AzureTokenSource, CachedTokenSource};
///
/// // e.g. `azure_identity::ManagedIdentityCredential::new(None)?`
/// let credential = credential();
/// let source = AzureTokenSource::new(credential, ["api://my-app-id/.default"])?;
/// let cache = CachedTokenSource::new(source);
/// # let _ = cache;
/// # Ok::<(), mcp_auth::Error>(())
/// ```
#[derive(Clone)]
pub struct AzureTokenSource {
    credential: Arc<dyn TokenCredential>,
    scopes: Vec<String>,
}

impl AzureTokenSource {
    /// Asks `credential` for tokens with `scopes`.
    ///
    /// # Errors
    ///
    /// [`Error::is_config`] if `scopes` is empty or contains an empty scope.
    pub fn new<I, S>(credential: Arc<dyn TokenCredential>, scopes: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        if scopes.is_empty() {
            return Err(Error::new(Kind::Config).with_context(
                "AzureTokenSource needs at least one scope, e.g. `api://<app-id>/.default`",
            ));
        }
        if let Some(i) = scopes.iter().position(|s| s.trim().is_empty()) {
            return Err(Error::new(Kind::Config)
                .with_context(format!("AzureTokenSource scope #{} is empty", i + 1)));
        }
        Ok(Self { credential, scopes })
    }

    /// The configured scopes.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    async fn fetch(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        let mut scopes = self.scopes.clone();
        for s in &request.scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let token = self.credential.get_token(&refs, None).await.map_err(|e| {
            let kind = match e.kind() {
                ErrorKind::Io | ErrorKind::Connection => Kind::Unreachable,
                ErrorKind::DataConversion => Kind::InvalidTokenResponse,
                _ => Kind::TokenEndpoint,
            };
            Error::new(kind)
                .with_context(format!(
                    "the Azure credential could not get a token for scopes {scopes:?}"
                ))
                .with_source(e)
        })?;
        let expires_at = system_time(token.expires_on).ok_or_else(|| {
            Error::new(Kind::InvalidTokenResponse).with_context(format!(
                "the Azure credential returned a token expiring at an unrepresentable time \
                 (unix {})",
                token.expires_on.unix_timestamp()
            ))
        })?;
        let secret = Secret::new(token.token.secret());
        if let Some(rejected) = &request.rejected
            && *rejected.secret() == secret
        {
            return Err(Error::new(Kind::Config).with_context(format!(
                "the Azure credential returned the token the resource server just rejected \
                 (its own cache still holds it); check that scopes {scopes:?} name the \
                 server's audience"
            )));
        }
        Ok(AccessToken::new(secret, Some(expires_at)).with_scopes(scopes))
    }
}

impl TokenSource for AzureTokenSource {
    fn token<'a>(&'a self, request: &'a TokenRequest) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(self.fetch(request))
    }
}

impl fmt::Debug for AzureTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The credential's own Debug is not ours to vouch for: leave it out.
        f.debug_struct("AzureTokenSource")
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// `OffsetDateTime` → `SystemTime` without the panicking conversion.
fn system_time(at: OffsetDateTime) -> Option<SystemTime> {
    let secs = at.unix_timestamp();
    let nanos = Duration::from_nanos(u64::from(at.nanosecond()));
    let whole = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        SystemTime::UNIX_EPOCH
            .checked_add(whole)?
            .checked_add(nanos)
    } else {
        SystemTime::UNIX_EPOCH
            .checked_sub(whole)?
            .checked_add(nanos)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;

    use azure_core::credentials::{AccessToken as AzureToken, TokenRequestOptions};

    use super::*;

    /// A scripted credential: answers each call with the next scripted result and records the
    /// scopes it was asked for.
    #[derive(Debug)]
    struct ScriptedCredential {
        answers: Mutex<Vec<azure_core::Result<AzureToken>>>,
        asked: Mutex<Vec<Vec<String>>>,
    }

    impl ScriptedCredential {
        fn new(answers: Vec<azure_core::Result<AzureToken>>) -> Arc<Self> {
            Arc::new(Self {
                answers: Mutex::new(answers),
                asked: Mutex::new(Vec::new()),
            })
        }
    }

    impl TokenCredential for ScriptedCredential {
        // The `#[async_trait]` signature, written out.
        fn get_token<'a, 'b, 'c, 'd, 'f>(
            &'a self,
            scopes: &'b [&'c str],
            _options: Option<TokenRequestOptions<'d>>,
        ) -> Pin<Box<dyn Future<Output = azure_core::Result<AzureToken>> + Send + 'f>>
        where
            'a: 'f,
            'b: 'f,
            'c: 'f,
            'd: 'f,
            Self: 'f,
        {
            self.asked
                .lock()
                .unwrap()
                .push(scopes.iter().map(|s| s.to_string()).collect());
            let answer = self.answers.lock().unwrap().remove(0);
            Box::pin(async move { answer })
        }
    }

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    #[tokio::test]
    async fn scripted_credential_token_maps_expiry_and_scopes() {
        let cred = ScriptedCredential::new(vec![Ok(AzureToken::new(
            "az-token-1".to_owned(),
            at(1_900_000_000),
        ))]);
        let source = AzureTokenSource::new(cred.clone(), ["api://app/.default"]).unwrap();
        let token = source
            .token(&TokenRequest::new().scopes(["extra", "api://app/.default"]))
            .await
            .unwrap();
        assert_eq!(token.secret().expose_secret(), "az-token-1");
        assert_eq!(
            token.expires_at(),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000))
        );
        assert_eq!(token.scopes(), ["api://app/.default", "extra"]);
        assert_eq!(
            cred.asked.lock().unwrap().as_slice(),
            [vec!["api://app/.default".to_owned(), "extra".to_owned()]]
        );
        assert!(!format!("{source:?}").contains("az-token-1"));
    }

    #[tokio::test]
    async fn scripted_credential_errors_map_to_kinds_with_the_azure_error_as_source() {
        let cred = ScriptedCredential::new(vec![
            Err(azure_core::Error::with_message(
                ErrorKind::Credential,
                "bad secret",
            )),
            Err(azure_core::Error::with_message(ErrorKind::Io, "refused")),
            Err(azure_core::Error::with_message(
                ErrorKind::DataConversion,
                "bad json",
            )),
        ]);
        let source = AzureTokenSource::new(cred, ["s"]).unwrap();
        let req = TokenRequest::new();
        let e = source.token(&req).await.unwrap_err();
        assert!(e.is_token_endpoint(), "{e:?}");
        assert!(e.source().unwrap().to_string().contains("bad secret"));
        assert!(e.to_string().contains("Azure credential"), "{e}");
        assert!(source.token(&req).await.unwrap_err().is_unreachable());
        assert!(
            source
                .token(&req)
                .await
                .unwrap_err()
                .is_invalid_token_response()
        );
    }

    #[tokio::test]
    async fn scripted_credential_returning_the_rejected_token_is_a_config_error() {
        let cred = ScriptedCredential::new(vec![
            Ok(AzureToken::new("same".to_owned(), at(1_900_000_000))),
            Ok(AzureToken::new("same".to_owned(), at(1_900_000_000))),
        ]);
        let source = AzureTokenSource::new(cred, ["s"]).unwrap();
        let first = source.token(&TokenRequest::new()).await.unwrap();
        let err = source
            .token(&TokenRequest::new().rejected(first))
            .await
            .unwrap_err();
        assert!(err.is_config(), "{err:?}");
    }

    #[test]
    fn empty_scopes_are_config_errors() {
        let cred = ScriptedCredential::new(vec![]);
        let none: [&str; 0] = [];
        assert!(
            AzureTokenSource::new(cred.clone(), none)
                .unwrap_err()
                .is_config()
        );
        let err = AzureTokenSource::new(cred, ["a", " "]).unwrap_err();
        assert!(err.is_config() && err.to_string().contains("#2"), "{err}");
    }

    #[test]
    fn expiry_conversion_handles_the_whole_range() {
        assert_eq!(system_time(at(0)), Some(SystemTime::UNIX_EPOCH));
        assert_eq!(
            system_time(at(-10)),
            Some(SystemTime::UNIX_EPOCH - Duration::from_secs(10))
        );
        // 9999-12-31T23:59:59Z, the latest `time` accepts without its large-dates feature.
        assert!(system_time(at(253_402_300_799)).is_some());
    }
}
