//! `BearerAuthMiddleware`: the bearer layer as a reqwest-middleware `Middleware`.

use std::convert::Infallible;
use std::fmt;

use ::reqwest::{Request, Response};
use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use super::answered_elsewhere::mark_if_elsewhere;
use crate::cache::{CurrentToken, TokenCache};
use crate::classify::{DefaultClassifier, RejectionClassifier};
use crate::error::{BearerAuthError, TokenError};
use crate::exchange::Attached;
use crate::exchange::{
    after_answer, attach, Action, Attempt, CallerAuthorization, ChallengeHandler, ExchangePolicy,
    Route, Verdict,
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
        Self::from_cache(KeyedBy::new(cache, key))
    }
}

impl<T> BearerAuthMiddleware<CloneBody, DefaultClassifier, T> {
    /// A middleware reading from an existing cache: a [`TokenCache`] (tuned
    /// with [`TokenCache::builder`], or shared with Tower layers and other
    /// clients), or any [`CacheSelector`] of a `(&reqwest::Request,
    /// &Extensions)`, which chooses the cache of each request
    /// ([`keyed`](BearerAuthMiddleware::keyed) makes one).
    pub fn from_cache(tokens: T) -> Self {
        Self {
            tokens,
            replay: CloneBody,
            policy: ExchangePolicy::default(),
        }
    }
}

impl<P, C, T> BearerAuthMiddleware<P, C, T> {
    /// The cache the middleware reads from, for its
    /// [`stats`](TokenCache::stats): a [`TokenCache`], or a keyed cache with
    /// its key function ([`KeyedBy`]).
    pub fn cache(&self) -> &T {
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

    /// Answers servers' challenges with `handler` first; see
    /// [`BearerAuthLayer::on_challenge`](crate::BearerAuthLayer::on_challenge).
    pub fn on_challenge(mut self, handler: impl ChallengeHandler) -> Self {
        self.policy = self.policy.on_challenge(handler);
        self
    }

    /// Step-up on `insufficient_scope`; see
    /// [`BearerAuthLayer::step_up`](crate::BearerAuthLayer::step_up).
    pub fn step_up(mut self) -> Self {
        self.policy = self.policy.step_up();
        self
    }
}

/// The token error as the middleware reports it: `no access token`, caused
/// by the token error, so that [`TokenError::find_in`] finds it through
/// reqwest-middleware's transparent error.
fn no_token(err: TokenError) -> reqwest_middleware::Error {
    reqwest_middleware::Error::middleware(BearerAuthError::<Infallible>::Token(err))
}

impl<P, C, T> BearerAuthMiddleware<P, C, T>
where
    P: ReplayPolicy<Request>,
    C: RejectionClassifier,
{
    /// Sends `request` with the token (and a DPoP proof, if it is bound),
    /// marks an answer from another origin, learns a DPoP nonce, and reads
    /// what the answer says about the token.
    async fn send(
        &self,
        mut request: Request,
        token: CurrentToken,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<(Response, Attached, Verdict)> {
        let judge = self.policy.judge();
        let target = token
            .dpop()
            .map(|_| (request.method().clone(), judge.absolute_url(request.url())));
        let attached = attach(request.headers_mut(), target, token).map_err(no_token)?;
        let sent_to = request.url().clone();
        let mut response = next.run(request, extensions).await?;
        mark_if_elsewhere(&mut response, &sent_to);
        attached.learn_from(response.headers());
        let verdict = judge.verdict(
            response.status(),
            response.headers(),
            response.extensions(),
            attached.is_dpop(),
        );
        Ok((response, attached, verdict))
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
        let (response, attached, verdict) =
            self.send(request, token, extensions, next.clone()).await?;
        let generation = attached.generation;
        // Whether the request can be sent again is known before anything
        // waits for a token.
        let again = match verdict {
            Verdict::Rejected | Verdict::SendAgain | Verdict::Asking(_) => {
                kept.and_then(|kept| self.replay.replay(kept))
            }
            Verdict::Accepted | Verdict::Unrelated => None,
        };
        let token = match after_answer(Attempt::First, verdict, again.is_some()) {
            Action::Accept => {
                cache.accepted(generation);
                return Ok(response);
            }
            Action::Return => return Ok(response),
            Action::ReturnRejection => {
                cache.reject(generation);
                return Ok(response);
            }
            Action::ReplaceThenReplay => cache.replace(generation).await,
            Action::ReplaceAskingThenReplay(ask) => cache.replace_asking(generation, ask).await,
            // The same token (a new proof is made for it).
            Action::ReplaySameToken => cache.acquire().await,
        };
        // No token to send it with now (replacements paced, the source
        // failing, claims it cannot ask for): the answer is the answer.
        let (Ok(token), Some(again)) = (token, again) else {
            return Ok(response);
        };
        drop(response);
        cache.record_retry();
        tracing::debug!(
            rejected_generation = %generation,
            generation = %token.generation(),
            "sending the request once more"
        );
        let (response, attached, verdict) = self.send(again, token, extensions, next).await?;
        match after_answer(Attempt::Replay, verdict, false) {
            Action::Accept => cache.accepted(attached.generation),
            Action::ReturnRejection => cache.reject(attached.generation),
            _ => {}
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
