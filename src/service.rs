//! The `BearerAuth` service and its response future.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::cache::{CurrentToken, Generation, TokenCache};
use crate::classify::{DefaultClassifier, RejectionClassifier};
use crate::error::{BearerAuthError, TokenError};
use crate::keyed::CacheSelector;
use crate::layer::caller_authorization::CallerAuthorization;
use crate::origin::Origin;
use crate::replay::{CloneBody, ReplayPolicy};
use crate::source::BoxFuture;

/// Adds `Authorization: Bearer <token>` to every request and retries once when
/// the server rejects the token. Usually built by
/// [`BearerAuthLayer`](crate::BearerAuthLayer), which also sets the replay
/// policy, the classifier and the origins; [`BearerAuth::new`] builds one with
/// the defaults.
///
/// A request that already has an `Authorization` header gets the token
/// instead, unless the layer was told to keep the caller's
/// ([`CallerAuthorization::Keep`]); one for
/// an origin outside the layer's
/// [`only_for_origins`](crate::BearerAuthLayer::only_for_origins) scope, if
/// set, is passed through as is.
/// A request is never sent without a token otherwise: if none can be had, the
/// call fails with [`BearerAuthError::Token`].
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
    classifier: C,
    /// The origins the token may be sent to; `None`: every request.
    scope: Option<Arc<[Origin]>>,
    caller_authorization: CallerAuthorization,
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
        Self::from_parts(inner, cache, CloneBody, DefaultClassifier, None)
    }
}

impl<S, P, C, T> BearerAuth<S, P, C, T> {
    pub(crate) fn from_parts(
        inner: S,
        tokens: T,
        replay: P,
        classifier: C,
        scope: Option<Arc<[Origin]>>,
    ) -> Self {
        Self {
            inner,
            tokens,
            replay,
            classifier,
            scope,
            caller_authorization: CallerAuthorization::Replace,
        }
    }

    pub(crate) fn with_caller_authorization(mut self, choice: CallerAuthorization) -> Self {
        self.caller_authorization = choice;
        self
    }

