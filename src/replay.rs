//! How a request is kept so that it can be sent a second time after its token
//! was rejected.

use std::cell::RefCell;
use std::fmt;
use std::mem;

use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

/// Decides whether and how a request can be sent twice.
///
/// [`keep`](ReplayPolicy::keep) runs before the first send (before the
/// `Authorization` header is added) and may keep what it needs, or rewrite the
/// request (for example wrap its body to record it). [`replay`](ReplayPolicy::replay)
/// builds the second request after a rejection, or says it cannot.
///
/// Provided policies: [`CloneBody`] (the default, for bodies that are `Clone`,
/// such as `Full<Bytes>`, `String` or `Empty`), [`BufferBody`](crate::BufferBody)
/// (streams, recorded up to a cap as they are sent) and [`NoReplay`] (any body; a
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

/// Replays requests whose body is `Clone` by copying the request up front.
///
/// The head (method, URI, version, headers, extensions) is copied; cloning a
/// `Full<Bytes>` or `Bytes` body only bumps a reference count.
///
/// Keeping a request allocates nothing in the steady state (see
/// [`ClonedRequest`]), so the default layer adds no allocation per request.
///
/// ```
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::Full;
/// use tower_bearer::{CloneBody, ReplayPolicy};
///
/// let mut req = Request::post("http://127.0.0.1/x")
///     .header("content-type", "application/json")
///     .body(Full::new(Bytes::from("hi")))
///     .unwrap();
/// let kept = CloneBody.keep(&mut req).unwrap();
/// let again = CloneBody.replay(kept).unwrap();
/// assert_eq!(again.uri(), "http://127.0.0.1/x");
/// assert_eq!(again.headers()["content-type"], "application/json");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneBody;

/// A copy of a request's head and body.
///
/// The headers are copied as bytes into buffers taken from a small per-thread
/// pool, not cloned as a `HeaderMap`: cloning a map allocates its table (two or
/// three allocations per request), and cloning a header value built from a
/// string (`.header("accept", "application/json")`, the usual way) allocates
/// too, since its bytes are not yet shared. Copying a few hundred bytes into a
/// reused buffer costs less than those allocations, and the map is rebuilt only
/// on the rare replay. The method, URI, extensions and body are cloned: free
/// for standard methods, URIs parsed from a string or `'static`, empty
/// extensions and `Bytes`-backed bodies.
pub struct ClonedRequest<B> {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderCopy,
    extensions: Extensions,
    body: B,
}

impl<B: fmt::Debug> fmt::Debug for ClonedRequest<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are not printed: they may hold credentials.
        f.debug_struct("ClonedRequest")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("version", &self.version)
            .field("headers", &self.headers.entries.len())
            .field("extensions", &self.extensions)
            .field("body", &self.body)
            .finish()
    }
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
            headers: HeaderCopy::of(request.headers()),
            extensions: request.extensions().clone(),
            body: request.body().clone(),
        })
    }

    fn replay(&self, kept: Self::Kept) -> Option<Request<B>> {
        let headers = kept.headers.rebuild()?;
        let mut request = Request::new(kept.body);
        *request.method_mut() = kept.method;
        *request.uri_mut() = kept.uri;
        *request.version_mut() = kept.version;
        *request.headers_mut() = headers;
        *request.extensions_mut() = kept.extensions;
        Some(request)
    }
}

/// How many header buffers a thread keeps for reuse. A request in flight holds
/// one; more in flight than this on one thread allocate and free their own.
const POOL_SIZE: usize = 64;

/// Buffers that grew past this (a request with huge headers) are not pooled.
const MAX_POOLED_BYTES: usize = 16 * 1024;

thread_local! {
    static POOL: RefCell<Vec<HeaderCopy>> = const { RefCell::new(Vec::new()) };
}

/// A request's headers, copied: names and values back to back in `bytes`.
#[derive(Default)]
struct HeaderCopy {
    bytes: Vec<u8>,
    entries: Vec<CopiedEntry>,
}

