//! How a request is kept so that it can be sent a second time after its token
//! was rejected.

use http::{Extensions, HeaderMap, Method, Request, Uri, Version};

/// Decides whether and how a request can be sent twice.
///
/// [`keep`](ReplayPolicy::keep) runs before the first send (before the
/// `Authorization` header is added) and may keep what it needs, or rewrite the
/// request (for example wrap its body to record it). [`replay`](ReplayPolicy::replay)
/// builds the second request after a rejection, or says it cannot.
///
/// Provided policies: [`CloneBody`] (the default, for bodies that are `Clone`,
/// such as `Full<Bytes>`, `String` or `Empty`) and [`NoReplay`] (any body; a
/// rejected request is returned as is, and the next request gets a fresh token).
pub trait ReplayPolicy<B>: Clone + Send + Sync + 'static {
    /// What is kept of the request while the first attempt is in flight.
    type Kept: Send + 'static;

    /// Keeps what a replay needs, or `None` if this request cannot be replayed.
    fn keep(&self, request: &mut Request<B>) -> Option<Self::Kept>;

    /// Builds the request to send again, or `None` if it turned out it cannot be
    /// (for example, its body was not fully read).
    fn replay(&self, kept: Self::Kept) -> Option<Request<B>>;
}

/// Replays requests whose body is `Clone` by cloning the request up front.
///
/// The head (method, URI, version, headers, extensions) is copied; cloning a
/// `Full<Bytes>` or `Bytes` body only bumps a reference count.
///
/// ```
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::Full;
/// use tower_bearer::{CloneBody, ReplayPolicy};
///
/// let mut req = Request::post("http://127.0.0.1/x").body(Full::new(Bytes::from("hi"))).unwrap();
/// let kept = CloneBody.keep(&mut req).unwrap();
/// let again = CloneBody.replay(kept).unwrap();
/// assert_eq!(again.uri(), "http://127.0.0.1/x");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneBody;

/// A copy of a request's head and body.
#[derive(Debug)]
pub struct ClonedRequest<B> {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
    body: B,
}

impl<B> ReplayPolicy<B> for CloneBody
where
    B: Clone + Send + 'static,
{
    type Kept = ClonedRequest<B>;

    fn keep(&self, request: &mut Request<B>) -> Option<Self::Kept> {
        Some(ClonedRequest {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: request.headers().clone(),
            extensions: request.extensions().clone(),
            body: request.body().clone(),
        })
    }

    fn replay(&self, kept: Self::Kept) -> Option<Request<B>> {
        let mut request = Request::new(kept.body);
        *request.method_mut() = kept.method;
        *request.uri_mut() = kept.uri;
        *request.version_mut() = kept.version;
        *request.headers_mut() = kept.headers;
        *request.extensions_mut() = kept.extensions;
        Some(request)
    }
}

/// Never replays: a rejected request's response is returned as is. The token is
/// still invalidated, so the next request goes out with a fresh one.
///
/// Works with every body type, including streams.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReplay;

impl<B> ReplayPolicy<B> for NoReplay {
    type Kept = std::convert::Infallible;

    fn keep(&self, _request: &mut Request<B>) -> Option<Self::Kept> {
        None
    }

    fn replay(&self, kept: Self::Kept) -> Option<Request<B>> {
        match kept {}
    }
}
