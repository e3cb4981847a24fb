//! [`AuthLayer`]: a tower layer that puts `Authorization: Bearer` on every request, and
//! reacts to the resource server's 401 and 403 `insufficient_scope` answers.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};

use crate::error::Kind;
use crate::{AccessToken, Challenge, Error, TokenRequest, TokenSource};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Adds bearer tokens from a [`TokenSource`] to requests of an HTTP service.
///
/// For each request:
/// - asks the source for a token (a cache in front of it makes this a lock-free read) and sends
///   the request with `Authorization: Bearer <token>`. A source that cannot get a token before
///   the server has challenged it ([`Error::is_challenge_required`]) sends the first request
///   without one;
/// - on `401 Unauthorized`: reads the `WWW-Authenticate` Bearer challenge, asks the source for a
///   new token (marking the refused one as rejected, passing the challenge so a discovering
///   source can find the authorization server) and replays the request **once**. Scopes the
///   challenge names are added to what later requests ask for. A second 401 is returned to the
///   caller as is;
/// - on `403 Forbidden` with `error="insufficient_scope"`: adds the challenged scopes to the
///   scopes every later request asks for (the union, so earlier grants are kept), gets a token
///   for them and replays **once**. A second `insufficient_scope` answer is an error with
///   [`Error::is_insufficient_scope`].
///
/// Errors of the source come back as the service error (a boxed [`Error`]); errors of the
/// inner service pass through unchanged. The request body is [`Bytes`], so replays are exact.
///
/// ```
/// use mcp_auth::{AuthLayer, StaticToken};
/// use tower::ServiceBuilder;
/// # fn inner() -> tower::util::BoxCloneSyncService<http::Request<bytes::Bytes>, http::Response<String>, Box<dyn std::error::Error + Send + Sync>> {
/// #     tower::util::BoxCloneSyncService::new(tower::service_fn(|_req: http::Request<bytes::Bytes>| async {
/// #         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(http::Response::new(String::new()))
/// #     }))
/// # }
///
/// let service = ServiceBuilder::new()
///     .layer(AuthLayer::new(StaticToken::new("a-token")))
///     .service(inner());
/// # let _ = service;
/// ```
#[derive(Clone)]
pub struct AuthLayer {
    source: Arc<dyn TokenSource>,
    shared: Arc<Shared>,
}

/// What every clone of one layer's services shares: the scopes learned from step-ups and the
/// latest challenge.
#[derive(Default)]
struct Shared {
    state: Mutex<SharedState>,
}

#[derive(Default)]
struct SharedState {
    scopes: Vec<String>,
    challenge: Option<Challenge>,
}

impl Shared {
    fn request(&self) -> TokenRequest {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut request = TokenRequest::new();
        request.scopes.clone_from(&state.scopes);
        request.challenge.clone_from(&state.challenge);
        request
    }

    fn learn(&self, challenge: Option<&Challenge>) -> TokenRequest {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(challenge) = challenge {
            // The challenged scopes join the earlier ones (SEP-2350: the union on re-authorization).
            for scope in challenge.scopes() {
                if !state.scopes.iter().any(|s| s == scope) {
                    state.scopes.push(scope.to_owned());
                }
            }
            state.challenge = Some(challenge.clone());
        }
        let mut request = TokenRequest::new();
        request.scopes.clone_from(&state.scopes);
        request.challenge.clone_from(&state.challenge);
        request
    }
}

impl AuthLayer {
    /// A layer taking its tokens from `source`. Put a
    /// [`CachedTokenSource`](crate::CachedTokenSource) in front of sources that fetch over the
    /// network.
    pub fn new(source: impl TokenSource) -> Self {
        Self::from_arc(Arc::new(source))
    }

    /// A layer over a shared source.
    pub fn from_arc(source: Arc<dyn TokenSource>) -> Self {
        Self {
            source,
            shared: Arc::default(),
        }
    }

