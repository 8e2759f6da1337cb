//! How a request is kept so that it can be sent a second time after its token
//! was rejected.
//!
//! A [`ReplayPolicy`] decides which requests can be replayed and keeps what a
//! replay needs while the first attempt is in flight:
//!
//! | policy | bodies | what is kept |
//! | --- | --- | --- |
//! | [`CloneBody`] (the default) | `Clone` ones: `Full<Bytes>`, `String`, `Empty` | the head, copied; a clone of the body ([`ClonedRequest`]) |
//! | [`BufferBody`] | streams: a tonic request, a forwarded hyper `Incoming`, a `StreamBody` | the head, copied; the body's frames as a [`TeeBody`] sends them, up to a cap ([`BufferedRequest`]) |
//! | [`NoReplay`] | any | nothing: a rejected request is returned as is |
//!
//! Both replaying policies keep the head the same way: the URI and the
//! headers are copied as bytes into a buffer that each thread reuses, so
//! keeping a request allocates nothing, and the head is rebuilt only on the
//! rare replay. Its extensions, if it has any, are cloned, which allocates
//! (`http::Extensions` clones value by value into a new map);
//! [`WithoutExtensions`] leaves them out of the replay.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http_body_util::combinators::BoxBody;
//! use tower_bearer::replay::BufferBody;
//! use tower_bearer::{BearerAuthLayer, StaticToken};
//!
//! // Streaming bodies: record up to 1 MiB of each for a replay.
//! let layer = BearerAuthLayer::new(StaticToken::new("k"))
//!     .replay(BufferBody::new(BoxBody::<Bytes, Infallible>::new).max_bytes(1 << 20));
//! # drop(layer);
//! ```

mod buffer_body;
mod clone_body;
mod head;
mod no_replay;
mod pool;
mod recording;
mod tee_body;
mod without_extensions;

#[cfg(feature = "reqwest")]
pub(crate) use self::buffer_body::{BodyRecording, LengthHeader};
pub use self::buffer_body::{BufferBody, BufferedRequest};
pub use self::clone_body::{CloneBody, ClonedRequest};
pub use self::no_replay::NoReplay;
pub use self::tee_body::TeeBody;
pub use self::without_extensions::WithoutExtensions;

/// Decides whether and how a request of type `R` can be sent twice.
///
/// `R` is the front end's request: `http::Request<B>` under
/// [`BearerAuthLayer`](crate::BearerAuthLayer), `reqwest::Request` under the
/// reqwest middleware. [`keep`](ReplayPolicy::keep) runs before the first
/// send (before the `Authorization` header is added) and may keep what it
/// needs, or rewrite the request (for example wrap its body to record it).
/// [`replay`](ReplayPolicy::replay) builds the second request after a
/// rejection, or says it cannot; it is called as soon as the rejection
/// arrives, before anything waits for a replacement token.
///
/// Provided policies: [`CloneBody`], [`BufferBody`] and [`NoReplay`]; see [the
/// module docs](self).
///
/// ```
/// use http::Request;
/// use tower_bearer::replay::ReplayPolicy;
///
/// /// Replays GET requests only (their body is `()`).
/// #[derive(Clone)]
/// struct GetsOnly;
///
/// impl ReplayPolicy<Request<()>> for GetsOnly {
///     type Kept = (http::Uri, http::HeaderMap);
///
///     fn keep(&self, request: &mut Request<()>) -> Option<Self::Kept> {
///         let get = request.method() == http::Method::GET;
///         get.then(|| (request.uri().clone(), request.headers().clone()))
///     }
///
///     fn replay(&self, (uri, headers): Self::Kept) -> Option<Request<()>> {
///         let mut request = Request::get(uri).body(()).ok()?;
///         *request.headers_mut() = headers;
///         Some(request)
///     }
/// }
///
/// let mut post = Request::post("http://127.0.0.1/").body(()).unwrap();
/// assert!(GetsOnly.keep(&mut post).is_none());
/// ```
///
/// A body the policy cannot keep is a compile error that says what to use
/// instead ("`CloneBody` cannot replay requests with a body of type …: for a
/// streaming body use `BufferBody`, or `no_replay()`") wherever the compiler
/// checks the service against a request type: a function or client that
/// requires `Service<Request<B>>`, `Service::call(&mut client, request)`,
/// tonic's generated clients. Through a method call (`client.oneshot(..)`,
/// `client.call(..)`) rustc reports E0599 ("the method exists … but its
/// trait bounds were not satisfied") without naming the cause: it is the
/// same one.
///
/// ```compile_fail,E0277
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use tower::{service_fn, Layer, Service};
/// use tower_bearer::{BearerAuthLayer, StaticToken};
///
/// /// A body that is not `Clone`.
/// struct Upload(std::fs::File);
///
/// // Anything that takes a service for these requests: a client, a router.
/// fn send_uploads<S: Service<Request<Upload>>>(_client: S) {}
///
/// let api = service_fn(|_: Request<Upload>| async { Ok::<_, Infallible>(Response::new(())) });
/// send_uploads(BearerAuthLayer::new(StaticToken::new("k")).layer(api));
/// // error[E0277]: `CloneBody` cannot replay requests of type `Request<Upload>`
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot replay requests of type `{R}`",
    label = "requests with this body cannot be kept for a replay",
    note = "the default `CloneBody` needs a body that is `Clone` (`Full<Bytes>`, `String`, `Empty`)",
    note = "for a streaming body use `.replay(BufferBody::new(..))`; to never replay, `BearerAuthLayer::no_replay()`"
)]
pub trait ReplayPolicy<R>: Clone + Send + Sync + 'static {
    /// What is kept of the request while the first attempt is in flight.
    type Kept: Send + 'static;

    /// Keeps what a replay needs, or `None` if this request cannot be replayed.
    fn keep(&self, request: &mut R) -> Option<Self::Kept>;

    /// Builds the request to send again, or `None` if it turned out it cannot be
    /// (for example, its body was not fully read).
    fn replay(&self, kept: Self::Kept) -> Option<R>;
}
