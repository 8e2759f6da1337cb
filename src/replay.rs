//! How a request is kept so that it can be sent a second time after its token
//! was rejected.

use std::cell::RefCell;
use std::fmt;
use std::mem;

use http::uri::{Authority, PathAndQuery, Scheme};
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
/// The URI and the headers are copied as bytes into buffers taken from a small
/// per-thread pool, not cloned: cloning a `HeaderMap` allocates its table (two
/// or three allocations per request), and cloning a header value or a URI
/// built from a string (`.header("accept", "application/json")`,
/// `Uri::builder()`, the usual ways) allocates too, because its bytes are not
/// shared yet. Copying a few hundred bytes into a reused buffer costs less
/// than those allocations (and than the reference-count traffic of cloning),
/// and the URI and header map are rebuilt only on the rare replay. The method,
/// extensions and body are cloned: free for standard methods, empty extensions
/// and `Bytes`-backed bodies.
pub struct ClonedRequest<B> {
    method: Method,
    version: Version,
    head: HeadCopy,
    extensions: Extensions,
    body: B,
}

impl<B: fmt::Debug> fmt::Debug for ClonedRequest<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are not printed: they may hold credentials.
        f.debug_struct("ClonedRequest")
            .field("method", &self.method)
            .field(
                "uri",
                &self
                    .head
                    .rebuild_uri()
                    .map(|uri| crate::secret::url_for_display(&uri.to_string())),
            )
            .field("version", &self.version)
            .field("headers", &self.head.entries.len())
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
            version: request.version(),
            head: HeadCopy::of(request.uri(), request.headers()),
            extensions: request.extensions().clone(),
            body: request.body().clone(),
        })
    }

    fn replay(&self, kept: Self::Kept) -> Option<Request<B>> {
        let uri = kept.head.rebuild_uri()?;
        let headers = kept.head.rebuild_headers()?;
        let mut request = Request::new(kept.body);
        *request.method_mut() = kept.method;
        *request.uri_mut() = uri;
        *request.version_mut() = kept.version;
        *request.headers_mut() = headers;
        *request.extensions_mut() = kept.extensions;
        Some(request)
    }
}

/// How many idle buffers a thread keeps. Buffers circulate: a request takes
/// one when it is sent and gives it back when its response future is dropped
/// (on whichever thread that is), so in a steady state nothing is allocated.
/// The cap bounds what a thread keeps after a burst; a burst larger than this
/// on one thread frees the surplus, to be allocated again by the next burst.
const POOL_SIZE: usize = 256;

/// Buffers that grew past this (a request with huge headers) are not pooled.
const MAX_POOLED_BYTES: usize = 16 * 1024;

thread_local! {
    static POOL: RefCell<Vec<HeadCopy>> = const { RefCell::new(Vec::new()) };
}

/// A request's URI and headers, copied: the URI's scheme, authority and path
/// with query, then each header's name and value, back to back in `bytes`.
#[derive(Default)]
struct HeadCopy {
    bytes: Vec<u8>,
    /// Lengths of the URI's scheme, authority, path-and-query (`None`: absent).
    uri: [Option<usize>; 3],
    entries: Vec<CopiedEntry>,
}

struct CopiedEntry {
    name_len: usize,
    value_len: usize,
    sensitive: bool,
}

impl HeadCopy {
    fn of(uri: &Uri, headers: &HeaderMap) -> Self {
        let mut copy = POOL
            .try_with(|pool| pool.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        let parts = [
            uri.scheme_str(),
            uri.authority().map(|a| a.as_str()),
            uri.path_and_query().map(|p| p.as_str()),
        ];
        for (len, part) in copy.uri.iter_mut().zip(parts) {
            *len = part.map(|part| {
                copy.bytes.extend_from_slice(part.as_bytes());
                part.len()
            });
        }
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

    fn uri_len(&self) -> usize {
        self.uri.iter().flatten().sum()
    }

    /// The URI again, from parts that `http` printed itself, so they parse;
    /// `None` (no replay) should they not.
    fn rebuild_uri(&self) -> Option<Uri> {
        let mut at = 0;
        let mut next = |len: Option<usize>| {
            len.map(|len| {
                let part = &self.bytes[at..at + len];
                at += len;
                part
            })
        };
        let mut parts = http::uri::Parts::default();
        if let Some(scheme) = next(self.uri[0]) {
            parts.scheme = Some(Scheme::try_from(scheme).ok()?);
        }
        if let Some(authority) = next(self.uri[1]) {
            parts.authority = Some(Authority::try_from(authority).ok()?);
        }
        if let Some(path) = next(self.uri[2]) {
            parts.path_and_query = Some(PathAndQuery::try_from(path).ok()?);
        }
        Uri::from_parts(parts).ok()
    }

    /// The headers again. `None` (no replay) only for a value that the safe
    /// constructors of `HeaderValue` would not have accepted.
    fn rebuild_headers(&self) -> Option<HeaderMap> {
        let mut map = HeaderMap::with_capacity(self.entries.len());
        let mut at = self.uri_len();
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

impl Drop for HeadCopy {
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
                pool.push(HeadCopy {
                    bytes,
                    uri: [None; 3],
                    entries,
                });
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
    fn uris_of_every_form_are_replayed_exactly() {
        let built = Uri::builder()
            .scheme("https")
            .authority("api.example:8443")
            .path_and_query("/v1/x?y=z")
            .build()
            .unwrap();
        let uris = [
            Uri::from_static("http://127.0.0.1:8080/a/b?c=d&e"),
            Uri::from_static("http://host"),
            Uri::from_static("http://[::1]:9/x"),
            Uri::from_static("grpc+h2://svc.internal/pkg.Svc/Method"),
            Uri::from_static("/origin/form?q=1"),
            Uri::from_static("/"),
            Uri::from_static("*"),
            Uri::from_static("example.com:443"),
            "http://user@host:1/p%20q?r=%C3%A9".parse().unwrap(),
            built,
            Uri::default(),
        ];
        for uri in uris {
            let mut req = Request::get(uri.clone()).body(()).unwrap();
            let again = CloneBody.replay(CloneBody.keep(&mut req).unwrap()).unwrap();
            assert_eq!(again.uri(), &uri);
            assert_eq!(again.uri().to_string(), uri.to_string());
            assert_eq!(
                again.uri().path_and_query().map(|p| p.as_str()),
                uri.path_and_query().map(|p| p.as_str())
            );
        }
    }

    #[test]
    fn buffers_are_reused() {
        let mut req = Request::get("/")
            .header("x-api-key", "k3y")
            .body(())
            .unwrap();
        drop(CloneBody.keep(&mut req));
        let reused = POOL.with(|p| p.borrow_mut().pop()).unwrap();
        assert!(reused.bytes.is_empty() && reused.bytes.capacity() >= 13);
        assert_eq!(reused.uri, [None; 3]);
        assert!(reused.entries.is_empty());
        let mut empty = Request::get("/").body(()).unwrap();
        let kept = CloneBody.keep(&mut empty).unwrap();
        assert!(CloneBody.replay(kept).unwrap().headers().is_empty());
    }
}