    /// `false` if a scope is set and `uri` is not for one of its origins.
    #[inline]
    fn in_scope(&self, uri: &http::Uri) -> bool {
        match &self.scope {
            None => true,
            Some(origins) => origins.iter().any(|origin| origin.matches(uri)),
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
    P: ReplayPolicy<B>,
    C: RejectionClassifier,
    T: CacheSelector<B>,
{
    type Response = Response<R>;
    type Error = BearerAuthError<S::Error>;
    type Future = ResponseFuture<S, B, P, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(BearerAuthError::Service)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if self
            .caller_authorization
            .passes_through(|| has_authorization(request.headers()))
            || !self.in_scope(request.uri())
        {
            let future = self.inner.call(request);
            return ResponseFuture::new(self, None, State::Passthrough { future });
        }
        let cache = match self.tokens.select(&request) {
            Ok(cache) => cache,
            Err(error) => {
                return ResponseFuture::new(self, None, State::Failed { error: Some(error) })
            }
        };
        match cache.current() {
            Some(token) => {
                let retry = keep_for_retry(&self.replay, &mut request, &self.inner);
                request.headers_mut().insert(AUTHORIZATION, token.value);
                let future = self.inner.call(request);
                ResponseFuture::new(
                    self,
                    Some(cache),
                    State::Sending {
                        future,
                        generation: token.generation,
                        retry,
                    },
                )
            }
            None => {
                // The ready service goes with the request; a clone stays behind.
                let clone = self.inner.clone();
                let service = mem::replace(&mut self.inner, clone);
                let token = Box::pin(cache.acquire());
                ResponseFuture::new(
                    self,
                    Some(cache),
                    State::AwaitToken {
                        token,
                        request: Some(request),
                        service: Some(service),
                    },
                )
            }
        }
    }
}

/// Up to this many header names, looking for one by comparing each costs less
/// than hashing it to look it up.
const SCAN_NAMES_UP_TO: usize = 8;

/// `true` if the caller set an `Authorization` header of its own.
fn has_authorization(headers: &HeaderMap) -> bool {
    if headers.keys_len() <= SCAN_NAMES_UP_TO {
        headers.keys().any(|name| name == AUTHORIZATION)
    } else {
        headers.contains_key(AUTHORIZATION)
    }
}

fn keep_for_retry<S: Clone, B, P: ReplayPolicy<B>>(
    replay: &P,
    request: &mut Request<B>,
    service: &S,
) -> Option<Retry<S, P::Kept>> {
    replay.keep(request).map(|kept| Retry {
        service: service.clone(),
        kept,
    })
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
        P: ReplayPolicy<B>,
    {
        #[pin]
        state: State<S, B, P>,
        // The cache chosen for the request; none for a request passed
        // through or refused.
        cache: Option<TokenCache>,
        replay: P,
        classifier: C,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, P>
    where
        S: Service<Request<B>>,
        P: ReplayPolicy<B>,
    {
        // The request carried its own Authorization header and the layer
        // keeps it, or is for an origin outside the scope.
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
            token: BoxFuture<'static, Result<CurrentToken, TokenError>>,
            request: Option<Request<B>>,
            service: Option<S>,
        },
        // The first attempt is in flight.
        Sending {
            #[pin]
            future: S::Future,
            generation: Generation,
            retry: Option<Retry<S, P::Kept>>,
        },
        // The token was rejected; waiting for its replacement.
        AwaitFreshToken {
            token: BoxFuture<'static, Result<CurrentToken, TokenError>>,
            rejected_generation: Generation,
            retry: Option<Retry<S, P::Kept>>,
            rejected: Option<S::Response>,
        },
        // Waiting for the service to accept the second attempt.
        AwaitReady {
            service: S,
            request: Option<Request<B>>,
            generation: Generation,
        },
        // The second and last attempt is in flight.
        Retrying {
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
    P: ReplayPolicy<B>,
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
            State::AwaitFreshToken {
                rejected_generation,
                ..
            } => f
                .debug_struct("AwaitFreshToken")
                .field("rejected_generation", rejected_generation)
                .finish(),
            State::AwaitReady { .. } => f.write_str("AwaitReady"),
            State::Retrying { generation, .. } => f
                .debug_struct("Retrying")
                .field("generation", generation)
                .finish(),
        }
    }
}

impl<S, B, P, C> ResponseFuture<S, B, P, C>
where
    S: Service<Request<B>>,
    P: ReplayPolicy<B>,
    C: Clone,
{
    fn new<T>(
        service: &BearerAuth<S, P, C, T>,
        cache: Option<TokenCache>,
        state: State<S, B, P>,
    ) -> Self {
        Self {
            state,
            cache,
            replay: service.replay.clone(),
            classifier: service.classifier.clone(),
        }
    }
}

impl<S, B, P, C, R> Future for ResponseFuture<S, B, P, C>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    P: ReplayPolicy<B>,
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
                    token,
                    request,
                    service,
                } => {
                    let token = ready!(token.as_mut().poll(cx)).map_err(BearerAuthError::Token)?;
                    let mut request = request.take().expect("polled after completion");
                    let mut service = service.take().expect("polled after completion");
                    let retry = keep_for_retry(this.replay, &mut request, &service);
                    request.headers_mut().insert(AUTHORIZATION, token.value);
                    let future = service.call(request);
                    this.state.set(State::Sending {
                        future,
                        generation: token.generation,
                        retry,
                    });
                }
                StateProj::Sending {
                    future,
                    generation,
                    retry,
                } => {
                    let response = ready!(future.poll(cx)).map_err(BearerAuthError::Service)?;
                    let generation = *generation;
                    // Every state after the choice has its cache.
                    let Some(cache) = this.cache.as_ref() else {
                        return Poll::Ready(Ok(response));
                    };
                    if !this
                        .classifier
                        .is_rejection(response.status(), response.headers())
                    {
                        cache.accepted(generation);
                        return Poll::Ready(Ok(response));
                    }
                    let Some(retry) = retry.take() else {
                        // Cannot replay: hand the rejection back, but make sure
                        // the next request gets a fresh token.
                        cache.reject(generation);
                        return Poll::Ready(Ok(response));
                    };
                    let token = Box::pin(cache.replace(generation));
                    this.state.set(State::AwaitFreshToken {
                        token,
                        rejected_generation: generation,
                        retry: Some(retry),
                        rejected: Some(response),
                    });
                }
                StateProj::AwaitFreshToken {
                    token,
                    rejected_generation,
                    retry,
                    rejected,
                } => {
                    let fresh = ready!(token.as_mut().poll(cx));
                    let rejected = rejected.take().expect("polled after completion");
                    let retry = retry.take().expect("polled after completion");
                    let fresh = match fresh {
                        Ok(fresh) => fresh,
                        // The API keeps rejecting fresh tokens: like every
                        // caller during the cool-down, this one learns why
                        // and when the next token will be fetched.
                        Err(err) if err.is_cooldown() => {
                            return Poll::Ready(Err(BearerAuthError::Token(err)))
                        }
                        // The source fails: the rejection is the answer.
                        Err(_) => return Poll::Ready(Ok(rejected)),
                    };
                    let Some(mut request) = this.replay.replay(retry.kept) else {
                        return Poll::Ready(Ok(rejected));
                    };
                    drop(rejected);
                    request.headers_mut().insert(AUTHORIZATION, fresh.value);
                    if let Some(cache) = this.cache.as_ref() {
                        cache.record_retry();
                    }
                    tracing::debug!(
                        rejected_generation = %rejected_generation,
                        generation = %fresh.generation,
                        "token rejected; sending the request once more with a fresh token"
                    );
                    this.state.set(State::AwaitReady {
                        service: retry.service,
                        request: Some(request),
                        generation: fresh.generation,
                    });
                }
                StateProj::AwaitReady {
                    service,
                    request,
                    generation,
                } => {
                    ready!(service.poll_ready(cx)).map_err(BearerAuthError::Service)?;
                    let request = request.take().expect("polled after completion");
                    let future = service.call(request);
                    let generation = *generation;
                    this.state.set(State::Retrying { future, generation });
                }
                StateProj::Retrying { future, generation } => {
                    let response = ready!(future.poll(cx)).map_err(BearerAuthError::Service)?;
                    // A second rejection is returned as is: never loop. It
                    // still counts, so that no later request is sent with a
                    // token the cache knows was rejected.
                    let rejected = this
                        .classifier
                        .is_rejection(response.status(), response.headers());
                    match this.cache.as_ref() {
                        Some(cache) if rejected => cache.reject(*generation),
                        Some(cache) => cache.accepted(*generation),
                        None => {}
                    }
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{ACCEPT, COOKIE};
    use http::HeaderValue;

    #[test]
    fn finds_an_authorization_header_of_the_callers_own() {
        let value = HeaderValue::from_static("x");
        let with = |names: &[&str], authorization: bool| {
            let mut headers = HeaderMap::new();
            for name in names {
                let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
                headers.append(name, value.clone());
            }
            if authorization {
                headers.append(AUTHORIZATION, value.clone());
            }
            headers
        };
        let few = ["accept", "x-request-id"];
        let many: Vec<String> = (0..2 * SCAN_NAMES_UP_TO)
            .map(|i| format!("x-{i}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        // (headers, whether they hold an Authorization header)
        let mut repeated = with(&few, true);
        repeated.append(AUTHORIZATION, value.clone());
        repeated.append(ACCEPT, value.clone());
        let mut cookies = with(&few, false);
        cookies.append(COOKIE, value.clone());
        let cases = [
            (HeaderMap::new(), false),
            (with(&few, false), false),
            (with(&few, true), true),
            (with(&[], true), true),
            (with(&many, false), false),
            (with(&many, true), true),
            (repeated, true),
            (cookies, false),
        ];
        for (headers, expected) in cases {
            assert_eq!(has_authorization(&headers), expected, "{headers:?}");
        }
    }
}
