//! Replaying streaming bodies: record what was sent, up to a cap, and send it
//! again after a rejection.
//!
//! [`CloneBody`](crate::CloneBody) needs a body that is `Clone`. Streams are
//! not: a tonic request body, a hyper `Incoming` being forwarded, a
//! `StreamBody`. [`BufferBody`] wraps such a body in a [`TeeBody`] that hands
//! every frame on to the inner service and keeps a copy (a reference-counted
//! `Bytes`, not a byte copy) of the data frames and the trailers, up to
//! [`DEFAULT_MAX_REPLAY_BYTES`] (or [`BufferBody::max_bytes`]). If the token is
//! rejected and the whole body was sent, the recording is replayed frame by
//! frame, trailers included.
//!
//! A request is sent once only (the rejection is returned as is) when
//!
//! - its body is larger than the cap: recording stops the moment the cap is
//!   passed and what was kept is freed; a body whose size hint already says it
//!   is larger is not wrapped at all;
//! - the rejection arrived before the body was sent to its end (a server that
//!   answers on the headers alone, such as a gRPC interceptor, may do this) or
//!   the body failed;
//! - the response was accepted: then nothing more is recorded, so a long
//!   client stream that goes on after a successful response costs nothing.
//!
//! A body that declares its length (a `content-length` header, or an exact
//! size hint) is complete once that many bytes were sent, whether or not its
//! end is polled: an HTTP/1.1 sender stops there.
//!
//! The recording is shared between the body and the kept request through an
//! `Arc<Mutex<..>>` that is locked once per frame, never per byte, and only
//! while someone may still need it; everything is freed when the request's
//! future and the body are dropped.
//!
//! ```
//! use tower_bearer::{buffer_body::BufferBody, BearerAuthLayer, StaticToken};
//!
//! # fn tonic_like() {
//! # type Body = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;
//! // With tonic: `BufferBody::new(tonic::body::Body::new)`.
//! let layer = BearerAuthLayer::new(StaticToken::new("k")).replay(BufferBody::new(Body::new));
//! # drop(layer);
//! # }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http::header::CONTENT_LENGTH;
use http::{Extensions, HeaderMap, Method, Request, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::replay::ReplayPolicy;

/// How many bytes of a request body [`BufferBody`] keeps for a replay by
/// default: 64 KiB. Larger bodies are sent once.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http_body_util::combinators::BoxBody;
/// use tower_bearer::{BufferBody, DEFAULT_MAX_REPLAY_BYTES};
///
/// // Allow bodies four times as large.
/// let policy = BufferBody::new(BoxBody::<Bytes, Infallible>::new)
///     .max_bytes(4 * DEFAULT_MAX_REPLAY_BYTES);
/// # drop(policy);
/// ```
pub const DEFAULT_MAX_REPLAY_BYTES: usize = 64 * 1024;

/// A [`ReplayPolicy`] for streaming bodies: records the body as it is sent, up
/// to a cap, and replays the recording (data and trailers) after a rejection.
///
/// The inner service needs its own body type `B` back, so `BufferBody` takes
/// the function that turns a [`TeeBody<B>`] into a `B`; a body type's boxing
/// constructor is usually it:
///
/// | inner service | policy |
/// | --- | --- |
/// | tonic `Channel` | `BufferBody::new(tonic::body::Body::new)` |
/// | axum / hyper-util with `axum::body::Body` | `BufferBody::new(axum::body::Body::new)` |
/// | `BoxBody<Bytes, E>` | `BufferBody::new(BoxBody::new)` |
/// | `UnsyncBoxBody<Bytes, E>` | `BufferBody::new(UnsyncBoxBody::new)` |
///
/// See [the module docs](crate::buffer_body) for when a request is not replayed.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::{combinators::BoxBody, BodyExt, Full};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_bearer::{from_fn, AccessToken, BearerAuthLayer, BufferBody};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// type Body = BoxBody<Bytes, Infallible>;
///
/// let issued = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
/// let counter = issued.clone();
/// let source = from_fn(move || {
///     let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
///     async move { Ok(AccessToken::new(format!("token-{n}"))) }
/// });
/// let layer = BearerAuthLayer::new(source).replay(BufferBody::new(Body::new));
/// let cache = layer.cache().clone();
///
/// // The server only accepts the second token, and echoes the body it read.
/// let api = service_fn(|req: Request<Body>| async move {
///     let ok = req.headers()["authorization"] == "Bearer token-1";
///     let body = req.into_body().collect().await.unwrap().to_bytes();
///     let status = if ok { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
///     Ok::<_, Infallible>(Response::builder().status(status).body(body).unwrap())
/// });
/// let client = ServiceBuilder::new().layer(layer).service(api);
///
/// let body = Body::new(Full::new(Bytes::from_static(b"hello")));
/// let res = client.oneshot(Request::post("http://127.0.0.1/").body(body).unwrap()).await.unwrap();
/// assert_eq!(res.status(), StatusCode::OK);
/// assert_eq!(res.body(), "hello");
/// assert_eq!(cache.stats().retries, 1);
/// # }
/// ```
#[derive(Clone, Copy)]
pub struct BufferBody<F> {
    convert: F,
    max_bytes: usize,
}

impl<F> BufferBody<F> {
    /// A policy that records up to [`DEFAULT_MAX_REPLAY_BYTES`] and turns the
    /// recording body into the inner service's body type with `convert`.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use http_body_util::combinators::BoxBody;
    /// use tower_bearer::{BearerAuthLayer, BufferBody, StaticToken};
    ///
    /// let layer = BearerAuthLayer::new(StaticToken::new("k"))
    ///     .replay(BufferBody::new(BoxBody::<Bytes, Infallible>::new));
    /// # drop(layer);
    /// ```
    pub fn new<B>(convert: F) -> Self
    where
        F: Fn(TeeBody<B>) -> B,
    {
        Self {
            convert,
            max_bytes: DEFAULT_MAX_REPLAY_BYTES,
        }
    }

    /// Records at most `max_bytes` of body data; a larger body is sent once.
    /// `0` records only bodies without data (trailers alone, or empty).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use http_body_util::combinators::BoxBody;
    /// use tower_bearer::BufferBody;
    ///
    /// let policy = BufferBody::new(BoxBody::<Bytes, Infallible>::new).max_bytes(1 << 20);
    /// assert_eq!(policy.max_bytes_limit(), 1 << 20);
    /// ```
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The cap set by [`max_bytes`](BufferBody::max_bytes).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use http_body_util::combinators::BoxBody;
    /// use tower_bearer::{BufferBody, DEFAULT_MAX_REPLAY_BYTES};
    ///
    /// let policy = BufferBody::new(BoxBody::<Bytes, Infallible>::new);
    /// assert_eq!(policy.max_bytes_limit(), DEFAULT_MAX_REPLAY_BYTES);
    /// ```
    pub fn max_bytes_limit(&self) -> usize {
        self.max_bytes
    }
}

impl<F> fmt::Debug for BufferBody<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferBody")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl<B, F> ReplayPolicy<B> for BufferBody<F>
where
    B: Body + 'static,
    F: Fn(TeeBody<B>) -> B + Clone + Send + Sync + 'static,
{
    type Kept = BufferedRequest;

    fn keep(&self, request: &mut Request<B>) -> Option<Self::Kept> {
        let body = request.body();
        let size_hint = body.size_hint();
        let declared = declared_length(request.headers(), &size_hint);
        if size_hint.lower().max(declared.unwrap_or(0)) > self.max_bytes as u64 {
            return None;
        }
        let recording = if body.is_end_stream() {
            // Nothing to record: the replay is an empty body.
            Arc::new(Mutex::new(Recording::complete()))
        } else {
            let recording = Arc::new(Mutex::new(Recording::new(declared)));
            let placeholder = (self.convert)(TeeBody::empty());
            let body = mem::replace(request.body_mut(), placeholder);
            let tee = TeeBody::recording(body, Arc::downgrade(&recording), self.max_bytes);
            *request.body_mut() = (self.convert)(tee);
            recording
        };
        Some(BufferedRequest {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: request.headers().clone(),
            extensions: request.extensions().clone(),
            recording,
        })
    }

    fn replay(&self, kept: Self::Kept) -> Option<Request<B>> {
        let (data, trailers) = lock(&kept.recording).take_complete()?;
        let mut request = Request::new((self.convert)(TeeBody::replaying(data, trailers)));
        *request.method_mut() = kept.method;
        *request.uri_mut() = kept.uri;
        *request.version_mut() = kept.version;
        *request.headers_mut() = kept.headers;
        *request.extensions_mut() = kept.extensions;
        Some(request)
    }
}

/// The length a request declares for its body: its `content-length` header,
/// or else the body's exact size hint (from which hyper writes that header).
/// An HTTP/1.1 sender writes that many bytes and then stops polling the body,
/// so the body's end may never be seen; `None` if the length is not declared
/// or the header is not a plain number.
fn declared_length(headers: &HeaderMap, size_hint: &SizeHint) -> Option<u64> {
    match headers.get(CONTENT_LENGTH) {
        None => size_hint.exact(),
        Some(value) => {
            let digits = value.as_bytes();
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(digits).ok()?.parse().ok()
        }
    }
}

/// What [`BufferBody`] keeps of a request while its first attempt is in
/// flight: the head, and the body's recording shared with its [`TeeBody`].
///
/// Its `Debug` shows the method, the URI and how much was recorded, never the
/// headers or the body.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::{combinators::BoxBody, Full};
/// use tower_bearer::{BufferBody, ReplayPolicy};
///
/// type Body = BoxBody<Bytes, Infallible>;
/// let policy = BufferBody::new(Body::new);
/// let mut request = Request::post("http://127.0.0.1/")
///     .body(Body::new(Full::new(Bytes::from_static(b"hi"))))
///     .unwrap();
/// let kept = policy.keep(&mut request).unwrap();
/// assert!(format!("{kept:?}").contains("Recording"));
/// // Nothing was sent yet, so there is nothing to replay.
/// assert!(policy.replay(kept).is_none());
/// ```
pub struct BufferedRequest {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
    recording: Arc<Mutex<Recording>>,
}

impl fmt::Debug for BufferedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let recording = lock(&self.recording);
        f.debug_struct("BufferedRequest")
            .field("method", &self.method)
            .field(
                "uri",
                &crate::secret::url_for_display(&self.uri.to_string()),
            )
            .field("state", &recording.state)
            .field("recorded_bytes", &recording.len)
            .finish_non_exhaustive()
    }
}

