//! `TeeBody`: a request body that records what it sends, or plays back what
//! was recorded.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Mutex, Weak};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::recording::{lock, Recording};

pin_project! {
    /// A request body that records what it sends for
    /// [`BufferBody`](super::BufferBody), or, on the second attempt, plays
    /// that recording back.
    ///
    /// Data frames come out as `Bytes` (a `Bytes` body's frames are passed on
    /// without a copy); trailers are passed on and recorded too. Errors are the
    /// inner body's.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body::Body;
    /// use http_body_util::Full;
    /// use tower_bearer::replay::TeeBody;
    ///
    /// let empty: TeeBody<Full<Bytes>> = TeeBody::empty();
    /// assert!(empty.is_end_stream());
    /// assert_eq!(empty.size_hint().exact(), Some(0));
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
    pub fn empty() -> Self {
        Self::replaying(Vec::new(), None)
    }

    /// Sends `inner` and records it into `recording` while anyone wants it.
    pub(super) fn recording(inner: B, recording: Weak<Mutex<Recording>>) -> Self {
        Self {
            kind: Kind::Recording {
                inner,
                recording: Some(recording),
            },
        }
    }

    /// Plays back a recording.
    pub(super) fn replaying(data: Vec<Bytes>, trailers: Option<HeaderMap>) -> Self {
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
                        let go_on = r.record(&frame);
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