struct CopiedEntry {
    name_len: usize,
    value_len: usize,
    sensitive: bool,
}

impl HeaderCopy {
    fn of(headers: &HeaderMap) -> Self {
        let mut copy = POOL
            .try_with(|pool| pool.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        for (name, value) in headers {
            let name = name.as_str().as_bytes();
            copy.bytes.extend_from_slice(name);
            copy.bytes.extend_from_slice(value.as_bytes());
            copy.entries.push(CopiedEntry {
                name_len: name.len(),
                value_len: value.len(),
                sensitive: value.is_sensitive(),
            });
        }
        copy
    }

    /// The headers again. `None` only for a value that the safe constructors
    /// of `HeaderValue` would not have accepted; the request is then not
    /// replayed.
    fn rebuild(&self) -> Option<HeaderMap> {
        let mut map = HeaderMap::with_capacity(self.entries.len());
        let mut at = 0;
        for entry in &self.entries {
            let name_end = at + entry.name_len;
            let value_end = name_end + entry.value_len;
            let name = HeaderName::from_bytes(&self.bytes[at..name_end]).ok()?;
            let mut value = HeaderValue::from_bytes(&self.bytes[name_end..value_end]).ok()?;
            value.set_sensitive(entry.sensitive);
            map.append(name, value);
            at = value_end;
        }
        Some(map)
    }
}

impl Drop for HeaderCopy {
    fn drop(&mut self) {
        if self.bytes.capacity() == 0 && self.entries.capacity() == 0 {
            return;
        }
        let mut bytes = mem::take(&mut self.bytes);
        let mut entries = mem::take(&mut self.entries);
        if bytes.capacity() > MAX_POOLED_BYTES {
            return;
        }
        // Header values may be secrets (cookies, API keys): wipe them before
        // the buffer is reused.
        bytes.fill(0);
        bytes.clear();
        entries.clear();
        // During thread teardown the pool is gone; the buffers are just freed.
        let _ = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL_SIZE {
                pool.push(HeaderCopy { bytes, entries });
            }
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_body_replays_the_head_exactly() {
        let mut secret = HeaderValue::from_static("session=abc");
        secret.set_sensitive(true);
        let mut req = Request::builder()
            .method(Method::PUT)
            .uri("http://127.0.0.1:9/a/b?c=d")
            .version(Version::HTTP_2)
            .header("x-custom", "one")
            .header("accept", "text/plain")
            .header("x-custom", "two")
            .header("x-bytes", HeaderValue::from_bytes(b"caf\xe9\tok").unwrap())
            .header("cookie", secret)
            .extension(7u32)
            .body(String::from("body"))
            .unwrap();
        let kept = CloneBody.keep(&mut req).unwrap();
        assert!(!format!("{kept:?}").contains("session"));
        let again = CloneBody.replay(kept).unwrap();
        assert_eq!(again.method(), Method::PUT);
        assert_eq!(again.uri(), req.uri());
        assert_eq!(again.version(), Version::HTTP_2);
        assert_eq!(again.headers(), req.headers());
        let order = |r: &Request<String>| {
            r.headers()
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(order(&again), order(&req));
        assert!(again.headers()["cookie"].is_sensitive());
        assert!(!again.headers()["accept"].is_sensitive());
        assert_eq!(again.extensions().get::<u32>(), Some(&7));
        assert_eq!(again.body(), "body");
    }

    #[test]
    fn buffers_are_reused() {
        let mut req = Request::get("/")
            .header("x-api-key", "k3y")
            .body(())
            .unwrap();
        drop(CloneBody.keep(&mut req));
        let reused = POOL.with(|p| p.borrow_mut().pop()).unwrap();
        assert!(reused.bytes.is_empty() && reused.bytes.capacity() >= 12);
        assert!(reused.entries.is_empty());
        let mut empty = Request::get("/").body(()).unwrap();
        let kept = CloneBody.keep(&mut empty).unwrap();
        assert!(CloneBody.replay(kept).unwrap().headers().is_empty());
    }
}