fn lock(recording: &Mutex<Recording>) -> MutexGuard<'_, Recording> {
    // Nothing panics while the lock is held; a poisoned recording is still sound.
    recording.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// The body is being sent and recorded.
    #[default]
    Recording,
    /// The body was sent to its end and everything is recorded.
    Complete,
    /// Cannot be replayed: past the cap, failed, or already replayed.
    Dropped,
}

#[derive(Default)]
struct Recording {
    state: State,
    data: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    len: usize,
    /// The body's declared length: once that much is recorded, the body is
    /// complete, whether or not its end is ever polled.
    declared: Option<u64>,
}

impl Recording {
    fn new(declared: Option<u64>) -> Self {
        let state = if declared == Some(0) {
            State::Complete
        } else {
            State::Recording
        };
        Self {
            state,
            declared,
            ..Self::default()
        }
    }

    fn complete() -> Self {
        Self {
            state: State::Complete,
            ..Self::default()
        }
    }

    /// Records one frame; `false` once nothing more needs to be recorded.
    fn record(&mut self, frame: &Frame<Bytes>, max_bytes: usize) -> bool {
        let open = match self.state {
            State::Recording => true,
            // Complete at its declared length, a body may still send
            // trailers (over HTTP/2).
            State::Complete => self.declared.is_some(),
            State::Dropped => false,
        };
        if !open {
            return false;
        }
        if let Some(data) = frame.data_ref() {
            self.len = self.len.saturating_add(data.len());
            // Longer than declared: no sender lets such a body through.
            if self.len > max_bytes || self.declared.is_some_and(|d| self.len as u64 > d) {
                self.drop_all();
                return false;
            }
            if !data.is_empty() {
                self.data.push(data.clone());
            }
            if self.declared == Some(self.len as u64) {
                self.state = State::Complete;
            }
            true
        } else if let Some(trailers) = frame.trailers_ref() {
            // Trailers are the last frame.
            self.trailers = Some(trailers.clone());
            self.finish();
            false
        } else {
            // A frame kind this version does not know: cannot be replayed.
            self.drop_all();
            false
        }
    }

