//! `ResponseFuture`: the exchange of one request carried out, the first
//! attempt and at most one replay, as a state machine.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::cache::{CurrentToken, Generation, TokenCache};
use crate::classify::RejectionClassifier;
use crate::error::{BearerAuthError, TokenError};
use crate::exchange::{after_answer, Action, Attached, Attempt, Judge, Verdict};
use crate::replay::ReplayPolicy;
use crate::source::BoxFuture;

use super::attempt::{authorize, prepare, Retry};

pin_project! {
    /// The response future of [`BearerAuth`](crate::BearerAuth): the first attempt, and the
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
        pub(super) state: State<S, B, P>,
        pub(super) replay: P,
        pub(super) judge: Judge<C>,
    }
}

pin_project! {
    #[project = StateProj]
    pub(super) enum State<S, B, P>
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
