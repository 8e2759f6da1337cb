//! `BearerAuthLayer`: the entry point.

use tower_layer::Layer;

use crate::cache::TokenCache;
use crate::classify::{DefaultClassifier, RejectionClassifier};
use crate::replay::{CloneBody, NoReplay};
use crate::service::BearerAuth;
use crate::source::TokenSource;

/// A [`Layer`] that authenticates every request with a cached bearer token.
///
/// `P` is the [`ReplayPolicy`](crate::ReplayPolicy) that decides which requests
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
        }
    }
}

impl<P, C> BearerAuthLayer<P, C> {
    /// Uses another [`ReplayPolicy`](crate::ReplayPolicy) to decide which
    /// requests can be retried after a rejection.
    pub fn replay<P2>(self, replay: P2) -> BearerAuthLayer<P2, C> {
        BearerAuthLayer {
            cache: self.cache,
            replay,
            classifier: self.classifier,
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
        }
    }

    /// The cache the layer's services read from, for its [`stats`](TokenCache::stats).
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }
}

impl<S, P: Clone, C: Clone> Layer<S> for BearerAuthLayer<P, C> {
    type Service = BearerAuth<S, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth::new(
            inner,
            self.cache.clone(),
            self.replay.clone(),
            self.classifier.clone(),
        )
    }
}