    /// The scopes learned from `insufficient_scope` step-ups so far.
    pub fn stepped_up_scopes(&self) -> Vec<String> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .scopes
            .clone()
    }
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer").finish_non_exhaustive()
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            source: Arc::clone(&self.source),
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    source: Arc<dyn TokenSource>,
    shared: Arc<Shared>,
}

impl<S> fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

impl<S, B> tower_service::Service<Request<Bytes>> for AuthService<S>
where
    S: tower_service::Service<Request<Bytes>, Response = Response<B>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        // The clone that was driven to readiness serves this call (tower's usual dance).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let source = Arc::clone(&self.source);
        let shared = Arc::clone(&self.shared);
        Box::pin(authorize(inner, source, shared, request))
    }
}

async fn authorize<S, B>(
    mut inner: S,
    source: Arc<dyn TokenSource>,
    shared: Arc<Shared>,
    request: Request<Bytes>,
) -> Result<Response<B>, BoxError>
where
    S: tower_service::Service<Request<Bytes>, Response = Response<B>, Error = BoxError> + Send,
    S::Future: Send,
{
    let replay = copy_request(&request);
    let token = match source.token(&shared.request()).await {
        Ok(token) => Some(token),
        Err(err) if err.is_challenge_required() => None,
        Err(err) => return Err(Box::new(err)),
    };
    let response = inner.call(with_bearer(request, token.as_ref())?).await?;

    let (challenge, step_up) = match response.status() {
        StatusCode::UNAUTHORIZED => (challenge_of(&response), false),
        StatusCode::FORBIDDEN => match challenge_of(&response) {
            Some(c) if c.is_insufficient_scope() => (Some(c), true),
            _ => return Ok(response),
        },
        _ => return Ok(response),
    };
    drop(response);
    tracing::info!(
        name: "mcp_auth.request.rejected",
        target: "mcp_auth::layer",
        status = if step_up { 403 } else { 401 },
        scope = ?challenge.as_ref().map(|c| c.scopes().collect::<Vec<_>>().join(" ")),
        error = challenge.as_ref().and_then(Challenge::error),
        had_token = token.is_some(),
        "resource server refused the request; getting a new token and replaying once"
    );
    let mut retry = shared.learn(challenge.as_ref());
    retry.rejected = token;
    let wanted = retry.scopes.clone();
    let token = source.token(&retry).await.map_err(|err| {
        tracing::warn!(
            name: "mcp_auth.request.token_failed",
            target: "mcp_auth::layer",
            error = %err,
            "could not get a token after the server's challenge"
        );
        Box::new(err) as BoxError
    })?;
    let response = inner.call(with_bearer(replay, Some(&token))?).await?;
    if response.status() == StatusCode::FORBIDDEN
        && challenge_of(&response).is_some_and(|c| c.is_insufficient_scope())
    {
        tracing::warn!(
            name: "mcp_auth.request.insufficient_scope",
            target: "mcp_auth::layer",
            scopes = %wanted.join(" "),
            "server still requires more scope after one step-up"
        );
        return Err(Box::new(Error::new(Kind::InsufficientScope).with_context(format!(
            "the server answered 403 insufficient_scope again after a token with scopes [{}] was obtained",
            wanted.join(" ")
        ))));
    }
    Ok(response)
}

fn challenge_of<B>(response: &Response<B>) -> Option<Challenge> {
    response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(Challenge::parse)
}

fn with_bearer(
    mut request: Request<Bytes>,
    token: Option<&AccessToken>,
) -> Result<Request<Bytes>, BoxError> {
    if let Some(token) = token {
        let mut value = HeaderValue::try_from(format!("Bearer {}", token.secret().expose_secret()))
            .map_err(|_| {
                Box::new(Error::new(Kind::InvalidTokenResponse).with_context(
                    "the access token contains characters not allowed in an HTTP header",
                )) as BoxError
            })?;
        value.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, value);
    } else {
        request.headers_mut().remove(AUTHORIZATION);
    }
    Ok(request)
}

/// A copy of the request for one replay (extensions are not copied: they are not `Clone`).
fn copy_request(request: &Request<Bytes>) -> Request<Bytes> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}
