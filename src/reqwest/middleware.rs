//! `BearerAuthMiddleware`: the bearer layer as a reqwest-middleware `Middleware`.

use std::convert::Infallible;
use std::fmt;

use ::reqwest::{Request, Response};
use http::header::AUTHORIZATION;
use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use super::answered_elsewhere::mark_if_elsewhere;
use crate::cache::{CurrentToken, Generation, TokenCache};
use crate::classify::{DefaultClassifier, RejectionClassifier};
use crate::error::{BearerAuthError, TokenError};
use crate::exchange::{
    after_answer, verdict, Action, Attempt, CallerAuthorization, ExchangePolicy, Route, Verdict,
};
use crate::keyed::{CacheSelector, KeyedBy, KeyedTokenCache};
use crate::origin::Origin;
use crate::replay::{CloneBody, NoReplay, ReplayPolicy};
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
///   its [`ReplayPolicy`] can keep it: [`CloneBody`] (the default) replays
///   what [`reqwest::Request::try_clone`](::reqwest::Request::try_clone) can
///   copy (bytes, text, JSON and form bodies), [`BufferBody`](crate::replay::BufferBody)
///   also records streams up to a cap, [`NoReplay`] never replays; otherwise
///   the rejection is returned at once and the next request gets a fresh
///   token;
/// - a `401` that reqwest brought back from another origin after a redirect
///   is not a rejection of the token (it never went there): it is returned
///   as is, without a fetch;
/// - no request is sent without a token: if none can be had, the call fails
///   with a `reqwest_middleware::Error::Middleware` whose chain holds the
///   [`TokenError`] ([`TokenError::find_in`] finds it).
///
/// What happens to each request is decided by the
/// [`exchange`](crate::exchange), exactly as under
/// [`BearerAuthLayer`](crate::BearerAuthLayer): the same rows, the same
/// outcomes. Many tenants: [`keyed`](Self::keyed).
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
pub struct BearerAuthMiddleware<P = CloneBody, C = DefaultClassifier, T = TokenCache> {
    tokens: T,
    replay: P,
    policy: ExchangePolicy<C>,
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
        Self::with_tokens(cache)
    }
}

impl<K, F> BearerAuthMiddleware<CloneBody, DefaultClassifier, KeyedBy<K, F>> {
    /// A middleware choosing, for each request, the token of its key in
    /// `cache`: many tenants behind one client. `key` reads the key from the
    /// request and its middleware extensions (what
    /// `RequestBuilder::with_extension` put there). A request without a key
    /// is not sent: the call fails with
    /// [`CacheError::KeyMissing`](crate::CacheError::KeyMissing).
    ///
    /// ```
    /// use tower_bearer::keyed::KeyedTokenCache;
    /// use tower_bearer::reqwest::BearerAuthMiddleware;
    /// use tower_bearer::StaticToken;
    ///
    /// /// The tenant a request is for.
    /// #[derive(Clone, PartialEq, Eq, Hash)]
    /// struct Tenant(u32);
    ///
    /// # async fn call() -> Result<(), Box<dyn std::error::Error>> {
    /// let tenants = KeyedTokenCache::new(|t: &Tenant| StaticToken::new(format!("key-{}", t.0)));
    /// let auth = BearerAuthMiddleware::keyed(tenants, |_, extensions: &http::Extensions| {
    ///     extensions.get::<Tenant>().cloned()
    /// });
    /// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
    ///     .with(auth)
    ///     .build();
    /// client
    ///     .get("http://127.0.0.1:8080/v1/me")
    ///     .with_extension(Tenant(7))
    ///     .send()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn keyed(cache: KeyedTokenCache<K>, key: F) -> Self
    where
        F: Fn(&Request, &Extensions) -> Option<K>,
    {
        Self::with_tokens(KeyedBy::new(cache, key))
    }
}

impl<T> BearerAuthMiddleware<CloneBody, DefaultClassifier, T> {
    /// A middleware taking each request's token from the cache `tokens`
    /// chooses for it ([`CacheSelector`] of a `(&reqwest::Request,
    /// &Extensions)`).
    pub fn with_tokens(tokens: T) -> Self {
        Self {
            tokens,
            replay: CloneBody,
            policy: ExchangePolicy::default(),
        }
    }
}

impl<P, C> BearerAuthMiddleware<P, C, TokenCache> {
    /// The cache the middleware reads from, for its [`stats`](TokenCache::stats).
    pub fn cache(&self) -> &TokenCache {
        &self.tokens
    }
}

impl<P, C, T> BearerAuthMiddleware<P, C, T> {
    /// Where the middleware takes tokens from: a [`TokenCache`], or a keyed
    /// cache with its key function ([`KeyedBy`]).
    pub fn tokens(&self) -> &T {
        &self.tokens
    }