    /// The body ended. Shorter than it declared, it cannot be replayed (its
    /// sender fails it anyway).
    fn finish(&mut self) {
        if self.declared.is_some_and(|d| (self.len as u64) < d) {
            self.drop_all();
        } else if self.state == State::Recording {
            self.state = State::Complete;
        }
    }

    fn drop_all(&mut self) {
        self.state = State::Dropped;
        self.data = Vec::new();
        self.trailers = None;
    }

    /// The whole body, if it was recorded to its end; frees the recording.
    fn take_complete(&mut self) -> Option<(Vec<Bytes>, Option<HeaderMap>)> {
        let complete = self.state == State::Complete;
        let data = mem::take(&mut self.data);
        let trailers = self.trailers.take();
        self.state = State::Dropped;
        complete.then_some((data, trailers))
    }
}

pin_project! {
    /// A request body that records what it sends for [`BufferBody`], or, on
    /// the second attempt, plays that recording back.
    ///
    /// Data frames come out as `Bytes` (a `Bytes` body's frames are passed on
    /// without a copy); trailers are passed on and recorded too. Errors are the
    /// inner body's.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use http_body::Body;
    /// use http_body_util::Full;
    /// use tower_bearer::TeeBody;
    ///
    /// let empty: TeeBody<Full<Bytes>> = TeeBody::empty();
    /// assert!(empty.is_end_stream());
    /// ```
    pub struct TeeBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Recording {
            #[pin]
            inner: B,
            // `None` once nothing more needs recording; weak so that a request
            // whose first attempt succeeded stops recording at once.
            recording: Option<Weak<Mutex<Recording>>>,
            max_bytes: usize,
        },
        Replaying {
            data: VecDeque<Bytes>,
            trailers: Option<HeaderMap>,
            remaining: u64,
        },
    }
}

