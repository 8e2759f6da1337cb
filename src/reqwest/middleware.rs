//! `BearerAuthMiddleware`: the bearer layer as a reqwest-middleware `Middleware`.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use ::reqwest::{Request, Response, Url};
use http::header::AUTHORIZATION;
use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use crate::cache::{CurrentToken, Generation, TokenCache};
use crate::classify::{DefaultClassifier, RejectionClassifier};
use crate::error::{BearerAuthError, TokenError};
use crate::layer::caller_authorization::CallerAuthorization;
use crate::origin::Origin;
use crate::source::TokenSource;

/// A reqwest-middleware [`Middleware`] that authenticates every request with
/// a cached bearer token, with the guarantees of
/// [`BearerAuthLayer`](crate::BearerAuthLayer):
///
/// - the token comes from a [`TokenCache`] (no lock while it is fresh; one
///   fetch however many requests need one);
/// - a response its [`RejectionClassifier`] calls a rejection (by default a
///   401 with a bearer `invalid_token` challenge or none, or gRPC
///   `UNAUTHENTICATED`) invalidates exactly the token that request carried,
///   so a thousand rejections of one token cause one refresh;
/// - the rejected request is sent **once** more with the fresh token, when
///   [`reqwest::Request::try_clone`](::reqwest::Request::try_clone) can copy it
///   (bytes, text, JSON and form bodies; not streams); otherwise the
///   rejection is returned and the next request gets a fresh token;
/// - no request is sent without a token: if none can be had, the call fails
///   with a `reqwest_middleware::Error::Middleware` whose chain holds the
///   [`TokenError`] ([`TokenError::find_in`] finds it).
///
/// A request that already has an `Authorization` header gets the token
/// instead, unless [`caller_authorization`](Self::caller_authorization)
/// says to keep it (see [`CallerAuthorization`]); a request whose origin is
/// outside [`only_for_origins`](Self::only_for_origins) passes through
/// untouched.
///
/// Put it last (innermost) among token-unaware middlewares such as a retry
/// middleware, so that every retry reads the current token.
///
/// ```
/// use tower_bearer::reqwest::BearerAuthMiddleware;
/// use tower_bearer::{StaticToken, TokenError};
///
/// # async fn call() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = BearerAuthMiddleware::new(StaticToken::new("api-key"));
/// let cache = auth.cache().clone();
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(auth)
///     .build();
///
/// match client.get("http://127.0.0.1:8080/v1/me").send().await {
///     Ok(response) => println!("{}", response.status()),
///     Err(err) => match TokenError::find_in(&err) {
///         Some(token) => println!("no token (permanent: {})", token.is_permanent()),
///         None => println!("request failed: {err}"),
///     },
/// }
/// println!("{:?}", cache.stats());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BearerAuthMiddleware<C = DefaultClassifier> {
    cache: TokenCache,
    classifier: C,
    replay: bool,
    scope: Option<Arc<[Origin]>>,
    caller_authorization: CallerAuthorization,
}

impl BearerAuthMiddleware {
    /// A middleware with a default [`TokenCache`] around `source`.
    pub fn new(source: impl TokenSource) -> Self {
        Self::from_cache(TokenCache::new(source))
    }

    /// A middleware reading from an existing cache (tuned with
    /// [`TokenCache::builder`], or shared with Tower layers and other
    /// clients).
    pub fn from_cache(cache: TokenCache) -> Self {
        Self {
            cache,
            classifier: DefaultClassifier,
            replay: true,
            scope: None,
            caller_authorization: CallerAuthorization::Replace,
        }
    }
}

impl<C> BearerAuthMiddleware<C> {
    /// Uses another [`RejectionClassifier`].
    pub fn classifier<C2: RejectionClassifier>(self, classifier: C2) -> BearerAuthMiddleware<C2> {
        BearerAuthMiddleware {
            cache: self.cache,
            classifier,
            replay: self.replay,
            scope: self.scope,
            caller_authorization: self.caller_authorization,
        }
    }

