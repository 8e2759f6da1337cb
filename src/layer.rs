//! `BearerAuthLayer`: the entry point.

use std::sync::Arc;

use tower_layer::Layer;

use crate::cache::TokenCache;
use crate::classify::{DefaultClassifier, RejectionClassifier};
use crate::origin::Origin;
use crate::replay::{CloneBody, NoReplay};
use crate::service::BearerAuth;
use crate::source::TokenSource;

/// A [`Layer`] that authenticates every request with a cached bearer token.
///
/// `P` is the [`ReplayPolicy`](crate::replay::ReplayPolicy) that decides which requests
/// can be sent a second time after a rejection ([`CloneBody`] by default), `C`
/// the [`RejectionClassifier`] that recognises a rejection ([`DefaultClassifier`]).
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
pub struct BearerAuthLayer<P = CloneBody, C = DefaultClassifier> {
    cache: TokenCache,
    replay: P,
    classifier: C,
    scope: Option<Arc<[Origin]>>,
}

impl BearerAuthLayer {
    /// A layer with a default [`TokenCache`] around `source`.
    pub fn new(source: impl TokenSource) -> Self {
        Self::from_cache(TokenCache::new(source))
    }

    /// A layer reading from an existing cache (tuned with
    /// [`TokenCache::builder`], or shared with other layers).
    pub fn from_cache(cache: TokenCache) -> Self {
        Self {
            cache,
            replay: CloneBody,
            classifier: DefaultClassifier,
            scope: None,
        }
    }
}

impl<P, C> BearerAuthLayer<P, C> {
    /// Uses another [`ReplayPolicy`](crate::replay::ReplayPolicy) to decide which
    /// requests can be retried after a rejection.
    pub fn replay<P2>(self, replay: P2) -> BearerAuthLayer<P2, C> {
        BearerAuthLayer {
            cache: self.cache,
            replay,
            classifier: self.classifier,
            scope: self.scope,
        }
    }

    /// Never retries. Needed for bodies that are neither `Clone` nor buffered;
    /// a rejected token is still replaced for the next request.
    pub fn no_replay(self) -> BearerAuthLayer<NoReplay, C> {
        self.replay(NoReplay)
    }

    /// Uses another [`RejectionClassifier`].
    pub fn classifier<C2: RejectionClassifier>(self, classifier: C2) -> BearerAuthLayer<P, C2> {
        BearerAuthLayer {
            cache: self.cache,
            replay: self.replay,
            classifier,
            scope: self.scope,
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
        self.scope = Some(origins.into_iter().collect());
        self
    }

    /// The cache the layer's services read from, for its [`stats`](TokenCache::stats).
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }
}

impl<S, P: Clone, C: Clone> Layer<S> for BearerAuthLayer<P, C> {
    type Service = BearerAuth<S, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth::from_parts(
            inner,
            self.cache.clone(),
            self.replay.clone(),
            self.classifier.clone(),
            self.scope.clone(),
        )
    }
}
