//! The `BearerAuth` service and its response future.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::cache::{CurrentToken, Generation, TokenCache};
use crate::classify::{DefaultClassifier, RejectionClassifier};
use crate::error::{BearerAuthError, TokenError};
use crate::exchange::{
    after_answer, attach, Action, Attached, Attempt, ExchangePolicy, Judge, Route, Verdict,
};
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

/// Before the first attempt: keeps what a replay needs, attaches the token
/// (and a proof, for a DPoP-bound one). The caller sends the request itself:
/// passed in and out of a function that sends it, the request was copied
/// once more per request (29 instructions, BENCHMARKS.md), inlined or not.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn prepare<S, B, P, C>(
    replay: &P,
    judge: &Judge<C>,
    request: &mut Request<B>,
    token: CurrentToken,
    service: &S,
) -> Result<(Attached, Option<Retry<S, P::Kept>>), TokenError>
where
    S: Clone,
    P: ReplayPolicy<Request<B>>,
{
    let retry = replay.keep(request).map(|kept| Retry {
        service: service.clone(),
        kept,
    });
    Ok((authorize(request, token, judge)?, retry))
}

/// Puts `token` on `request` (and a DPoP proof for it, if it is bound).
#[inline]
fn authorize<B, C>(
    request: &mut Request<B>,
    token: CurrentToken,
    judge: &Judge<C>,
) -> Result<Attached, TokenError> {
    // Only a DPoP proof needs the method and URL.
    let target = token
        .dpop()
        .map(|_| (request.method().clone(), judge.absolute_url(request.uri())));
    attach(request.headers_mut(), target, token)
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
    /// use http::{Request, Response};
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
        judge: Judge<C>,
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
            attached: Attached,
            retry: Option<Retry<S, P::Kept>>,
        },
        // The answer asks for the request again and the request was
        // rebuilt; waiting for the token to send it with: the rejected
        // token's replacement, or the current token again (a DPoP nonce).
        AwaitReplayToken {
            cache: TokenCache,
            token: BoxFuture<'static, Result<CurrentToken, TokenError>>,
            rejected_generation: Generation,
            // The service and request for the replay, and the answer that
            // asked for it: boxed, so that this rare state does not size
            // every request's future.
            held: Option<Box<(S, Request<B>, S::Response)>>,
        },
        // Waiting for the service to accept the replay.
        AwaitReady {
            cache: TokenCache,
            service: S,
            request: Option<Request<B>>,
            attached: Option<Attached>,
        },
        // The replay, the second and last attempt, is in flight.
        Replaying {
            cache: TokenCache,
            #[pin]
            future: S::Future,
            attached: Attached,
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
                attached, retry, ..
            } => f
                .debug_struct("Sending")
                .field("generation", &attached.generation)
                .field("replayable", &retry.is_some())
                .finish(),
            State::AwaitReplayToken {
                rejected_generation,
                ..
            } => f
                .debug_struct("AwaitReplayToken")
                .field("rejected_generation", rejected_generation)
                .finish(),
            State::AwaitReady { attached, .. } => f
                .debug_struct("AwaitReady")
                .field("generation", &attached.as_ref().map(|a| a.generation))
                .finish(),
            State::Replaying { attached, .. } => f
                .debug_struct("Replaying")
                .field("generation", &attached.generation)
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
                    let state =
                        match prepare(this.replay, this.judge, &mut request, token, &service) {
                            Ok((attached, retry)) => State::Sending {
                                cache: cache.clone(),
                                future: service.call(request),
                                attached,
                                retry,
                            },
                            Err(error) => State::Failed { error: Some(error) },
                        };
                    this.state.set(state);
                }
                StateProj::Sending {
                    cache,
                    future,
                    attached,
                    retry,
                } => {
                    let response = ready!(future.poll(cx)).map_err(BearerAuthError::Service)?;
                    attached.learn_from(response.headers());
                    let generation = attached.generation;
                    let verdict = this.judge.verdict(
                        response.status(),
                        response.headers(),
                        response.extensions(),
                        attached.is_dpop(),
                    );
                    // Whether the request can be sent again is known before
                    // anything waits for a token.
                    let replay = match verdict {
                        Verdict::Rejected | Verdict::SendAgain | Verdict::Asking(_) => {
                            retry.take().and_then(|Retry { service, kept }| {
                                Some((service, this.replay.replay(kept)?))
                            })
                        }
                        Verdict::Accepted | Verdict::Unrelated => None,
                    };
                    let replayable = replay.is_some();
                    let token: BoxFuture<'static, _> =
                        match after_answer(Attempt::First, verdict, replayable) {
                            Action::Accept => {
                                cache.accepted(generation);
                                return Poll::Ready(Ok(response));
                            }
                            Action::Return => return Poll::Ready(Ok(response)),
                            Action::ReturnRejection => {
                                cache.reject(generation);
                                return Poll::Ready(Ok(response));
                            }
                            Action::ReplaceThenReplay => Box::pin(cache.replace(generation)),
                            Action::ReplaceAskingThenReplay(ask) => {
                                Box::pin(cache.replace_asking(generation, ask))
                            }
                            // The same token (a new proof is made for it).
                            Action::ReplaySameToken => Box::pin(cache.acquire()),
                        };
                    let (service, request) = replay.expect(
                        "after_answer asks for a token only for a request that can be sent again",
                    );
                    let cache = cache.clone();
                    this.state.set(State::AwaitReplayToken {
                        cache,
                        token,
                        rejected_generation: generation,
                        held: Some(Box::new((service, request, response))),
                    });
                }
                StateProj::AwaitReplayToken {
                    cache,
                    token,
                    rejected_generation,
                    held,
                } => {
                    let token = ready!(token.as_mut().poll(cx));
                    let (service, mut request, rejected) =
                        *held.take().expect("polled after completion");
                    // No token to send it with now (replacements paced, the
                    // source failing, claims it cannot ask for): the answer
                    // is the answer.
                    let Ok(token) = token else {
                        return Poll::Ready(Ok(rejected));
                    };
                    let attached = match authorize(&mut request, token, this.judge) {
                        Ok(attached) => attached,
                        Err(_) => return Poll::Ready(Ok(rejected)),
                    };
                    drop(rejected);
                    cache.record_retry();
                    tracing::debug!(
                        rejected_generation = %rejected_generation,
                        generation = %attached.generation,
                        "sending the request once more"
                    );
                    let cache = cache.clone();
                    this.state.set(State::AwaitReady {
                        cache,
                        service,
                        request: Some(request),
                        attached: Some(attached),
                    });
                }
                StateProj::AwaitReady {
                    cache,
                    service,
                    request,
                    attached,
                } => {
                    ready!(service.poll_ready(cx)).map_err(BearerAuthError::Service)?;
                    let request = request.take().expect("polled after completion");
                    let attached = attached.take().expect("polled after completion");
                    let future = service.call(request);
                    let cache = cache.clone();
                    this.state.set(State::Replaying {
                        cache,
                        future,
                        attached,
                    });
                }
                StateProj::Replaying {
                    cache,
                    future,
                    attached,
                } => {
                    let response = ready!(future.poll(cx)).map_err(BearerAuthError::Service)?;
                    attached.learn_from(response.headers());
                    let verdict = this.judge.verdict(
                        response.status(),
                        response.headers(),
                        response.extensions(),
                        attached.is_dpop(),
                    );
                    match after_answer(Attempt::Replay, verdict, false) {
                        Action::Accept => cache.accepted(attached.generation),
                        Action::ReturnRejection => cache.reject(attached.generation),
                        _ => {}
                    }
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
