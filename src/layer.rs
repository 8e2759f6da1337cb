//! `BearerAuthLayer`, the entry point, and its settings. What happens to
//! each request is decided in [`exchange`](crate::exchange).

use http::Request;
use tower_layer::Layer;

use crate::cache::TokenCache;
use crate::classify::{DefaultClassifier, RejectionClassifier};
use crate::exchange::{CallerAuthorization, ChallengeHandler, ExchangePolicy};
use crate::keyed::{KeyedBy, KeyedTokenCache};
use crate::origin::Origin;
use crate::replay::{CloneBody, NoReplay};
use crate::service::BearerAuth;
use crate::source::TokenSource;

/// A [`Layer`] that authenticates every request with a cached bearer token.
///
/// `P` is the [`ReplayPolicy`](crate::replay::ReplayPolicy) that decides which requests
/// can be sent a second time after a rejection ([`CloneBody`] by default), `C`
/// the [`RejectionClassifier`] that recognises a rejection ([`DefaultClassifier`]),
/// `T` where tokens come from: one [`TokenCache`] ([`new`](Self::new),
/// [`from_cache`](Self::from_cache)), or the cache of each request's key in a
/// [`KeyedTokenCache`] ([`keyed`](Self::keyed)), or any
/// [`CacheSelector`](crate::keyed::CacheSelector).
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_bearer::{BearerAuthLayer, StaticToken};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let api = service_fn(|req: Request<Full<Bytes>>| async move {
///     let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
///     Ok::<_, Infallible>(Response::new(auth))
/// });
/// let client = ServiceBuilder::new()
///     .layer(BearerAuthLayer::new(StaticToken::new("abc")))
///     .service(api);
///
/// let response = client
///     .oneshot(Request::get("http://127.0.0.1/").body(Full::default()).unwrap())
///     .await
///     .unwrap();
/// assert_eq!(response.body(), "Bearer abc");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct BearerAuthLayer<P = CloneBody, C = DefaultClassifier, T = TokenCache> {
    tokens: T,
    replay: P,
    policy: ExchangePolicy<C>,
}

impl BearerAuthLayer {
    /// A layer with a default [`TokenCache`] around `source`.
    pub fn new(source: impl TokenSource) -> Self {
        Self::from_cache(TokenCache::new(source))
    }
}

impl<K, F> BearerAuthLayer<CloneBody, DefaultClassifier, KeyedBy<K, F>> {
    /// A layer choosing, for each request, the token of its key in `cache`:
    /// many tenants (workspaces, audiences, users) behind one client.
    ///
    /// `key` reads the key from the request (an extension, a header) on every
    /// request, so it should be cheap. A request whose key it cannot find
    /// (`None`) is not sent: the call fails with
    /// [`CacheError::KeyMissing`](crate::CacheError::KeyMissing). The key's
    /// cache serves the whole exchange, so a rejection invalidates that key's
    /// token only, and the replay carries that key's fresh token. Replay
    /// policies, classifiers and origins work as with one token.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// use tower_bearer::{BearerAuthLayer, StaticToken};
    /// use tower_bearer::keyed::KeyedTokenCache;
    ///
    /// /// The tenant a request is for, set by the application.
    /// #[derive(Clone, PartialEq, Eq, Hash)]
    /// struct Tenant(u32);
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let tenants = KeyedTokenCache::new(|t: &Tenant| StaticToken::new(format!("key-{}", t.0)));
    /// let layer = BearerAuthLayer::keyed(tenants.clone(), |req: &Request<Full<Bytes>>| {
    ///     req.extensions().get::<Tenant>().cloned()
    /// });
    /// let client = layer.layer(service_fn(|req: Request<Full<Bytes>>| async move {
    ///     Ok::<_, Infallible>(Response::new(req.headers()["authorization"].clone()))
    /// }));
    ///
    /// let mut request = Request::get("http://127.0.0.1/").body(Full::default()).unwrap();
    /// request.extensions_mut().insert(Tenant(7));
    /// let response = client.clone().oneshot(request).await.unwrap();
    /// assert_eq!(response.body(), "Bearer key-7");
    ///
    /// // No tenant: not sent.
    /// let request = Request::get("http://127.0.0.1/").body(Full::default()).unwrap();
    /// assert!(client.oneshot(request).await.unwrap_err().token_error().is_some());
    /// assert_eq!(tenants.stats().keys, 1);
    /// # }
    /// ```
    pub fn keyed<B>(cache: KeyedTokenCache<K>, key: F) -> Self
    where
        F: Fn(&Request<B>) -> Option<K>,
    {
        Self::from_cache(KeyedBy::new(cache, key))
    }
}

impl<T> BearerAuthLayer<CloneBody, DefaultClassifier, T> {
    /// A layer reading from an existing cache: a [`TokenCache`] (tuned with
    /// [`TokenCache::builder`], or shared with other layers and clients), or
    /// any [`CacheSelector`](crate::keyed::CacheSelector), which chooses the
    /// cache of each request ([`keyed`](BearerAuthLayer::keyed) makes one).
    pub fn from_cache(tokens: T) -> Self {
        Self {
            tokens,
            replay: CloneBody,
            policy: ExchangePolicy::default(),
        }
    }
}

impl<P, C, T> BearerAuthLayer<P, C, T> {
    /// The cache the layer's services read from, for its
    /// [`stats`](TokenCache::stats): a [`TokenCache`], or a keyed cache with
    /// its key function ([`KeyedBy`]).
    pub fn cache(&self) -> &T {
        &self.tokens
    }

    /// Uses another [`ReplayPolicy`](crate::replay::ReplayPolicy) to decide which
    /// requests can be retried after a rejection.
    pub fn replay<P2>(self, replay: P2) -> BearerAuthLayer<P2, C, T> {
        BearerAuthLayer {
            tokens: self.tokens,
            replay,
            policy: self.policy,
        }
    }

    /// Never retries. Needed for bodies that are neither `Clone` nor buffered;
    /// a rejected token is still replaced for the next request.
    pub fn no_replay(self) -> BearerAuthLayer<NoReplay, C, T> {
        self.replay(NoReplay)
    }

    /// Uses another [`RejectionClassifier`].
    pub fn classifier<C2: RejectionClassifier>(self, classifier: C2) -> BearerAuthLayer<P, C2, T> {
        BearerAuthLayer {
            tokens: self.tokens,
            replay: self.replay,
            policy: self.policy.classifier(classifier),
        }
    }

    /// Attaches the token only to requests for these origins (scheme, host and
    /// port); requests for any other origin pass through untouched, without a
    /// token and without a fetch. By default every request gets the token.
    ///
    /// Use it when the inner service may send requests elsewhere than the API
    /// the token is for: a redirect-following layer outside this one, a
    /// shared client, URLs that come from responses. Requests must carry
    /// absolute URIs (as hyper-util's `Client` requires); a relative URI (as a
    /// tonic `Channel` sees them) matches no origin, so it gets no token.
    /// Matching allocates nothing; without a scope it costs nothing.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// use tower_bearer::{BearerAuthLayer, Origin, StaticToken};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let api = Origin::parse("https://api.example.com").unwrap();
    /// let layer = BearerAuthLayer::new(StaticToken::new("abc")).only_for_origins([api]);
    /// let client = layer.layer(service_fn(|req: Request<Full<Bytes>>| async move {
    ///     Ok::<_, Infallible>(Response::new(req.headers().contains_key("authorization")))
    /// }));
    ///
    /// let to = |uri: &str| Request::get(uri).body(Full::default()).unwrap();
    /// let res = client.clone().oneshot(to("https://api.example.com/v1/me")).await.unwrap();
    /// assert!(*res.body());
    /// let res = client.clone().oneshot(to("https://cdn.example.net/file")).await.unwrap();
    /// assert!(!*res.body()); // another origin: no token
    /// let res = client.oneshot(to("http://api.example.com/v1/me")).await.unwrap();
    /// assert!(!*res.body()); // plain http is another origin too
    /// # }
    /// ```
    pub fn only_for_origins(mut self, origins: impl IntoIterator<Item = Origin>) -> Self {
        self.policy = self.policy.only_for_origins(origins);
        self
    }

    /// What to do with a request that already has an `Authorization`
    /// header: replace it with the layer's token (the default, and what a
    /// proxy forwarding its callers' requests needs), or send it as it is,
    /// without a token, a fetch or a replay. See [`CallerAuthorization`].
    pub fn caller_authorization(mut self, choice: CallerAuthorization) -> Self {
        self.policy = self.policy.caller_authorization(choice);
        self
    }

    /// Answers servers' challenges (`WWW-Authenticate` of a `401` or `403`)
    /// with `handler` first, before the crate's own rules (a DPoP nonce, a
    /// claims challenge, a step-up) and the classifier: for schemes and
    /// errors the crate does not know. Whatever it answers, a request is sent
    /// at most twice. See [`ChallengeHandler`].
    pub fn on_challenge(mut self, handler: impl ChallengeHandler) -> Self {
        self.policy = self.policy.on_challenge(handler);
        self
    }

    /// Step-up: a `403` whose challenge says `error="insufficient_scope"` and
    /// names a `scope` makes one token request asking for that scope (where
    /// the source can: [`TokenSource::can_ask`]),
    /// then one replay; concurrent challenges of one token share that
    /// request. Off by default: the `403` is returned as it is.
    ///
    /// ```
    /// use tower_bearer::{BearerAuthLayer, StaticToken};
    ///
    /// let layer = BearerAuthLayer::new(StaticToken::new("k")).step_up();
    /// # drop(layer);
    /// ```
    pub fn step_up(mut self) -> Self {
        self.policy = self.policy.step_up();
        self
    }

    /// The origin of requests whose URI is relative: a tonic `Channel`'s
    /// requests carry only a path, and the channel adds its origin below this
    /// layer. Needed for DPoP-bound tokens (a proof names the request's
    /// absolute URL) and for [`only_for_origins`](Self::only_for_origins);
    /// otherwise such a request matches no origin, and a DPoP-bound token
    /// cannot be sent with it ([`CacheError::NoAbsoluteUrl`](crate::CacheError::NoAbsoluteUrl)).
    ///
    /// ```
    /// use tower_bearer::{BearerAuthLayer, Origin, StaticToken};
    ///
    /// let api = Origin::parse("https://grpc.example.com").unwrap();
    /// let layer = BearerAuthLayer::new(StaticToken::new("k")).relative_uri_origin(api);
    /// # drop(layer);
    /// ```
    pub fn relative_uri_origin(mut self, origin: Origin) -> Self {
        self.policy = self.policy.relative_uri_origin(origin);
        self
    }
}

impl<S, P: Clone, C: Clone, T: Clone> Layer<S> for BearerAuthLayer<P, C, T> {
    type Service = BearerAuth<S, P, C, T>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth::from_parts(
            inner,
            self.tokens.clone(),
            self.replay.clone(),
            self.policy.clone(),
        )
    }
}