impl<B> TeeBody<B> {
    /// A body with no frames.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body::Body;
    /// use http_body_util::Empty;
    /// use tower_bearer::TeeBody;
    ///
    /// assert_eq!(TeeBody::<Empty<Bytes>>::empty().size_hint().exact(), Some(0));
    /// ```
    pub fn empty() -> Self {
        Self::replaying(Vec::new(), None)
    }

    fn recording(inner: B, recording: Weak<Mutex<Recording>>, max_bytes: usize) -> Self {
        Self {
            kind: Kind::Recording {
                inner,
                recording: Some(recording),
                max_bytes,
            },
        }
    }

    fn replaying(data: Vec<Bytes>, trailers: Option<HeaderMap>) -> Self {
        let remaining = data.iter().map(|d| d.len() as u64).sum();
        Self {
            kind: Kind::Replaying {
                data: data.into(),
                trailers,
                remaining,
            },
        }
    }
}

impl<B> fmt::Debug for TeeBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.kind {
            Kind::Recording { .. } => "recording",
            Kind::Replaying { .. } => "replaying",
        };
        f.debug_struct("TeeBody")
            .field("mode", &mode)
            .finish_non_exhaustive()
    }
}

/// Runs `f` on the recording, if anyone still wants it; stops recording for
/// good when it returns `false`.
fn with_recording(
    slot: &mut Option<Weak<Mutex<Recording>>>,
    f: impl FnOnce(&mut Recording) -> bool,
) {
    let Some(weak) = slot else { return };
    let go_on = match weak.upgrade() {
        Some(recording) => f(&mut lock(&recording)),
        None => false,
    };
    if !go_on {
        *slot = None;
    }
}

