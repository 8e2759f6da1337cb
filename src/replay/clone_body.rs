//! `CloneBody`: replays requests whose body is `Clone`.

use std::fmt;

use http::Request;

use super::head::KeptHead;
use super::ReplayPolicy;

/// Replays requests whose body is `Clone` by keeping a copy of the request.
///
/// The head is copied without allocating (see [`ClonedRequest`]); cloning a
/// `Full<Bytes>` or `Bytes` body only bumps a reference count (or nothing, for
/// static bytes). The layer's default policy.
///
/// ```
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::Full;
/// use tower_bearer::replay::{CloneBody, ReplayPolicy};
///
/// let mut req = Request::post("http://127.0.0.1/x")
///     .header("content-type", "application/json")
///     .body(Full::new(Bytes::from("hi")))
///     .unwrap();
/// let kept = CloneBody.keep(&mut req).unwrap();
/// let again: Request<Full<Bytes>> = CloneBody.replay(kept).unwrap();
/// assert_eq!(again.uri(), "http://127.0.0.1/x");
/// assert_eq!(again.headers()["content-type"], "application/json");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneBody;

/// What [`CloneBody`] keeps of a request: its head and a clone of its body.
///
/// The URI and the headers are copied as bytes into a buffer that each thread
/// reuses (cloning a `HeaderMap` allocates its table, and cloning a header
/// value built from a string allocates too), so keeping a request allocates
/// nothing in the steady state, and the layer adds no allocation per request
/// without extensions. The method, extensions and body are cloned; cloning
/// extensions allocates (a map, a box per value): see
/// [`WithoutExtensions`](super::WithoutExtensions) to leave them out.
///
/// Its `Debug` shows the method, the URI without its query and the number of
/// headers, never their values.
///
/// ```
/// use http::Request;
/// use tower_bearer::replay::{CloneBody, ReplayPolicy};
///
/// let mut req = Request::get("http://127.0.0.1/x?key=s3cr3t")
///     .header("cookie", "session=s3cr3t")
///     .body(())
///     .unwrap();
/// let kept = CloneBody.keep(&mut req).unwrap();
/// assert!(!format!("{kept:?}").contains("s3cr3t"));
/// ```
pub struct ClonedRequest<B> {
    head: KeptHead,
    body: B,
}

impl<B: fmt::Debug> fmt::Debug for ClonedRequest<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClonedRequest")
            .field("head", &self.head)
            .field("body", &self.body)
            .finish()
    }
}

// Report a body that is not `Clone` as "`CloneBody` cannot replay …" (the
// trait's own message, which says what to use instead), not as a bare
// `B: Clone` deep in the service's bounds.
#[diagnostic::do_not_recommend]
impl<B> ReplayPolicy<Request<B>> for CloneBody
where
    B: Clone + Send + 'static,
{
    type Kept = ClonedRequest<B>;

    fn keep(&self, request: &mut Request<B>) -> Option<Self::Kept> {
        Some(ClonedRequest {
            head: KeptHead::of(request)?,
            body: request.body().clone(),
        })
    }

    fn replay(&self, kept: Self::Kept) -> Option<Request<B>> {
        kept.head.into_request(kept.body)
    }
}
