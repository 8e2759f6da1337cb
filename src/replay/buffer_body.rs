//! `BufferBody`: replays streaming bodies by recording what was sent, up to a
//! cap, and sending that again after a rejection.

use std::fmt;
use std::mem;
use std::sync::{Arc, Mutex};

use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Request};
use http_body::{Body, SizeHint};

use super::head::KeptHead;
use super::recording::{lock, Recording, SharedRecording, State};
use super::tee_body::TeeBody;
use super::ReplayPolicy;

/// How many bytes of a request body are recorded for a replay unless
/// [`BufferBody::max_bytes`] says otherwise.
const DEFAULT_MAX_BYTES: usize = 64 * 1024;

/// A [`ReplayPolicy`] for streaming bodies: records the body as it is sent, up
/// to a cap, and replays the recording (data and trailers) after a rejection.
///
/// [`CloneBody`](super::CloneBody) needs a body that is `Clone`. Streams are
/// not: a tonic request body, a hyper `Incoming` being forwarded, a
/// `StreamBody`. `BufferBody` wraps such a body in a [`TeeBody`] that hands
/// every frame on to the inner service and keeps a copy (a reference-counted
/// `Bytes`, not a byte copy) of the data frames and the trailers, up to
/// [`max_bytes`](BufferBody::max_bytes). If the token is rejected and the
/// whole body was sent, the recording is replayed frame by frame, trailers
/// included. A body that declares its length (a `content-length` header, or an
/// exact size hint) is whole once that many bytes were sent, whether or not
/// its end is polled: an HTTP/1.1 sender stops there.
///
/// A request is sent once only (the rejection is returned as is) when
///
/// - its body is larger than the cap: recording stops the moment the cap is
///   passed and what was kept is freed; a body whose size hint or
///   `content-length` already says it is larger is not wrapped at all;
/// - the rejection arrived before the body was sent to its end (a server that
///   answers on the headers alone, such as a gRPC interceptor, may do this) or
///   the body failed;
/// - the response was accepted: then nothing more is recorded, so a long
///   client stream that goes on after a successful response costs nothing.
///
/// The recording is shared between the body and the kept request through an
/// `Arc<Mutex<..>>` that is locked once per frame, never per byte, and only
/// while someone may still need it; everything is freed when the request's
/// future and the body are dropped. The head is kept as
/// [`CloneBody`](super::CloneBody) keeps it, without allocating.
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
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::{combinators::BoxBody, BodyExt, Full};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_bearer::replay::BufferBody;
/// use tower_bearer::{from_fn, AccessToken, BearerAuthLayer};
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
/// // Records up to 64 KiB of each body unless told otherwise.
/// let policy = BufferBody::new(Body::new).max_bytes(1 << 20);
/// assert_eq!(policy.cap(), 1 << 20);
/// let layer = BearerAuthLayer::new(source).replay(policy);
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
    /// A policy that turns the recording body into the inner service's body
    /// type with `convert`, and records up to 64 KiB of each body.
    pub fn new<B>(convert: F) -> Self
    where
        F: Fn(TeeBody<B>) -> B,
    {
        Self {
            convert,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// Records at most `max_bytes` of body data; a larger body is sent once.
    /// `0` records only bodies without data (trailers alone, or empty).
    /// Defaults to 64 KiB.
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The most body data recorded for a replay, as set by
    /// [`max_bytes`](BufferBody::max_bytes): 64 KiB unless set.
    pub fn cap(&self) -> usize {
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

impl<B, F> ReplayPolicy<Request<B>> for BufferBody<F>
where
    B: Body + 'static,
    F: Fn(TeeBody<B>) -> B + Clone + Send + Sync + 'static,
{
    type Kept = BufferedRequest;

    fn keep(&self, request: &mut Request<B>) -> Option<Self::Kept> {
        let head = KeptHead::of(request)?;
        let length = LengthHeader::of(request.headers());
        let recording = self.record(request.body_mut(), length)?;
        Some(BufferedRequest { head, recording })
    }

    fn replay(&self, kept: Self::Kept) -> Option<Request<B>> {
        kept.head.into_request(self.replay_body(&kept.recording)?)
    }
}

impl<F> BufferBody<F> {
    /// Starts recording `body` as it is sent: swaps it for a body that tees
    /// its frames into the recording, and returns the recording (`None` in it
    /// for a body with nothing to send). `None` if the body declares more
    /// than the cap.
    pub(crate) fn record<B>(&self, body: &mut B, length: LengthHeader) -> Option<BodyRecording>
    where
        B: Body + 'static,
        F: Fn(TeeBody<B>) -> B,
    {
        let size_hint = body.size_hint();
        let declared = length.declared(&size_hint);
        if size_hint.lower().max(declared.unwrap_or(0)) > self.max_bytes as u64 {
            return None;
        }
        if body.is_end_stream() {
            // Nothing to record: the replay is an empty body.
            return Some(BodyRecording(None));
        }
        let recording = Arc::new(Mutex::new(Recording::new(self.max_bytes, declared)));
        let placeholder = (self.convert)(TeeBody::empty());
        let original = mem::replace(body, placeholder);
        let tee = TeeBody::recording(original, Arc::downgrade(&recording));
        *body = (self.convert)(tee);
        Some(BodyRecording(Some(recording)))
    }

    /// The body to send again: what was recorded, if the recording holds the
    /// whole body.
    pub(crate) fn replay_body<B>(&self, recording: &BodyRecording) -> Option<B>
    where
        F: Fn(TeeBody<B>) -> B,
    {
        let body = match &recording.0 {
            None => TeeBody::empty(),
            Some(recording) => {
                let (data, trailers) = lock(recording).take_complete()?;
                TeeBody::replaying(data, trailers)
            }
        };
        Some((self.convert)(body))
    }
}

/// A request's `content-length` header, read before its body is borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LengthHeader {
    Absent,
    Declared(u64),
    /// Present, but not a plain number.
    Invalid,
}

impl LengthHeader {
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let Some(value) = headers.get(CONTENT_LENGTH) else {
            return LengthHeader::Absent;
        };
        let digits = value.as_bytes();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return LengthHeader::Invalid;
        }
        std::str::from_utf8(digits)
            .ok()
            .and_then(|digits| digits.parse().ok())
            .map_or(LengthHeader::Invalid, LengthHeader::Declared)
    }

    /// The length a request declares for its body: its `content-length`
    /// header, or else the body's exact size hint (from which hyper writes
    /// that header). An HTTP/1.1 sender writes that many bytes and then stops
    /// polling the body, so the body's end may never be seen; `None` if the
    /// length is not declared or the header is not a plain number.
    fn declared(self, size_hint: &SizeHint) -> Option<u64> {
        match self {
            LengthHeader::Absent => size_hint.exact(),
            LengthHeader::Declared(length) => Some(length),
            LengthHeader::Invalid => None,
        }
    }
}