impl<B> Body for TeeBody<B>
where
    B: Body,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Recording {
                mut inner,
                recording,
                max_bytes,
            } => match ready!(inner.as_mut().poll_frame(cx)) {
                None => {
                    with_recording(recording, |r| {
                        r.finish();
                        false
                    });
                    Poll::Ready(None)
                }
                Some(Err(err)) => {
                    with_recording(recording, |r| {
                        r.drop_all();
                        false
                    });
                    Poll::Ready(Some(Err(err)))
                }
                Some(Ok(frame)) => {
                    let frame = frame.map_data(|mut data| data.copy_to_bytes(data.remaining()));
                    // Senders may stop polling once the body says it has ended.
                    let ended = inner.is_end_stream();
                    with_recording(recording, |r| {
                        let go_on = r.record(&frame, *max_bytes);
                        if go_on && ended {
                            r.finish();
                            return false;
                        }
                        go_on
                    });
                    Poll::Ready(Some(Ok(frame)))
                }
            },
            KindProj::Replaying {
                data,
                trailers,
                remaining,
            } => {
                if let Some(chunk) = data.pop_front() {
                    *remaining -= chunk.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Recording { inner, .. } => inner.is_end_stream(),
            Kind::Replaying { data, trailers, .. } => data.is_empty() && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Recording { inner, .. } => inner.size_hint(),
            Kind::Replaying { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::future::poll_fn;

    /// A body that yields the given frames; `Clone` is not needed.
    struct Frames(VecDeque<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    type Boxed = Pin<Box<dyn Body<Data = Bytes, Error = Infallible> + Send + Sync>>;

    fn boxed(tee: TeeBody<Boxed>) -> Boxed {
        Box::pin(tee)
    }

    fn request(frames: Vec<Frame<Bytes>>) -> Request<Boxed> {
        Request::post("http://127.0.0.1/upload")
            .header("content-type", "application/octet-stream")
            .body(Box::pin(Frames(frames.into())) as Boxed)
            .unwrap()
    }

    async fn drain(body: &mut Boxed) -> (Vec<Bytes>, Option<HeaderMap>) {
        let mut data = Vec::new();
        let mut trailers = None;
        while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            match frame.unwrap().into_data() {
                Ok(d) => data.push(d),
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        (data, trailers)
    }

    fn trailers() -> HeaderMap {
        let mut t = HeaderMap::new();
        t.insert("x-checksum", "abc".parse().unwrap());
        t
    }

    #[tokio::test]
    async fn replays_data_and_trailers() {
        let policy = BufferBody::new(boxed);
        let mut req = request(vec![
            Frame::data(Bytes::from_static(b"hello ")),
            Frame::data(Bytes::from_static(b"world")),
            Frame::trailers(trailers()),
        ]);
        let kept = policy.keep(&mut req).unwrap();
        let sent = drain(req.body_mut()).await;
        let mut again = policy.replay(kept).unwrap();
        assert_eq!(again.method(), Method::POST);
        assert_eq!(again.headers()["content-type"], "application/octet-stream");
        assert_eq!(again.body().size_hint().exact(), Some(11));
        assert_eq!(drain(again.body_mut()).await, sent);
        assert_eq!(sent.1, Some(trailers()));
    }

    #[tokio::test]
    async fn over_the_cap_is_not_replayed_and_freed() {
        let policy = BufferBody::new(boxed).max_bytes(8);
        let mut req = request(vec![
            Frame::data(Bytes::from_static(b"12345")),
            Frame::data(Bytes::from_static(b"67890")),
        ]);
        let kept = policy.keep(&mut req).unwrap();
        let (data, _) = drain(req.body_mut()).await;
        assert_eq!(data.concat(), b"1234567890");
        {
            let recording = lock(&kept.recording);
            assert_eq!(recording.state, State::Dropped);
            assert!(recording.data.is_empty());
        }
        assert!(policy.replay(kept).is_none());
    }

    #[tokio::test]
    async fn unfinished_body_is_not_replayed() {
        let policy = BufferBody::new(boxed);
        let mut req = request(vec![
            Frame::data(Bytes::from_static(b"a")),
            Frame::data(Bytes::from_static(b"b")),
        ]);
        let kept = policy.keep(&mut req).unwrap();
        let first = poll_fn(|cx| req.body_mut().as_mut().poll_frame(cx)).await;
        assert!(first.is_some());
        assert!(policy.replay(kept).is_none());
        // The body goes on after the decision without recording anything.
        let (rest, _) = drain(req.body_mut()).await;
        assert_eq!(rest, vec![Bytes::from_static(b"b")]);
    }

    #[tokio::test]
    async fn empty_body_is_replayed_without_wrapping() {
        let policy = BufferBody::new(boxed);
        let mut req = request(Vec::new());
        // `Frames` does not report its end up front, so it is wrapped.
        let kept = policy.keep(&mut req).unwrap();
        assert!(drain(req.body_mut()).await.0.is_empty());
        let mut again = policy.replay(kept).unwrap();
        assert!(again.body().is_end_stream());
        assert!(drain(again.body_mut()).await.0.is_empty());
    }

    #[tokio::test]
    async fn stops_recording_once_the_request_is_settled() {
        let policy = BufferBody::new(boxed);
        let mut req = request(vec![
            Frame::data(Bytes::from_static(b"a")),
            Frame::data(Bytes::from_static(b"b")),
        ]);
        let kept = policy.keep(&mut req).unwrap();
        let weak = Arc::downgrade(&kept.recording);
        drop(kept);
        // Nothing holds the recording any more: it is gone, and sending goes on.
        assert!(weak.upgrade().is_none());
        assert_eq!(drain(req.body_mut()).await.0.len(), 2);
    }

    #[test]
    fn size_hint_over_the_cap_is_not_wrapped() {
        let policy = BufferBody::new(boxed).max_bytes(4);
        let body = http_body_util::Full::new(Bytes::from_static(b"too long"));
        let mut req = Request::new(Box::pin(body) as Boxed);
        assert!(policy.keep(&mut req).is_none());
        assert_eq!(req.body().size_hint().exact(), Some(8));
    }

    #[test]
    fn a_body_is_complete_once_its_declared_length_is_recorded() {
        let data = |bytes: &'static [u8]| Frame::data(Bytes::from_static(bytes));
        let end = || Frame::trailers(trailers());
        // (declared length, frames, state after them, trailers kept)
        let cases = [
            (None, vec![data(b"abc")], State::Recording, false),
            (Some(3), vec![data(b"abc")], State::Complete, false),
            (
                Some(3),
                vec![data(b"ab"), data(b"c")],
                State::Complete,
                false,
            ),
            (Some(4), vec![data(b"abc")], State::Recording, false),
            (Some(0), vec![], State::Complete, false),
            (
                Some(3),
                vec![data(b"abc"), data(b"")],
                State::Complete,
                false,
            ),
            (Some(3), vec![data(b"abc"), end()], State::Complete, true),
            (
                Some(3),
                vec![data(b"abc"), data(b"d")],
                State::Dropped,
                false,
            ),
            (Some(2), vec![data(b"abc")], State::Dropped, false),
            (Some(9), vec![data(b"abc"), end()], State::Dropped, false),
        ];
        for (declared, frames, state, kept_trailers) in cases {
            let mut recording = Recording::new(declared);
            for frame in &frames {
                recording.record(frame, DEFAULT_MAX_REPLAY_BYTES);
            }
            let case = format!("{declared:?} {frames:?}");
            assert_eq!(recording.state, state, "{case}");
            assert_eq!(recording.trailers.is_some(), kept_trailers, "{case}");
        }
    }

    #[test]
    fn the_declared_length_is_the_header_or_else_an_exact_size_hint() {
        let exact = SizeHint::with_exact(5);
        let unknown = SizeHint::default();
        let header = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_LENGTH, value.parse().unwrap());
            headers
        };
        let cases = [
            (HeaderMap::new(), &exact, Some(5)),
            (HeaderMap::new(), &unknown, None),
            (header("7"), &unknown, Some(7)),
            (header("7"), &exact, Some(7)),
            (header("0"), &unknown, Some(0)),
            (header("+7"), &exact, None),
            (header("7, 7"), &exact, None),
            (header(""), &exact, None),
            (header("99999999999999999999999"), &exact, None),
        ];
        for (headers, size_hint, declared) in cases {
            assert_eq!(
                declared_length(&headers, size_hint),
                declared,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn tee_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<TeeBody<Boxed>>();
        check::<BufferedRequest>();
    }
}
