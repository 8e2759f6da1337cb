//! The `BearerAuth` service and its response future.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::cache::{CurrentToken, Generation, TokenCache};
use crate::classify::{DefaultClassifier, RejectionClassifier};
use crate::error::{BearerAuthError, TokenError};
use crate::exchange::{after_answer, verdict, Action, Attempt, ExchangePolicy, Route, Verdict};
use crate::keyed::CacheSelector;
use crate::replay::{CloneBody, ReplayPolicy};
use crate::source::BoxFuture;

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
    /// use http::{HeaderValue, Request, Response};
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

    /// Where this service's tokens come from: a [`TokenCache`], or a keyed
    /// cache with its key function ([`KeyedBy`](crate::keyed::KeyedBy)).
    pub fn tokens(&self) -> &T {
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

impl<S, P, C> BearerAuth<S, P, C, TokenCache> {
    /// The token cache this service reads from.
    pub fn cache(&self) -> &TokenCache {
        &self.tokens
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
                let retry = prepare(&self.replay, &mut request, token.value, &self.inner);
                let future = self.inner.call(request);
                self.future(State::Sending {
                    cache,
                    future,
                    generation: token.generation,
                    retry,
                })
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
            classifier: self.policy.rejection_classifier().clone(),
        }
    }
}

/// Before the first attempt: keeps what a replay needs, attaches the token.
/// The caller sends the request itself: passed in and out of a function
/// that sends it, the request was copied once more per request (29
/// instructions, BENCHMARKS.md), inlined or not.
#[inline(always)]
fn prepare<S, B, P>(
    replay: &P,
    request: &mut Request<B>,
    token: HeaderValue,
    service: &S,
) -> Option<Retry<S, P::Kept>>
where
    S: Clone,
    P: ReplayPolicy<Request<B>>,
{
    let retry = replay.keep(request).map(|kept| Retry {
        service: service.clone(),
        kept,
    });
    request.headers_mut().insert(AUTHORIZATION, token);
    retry
}

/// What a response future needs to send its request a second time.
#[derive(Debug)]
struct Retry<S, K> {
    service: S,
    kept: K,
}

pin_project! {
    /// The response future of [`BearerAuth`]: the first attempt, and the
    /// replay after a rejection if there is one.
    ///
    /// Its `Debug` names the state it is in and the token generations
    /// involved, never a token or a header.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http::{HeaderValue, Request, Response};
    /// use tower::{service_fn, Service, ServiceExt};
    /// use tower_bearer::{BearerAuth, StaticToken, TokenCache};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cache = TokenCache::new(StaticToken::new("s3cr3t"));
    /// cache.token().await.unwrap();
    /// let api = service_fn(|_: Request<String>| async { Ok::<_, Infallible>(Response::new(())) });
    /// let mut client = BearerAuth::new(api, cache);
    ///
    /// let request = Request::get("http://127.0.0.1/").body(String::new()).unwrap();
    /// let future = client.ready().await.unwrap().call(request);
    /// let debug = format!("{future:?}");
    /// assert!(debug.contains("Sending") && !debug.contains("s3cr3t"), "{debug}");
    /// assert!(future.await.is_ok());
    /// # }
    /// ```
    #[derive(Debug)]
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ResponseFuture<S, B, P, C>
    where
        S: Service<Request<B>>,
        P: ReplayPolicy<Request<B>>,
    {
        #[pin]
        state: State<S, B, P>,
        replay: P,
        classifier: C,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, P>
    where
        S: Service<Request<B>>,
        P: ReplayPolicy<Request<B>>,
    {
        // Out of scope, or the caller's own Authorization is kept.
        Passthrough {
            #[pin]
            future: S::Future,
        },
        // No cache could be chosen for the request; it is not sent.
        Failed {
            error: Option<TokenError>,
        },
        // No usable token was cached; waiting for the fetch.
        AwaitToken {
            cache: TokenCache,
            token: BoxFuture<'static, Result<CurrentToken, TokenError>>,
            request: Option<Request<B>>,
            service: Option<S>,
        },
        // The first attempt is in flight.
        Sending {
            cache: TokenCache,
            #[pin]
            future: S::Future,
            generation: Generation,
            retry: Option<Retry<S, P::Kept>>,
        },
        // The token was rejected and the request rebuilt; waiting for the
        // token's replacement.
        AwaitReplacement {
            cache: TokenCache,
            token: BoxFuture<'static, Result<CurrentToken, TokenError>>,
            rejected_generation: Generation,
            // The service and request for the replay, and the rejection:
            // boxed, so that this rare state does not size every request's
            // future.
            held: Option<Box<(S, Request<B>, S::Response)>>,
        },
        // Waiting for the service to accept the replay.
        AwaitReady {
            cache: TokenCache,
            service: S,
            request: Option<Request<B>>,
            generation: Generation,
        },
        // The replay, the second and last attempt, is in flight.
        Replaying {
            cache: TokenCache,
            #[pin]
            future: S::Future,
            generation: Generation,
        },
    }
}

/// The state and the generations involved; what it holds (futures, requests,
/// a rejected response) need not be `Debug`, and may hold credentials.
impl<S, B, P> fmt::Debug for State<S, B, P>
where
    S: Service<Request<B>>,
    P: ReplayPolicy<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Passthrough { .. } => f.write_str("Passthrough"),
            State::Failed { .. } => f.write_str("Failed"),
            State::AwaitToken { .. } => f.write_str("AwaitToken"),
            State::Sending {
                generation, retry, ..
            } => f
                .debug_struct("Sending")
                .field("generation", generation)
                .field("replayable", &retry.is_some())
                .finish(),
            State::AwaitReplacement {
                rejected_generation,
                ..
            } => f
                .debug_struct("AwaitReplacement")
                .field("rejected_generation", rejected_generation)
                .finish(),
            State::AwaitReady { generation, .. } => f
                .debug_struct("AwaitReady")
                .field("generation", generation)
                .finish(),
            State::Replaying { generation, .. } => f
                .debug_struct("Replaying")
                .field("generation", generation)
                .finish(),
        }
    }
}

