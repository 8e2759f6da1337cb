//! `BearerAuth`: the Tower service, which carries out what the exchange
//! decides for each request.

use std::mem;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::cache::TokenCache;
use crate::classify::{DefaultClassifier, RejectionClassifier};
use crate::error::BearerAuthError;
use crate::exchange::{ExchangePolicy, Route};
use crate::keyed::CacheSelector;
use crate::replay::{CloneBody, ReplayPolicy};

use super::attempt::prepare;
use super::future::{ResponseFuture, State};

/// Adds `Authorization: Bearer <token>` to every request and retries once when
/// the server rejects the token. Usually built by
/// [`BearerAuthLayer`](crate::BearerAuthLayer), which also sets the replay
/// policy, the classifier and the origins; [`BearerAuth::new`] builds one with
/// the defaults.
///
/// What happens to each request is decided by the
/// [`exchange`](crate::exchange), as for every front end; this service only
/// carries it out. A request that already has an `Authorization` header gets
/// the token instead, unless the layer was told to keep the caller's
/// ([`CallerAuthorization::Keep`](crate::exchange::CallerAuthorization::Keep));
/// one for an origin outside the layer's
/// [`only_for_origins`](crate::BearerAuthLayer::only_for_origins) scope, if
/// set, is passed through as is. A request is never sent without a token
/// otherwise: if none can be had, the call fails with
/// [`BearerAuthError::Token`].
///
/// `T` chooses the token cache of each request ([`CacheSelector`]): one
/// [`TokenCache`], or a key's cache in a
/// [`KeyedTokenCache`](crate::keyed::KeyedTokenCache) ([`KeyedBy`](crate::keyed::KeyedBy)).
/// The chosen cache serves the whole exchange, replay included.
#[derive(Clone, Debug)]
pub struct BearerAuth<S, P = CloneBody, C = DefaultClassifier, T = TokenCache> {
    inner: S,
    tokens: T,
    replay: P,
    policy: ExchangePolicy<C>,
}

impl<S> BearerAuth<S> {
    /// Wraps `inner` so that its requests carry the token that `cache` holds,
    /// replayed with [`CloneBody`] after a rejection recognised by
    /// [`DefaultClassifier`], whatever their origin.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http::{Request, Response};
    /// use tower::{service_fn, ServiceExt};
    /// use tower_bearer::{BearerAuth, StaticToken, TokenCache};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let api = service_fn(|req: Request<String>| async move {
    ///     Ok::<_, Infallible>(Response::new(req.headers()["authorization"].clone()))
    /// });
    /// let client = BearerAuth::new(api, TokenCache::new(StaticToken::new("abc")));
    ///
    /// let request = Request::get("http://127.0.0.1/").body(String::new()).unwrap();
    /// let response = client.oneshot(request).await.unwrap();
    /// assert_eq!(response.body(), "Bearer abc");
    /// # }
    /// ```
    pub fn new(inner: S, cache: TokenCache) -> Self {
        Self::from_parts(inner, cache, CloneBody, ExchangePolicy::default())
    }
}

impl<S, P, C, T> BearerAuth<S, P, C, T> {
    pub(crate) fn from_parts(inner: S, tokens: T, replay: P, policy: ExchangePolicy<C>) -> Self {
        Self {
            inner,
            tokens,
            replay,
            policy,
        }
    }

    /// The cache this service reads from: a [`TokenCache`], or a keyed
    /// cache with its key function ([`KeyedBy`](crate::keyed::KeyedBy)).
    pub fn cache(&self) -> &T {
        &self.tokens
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, P, C, T, B, R> Service<Request<B>> for BearerAuth<S, P, C, T>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    P: ReplayPolicy<Request<B>>,
    C: RejectionClassifier,
    T: CacheSelector<Request<B>>,
{
    type Response = Response<R>;
    type Error = BearerAuthError<S::Error>;
    type Future = ResponseFuture<S, B, P, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(BearerAuthError::Service)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if self.policy.route(request.uri(), request.headers()) == Route::PassThrough {
            let future = self.inner.call(request);
            return self.future(State::Passthrough { future });
        }
        let cache = match self.tokens.select(&request) {
            Ok(cache) => cache,
            Err(error) => return self.future(State::Failed { error: Some(error) }),
        };
        match cache.current() {
            Some(token) => {
                let judge = self.policy.judge();
                match prepare(&self.replay, judge, &mut request, token, &self.inner) {
                    Ok((attached, retry)) => {
                        let future = self.inner.call(request);
                        self.future(State::Sending {
                            cache,
                            future,
                            attached,
                            retry,
                        })
                    }
                    Err(error) => self.future(State::Failed { error: Some(error) }),
                }
            }
            None => {
                // The ready service goes with the request; a clone stays behind.
                let clone = self.inner.clone();
                let service = mem::replace(&mut self.inner, clone);
                let token = Box::pin(cache.acquire());
                self.future(State::AwaitToken {
                    cache,
                    token,
                    request: Some(request),
                    service: Some(service),
                })
            }
        }
    }
}

impl<S, P: Clone, C: Clone, T> BearerAuth<S, P, C, T> {
    fn future<B>(&self, state: State<S, B, P>) -> ResponseFuture<S, B, P, C>
    where
        S: Service<Request<B>>,
        P: ReplayPolicy<Request<B>>,
    {
        ResponseFuture {
            state,
            replay: self.replay.clone(),
            judge: self.policy.judge().clone(),
        }
    }
}