/// What [`BufferBody`] keeps of a request while its first attempt is in
/// flight: the head, and the body's recording shared with its [`TeeBody`].
///
/// Its `Debug` shows the method, the URI without its query, and how much was
/// recorded, never the headers' values or the body.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::{combinators::BoxBody, Full};
/// use tower_bearer::replay::{BufferBody, ReplayPolicy};
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
    head: KeptHead,
    recording: BodyRecording,
}

impl fmt::Debug for BufferedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (state, recorded_bytes) = self.recording.progress();
        f.debug_struct("BufferedRequest")
            .field("head", &self.head)
            .field("state", &state)
            .field("recorded_bytes", &recorded_bytes)
            .finish()
    }
}

/// The recording of one body as it is sent; `None` inside for a body that
/// had nothing to send.
pub(crate) struct BodyRecording(Option<SharedRecording>);

impl BodyRecording {
    /// Where the recording is, and how many bytes it holds.
    pub(crate) fn progress(&self) -> (State, usize) {
        match &self.0 {
            None => (State::Complete, 0),
            Some(recording) => {
                let recording = lock(recording);
                (recording.state(), recording.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::future::poll_fn;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http::Method;
    use http_body::Frame;

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

    fn data(bytes: &'static [u8]) -> Frame<Bytes> {
        Frame::data(Bytes::from_static(bytes))
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
            data(b"hello "),
            data(b"world"),
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
        let mut req = request(vec![data(b"12345"), data(b"67890")]);
        let kept = policy.keep(&mut req).unwrap();
        let (data, _) = drain(req.body_mut()).await;
        assert_eq!(data.concat(), b"1234567890");
        assert_eq!(kept.recording.progress().0, State::Dropped);
        assert!(policy.replay(kept).is_none());
    }

    #[tokio::test]
    async fn unfinished_body_is_not_replayed() {
        let policy = BufferBody::new(boxed);
        let mut req = request(vec![data(b"a"), data(b"b")]);
        let kept = policy.keep(&mut req).unwrap();
        let first = poll_fn(|cx| req.body_mut().as_mut().poll_frame(cx)).await;
        assert!(first.is_some());
        assert!(policy.replay(kept).is_none());
        // The body goes on after the decision without recording anything.
        let (rest, _) = drain(req.body_mut()).await;
        assert_eq!(rest, vec![Bytes::from_static(b"b")]);
    }

    #[tokio::test]
    async fn bodies_without_data_are_replayed_empty() {
        let policy = BufferBody::new(boxed);
        let stream = request(Vec::new());
        let ended = Request::new(Box::pin(http_body_util::Empty::<Bytes>::new()) as Boxed);
        // `Frames` does not report its end up front, so it is recorded;
        // `Empty` does, so there is nothing to record.
        for (mut req, recorded) in [(stream, true), (ended, false)] {
            let kept = policy.keep(&mut req).unwrap();
            assert_eq!(kept.recording.0.is_some(), recorded);
            assert!(drain(req.body_mut()).await.0.is_empty());
            assert!(format!("{kept:?}").contains("Complete"));
            let mut again = policy.replay(kept).unwrap();
            assert!(again.body().is_end_stream());
            assert!(drain(again.body_mut()).await.0.is_empty());
        }
    }

    #[tokio::test]
    async fn stops_recording_once_the_request_is_settled() {
        let policy = BufferBody::new(boxed);
        let mut req = request(vec![data(b"a"), data(b"b")]);
        let kept = policy.keep(&mut req).unwrap();
        let weak = Arc::downgrade(kept.recording.0.as_ref().unwrap());
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
                LengthHeader::of(&headers).declared(size_hint),
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