    /// Never sends a request twice: a rejection is returned as is, and the
    /// next request gets a fresh token.
    pub fn no_replay(mut self) -> Self {
        self.replay = false;
        self
    }

    /// Attaches the token only to requests for these origins (scheme, host
    /// and port); others pass through untouched, without a token and without
    /// a fetch. See [`BearerAuthLayer::only_for_origins`](crate::BearerAuthLayer::only_for_origins).
    pub fn only_for_origins(mut self, origins: impl IntoIterator<Item = Origin>) -> Self {
        self.scope = Some(origins.into_iter().collect());
        self
    }

    /// What to do with a request that already has an `Authorization`
    /// header: replace it with the token (the default), or send it as it is.
    pub fn caller_authorization(mut self, choice: CallerAuthorization) -> Self {
        self.caller_authorization = choice;
        self
    }

    /// The cache the middleware reads from, for its [`stats`](TokenCache::stats).
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    fn in_scope(&self, url: &Url) -> bool {
        match &self.scope {
            None => true,
            Some(origins) => origins.iter().any(|origin| {
                origin.matches_parts(url.scheme(), url.host_str(), url.port_or_known_default())
            }),
        }
    }
}

/// The token error as the middleware reports it: `no access token`, caused
/// by the token error, so that [`TokenError::find_in`] finds it through
/// reqwest-middleware's transparent error.
fn no_token(err: TokenError) -> reqwest_middleware::Error {
    reqwest_middleware::Error::middleware(BearerAuthError::<Infallible>::Token(err))
}

fn authorize(request: &mut Request, token: CurrentToken) -> Generation {
    let generation = token.generation();
    request
        .headers_mut()
        .insert(AUTHORIZATION, token.into_header_value());
    generation
}

#[async_trait::async_trait]
impl<C: RejectionClassifier> Middleware for BearerAuthMiddleware<C> {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if self
            .caller_authorization
            .passes_through(|| request.headers().contains_key(AUTHORIZATION))
            || !self.in_scope(request.url())
        {
            return next.run(request, extensions).await;
        }
        let token = match self.cache.current() {
            Some(token) => token,
            None => self.cache.acquire().await.map_err(no_token)?,
        };
        let mut retry = self.replay.then(|| request.try_clone()).flatten();
        let generation = authorize(&mut request, token);
        let response = next.clone().run(request, extensions).await?;
        if !self
            .classifier
            .is_rejection(response.status(), response.headers())
        {
            self.cache.accepted(generation);
            return Ok(response);
        }
        let Some(mut again) = retry.take() else {
            // Cannot replay: hand the rejection back, but make sure the
            // next request gets a fresh token.
            self.cache.reject(generation);
            return Ok(response);
        };
        let fresh = match self.cache.replace(generation).await {
            Ok(fresh) => fresh,
            // The API keeps rejecting fresh tokens: say why, and until when.
            Err(err) if err.is_cooldown() => return Err(no_token(err)),
            // The source fails: the rejection is the answer.
            Err(_) => return Ok(response),
        };
        drop(response);
        let generation = authorize(&mut again, fresh);
        self.cache.record_retry();
        tracing::debug!(
            generation = %generation,
            "token rejected; sending the request once more with a fresh token"
        );
        let response = next.run(again, extensions).await?;
        // A second rejection is returned as is: never loop.
        if self
            .classifier
            .is_rejection(response.status(), response.headers())
        {
            self.cache.reject(generation);
        } else {
            self.cache.accepted(generation);
        }
        Ok(response)
    }
}

impl<C> fmt::Debug for BearerAuthMiddleware<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthMiddleware")
            .field("cache", &self.cache)
            .field("replay", &self.replay)
            .field("scope", &self.scope)
            .field("caller_authorization", &self.caller_authorization)
            .finish_non_exhaustive()
    }
}