impl<S, B, P, C, R> Future for ResponseFuture<S, B, P, C>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    P: ReplayPolicy<Request<B>>,
    C: RejectionClassifier,
{
    type Output = Result<Response<R>, BearerAuthError<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Passthrough { future } => {
                    return future.poll(cx).map_err(BearerAuthError::Service);
                }
                StateProj::Failed { error } => {
                    let error = error.take().expect("polled after completion");
                    return Poll::Ready(Err(BearerAuthError::Token(error)));
                }
                StateProj::AwaitToken {
                    cache,
                    token,
                    request,
                    service,
                } => {
                    let token = ready!(token.as_mut().poll(cx)).map_err(BearerAuthError::Token)?;
                    let mut request = request.take().expect("polled after completion");
                    let mut service = service.take().expect("polled after completion");
                    let retry = prepare(this.replay, &mut request, token.value, &service);
                    let future = service.call(request);
                    let cache = cache.clone();
                    this.state.set(State::Sending {
                        cache,
                        future,
                        generation: token.generation,
                        retry,
                    });
                }
                StateProj::Sending {
                    cache,
                    future,
                    generation,
                    retry,
                } => {
                    let response = ready!(future.poll(cx)).map_err(BearerAuthError::Service)?;
                    let generation = *generation;
                    let verdict = verdict(
                        this.classifier,
                        response.status(),
                        response.headers(),
                        response.extensions(),
                    );
                    // Whether the request can be sent again is known before
                    // anything waits for a replacement.
                    let replay = match verdict {
                        Verdict::Rejected => retry.take().and_then(|Retry { service, kept }| {
                            Some((service, this.replay.replay(kept)?))
                        }),
                        Verdict::Accepted | Verdict::Unrelated => None,
                    };
                    match (
                        after_answer(Attempt::First, verdict, replay.is_some()),
                        replay,
                    ) {
                        (Action::Accept, _) => {
                            cache.accepted(generation);
                            return Poll::Ready(Ok(response));
                        }
                        (Action::Return, _) => return Poll::Ready(Ok(response)),
                        (Action::ReplaceThenReplay, Some((service, request))) => {
                            let cache = cache.clone();
                            let token = Box::pin(cache.replace(generation));
                            this.state.set(State::AwaitReplacement {
                                cache,
                                token,
                                rejected_generation: generation,
                                held: Some(Box::new((service, request, response))),
                            });
                        }
                        (Action::ReturnRejection | Action::ReplaceThenReplay, _) => {
                            cache.reject(generation);
                            return Poll::Ready(Ok(response));
                        }
                    }
                }
                StateProj::AwaitReplacement {
                    cache,
                    token,
                    rejected_generation,
                    held,
                } => {
                    let replacement = ready!(token.as_mut().poll(cx));
                    let (service, mut request, rejected) =
                        *held.take().expect("polled after completion");
                    // No replacement now (paced, the source failing): the
                    // rejection is the answer.
                    let Ok(fresh) = replacement else {
                        return Poll::Ready(Ok(rejected));
                    };
                    drop(rejected);
                    request.headers_mut().insert(AUTHORIZATION, fresh.value);
                    cache.record_retry();
                    tracing::debug!(
                        rejected_generation = %rejected_generation,
                        generation = %fresh.generation,
                        "token rejected; sending the request once more with its replacement"
                    );
                    let cache = cache.clone();
                    this.state.set(State::AwaitReady {
                        cache,
                        service,
                        request: Some(request),
                        generation: fresh.generation,
                    });
                }
                StateProj::AwaitReady {
                    cache,
                    service,
                    request,
                    generation,
                } => {
                    ready!(service.poll_ready(cx)).map_err(BearerAuthError::Service)?;
                    let request = request.take().expect("polled after completion");
                    let future = service.call(request);
                    let (cache, generation) = (cache.clone(), *generation);
                    this.state.set(State::Replaying {
                        cache,
                        future,
                        generation,
                    });
                }
                StateProj::Replaying {
                    cache,
                    future,
                    generation,
                } => {
                    let response = ready!(future.poll(cx)).map_err(BearerAuthError::Service)?;
                    let verdict = verdict(
                        this.classifier,
                        response.status(),
                        response.headers(),
                        response.extensions(),
                    );
                    match after_answer(Attempt::Replay, verdict, false) {
                        Action::Accept => cache.accepted(*generation),
                        Action::ReturnRejection | Action::ReplaceThenReplay => {
                            cache.reject(*generation)
                        }
                        Action::Return => {}
                    }
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
