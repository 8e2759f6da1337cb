//! The replay policies for `reqwest::Request`, so that the middleware keeps
//! requests for a replay exactly as the Tower layer does.

use std::fmt;

use ::reqwest::{Body, Request};

use crate::replay::{BodyRecording, BufferBody, CloneBody, LengthHeader, ReplayPolicy, TeeBody};

/// `CloneBody` under the middleware: what
/// [`reqwest::Request::try_clone`](::reqwest::Request::try_clone) can copy
/// (bodies from bytes, strings, JSON and forms; not streams).
impl ReplayPolicy<Request> for CloneBody {
    type Kept = Request;

    fn keep(&self, request: &mut Request) -> Option<Request> {
        request.try_clone()
    }

    fn replay(&self, kept: Request) -> Option<Request> {
        Some(kept)
    }
}

/// `BufferBody` under the middleware: bodies from bytes are copied, streams
/// (`reqwest::Body::wrap_stream`, `Body::wrap`) recorded as they are sent, up
/// to the cap. Build it with `BufferBody::new(reqwest::Body::wrap)`.
impl<F> ReplayPolicy<Request> for BufferBody<F>
where
    F: Fn(TeeBody<Body>) -> Body + Clone + Send + Sync + 'static,
{
    type Kept = KeptRequest;

    fn keep(&self, request: &mut Request) -> Option<KeptRequest> {
        if let Some(copy) = request.try_clone() {
            return Some(KeptRequest(Kept::Copied(copy)));
        }
        let length = LengthHeader::of(request.headers());
        let recording = self.record(request.body_mut().as_mut()?, length)?;
        let mut head = Request::new(request.method().clone(), request.url().clone());
        *head.headers_mut() = request.headers().clone();
        *head.version_mut() = request.version();
        *head.timeout_mut() = request.timeout().copied();
        Some(KeptRequest(Kept::Recorded { head, recording }))
    }

    fn replay(&self, kept: KeptRequest) -> Option<Request> {
        match kept.0 {
            Kept::Copied(request) => Some(request),
            Kept::Recorded {
                mut head,
                recording,
            } => {
                *head.body_mut() = Some(self.replay_body(&recording)?);
                Some(head)
            }
        }
    }
}

/// What [`BufferBody`] keeps of a `reqwest::Request` for a replay: a copy,
/// or its head and the recording of its streaming body.
///
/// Its `Debug` says which, never what the request holds.
///
/// ```
/// use tower_bearer::replay::{BufferBody, ReplayPolicy};
///
/// let policy = BufferBody::new(reqwest::Body::wrap);
/// let mut request = reqwest::Request::new(
///     reqwest::Method::POST,
///     "http://127.0.0.1/upload".parse().unwrap(),
/// );
/// *request.body_mut() = Some(reqwest::Body::from("small"));
/// let kept = policy.keep(&mut request).unwrap();
/// assert_eq!(format!("{kept:?}"), "KeptRequest(Copied)");
/// let again: reqwest::Request = policy.replay(kept).unwrap();
/// assert_eq!(again.url().path(), "/upload");
/// ```
pub struct KeptRequest(Kept);

enum Kept {
    Copied(Request),
    Recorded {
        head: Request,
        recording: BodyRecording,
    },
}

impl fmt::Debug for KeptRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.0 {
            Kept::Copied(_) => "Copied",
            Kept::Recorded { .. } => "Recorded",
        };
        f.debug_tuple("KeptRequest")
            .field(&format_args!("{what}"))
            .finish()
    }
}