    /// Uses another [`RejectionClassifier`].
    pub fn classifier<C2: RejectionClassifier>(
        self,
        classifier: C2,
    ) -> BearerAuthMiddleware<P, C2, T> {
        BearerAuthMiddleware {
            tokens: self.tokens,
            replay: self.replay,
            policy: self.policy.classifier(classifier),
        }
    }

    /// Uses another [`ReplayPolicy`] for `reqwest::Request`s:
    /// [`BufferBody::new(reqwest::Body::wrap)`](crate::replay::BufferBody) to
    /// replay streams too, up to a cap.
    pub fn replay<P2>(self, replay: P2) -> BearerAuthMiddleware<P2, C, T> {
        BearerAuthMiddleware {
            tokens: self.tokens,
            replay,
            policy: self.policy,
        }
    }

    /// Never sends a request twice: a rejection is returned as is, and the
    /// next request gets a fresh token.
    pub fn no_replay(self) -> BearerAuthMiddleware<NoReplay, C, T> {
        self.replay(NoReplay)
    }

    /// Attaches the token only to requests for these origins (scheme, host
    /// and port); others pass through untouched, without a token and without
    /// a fetch. See [`BearerAuthLayer::only_for_origins`](crate::BearerAuthLayer::only_for_origins).
    pub fn only_for_origins(mut self, origins: impl IntoIterator<Item = Origin>) -> Self {
        self.policy = self.policy.only_for_origins(origins);
        self
    }

    /// What to do with a request that already has an `Authorization`
    /// header: replace it with the token (the default), or send it as it is.
    pub fn caller_authorization(mut self, choice: CallerAuthorization) -> Self {
        self.policy = self.policy.caller_authorization(choice);
        self
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

impl<P, C, T> BearerAuthMiddleware<P, C, T>
where
    P: ReplayPolicy<Request>,
    C: RejectionClassifier,
{
    /// Sends `request` with the token, marks an answer from another origin,
    /// and reads what the answer says about the token.
    async fn send(
        &self,
        mut request: Request,
        token: CurrentToken,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<(Response, Generation, Verdict)> {
        let generation = authorize(&mut request, token);
        let sent_to = request.url().clone();
        let mut response = next.run(request, extensions).await?;
        mark_if_elsewhere(&mut response, &sent_to);
        let verdict = verdict(
            self.policy.rejection_classifier(),
            response.status(),
            response.headers(),
            response.extensions(),
        );
        Ok((response, generation, verdict))
    }
}

#[async_trait::async_trait]
impl<P, C, T> Middleware for BearerAuthMiddleware<P, C, T>
where
    P: ReplayPolicy<Request>,
    C: RejectionClassifier,
    T: for<'a> CacheSelector<(&'a Request, &'a Extensions)> + Send + Sync + 'static,
{
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if self.policy.route(request.url(), request.headers()) == Route::PassThrough {
            return next.run(request, extensions).await;
        }
        let cache = self
            .tokens
            .select(&(&request, &*extensions))
            .map_err(no_token)?;
        let token = match cache.current() {
            Some(token) => token,
            None => cache.acquire().await.map_err(no_token)?,
        };
        let kept = self.replay.keep(&mut request);
        let (response, generation, verdict) =
            self.send(request, token, extensions, next.clone()).await?;
        // Whether the request can be sent again is known before anything
        // waits for a replacement.
        let again = match verdict {
            Verdict::Rejected => kept.and_then(|kept| self.replay.replay(kept)),
            Verdict::Accepted | Verdict::Unrelated => None,
        };
        let again = match (
            after_answer(Attempt::First, verdict, again.is_some()),
            again,
        ) {
            (Action::Accept, _) => {
                cache.accepted(generation);
                return Ok(response);
            }
            (Action::Return, _) => return Ok(response),
            (Action::ReplaceThenReplay, Some(again)) => again,
            (Action::ReturnRejection | Action::ReplaceThenReplay, _) => {
                cache.reject(generation);
                return Ok(response);
            }
        };
        // No replacement now (paced, the source failing): the rejection is
        // the answer.
        let Ok(fresh) = cache.replace(generation).await else {
            return Ok(response);
        };
        drop(response);
        cache.record_retry();
        tracing::debug!(
            rejected_generation = %generation,
            generation = %fresh.generation(),
            "token rejected; sending the request once more with its replacement"
        );
        let (response, generation, verdict) = self.send(again, fresh, extensions, next).await?;
        match after_answer(Attempt::Replay, verdict, false) {
            Action::Accept => cache.accepted(generation),
            Action::ReturnRejection | Action::ReplaceThenReplay => cache.reject(generation),
            Action::Return => {}
        }
        Ok(response)
    }
}

impl<P: fmt::Debug, C, T: fmt::Debug> fmt::Debug for BearerAuthMiddleware<P, C, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthMiddleware")
            .field("tokens", &self.tokens)
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}
